// The 7 golden cases of shared/fixtures/nf4-golden must match bit for bit: packed
// nibbles, absmax, dequantized values, double-quant codes and nested absmax (given the
// stored map and offset), decoded weights, and the quant_state JSON bytes — for every
// NF4 backend this CPU runs.
#include <cmath>
#include <cstring>
#include <fstream>

#include "formats/bnb_format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "ops/double_quant.h"
#include "ops/nf4.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

struct GoldenCase {
  std::string file;
  std::vector<int64_t> shape;
  DType dtype;
  int blocksize;
};

std::vector<GoldenCase> load_cases() {
  std::ifstream f(test::fixture("nf4-golden/cases.json"));
  const auto j = nlohmann::json::parse(f);
  std::vector<GoldenCase> out;
  for (const auto& c : j["cases"])
    out.push_back({c["file"], c["shape"].get<std::vector<int64_t>>(), *dtype_from_name(c["dtype"].get<std::string>()),
                   c["blocksize"]});
  return out;
}

template <typename T>
bool same_bits(std::span<const T> a, std::span<const uint8_t> b) {
  return a.size_bytes() == b.size() && std::memcmp(a.data(), b.data(), b.size()) == 0;
}

// Index of the first differing float, or -1.
template <typename T>
long first_diff(const std::vector<T>& got, std::span<const uint8_t> want) {
  const size_t n = want.size() / sizeof(T);
  if (got.size() != n) return 0;
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(&got[i], want.data() + i * sizeof(T), sizeof(T)) != 0) return static_cast<long>(i);
  return -1;
}

class Nf4Golden : public ::testing::TestWithParam<std::tuple<size_t, std::string>> {
 protected:
  void SetUp() override {
    cases_ = load_cases();
    ASSERT_EQ(cases_.size(), 7u) << "cases.json should list the 7 golden cases";
    c_ = cases_[std::get<0>(GetParam())];
    for (const auto& b : nf4_backends())
      if (b.name == std::get<1>(GetParam())) backend_ = &b;
    ASSERT_NE(backend_, nullptr);
    if (!backend_->available()) GTEST_SKIP() << backend_->name << " not supported by this CPU";
    auto f = SafetensorsFile::open(test::fixture("nf4-golden/" + c_.file));
    ASSERT_TRUE(f.ok()) << f.status();
    file_ = std::move(*f);
  }
  TensorView t(const char* name) {
    const TensorInfo* i = file_->find(name);
    EXPECT_NE(i, nullptr) << name;
    return file_->view(*i);
  }
  std::vector<GoldenCase> cases_;
  GoldenCase c_;
  const Nf4Backend* backend_ = nullptr;
  std::unique_ptr<SafetensorsFile> file_;
};

TEST_P(Nf4Golden, PackedAbsmaxAndDequantMatchBitForBit) {
  const TensorView in = t("input");
  ASSERT_EQ(in.dtype(), c_.dtype);
  ASSERT_EQ(in.shape(), c_.shape);
  auto q = nf4_quantize(in.bytes, in.dtype(), c_.shape[0], c_.shape[1], c_.blocksize, *backend_);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(first_diff(q->packed, t("packed").bytes), -1) << "packed nibbles differ";
  EXPECT_EQ(first_diff(q->absmax, t("absmax").bytes), -1) << "absmax differs";

  const size_t n = in.numel();
  std::vector<float> deq(n);
  backend_->dequantize(q->packed.data(), q->absmax.data(), n, c_.blocksize, deq.data());
  EXPECT_EQ(first_diff(deq, t("dequant").bytes), -1) << "dequantized values differ";
}

