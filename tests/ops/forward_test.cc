// The forward pass: against a naive per-element transcription of architectures.md for
// all three families (biases, QK-norm, post-norms, NoPE global layers, sliding windows,
// llama3 RoPE), and against the fixtures: golden logits of stories260k (1e-4) and the
// reference perplexities.
#include <cmath>
#include <fstream>
#include <numbers>
#include <random>

#include "checkpoint/float_model.h"
#include "formats/token_ids.h"
#include "gtest/gtest.h"
#include "ops/calibrate_layer.h"
#include "ops/decoder_layer.h"
#include "ops/language_model.h"
#include "ops/rope.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/random_layer.h"

namespace sp {
namespace {

// ---- naive reference (double precision, loops only) --------------------------------

using Vec = std::vector<double>;

Vec linear(const Vec& x, const std::vector<float>& w, int64_t out, int64_t in, const float* bias) {
  Vec y(out, 0.0);
  for (int64_t o = 0; o < out; ++o) {
    double s = bias ? bias[o] : 0.0;
    for (int64_t i = 0; i < in; ++i) s += x[i] * w[o * in + i];
    y[o] = s;
  }
  return y;
}

Vec rmsnorm(const Vec& x, const float* w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / x.size() + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = w[i] * x[i] * inv;
  return y;
}

// RoPE on one head vector at position p with the given inverse frequencies (rotate_half).
void rope(double* v, int64_t d, int64_t p, const std::vector<float>& inv) {
  for (int64_t i = 0; i < d / 2; ++i) {
    const double a = static_cast<double>(static_cast<float>(p) * inv[i]);
    const double x1 = v[i], x2 = v[i + d / 2];
    v[i] = x1 * std::cos(a) - x2 * std::sin(a);
    v[i + d / 2] = x2 * std::cos(a) + x1 * std::sin(a);
  }
}

std::vector<Vec> reference_layer(const ModelConfig& c, int64_t layer, const LayerWeights& w, std::vector<Vec> x) {
  const int64_t T = static_cast<int64_t>(x.size()), H = c.hidden_size, I = c.intermediate_size;
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim;
  const bool ex = c.arch == Arch::kExaone4;
  const bool sliding = c.layer_types[layer] == AttentionKind::kSliding;
  const bool use_rope = !ex || !c.sliding_window || sliding;
  const std::vector<float> inv = *rope_inv_freq(c, T);
  auto W = [&](TensorRole r) -> const std::vector<float>& { return w.tensors.at(r); };
  std::vector<Vec> q(T), k(T), v(T);
  for (int64_t t = 0; t < T; ++t) {
    const Vec a = ex ? x[t] : rmsnorm(x[t], W(TensorRole::kInputNorm).data(), c.rms_norm_eps);
    q[t] = linear(a, W(TensorRole::kQProj), nh * hd, H, w.find(TensorRole::kQBias));
    k[t] = linear(a, W(TensorRole::kKProj), nkv * hd, H, w.find(TensorRole::kKBias));
    v[t] = linear(a, W(TensorRole::kVProj), nkv * hd, H, w.find(TensorRole::kVBias));
    for (int64_t h = 0; h < nh; ++h) {
      if (ex) {
        Vec hv(q[t].begin() + h * hd, q[t].begin() + (h + 1) * hd);
        hv = rmsnorm(hv, W(TensorRole::kQNorm).data(), c.rms_norm_eps);
        std::copy(hv.begin(), hv.end(), q[t].begin() + h * hd);
      }
      if (use_rope) rope(&q[t][h * hd], hd, t, inv);
    }
    for (int64_t g = 0; g < nkv; ++g) {
      if (ex) {
        Vec hv(k[t].begin() + g * hd, k[t].begin() + (g + 1) * hd);
        hv = rmsnorm(hv, W(TensorRole::kKNorm).data(), c.rms_norm_eps);
        std::copy(hv.begin(), hv.end(), k[t].begin() + g * hd);
      }
      if (use_rope) rope(&k[t][g * hd], hd, t, inv);
    }
  }
  for (int64_t t = 0; t < T; ++t) {
    Vec ctx(nh * hd, 0.0);
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t g = h / (nh / nkv);
      std::vector<double> sc;
      std::vector<int64_t> keys;
      for (int64_t s = 0; s <= t; ++s) {
        if (sliding && c.sliding_window && !(s > t - *c.sliding_window)) continue;
        double dot = 0;
        for (int64_t i = 0; i < hd; ++i) dot += q[t][h * hd + i] * k[s][g * hd + i];
        sc.push_back(dot / std::sqrt(static_cast<double>(hd)));
        keys.push_back(s);
      }
      double mx = -INFINITY, sum = 0;
      for (double z : sc) mx = std::max(mx, z);
      for (double& z : sc) sum += (z = std::exp(z - mx));
      for (size_t n = 0; n < keys.size(); ++n)
        for (int64_t i = 0; i < hd; ++i) ctx[h * hd + i] += sc[n] / sum * v[keys[n]][g * hd + i];
    }
    Vec o = linear(ctx, W(TensorRole::kOProj), H, nh * hd, w.find(TensorRole::kOBias));
    if (ex) o = rmsnorm(o, W(TensorRole::kPostAttentionNorm).data(), c.rms_norm_eps);
    for (int64_t i = 0; i < H; ++i) x[t][i] += o[i];
    const Vec m = ex ? x[t] : rmsnorm(x[t], W(TensorRole::kPostAttentionNorm).data(), c.rms_norm_eps);
    const Vec g = linear(m, W(TensorRole::kGateProj), I, H, nullptr);
    const Vec u = linear(m, W(TensorRole::kUpProj), I, H, nullptr);
    Vec gu(I);
    for (int64_t i = 0; i < I; ++i) gu[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
    Vec d = linear(gu, W(TensorRole::kDownProj), H, I, nullptr);
    if (ex) d = rmsnorm(d, W(TensorRole::kPostFeedforwardNorm).data(), c.rms_norm_eps);
    for (int64_t i = 0; i < H; ++i) x[t][i] += d[i];
  }
  return x;
}

// ---- tiny random models -------------------------------------------------------------

ModelConfig tiny_config(const std::string& json) { return test::config_from_json(json); }
using test::random_layer;

void expect_layer_matches_reference(const ModelConfig& c, int64_t T) {
  SCOPED_TRACE(c.model_type);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 1.0f);
  std::vector<float> x(static_cast<size_t>(T * c.hidden_size));
  for (float& v : x) v = nd(rng);
  auto rope = rope_table(c, T);
  ASSERT_TRUE(rope.ok()) << rope.status();
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights w = random_layer(c, l, 100 + static_cast<uint32_t>(l));
    std::vector<Vec> rx(T);
    for (int64_t t = 0; t < T; ++t) rx[t] = Vec(x.begin() + t * c.hidden_size, x.begin() + (t + 1) * c.hidden_size);
    const std::vector<Vec> want = reference_layer(c, l, w, rx);
    decoder_layer_forward(c, l, w, *rope, x.data(), T);
    double worst = 0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < c.hidden_size; ++i)
        worst = std::max(worst, std::fabs(want[t][i] - x[t * c.hidden_size + i]) / (1.0 + std::fabs(want[t][i])));
    EXPECT_LT(worst, 2e-5) << "layer " << l;
    for (int64_t t = 0; t < T; ++t)  // carry on from the reference (keeps errors per layer)
      for (int64_t i = 0; i < c.hidden_size; ++i) x[t * c.hidden_size + i] = static_cast<float>(want[t][i]);
  }
}

