// GPTQ on llama.cpp's grids (ops/ggml_grid + obs_compress): the codes the loop writes are
// the ones the file decodes to, a diagonal Hessian (no error to carry) gives
// round-to-nearest's bytes for every block type, with and without importance values, and
// with a real Hessian the layer loss tr((W - Q) H (W - Q)^T) falls below round-to-nearest's
// for every block type.
#include <cmath>
#include <cstdio>
#include <string>
#include <random>

#include "gtest/gtest.h"
#include "ops/ggml_grid.h"
#include "ops/ggml_quants.h"
#include "ops/obs_compress.h"

namespace sp {
namespace {

std::vector<float> random_weight(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = n(rng);
  w[3] = 0.2f;  // an outlier
  return w;
}

// H = X^T X of correlated inputs, [cols, cols].
std::vector<float> hessian(int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  const int64_t tokens = 4 * cols;
  std::vector<float> x(static_cast<size_t>(tokens * cols));
  for (int64_t t = 0; t < tokens; ++t) {
    float common = n(rng);
    for (int64_t j = 0; j < cols; ++j) x[t * cols + j] = 0.6f * common + n(rng) * (1.0f + (j % 7 == 0 ? 3.0f : 0.0f));
  }
  std::vector<float> h(static_cast<size_t>(cols * cols), 0.0f);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) h[i * cols + j] += x[t * cols + i] * x[t * cols + j];
  return h;
}

double layer_loss(const std::vector<float>& w, const std::vector<float>& q, const std::vector<float>& h, int64_t rows,
                  int64_t cols) {
  double loss = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < cols; ++i) {
      const double di = w[r * cols + i] - q[r * cols + i];
      if (di == 0) continue;
      for (int64_t j = 0; j < cols; ++j) loss += di * h[i * cols + j] * (w[r * cols + j] - q[r * cols + j]);
    }
  return loss;
}

TEST(GgmlGrid, DiagonalHessianEqualsRoundToNearestByteForByte) {
  const int64_t rows = 4, cols = 256;
  const auto w = random_weight(rows, cols, 1);
  std::vector<float> eye(static_cast<size_t>(cols * cols), 0.0f), importance(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) eye[j * cols + j] = 1.0f, importance[j] = 1.0f + static_cast<float>(j % 5);
  for (const auto& tr : ggml_types()) {
    if (tr.block == 1) continue;
    for (bool weighted : {false, true}) {
      const std::span<const float> qw = weighted ? std::span<const float>(importance) : std::span<const float>();
      auto g = GgmlGrid::make(tr.type, w, rows, cols, qw);
      ASSERT_TRUE(g.ok()) << tr.name;
      ObsSettings s;
      s.quantize = false;
      s.grid = &*g;
      s.act_order = weighted;  // any visiting order
      auto r = obs_compress(w, rows, cols, eye, s);
      ASSERT_TRUE(r.ok()) << tr.name << ": " << r.status();
      EXPECT_EQ(g->bytes(), ggml_quantize(tr.type, w, cols, 1, qw)) << tr.name << (weighted ? " weighted" : "");
      EXPECT_EQ(ggml_dequantize(tr.type, g->bytes(), rows * cols), r->weight) << tr.name;
    }
  }
}

TEST(GgmlGrid, GptqBeatsRoundToNearestOnTheLayerLoss) {
  const int64_t rows = 16, cols = 256;
  const auto w = random_weight(rows, cols, 2);
  const auto h = hessian(cols, 3);
  std::vector<float> diag(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) diag[j] = h[j * cols + j];
  for (const auto& tr : ggml_types()) {
    if (tr.block == 1) continue;
    for (bool act_order : {false, true}) {
      auto g = GgmlGrid::make(tr.type, w, rows, cols, diag);
      ASSERT_TRUE(g.ok());
      const double rtn = layer_loss(w, ggml_dequantize(tr.type, g->bytes(), rows * cols), h, rows, cols);
      ObsSettings s;
      s.quantize = false;
      s.grid = &*g;
      s.act_order = act_order;
      auto r = obs_compress(w, rows, cols, h, s);
      ASSERT_TRUE(r.ok()) << r.status();
      const auto q = ggml_dequantize(tr.type, g->bytes(), rows * cols);
      EXPECT_EQ(q, r->weight) << tr.name;
      const double gptq = layer_loss(w, q, h, rows, cols);
      std::printf("%-7s %-9s layer loss GPTQ / RTN = %.3f\n", std::string(tr.name).c_str(), act_order ? "act-order" : "", gptq / rtn);
      EXPECT_LT(gptq, rtn * 0.9) << tr.name << (act_order ? " act-order" : "") << ": GPTQ " << gptq << " vs RTN " << rtn;
    }
  }
  EXPECT_FALSE(GgmlGrid::make(GgmlType::kF16, w, rows, cols, {}).ok());
  EXPECT_FALSE(GgmlGrid::make(GgmlType::kQ4_K, w, 32, 128, {}).ok());
}

}  // namespace
}  // namespace sp
