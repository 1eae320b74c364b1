// GPTQ / SparseGPT / Wanda: GPTQ with a diagonal Hessian is round-to-nearest byte for
// byte; GPTQ lowers a layer's output error against RTN on held-out activations of the
// real model; act-order keeps bitsandbytes blocks; 2:4 and unstructured masks hit their
// exact counts; dead channels, singular and poisoned Hessians are handled.
#include <cmath>
#include <random>

#include "common/float_convert.h"
#include "common/half.h"
#include "formats/model.h"
#include "formats/token_ids.h"
#include "gtest/gtest.h"
#include "ops/calibrate_layer.h"
#include "ops/decoder_layer.h"
#include "ops/hessian.h"
#include "ops/nf4.h"
#include "ops/obs_compress.h"
#include "ops/weighted_scales.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/random_layer.h"

namespace sp {
namespace {

using test::bf16_weights;
using test::random_hessian;
std::vector<float> diagonal(int64_t c, uint32_t seed) { return test::diagonal_hessian(c, seed); }

// For both 4-bit code books (NF4, FP4): GPTQ with a diagonal Hessian has nothing to
// compensate, so its bytes are the type's round-to-nearest reference bytes.
TEST(Gptq, DiagonalHessianEqualsRoundToNearest) {
  for (BnbType type : {BnbType::kNf4, BnbType::kFp4}) {
    for (auto [rows, cols] : {std::pair{16, 192}, {3, 77}, {5, 64}}) {
      for (bool act_order : {false, true}) {
        SCOPED_TRACE(::testing::Message() << bnb_type_name(type) << " " << rows << "x" << cols << " act_order "
                                          << act_order);
        const auto w = bf16_weights(static_cast<size_t>(rows * cols), 7);
        ObsSettings s;
        s.act_order = act_order;
        s.quant_type = type;
        auto r = obs_compress(w, rows, cols, diagonal(cols, 3), s);
        ASSERT_TRUE(r.ok()) << r.status();
        const size_t n = w.size();
        std::vector<uint8_t> packed(nf4_packed_bytes(n));
        std::vector<float> absmax(nf4_num_blocks(n, 64));
        ASSERT_EQ(bnb4_backend(type, nf4_reference_backend())
                      .quantize(w.data(), DType::kF32, n, 64, packed.data(), absmax.data()),
                  kAllFinite);
        EXPECT_EQ(r->packed, packed);
        EXPECT_EQ(r->absmax, absmax);
      }
    }
  }
}

// Importance-weighted block scales: each block's scale is the candidate (alpha * absmax)
// with the least Σ h_j (w_j - ŵ_j)² (checked by brute force), never worse than absmax;
// with double quantization the reported scales are what the chosen 8-bit codes decode to,
// and no worse than double-quantized absmax. GPTQ with a diagonal Hessian then rounds to
// nearest with exactly those scales.
TEST(Gptq, WeightedBlockScalesAreTheBestCandidatesOnWhatDecodes) {
  const int64_t rows = 6, cols = 96;
  const auto w = bf16_weights(static_cast<size_t>(rows * cols), 11);
  std::vector<float> hd(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) hd[j] = 0.1f + static_cast<float>((j * 37) % 11);
  auto err = [&](size_t b, float sc, BnbType t) {
    double e = 0;
    for (size_t i = b * 64; i < std::min(w.size(), b * 64 + 64); ++i) {
      const double d = w[i] - bnb4_code(t)[bnb4_code_of(t, w[i] * (1.0f / sc))] * sc;
      e += hd[i % cols] * d * d;
    }
    return e;
  };
  for (BnbType t : {BnbType::kNf4, BnbType::kFp4}) {
    SCOPED_TRACE(bnb_type_name(t));
    const WeightedScales plain = weighted_block_scales(w, rows, cols, hd, 64, t, false);
    ASSERT_EQ(plain.absmax.size(), 9u);
    int moved = 0;
    for (size_t b = 0; b < plain.absmax.size(); ++b) {
      float amax = 0;
      for (size_t i = b * 64; i < b * 64 + 64; ++i) amax = std::fmax(amax, std::fabs(w[i]));
      double best = err(b, amax, t);
      for (float a = kWeightedScaleLow; a <= kWeightedScaleHigh + 1e-6f; a += kWeightedScaleStep)
        best = std::min(best, err(b, amax * a, t));
      EXPECT_EQ(err(b, plain.absmax[b], t), best) << b;
      moved += plain.absmax[b] != amax;
    }
    EXPECT_GT(moved, 0) << "every block kept absmax: the choice did nothing";
    const WeightedScales dq = weighted_block_scales(w, rows, cols, hd, 64, t, true);
    ASSERT_TRUE(dq.dq.has_value());
    std::vector<float> decoded(dq.absmax.size());
    double_dequantize(dq.dq->codes, dq.dq->nested_absmax, dq.dq->offset, dq.dq->map.data(), decoded.data());
    EXPECT_EQ(decoded, dq.absmax);
    // GPTQ with a diagonal Hessian: round to nearest with the chosen scales.
    ObsSettings s;
    s.quant_type = t;
    s.weighted_scales = true;
    std::vector<float> h(static_cast<size_t>(cols * cols), 0.0f);
    for (int64_t j = 0; j < cols; ++j) h[j * cols + j] = hd[j];
    auto r = obs_compress(w, rows, cols, h, s);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->absmax, plain.absmax);
    for (size_t i = 0; i < w.size(); ++i) {
      const float sc = plain.absmax[i / 64];
      ASSERT_EQ(r->weight[i], bnb4_code(t)[bnb4_code_of(t, w[i] * (1.0f / sc))] * sc) << i;
    }
  }
}

TEST(Gptq, ActOrderKeepsBitsandbytesBlocksAndChangesRounding) {
  const int64_t rows = 24, cols = 128;
  const auto w = bf16_weights(static_cast<size_t>(rows * cols), 9);
  const auto h = random_hessian(cols, 300, 4);
  ObsSettings s;
  s.act_order = true;
  auto a = obs_compress(w, rows, cols, h, s);
  s.act_order = false;
  auto b = obs_compress(w, rows, cols, h, s);
  ASSERT_TRUE(a.ok() && b.ok());
  // Static scales: each block's absmax is the original block's max |w| (no g_idx needed).
  for (size_t blk = 0; blk < a->absmax.size(); ++blk) {
    float m = 0;
    for (size_t i = blk * 64; i < blk * 64 + 64; ++i) m = std::fmax(m, std::fabs(w[i]));
    EXPECT_EQ(a->absmax[blk], m);
  }
  EXPECT_NE(a->packed, b->packed);
  // Decoding the bytes gives exactly the weights the loop reports.
  std::vector<float> decoded(w.size());
  nf4_dequantize_ref(a->packed.data(), a->absmax.data(), w.size(), 64, decoded.data());
  EXPECT_EQ(decoded, a->weight);
}

TEST(Gptq, DoubleQuantUsesTheDecodedAbsmax) {
  const int64_t rows = 8, cols = 256;
  const auto w = bf16_weights(static_cast<size_t>(rows * cols), 2);
  ObsSettings s;
  s.double_quant = true;
  auto r = obs_compress(w, rows, cols, random_hessian(cols, 400, 5), s);
  ASSERT_TRUE(r.ok() && r->dq);
  std::vector<float> scale(r->absmax.size());
  double_dequantize(r->dq->codes, r->dq->nested_absmax, r->dq->offset, r->dq->map.data(), scale.data());
  std::vector<float> decoded(w.size());
  nf4_dequantize_ref(r->packed.data(), scale.data(), w.size(), 64, decoded.data());
  EXPECT_EQ(decoded, r->weight);
}

TEST(Gptq, TwoFourWithJointQuantizationHasTheStructure) {
  const int64_t rows = 16, cols = 128;
  const auto w = bf16_weights(static_cast<size_t>(rows * cols), 12);
  ObsSettings s;
  s.mask = ObsSettings::Mask::kAdaptive;
  s.scope = PruneScope::kTwoFour;
  auto r = obs_compress(w, rows, cols, random_hessian(cols, 300, 6), s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->pruned, static_cast<uint64_t>(rows * cols / 2));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t g = 0; g < cols; g += 4) {
      int zeros = 0;
      for (int t = 0; t < 4; ++t) zeros += r->weight[i * cols + g + t] == 0.0f;
      EXPECT_GE(zeros, 2) << "row " << i << " group " << g;
    }
  s.act_order = true;
  EXPECT_EQ(obs_compress(w, rows, cols, random_hessian(cols, 300, 6), s).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SparseGpt, HitsTheExactSparsity) {
  const int64_t rows = 10, cols = 300;  // blocks of 128, 128, 44
  const auto w = bf16_weights(static_cast<size_t>(rows * cols), 13);
  const auto h = random_hessian(cols, 500, 7);
  for (PruneScope scope : {PruneScope::kRow, PruneScope::kTensor}) {
    for (double sp : {0.3, 0.5, 0.77}) {
      ObsSettings s;
      s.quantize = false;
      s.mask = ObsSettings::Mask::kAdaptive;
      s.scope = scope;
      s.sparsity = sp;
      auto r = obs_compress(w, rows, cols, h, s);
      ASSERT_TRUE(r.ok()) << r.status();
      if (scope == PruneScope::kRow) {
        for (int64_t i = 0; i < rows; ++i) {
          int64_t z = 0;
          for (int64_t j = 0; j < cols; ++j) z += r->weight[i * cols + j] == 0.0f;
          EXPECT_EQ(z, static_cast<int64_t>(prune_count(sp, cols))) << sp << " row " << i;
        }
      } else {
        EXPECT_EQ(r->pruned, prune_count(sp, rows * cols)) << sp;
      }
    }
  }
}

TEST(Obs, DeadChannelsAreZeroedAndSingularHessiansDamped) {
  const int64_t rows = 4, cols = 64;
  auto w = bf16_weights(static_cast<size_t>(rows * cols), 14);
  auto h = random_hessian(cols, 20, 8);  // 20 tokens < 64 columns: singular
  for (int64_t j = 0; j < cols; ++j) h[5 * cols + j] = h[j * cols + 5] = 0.0f;  // channel 5 never active
  ObsSettings s;
  auto r = obs_compress(w, rows, cols, h, s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->dead_columns, 1u);
  for (int64_t i = 0; i < rows; ++i) EXPECT_EQ(r->weight[i * cols + 5], 0.0f);
  EXPECT_GE(r->damp_used, 0.01);
}

TEST(Hessian, TakingItGivesTheSameMatrixAndEmptiesTheAccumulator) {
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  const int64_t c = 131, t = 70;  // not a multiple of the mirroring tile
  std::vector<float> x(static_cast<size_t>(t * c));
  for (float& v : x) v = nd(rng);
  HessianAccumulator acc(c);
  acc.add(x.data(), 30);
  acc.add(x.data() + 30 * c, 40);
  const auto copy = acc.hessian();
  ASSERT_TRUE(copy.ok());
  for (int64_t i = 0; i < c; ++i)
    for (int64_t j = 0; j < c; ++j) ASSERT_EQ((*copy)[i * c + j], (*copy)[j * c + i]);
  const auto taken = acc.take_hessian();
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(*taken, *copy);
  EXPECT_FALSE(acc.hessian().ok());
}

TEST(Hessian, NanActivationIsAClearError) {
  HessianAccumulator acc(4);
  std::vector<float> x = {1, 2, NAN, 4};
  acc.add(x.data(), 1);
  auto h = acc.hessian();
  ASSERT_FALSE(h.ok());
  EXPECT_NE(std::string(h.status().message()).find("not finite"), std::string::npos);
}

// ---- on the real model -----------------------------------------------------------

struct StoriesLayer {
  Model model;
  std::vector<InputTensor> inputs;
};

StoriesLayer stories_layer(int64_t layer) {
  auto m = open_model(test::fixture("stories260k/hf-bf16"));
  EXPECT_TRUE(m.ok());
  StoriesLayer s{std::move(*m), {}};
  for (const auto& name : s.model.desc.shards[static_cast<size_t>(layer + 1)].tensors)
    s.inputs.push_back({s.model.desc.find(name), s.model.files.find(name)->view().bytes});
  return s;
}

Activations embedded(const Model& m, const std::string& ids_file, int64_t samples) {
  const auto ids = *read_token_ids(test::fixture(ids_file), 512, samples, 256);
  const TensorRef* e = m.files.find("model.embed_tokens.weight");
  const auto embed = to_float32(e->view().bytes, e->info->dtype);
  return embed_calibration(m.desc.config, embed, ids.ids.data(), ids.sequences, ids.seq_len);
}

// The weights a result group decodes to (no double quant).
std::vector<float> decode(const std::vector<OutputTensor>& g, size_t n) {
  std::vector<float> out(n);
  const auto absmax = to_float32(g[1].data, DType::kF32);
  nf4_dequantize_ref(g[0].data.data(), absmax.data(), n, 64, out.data());
  return out;
}

TEST(Gptq, LowersOutputErrorAgainstRtnOnHeldOutActivations) {
  StoriesLayer L = stories_layer(1);
  const ModelConfig& c = L.model.desc.config;
  // Inputs of layer 1 on calibration text and, held out, on evaluation text.
  Activations calib = embedded(L.model, "stories260k/text/calib.ids.txt", 64);
  Activations held = embedded(L.model, "stories260k/text/eval.ids.txt", 32);
  StoriesLayer L0 = stories_layer(0);
  CompressSettings dense{std::nullopt, std::nullopt};
  dense.prune = PruneSettings{PruneScope::kRow, 0.0, PruneMethod::kWanda};  // zero sparsity: a calibrated no-op
  ASSERT_TRUE(calibrate_layer(c, 0, L0.inputs, calib, dense, false).ok());
  ASSERT_TRUE(calibrate_layer(c, 0, L0.inputs, held, dense, false).ok());

  CompressSettings rtn;
  rtn.quantize = Nf4Settings{64, false, DType::kBF16};
  rtn.prune = dense.prune;  // forces the calibrated path with RTN
  CompressSettings gptq = rtn;
  gptq.prune.reset();
  gptq.quant_method = QuantMethod::kGptq;
  Activations a1 = calib, a2 = calib;
  auto r = calibrate_layer(c, 1, L.inputs, a1, rtn, true);
  auto g = calibrate_layer(c, 1, L.inputs, a2, gptq, true);
  ASSERT_TRUE(r.ok() && g.ok()) << r.status() << g.status();

  // Held-out inputs of every projection, from the original layer.
  const LayerWeights lw = *load_layer_weights(c, L.inputs);
  std::vector<std::vector<float>> xs(kLinearInputs);
  LinearTap tap = [&](LinearInput which, const float* x, int64_t tokens, int64_t width) {
    xs[static_cast<int>(which)].insert(xs[static_cast<int>(which)].end(), x, x + tokens * width);
  };
  const RopeTable rope = *rope_table(c, 256);
  for (int64_t s = 0; s < held.sequences; ++s) {
    std::vector<float> x(held.row(s), held.row(s) + 256 * c.hidden_size);
    decoder_layer_forward(c, 1, lw, rope, x.data(), 256, &tap);
  }
  int better = 0, linear = 0;
  double rtn_total = 0, gptq_total = 0;
  for (size_t k = 0; k < L.inputs.size(); ++k) {
    const ModelTensor& meta = *L.inputs[k].meta;
    if (!is_linear_weight(meta.role)) continue;
    ++linear;
    const int64_t rows = meta.stored.shape[0], cols = meta.stored.shape[1];
    const auto& w = lw.tensors.at(meta.role);
    const auto qr = decode(r->result.groups[k], w.size());
    const auto qg = decode(g->result.groups[k], w.size());
    const auto& x = xs[static_cast<int>(linear_input_of(meta.role))];
    const int64_t tokens = static_cast<int64_t>(x.size()) / cols;
    auto err = [&](const std::vector<float>& q) {
      double e = 0;
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t i = 0; i < rows; ++i) {
          double d = 0;
          for (int64_t j = 0; j < cols; ++j) d += (static_cast<double>(w[i * cols + j]) - q[i * cols + j]) * x[t * cols + j];
          e += d * d;
        }
      return e;
    };
    const double er = err(qr), eg = err(qg);
    rtn_total += er;
    gptq_total += eg;
    better += eg < er;
    EXPECT_LT(eg, er * 1.02) << meta.name;  // never materially worse on unseen text
  }
  EXPECT_EQ(better, linear) << "GPTQ should beat RTN on every projection";
  EXPECT_LT(gptq_total, 0.8 * rtn_total);
}