TEST(Forward, LlamaWithLlama3RopeMatchesReference) {
  expect_layer_matches_reference(test::tiny_llama_config(), 20);
}

TEST(Forward, Qwen2WithBiasesAndSlidingLayersMatchesReference) {
  expect_layer_matches_reference(test::tiny_qwen2_config(), 16);
}

TEST(Forward, Exaone4HybridSlidingGlobalQkNormPostNormsMatchesReference) {
  const ModelConfig c = test::tiny_exaone4_config();
  ASSERT_EQ(c.layer_types[3], AttentionKind::kFull);
  ASSERT_EQ(c.layer_types[0], AttentionKind::kSliding);
  expect_layer_matches_reference(c, 14);
}

TEST(Forward, SlidingWindowChangesOnlyLongSequences) {
  // A sequence no longer than the window: a sliding layer equals a full causal layer.
  ModelConfig c = tiny_config(R"({"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2",
    "hidden_size":16,"intermediate_size":24,"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":2,
    "vocab_size":32,"use_sliding_window":true,"sliding_window":8,"max_window_layers":1})");
  ASSERT_EQ(c.layer_types[1], AttentionKind::kSliding);
  const LayerWeights w = random_layer(c, 1, 3);
  ModelConfig full = c;
  full.layer_types[1] = AttentionKind::kFull;
  for (int64_t T : {8, 12}) {
    std::vector<float> a(static_cast<size_t>(T * 16)), b;
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    for (float& v : a) v = nd(rng);
    b = a;
    const RopeTable rope = *rope_table(c, T);
    decoder_layer_forward(c, 1, w, rope, a.data(), T);
    decoder_layer_forward(full, 1, w, rope, b.data(), T);
    if (T <= 8) EXPECT_EQ(a, b);
    else EXPECT_NE(a, b);
  }
}

