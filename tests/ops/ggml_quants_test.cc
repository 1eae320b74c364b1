// llama.cpp's types (ops/ggml_quants): every row of the table round-trips within its
// format's error, and the quantizers follow the reference's exact rules where they are
// easy to get wrong (Q8_0's half-away-from-zero rounding, Q4_0's signed scale and its
// float32 `x * id + 8.5` truncation). Byte-for-byte equality with llama-quantize itself is
// tested in tests/checkpoint/gguf_export_test.cc.
#include <cmath>
#include <cstring>
#include <random>
#include <tuple>

#include "common/half.h"
#include "gtest/gtest.h"
#include "ops/ggml_ftypes.h"
#include "ops/ggml_quant_helpers.h"
#include "ops/ggml_quants.h"
#include "ops/ggml_quants_k_avx2.h"

namespace sp {
namespace {

TEST(GgmlTypes, EveryRowRoundTripsWithinItsPrecision) {
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.0f, 0.02f);
  std::vector<float> x(256 * 3);
  for (auto& v : x) v = n(rng);
  x[5] = 0.3f;  // an outlier
  for (const auto& tr : ggml_types()) {
    const auto q = ggml_quantize(tr.type, x, 256);
    ASSERT_EQ(q.size(), ggml_nbytes(tr.type, static_cast<int64_t>(x.size()))) << tr.name;
    const auto y = ggml_dequantize(tr.type, q, static_cast<int64_t>(x.size()));
    double err = 0, ref = 0;
    for (size_t i = 0; i < x.size(); ++i) err += (x[i] - y[i]) * (x[i] - y[i]), ref += x[i] * x[i];
    const double rel = std::sqrt(err / ref);
    const double bound = tr.type == GgmlType::kF32 ? 0 : tr.block == 1 ? 0.01 : tr.type == GgmlType::kQ8_0 ? 0.02 : 0.3;
    EXPECT_LE(rel, bound) << tr.name;
    // With an importance vector (every type takes one; Q8_0 and the plain conversions
    // ignore it) the error stays within the same bound.
    std::vector<float> importance(256, 1.0f);
    importance[5] = 100.0f;
    const auto yw = ggml_dequantize(tr.type, ggml_quantize(tr.type, x, 256, 1, importance), static_cast<int64_t>(x.size()));
    double errw = 0;
    for (size_t i = 0; i < x.size(); ++i) errw += (x[i] - yw[i]) * (x[i] - yw[i]);
    EXPECT_LE(std::sqrt(errw / ref), bound) << tr.name << " weighted";
    EXPECT_EQ(ggml_type_from_name(tr.name), tr.type);
  }
  EXPECT_EQ(ggml_type_from_name("q4_0"), GgmlType::kQ4_0);
  EXPECT_FALSE(ggml_type_from_name("Q4_9").has_value());
  EXPECT_THROW(ggml_quantize(GgmlType::kQ4_0, x, 100), std::invalid_argument);
  EXPECT_THROW(ggml_quantize(GgmlType::kQ4_K, x, 128), std::invalid_argument);
  EXPECT_THROW(ggml_quantize(GgmlType::kQ4_0, x, 256, 1, std::vector<float>(32, 1.0f)), std::invalid_argument);
}

TEST(GgmlTypes, ThreadsDoNotChangeTheBytes) {
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0.0f, 0.05f);
  std::vector<float> x(256 * 7);  // 7 rows: uneven splits over 2, 3 and 16 threads
  for (auto& v : x) v = n(rng);
  std::vector<float> importance(256);
  for (auto& v : importance) v = std::fabs(n(rng)) * 10;
  for (const auto& tr : ggml_types()) {
    const auto one = ggml_quantize(tr.type, x, 256, 1);
    const auto weighted = ggml_quantize(tr.type, x, 256, 1, importance);
    for (int threads : {2, 3, 16}) {
      EXPECT_EQ(ggml_quantize(tr.type, x, 256, threads), one) << tr.name << " " << threads;
      EXPECT_EQ(ggml_quantize(tr.type, x, 256, threads, importance), weighted) << tr.name << " " << threads;
    }
  }
}