TEST(Wanda, ExactSparsityPerRowAndDifferentFromMagnitude) {
  StoriesLayer L = stories_layer(0);
  const ModelConfig& c = L.model.desc.config;
  Activations a = embedded(L.model, "stories260k/text/calib.ids.txt", 16);
  CompressSettings wanda{PruneSettings{PruneScope::kRow, 0.3, PruneMethod::kWanda}, std::nullopt};
  auto w = calibrate_layer(c, 0, L.inputs, a, wanda, true);
  ASSERT_TRUE(w.ok()) << w.status();
  auto m = compress_shard(L.inputs, CompressSettings{PruneSettings{PruneScope::kRow, 0.3}, std::nullopt});
  ASSERT_TRUE(m.ok());
  int differ = 0;
  for (size_t k = 0; k < L.inputs.size(); ++k) {
    const ModelTensor& meta = *L.inputs[k].meta;
    if (!is_linear_weight(meta.role)) continue;
    const int64_t rows = meta.stored.shape[0], cols = meta.stored.shape[1];
    const auto v = to_float32(w->result.groups[k][0].data, meta.stored.dtype);
    for (int64_t i = 0; i < rows; ++i) {
      int64_t z = 0;
      for (int64_t j = 0; j < cols; ++j) z += v[i * cols + j] == 0.0f;
      EXPECT_EQ(z, static_cast<int64_t>(prune_count(0.3, cols))) << meta.name << " row " << i;
    }
    differ += w->result.groups[k][0].data != m->groups[k][0].data;
  }
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// Dense statistics shared between jobs: the sums one job's dense pass collected, given to a
// job with other settings, give exactly what that job computes alone (sequential: the next
// layer's activations too); a wrong size and true-sequential are refused.
TEST(DenseStatistics, TakenFromAnotherJobGiveTheSameBytesAsComputingThem) {
  StoriesLayer L = stories_layer(0);
  const ModelConfig& c = L.model.desc.config;
  const Activations entering = embedded(L.model, "stories260k/text/calib.ids.txt", 8);
  CompressSettings first;
  first.quantize = Nf4Settings{64, true, DType::kBF16};
  first.quant_method = QuantMethod::kGptq;
  CompressSettings second;
  second.prune = PruneSettings{PruneScope::kRow, 0.3, PruneMethod::kSparseGpt};
  second.quantize = first.quantize;

  std::vector<uint8_t> stats;
  Activations a = entering;
  auto produced = calibrate_layer(c, 0, L.inputs, a, first, true, nf4_best_backend(), {}, {std::nullopt, &stats});
  ASSERT_TRUE(produced.ok()) << produced.status();
  ASSERT_EQ(stats.size(), static_cast<size_t>(dense_statistics_size(c)) * sizeof(float));
  Activations alone_first = entering;
  auto first_alone = calibrate_layer(c, 0, L.inputs, alone_first, first, true);
  ASSERT_TRUE(first_alone.ok());
  EXPECT_EQ(a.data, alone_first.data) << "returning the statistics changes nothing";

  for (bool sequential : {true, false}) {
    Activations alone = entering, taking = entering;
    auto computed = calibrate_layer(c, 0, L.inputs, alone, second, sequential);
    auto took = calibrate_layer(c, 0, L.inputs, taking, second, sequential, nf4_best_backend(), {},
                                {std::span<const uint8_t>(stats), nullptr});
    ASSERT_TRUE(computed.ok() && took.ok()) << computed.status() << took.status();
    ASSERT_EQ(computed->result.groups.size(), took->result.groups.size());
    for (size_t k = 0; k < computed->result.groups.size(); ++k)
      for (size_t t = 0; t < computed->result.groups[k].size(); ++t)
        EXPECT_EQ(computed->result.groups[k][t].data, took->result.groups[k][t].data)
            << computed->result.groups[k][t].spec.name << (sequential ? " sequential" : " pipelined");
    if (sequential) EXPECT_EQ(alone.data, taking.data) << "the next layer's activations";
  }

  Activations x = entering;
  const std::vector<uint8_t> short_stats(stats.begin(), stats.end() - 4);
  auto bad = calibrate_layer(c, 0, L.inputs, x, second, true, nf4_best_backend(), {},
                             {std::span<const uint8_t>(short_stats), nullptr});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("the shared statistics hold"), std::string::npos) << bad.status();
  CompressSettings ts = first;
  ts.gptq.true_sequential = true;
  auto refused = calibrate_layer(c, 0, L.inputs, x, ts, true, nf4_best_backend(), {}, {std::nullopt, &stats});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(std::string(refused.status().message()).find("true_sequential"), std::string::npos);
}

}  // namespace
}  // namespace sp