TEST_P(Nf4Golden, DoubleQuantMatchesGivenStoredMapAndOffset) {
  const TensorView in = t("input");
  auto q = nf4_quantize(in.bytes, in.dtype(), c_.shape[0], c_.shape[1], c_.blocksize, *backend_);
  ASSERT_TRUE(q.ok()) << q.status();
  float offset;
  std::memcpy(&offset, t("dq_offset").bytes.data(), 4);
  std::array<float, 256> map;
  std::memcpy(map.data(), t("dq_nested_quant_map").bytes.data(), sizeof map);
  const DoubleQuantized dq = double_quantize(q->absmax, offset, map);
  EXPECT_EQ(first_diff(dq.codes, t("dq_absmax_codes").bytes), -1) << "absmax codes differ";
  EXPECT_EQ(first_diff(dq.nested_absmax, t("dq_nested_absmax").bytes), -1) << "nested absmax differs";

  std::vector<float> absmax(q->absmax.size());
  double_dequantize(dq.codes, dq.nested_absmax, dq.offset, dq.map.data(), absmax.data());
  std::vector<float> deq(in.numel());
  backend_->dequantize(q->packed.data(), absmax.data(), deq.size(), c_.blocksize, deq.data());
  EXPECT_EQ(first_diff(deq, t("dq_dequant").bytes), -1) << "double-quant decoded weights differ";
}

TEST_P(Nf4Golden, QuantStateJsonBytes) {
  float offset;
  std::memcpy(&offset, t("dq_offset").bytes.data(), 4);
  const auto want = t("quant_state_json").bytes;
  const std::string want_text(reinterpret_cast<const char*>(want.data()), want.size());
  const bool dq = want_text.find("nested_offset") != std::string::npos;
  const std::string got = quant_state_json(c_.blocksize, c_.dtype, c_.shape[0], c_.shape[1],
                                           dq ? std::optional<float>(offset) : std::nullopt);
  EXPECT_EQ(got, want_text);
  auto parsed = parse_quant_state_json(want_text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->blocksize, c_.blocksize);
  EXPECT_EQ(parsed->rows, c_.shape[0]);
}

TEST_P(Nf4Golden, OurOffsetAndMapAgreeWithinOneUlp) {
  // Offset and map may differ in the last bit from an independent computation
  // (nf4-format.md §6: float32 mean order, linspace variant); they are stored, so any
  // self-consistent value loads. We check we are within 1 ulp of bitsandbytes'.
  const TensorView in = t("input");
  auto q = nf4_quantize(in.bytes, in.dtype(), c_.shape[0], c_.shape[1], c_.blocksize, *backend_);
  ASSERT_TRUE(q.ok());
  float offset;
  std::memcpy(&offset, t("dq_offset").bytes.data(), 4);
  const float ours = absmax_mean(q->absmax);
  EXPECT_LE(std::fabs(ours - offset), std::nextafter(std::fabs(offset), INFINITY) - std::fabs(offset)) << ours;
  const auto& map = dynamic_map_signed();
  std::array<float, 256> golden;
  std::memcpy(golden.data(), t("dq_nested_quant_map").bytes.data(), sizeof golden);
  for (size_t i = 0; i < 256; ++i) {
    const float ulp = std::nextafter(std::fabs(golden[i]), INFINITY) - std::fabs(golden[i]);
    EXPECT_LE(std::fabs(map[i] - golden[i]), ulp) << "map entry " << i;
  }
}

TEST(Nf4Codebook, StoredCodeMatchesTable) {
  auto f = SafetensorsFile::open(test::fixture("nf4-golden/normal_bf16_128x256.safetensors"));
  ASSERT_TRUE(f.ok());
  const auto v = (*f)->view(*(*f)->find("nf4_code"));
  EXPECT_TRUE(same_bits(std::span<const float>(kNf4Code), v.bytes));
  // Thresholds are the float32 midpoints of neighbouring levels.
  for (size_t j = 0; j + 1 < kNf4Levels; ++j)
    EXPECT_EQ(kNf4Threshold[j], (kNf4Code[j] + kNf4Code[j + 1]) / 2.0f) << j;
}

std::vector<std::string> backend_names() {
  std::vector<std::string> out;
  for (const auto& b : nf4_backends()) out.push_back(b.name);
  return out;
}

INSTANTIATE_TEST_SUITE_P(
    AllCases, Nf4Golden, ::testing::Combine(::testing::Range<size_t>(0, 7), ::testing::ValuesIn(backend_names())),
    [](const auto& info) {
      static const auto cases = load_cases();
      std::string name = cases[std::get<0>(info.param)].file;
      name = name.substr(0, name.find('.'));
      return name + "_" + std::get<1>(info.param);
    });

}  // namespace
}  // namespace sp