TEST(GgmlTypes, ReferenceRoundingRules) {
  // Q8_0: amax 127 -> d = 1, qs = roundf(x): 2.5 -> 3, -2.5 -> -3 (half away from zero).
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f;
  auto q8 = ggml_quantize(GgmlType::kQ8_0, x, 32);
  uint16_t d;
  std::memcpy(&d, q8.data(), 2);
  EXPECT_EQ(f16_to_f32(d), 1.0f);
  EXPECT_EQ(static_cast<int8_t>(q8[2 + 1]), 3);
  EXPECT_EQ(static_cast<int8_t>(q8[2 + 2]), -3);
  EXPECT_EQ(static_cast<int8_t>(q8[2 + 3]), 1);
  // Q4_0: the largest |x| keeps its sign in d = max / -8; x = max maps to code 0.
  std::vector<float> y(32, 0.0f);
  y[0] = -8.0f, y[16] = 4.0f, y[1] = 1.0f;
  auto q4 = ggml_quantize(GgmlType::kQ4_0, y, 32);
  std::memcpy(&d, q4.data(), 2);
  EXPECT_EQ(f16_to_f32(d), 1.0f);
  EXPECT_EQ(q4[2] & 0x0F, 0);          // -8 / 1 + 8.5 = 0.5 -> 0
  EXPECT_EQ(q4[2] >> 4, 12);           // 4 + 8.5 -> 12
  EXPECT_EQ(q4[3] & 0x0F, 9);          // 1 + 8.5 -> 9
  EXPECT_EQ(q4[4] & 0x0F, 8);          // 0 -> 8
  // All zero: d = 0 / -8 = -0.0 (fp16 0x8000, as llama.cpp writes it), every code 8.
  auto z = ggml_quantize(GgmlType::kQ4_0, std::vector<float>(32, 0.0f), 32);
  EXPECT_EQ(z[0], 0x00);
  EXPECT_EQ(z[1], 0x80);
  EXPECT_EQ(z[2], 0x88);
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// The per-tensor rules beyond what the llama-quantize comparisons reach (their models have
// 2-8 layers): the 64-layer "more bits" pattern, the 70B attn_v rule, the output rule and
// the fallback chain. (Comparisons with llama-quantize: tests/checkpoint/gguf_export_test.cc.)
TEST(GgufFtypes, RulesAndFallbacks) {
  const GgufFtype m = *gguf_ftype_from_name("q4_k_m");
  auto at = [&](std::string_view name, int layer, int64_t row = 5120, bool is_70b = false, int layers = 64) {
    return choose_gguf_type(m, {name, row, layer, layers, 5, true, is_70b});
  };
  // n = 64: more bits for layers 0-7, 10, 13, ..., 55 and 56-63 (README table).
  std::string more;
  for (int i = 0; i < 64; ++i)
    if (at("blk.x.ffn_down.weight", i).type == GgmlType::kQ6_K) more += std::to_string(i) + " ";
  EXPECT_EQ(more, "0 1 2 3 4 5 6 7 10 13 16 19 22 25 28 31 34 37 40 43 46 49 52 55 56 57 58 59 60 61 62 63 ");
  EXPECT_EQ(at("blk.8.attn_v.weight", 8).type, GgmlType::kQ4_K);
  EXPECT_EQ(at("blk.11.attn_v.weight", 11, 8192, false, 80).type, GgmlType::kQ4_K);
  EXPECT_EQ(at("blk.11.attn_v.weight", 11, 8192, true, 80).type, GgmlType::kQ5_K);  // 70B
  EXPECT_EQ(at("blk.8.attn_q.weight", 8).type, GgmlType::kQ4_K);
  EXPECT_EQ(at("output.weight", -1).type, GgmlType::kQ6_K);
  EXPECT_EQ(at("output.weight", -1, 5000).type, GgmlType::kF16);  // 5000 % 256: Q8_0, which 5000 % 32 refuses
  EXPECT_EQ(at("output.weight", -1, 5000).fallback, "output.weight: 5000 columns, not whole Q8_0 blocks of 32: F16");
  EXPECT_EQ(at("blk.1.attn_q.weight", 1, 96).type, GgmlType::kQ5_0);
  EXPECT_EQ(at("blk.1.attn_q.weight", 1, 100).type, GgmlType::kF16);
  // A tied model: token_embd takes the output rule.
  EXPECT_EQ(choose_gguf_type(m, {"token_embd.weight", 4096, -1, 32, 4, false, false}).type, GgmlType::kQ6_K);
  EXPECT_EQ(choose_gguf_type(m, {"token_embd.weight", 4096, -1, 32, 4, true, false}).type, GgmlType::kQ4_K);
  // Single types never change by rule.
  const GgufFtype q4 = *gguf_ftype_from_name("Q4_K");
  EXPECT_FALSE(q4.mix);
  EXPECT_EQ(choose_gguf_type(q4, {"output.weight", 4096, -1, 32, 4, true, false}).type, GgmlType::kQ4_K);
  EXPECT_FALSE(gguf_ftype_from_name("Q3_K_M").has_value());
  EXPECT_TRUE(gguf_quantizable("blk.0.attn_q.weight", 2));
  EXPECT_FALSE(gguf_quantizable("blk.0.attn_norm.weight", 2));
  EXPECT_FALSE(gguf_quantizable("blk.0.attn_q.bias", 1));
}

}  // namespace
}  // namespace sp

