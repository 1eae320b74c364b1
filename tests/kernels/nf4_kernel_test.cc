// NF4 on the GPU against the scalar CPU reference (itself bit-exact with the golden
// bitsandbytes vectors): the same bytes for every dtype, block size, odd length, zero
// block, midpoint tie and a 27392-wide row; the same first NaN. Skips without a device.
#include <cmath>
#include <cstring>
#include <random>

#include "common/half.h"
#include "gtest/gtest.h"
#include "kernels/device_info.h"
#include "kernels/nf4_cuda.h"
#include "ops/nf4.h"
#include "ops/nf4_codebook.h"

namespace sp {
namespace {

class Nf4Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    if (cuda_devices(&error).empty()) GTEST_SKIP() << "no CUDA device: " << error;
  }
};

struct Input {
  DType dtype;
  std::vector<uint8_t> bytes;
  size_t n;
};

Input make(DType dtype, const std::vector<float>& v) {
  Input in{dtype, {}, v.size()};
  for (float x : v) {
    if (dtype == DType::kF32) {
      uint8_t b[4];
      std::memcpy(b, &x, 4);
      in.bytes.insert(in.bytes.end(), b, b + 4);
    } else {
      const uint16_t h = dtype == DType::kBF16 ? f32_to_bf16(x) : f32_to_f16(x);
      in.bytes.push_back(static_cast<uint8_t>(h & 0xff));
      in.bytes.push_back(static_cast<uint8_t>(h >> 8));
    }
  }
  return in;
}

CudaInput cuda_type(DType d) { return d == DType::kF32 ? CudaInput::kF32 : d == DType::kF16 ? CudaInput::kF16 : CudaInput::kBF16; }

void expect_parity(const Input& in, size_t bs) {
  SCOPED_TRACE(::testing::Message() << dtype_name(in.dtype) << " n=" << in.n << " blocksize=" << bs);
  std::vector<uint8_t> packed(nf4_packed_bytes(in.n));
  std::vector<float> absmax(nf4_num_blocks(in.n, bs));
  const size_t bad = nf4_quantize_ref(in.bytes.data(), in.dtype, in.n, bs, packed.data(), absmax.data());
  const CudaNf4Result g = nf4_quantize_cuda(0, in.bytes.data(), cuda_type(in.dtype), in.n, bs);
  ASSERT_EQ(g.error, "");
  if (bad != kAllFinite) {
    EXPECT_EQ(g.first_nonfinite, bad);
    return;
  }
  EXPECT_EQ(g.first_nonfinite, SIZE_MAX);
  EXPECT_EQ(g.packed, packed);
  EXPECT_EQ(g.absmax, absmax);
  std::vector<float> want(in.n), got(in.n);
  nf4_dequantize_ref(packed.data(), absmax.data(), in.n, bs, want.data());
  ASSERT_EQ(nf4_dequantize_cuda(0, packed.data(), absmax.data(), in.n, bs, got.data()), "");
  EXPECT_EQ(std::memcmp(got.data(), want.data(), in.n * sizeof(float)), 0);
}

std::vector<float> normal(size_t n, uint32_t seed, float sd = 0.05f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, sd);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

TEST_F(Nf4Cuda, SameBytesAsTheCpuReferenceOnOddShapes) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16})
    for (size_t n : {size_t{1}, size_t{63}, size_t{64}, size_t{231}, size_t{11008}, size_t{27392}, size_t{2 * 27392 + 1}})
      for (size_t bs : {32, 64, 96, 128, 256, 512, 4096}) expect_parity(make(d, normal(n, static_cast<uint32_t>(n + bs))), bs);
}

TEST_F(Nf4Cuda, TableCodeEqualsTheCountForEveryFloat) {
  std::string error;
  EXPECT_EQ(nf4_table_mismatches_cuda(0, &error), 0u);
  EXPECT_EQ(error, "");
}

TEST_F(Nf4Cuda, ZeroBlocksTiesOutliersAndNonFinite) {
  std::vector<float> v = normal(640, 3);
  for (size_t i = 64; i < 192; ++i) v[i] = 0.0f;  // two all-zero blocks: codes 0, absmax 0
  for (size_t t = 0; t < 15; ++t) {              // exact midpoints times a power-of-two absmax
    v[256] = 1.0f;
    v[257 + t] = kNf4Threshold[t];
  }
  v[400] = 300.0f;  // an outlier dominates its block
  for (DType d : {DType::kF32, DType::kBF16}) expect_parity(make(d, v), 64);
  std::vector<float> nan = normal(1000, 4);
  nan[700] = NAN;
  nan[900] = INFINITY;
  expect_parity(make(DType::kF32, nan), 64);
}

TEST_F(Nf4Cuda, ALargeProjectionRow) {
  // Many blocks in flight: 64 rows of a 27392-wide down_proj.
  expect_parity(make(DType::kBF16, normal(64 * 27392, 9, 0.02f)), 64);
}

}  // namespace
}  // namespace sp