// forward_layer with a device: its result when it works; the CPU's when it fails before
// writing; the device's error when it failed after overwriting part of the activations.
TEST(Forward, ADeviceThatFailsBeforeWritingLeavesTheLayerToTheCpu) {
  const ModelConfig c = tiny_config(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama",
    "hidden_size":16,"intermediate_size":24,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":2,
    "vocab_size":32})");
  const LayerWeights w = random_layer(c, 0, 4);
  Activations in{2, 6, 16, std::vector<float>(2 * 6 * 16)};
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (float& v : in.data) v = nd(rng);
  Activations cpu = in;
  ASSERT_TRUE(forward_layer(c, 0, w, cpu).ok());
  auto device = [](absl::Status st) {
    CalibrationDevice d;
    d.forward = [st](const ModelConfig&, int64_t, const LayerWeights&, const RopeTable&, const Activations& acts,
                     std::array<HessianAccumulator*, kLinearInputs>, float* out) {
      std::fill(out, out + acts.data.size(), 0.5f);  // what the device wrote (before failing, for DATA_LOSS)
      return st;
    };
    return d;
  };
  Activations ok = in;
  ASSERT_TRUE(forward_layer(c, 0, w, ok, device(absl::OkStatus())).ok());
  EXPECT_EQ(ok.data, std::vector<float>(in.data.size(), 0.5f));
  Activations untouched = in;
  CalibrationDevice refuses;
  refuses.forward = [](const ModelConfig&, int64_t, const LayerWeights&, const RopeTable&, const Activations&,
                       std::array<HessianAccumulator*, kLinearInputs>, float*) {
    return absl::ResourceExhaustedError("one sequence needs 12 GiB, the budget is 11 GiB");
  };
  ASSERT_TRUE(forward_layer(c, 0, w, untouched, refuses).ok());
  EXPECT_EQ(untouched.data, cpu.data);
  Activations lost = in;
  const absl::Status st = forward_layer(c, 0, w, lost, device(absl::DataLossError("cuda:0: launch failed")));
  EXPECT_TRUE(absl::IsDataLoss(st)) << st;
  EXPECT_NE(std::string(st.message()).find("layer 0 forward on the device"), std::string::npos) << st;
}

TEST(Rope, Llama3ScalingFollowsTheRule) {
  const ModelConfig c = tiny_config(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama",
    "hidden_size":256,"intermediate_size":48,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":64,
    "rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,
    "high_freq_factor":4.0,"original_max_position_embeddings":8192}})");
  const std::vector<float> f = *rope_inv_freq(c, 16);
  ASSERT_EQ(f.size(), 64u);
  for (size_t i = 0; i < f.size(); ++i) {
    const double base = 1.0 / std::pow(500000.0, 2.0 * i / 128.0);
    const double wl = 2 * std::numbers::pi / base;
    double want = base;
    if (wl > 8192) want = base / 8;
    else if (wl >= 2048) {
      const double s = (8192 / wl - 1) / 3;
      want = (1 - s) * base / 8 + s * base;
    }
    EXPECT_NEAR(f[i], want, 1e-6 * want) << i;
  }
  ModelConfig yarn = c;
  yarn.rope_scaling = nlohmann::json::parse(R"({"rope_type":"yarn","factor":4.0})");
  auto bad = rope_inv_freq(yarn, 16);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("yarn"), std::string::npos);
}

// ---- the fixture ----------------------------------------------------------------

TEST(Stories260k, LogitsMatchGoldenWithin1e4) {
  auto m = load_float_model(test::fixture("stories260k/hf-f32"));
  ASSERT_TRUE(m.ok()) << m.status();
  const std::vector<int32_t> ids = {1,   403, 407, 261, 378, 432, 383, 286, 261, 298, 315, 421, 395, 392, 417, 412,
                                    426, 392, 417, 412, 401, 396, 311, 410, 449, 411, 424, 411, 421, 420, 422, 426};
  const std::vector<uint8_t> gold = test::read_bytes(test::fixture("stories260k/golden/logits_hf-f32_eval0_first32.f32"));
  ASSERT_EQ(gold.size(), 32u * 512 * 4);
  std::vector<float> logits;
  score_sequence(m->model, *rope_table(m->model.config, 32), ids.data(), 32, &logits);
  ASSERT_EQ(logits.size(), 32u * 512);
  double worst = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    float g;
    std::memcpy(&g, gold.data() + 4 * i, 4);
    worst = std::max(worst, static_cast<double>(std::fabs(g - logits[i])));
  }
  EXPECT_LT(worst, 1e-4);
}

TEST(Stories260k, PerplexityMatchesReference) {
  const std::string ids = test::fixture("stories260k/text/eval.ids.txt");
  auto bf16 = load_float_model(test::fixture("stories260k/hf-bf16"));
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  auto all = read_token_ids(ids, 512, 0, 0);
  ASSERT_TRUE(all.ok());
  auto p = perplexity(bf16->model, *all, 2);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->predictions, 41310);
  EXPECT_NEAR(p->perplexity, 4.7149, 0.001);
  EXPECT_NEAR(p->mean_nll, 1.550722, 2e-6);
  auto f32 = load_float_model(test::fixture("stories260k/hf-f32"));
  auto first = read_token_ids(ids, 512, 64, 256);
  auto p32 = perplexity(f32->model, *first, 1);
  EXPECT_NEAR(p32->perplexity, 3.8414, 0.0001);
  EXPECT_NEAR(p32->mean_nll, 1.345844, 2e-6);
}

}  // namespace
}  // namespace sp