#if defined(__x86_64__)

namespace sp {
namespace {

// The AVX2 sub-block search (one sub-block per lane) gives the scalar reference's bits, for
// both K types' settings, with and without importance (qkx3), on random sub-blocks and the
// edge cases: all zero, constant, all positive (min clamps to 0), one outlier, tiny values.
TEST(GgmlKQuantsAvx2, SubBlockSearchIsTheScalarReferenceBitForBit) {
  if (!__builtin_cpu_supports("avx2")) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.0f, 0.02f);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> x(256), w(256);
    for (auto& v : x) v = n(rng);
    const int kind = trial % 8;
    for (int l = 0; l < 32; ++l) {
      x[32 * kind + l] = kind == 0 ? 0.0f : kind == 1 ? 0.01f : kind == 2 ? std::fabs(x[32 * kind + l]) : x[32 * kind + l];
      if (kind == 3 && l == 7) x[32 * kind + l] = 0.5f;
      if (kind == 4) x[32 * kind + l] *= 1e-6f;
    }
    for (size_t i = 0; i < w.size(); ++i) w[i] = trial % 2 ? std::fabs(n(rng)) * 50 + 0.1f : 0.03f + std::fabs(x[i]);
    for (const auto& [nmax, rmin, rdelta, nstep, qkx3] :
         {std::tuple{15, -1.0f, 0.1f, 20, false}, std::tuple{31, -0.5f, 0.1f, 15, false},
          std::tuple{15, -0.9f, 0.05f, 36, true}, std::tuple{31, -0.9f, 0.05f, 36, true}}) {
      uint8_t La[256], Lb[256];
      float ma[8], mb[8], sa[8], sb[8];
      ggml::avx2::make_qkx_quants_x8(x.data(), w.data(), nmax, rmin, rdelta, nstep, qkx3, La, ma, sa);
      for (int j = 0; j < 8; ++j)
        sb[j] = ggml::make_qkx_quants(32, nmax, x.data() + 32 * j, w.data() + 32 * j, Lb + 32 * j, &mb[j], rmin, rdelta,
                                      nstep, qkx3);
      ASSERT_EQ(0, std::memcmp(La, Lb, sizeof(La))) << trial << " nmax " << nmax << " qkx3 " << qkx3;
      ASSERT_EQ(0, std::memcmp(ma, mb, sizeof(ma))) << trial << " nmax " << nmax << " qkx3 " << qkx3;
      ASSERT_EQ(0, std::memcmp(sa, sb, sizeof(sa))) << trial << " nmax " << nmax << " qkx3 " << qkx3;
    }
  }
}

TEST(GgmlKQuantsAvx2, Q6SubBlockSearchIsTheScalarReferenceBitForBit) {
  if (!__builtin_cpu_supports("avx2")) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(6);
  std::normal_distribution<float> n(0.0f, 0.02f);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> x(128), qw(128);
    for (auto& v : x) v = n(rng);
    const int kind = trial % 8;
    for (int l = 0; l < 16; ++l) {
      float& v = x[16 * kind + l];
      v = kind == 0 ? 0.0f : kind == 1 ? -0.01f : kind == 2 ? std::fabs(v) : kind == 4 ? v * 1e-6f : v;
      if (kind == 3 && l == 7) v = -0.5f;
      if (kind == 5 && l == 3) v = 0.3f, x[16 * kind + 9] = -0.3f;  // |max| twice: the first wins
    }
    for (auto& v : qw) v = std::fabs(n(rng)) * 50 + 0.1f;
    for (bool weighted : {false, true}) {
      int8_t La[128], Lb[128];
      float sa[8], sb[8];
      ggml::avx2::make_qx_quants_x8(x.data(), weighted ? qw.data() : nullptr, 32, La, sa);
      for (int j = 0; j < 8; ++j)
        sb[j] = ggml::make_qx_quants(16, 32, x.data() + 16 * j, Lb + 16 * j, weighted ? qw.data() + 16 * j : nullptr);
      ASSERT_EQ(0, std::memcmp(La, Lb, sizeof(La))) << trial << (weighted ? " weighted" : "");
      ASSERT_EQ(0, std::memcmp(sa, sb, sizeof(sa))) << trial << (weighted ? " weighted" : "");
    }
  }
}

}  // namespace
}  // namespace sp
#endif
