// safetensors writer -> reader round trips, sharding, atomicity.
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>

#include "formats/model_files.h"
#include "formats/safetensors.h"
#include "formats/safetensors_writer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

TEST(Safetensors, ReadsTheStoriesFixture) {
  auto f = SafetensorsFile::open(test::fixture("stories260k/hf-f32/model.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->tensors().size(), 47u);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  const TensorInfo* t = (*f)->find("model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::kF32);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ((*f)->view(*t).bytes.size(), 64u * 172u * 4u);
  EXPECT_EQ((*f)->data_offset() % 8, 0u);
}

TEST(Safetensors, SingleFileRoundTripAnyWriteOrder) {
  test::TempDir d;
  std::vector<TensorGroup> groups = {
      {{"a", DType::kBF16, {3, 5}}},
      {{"b", DType::kU8, {7}}, {"c", DType::kI64, {2}}},
      {{"empty", DType::kF32, {0, 4}}},
      {{"flag", DType::kBool, {3}}},
  };
  auto w = SafetensorsWriter::create(d.path(), groups, {});
  ASSERT_TRUE(w.ok()) << w.status();
  const auto a = pattern(30, 1), b = pattern(7, 2), c = pattern(16, 3), flag = pattern(3, 4);
  ASSERT_TRUE((*w)->write("c", c).ok());
  ASSERT_TRUE((*w)->write("a", a).ok());
  ASSERT_TRUE((*w)->write("flag", flag).ok());
  ASSERT_TRUE((*w)->write("empty", {}).ok());
  ASSERT_TRUE((*w)->write("b", b).ok());
  ASSERT_TRUE((*w)->finish().ok());
  EXPECT_FALSE(fs::exists(d / kSafetensorsIndexName));

  auto m = ModelFiles::open(d.path());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(m->sharded());
  EXPECT_EQ(test::as_bytes(m->find("a")->view()), a);
  EXPECT_EQ(test::as_bytes(m->find("b")->view()), b);
  EXPECT_EQ(test::as_bytes(m->find("c")->view()), c);
  EXPECT_EQ(m->find("empty")->info->shape, (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(m->find("a")->info->dtype, DType::kBF16);
  EXPECT_EQ(m->files()[0]->metadata().at("format"), "pt");
  EXPECT_EQ(m->files()[0]->data_offset() % 8, 0u);
  // Only the final file is left: no temporaries.
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(d.path())) ++n, (void)e;
  EXPECT_EQ(n, 1u);
}

TEST(Safetensors, ShardsUnderMaxSizeKeepGroupsTogetherAndWriteIndex) {
  test::TempDir d;
  std::vector<TensorGroup> groups;
  for (int g = 0; g < 5; ++g) {
    groups.push_back({{"g" + std::to_string(g) + ".weight", DType::kU8, {60}},
                      {"g" + std::to_string(g) + ".weight.absmax", DType::kF32, {10}}});
  }
  SafetensorsWriter::Options o;
  o.max_shard_bytes = 250;  // two groups (200 bytes) per shard
  auto w = SafetensorsWriter::create(d.path(), groups, o);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->shard_names(),
            (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                      "model-00003-of-00003.safetensors"}));
  for (const auto& g : groups)
    for (const auto& t : g) ASSERT_TRUE((*w)->write(t.name, pattern(t.nbytes(), 9)).ok());
  ASSERT_TRUE((*w)->finish().ok());
  auto m = ModelFiles::open(d.path());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->sharded());
  EXPECT_EQ(m->tensors().size(), 10u);
  for (int g = 0; g < 5; ++g) {
    const std::string p = "g" + std::to_string(g) + ".weight";
    EXPECT_EQ(m->find(p)->file, m->find(p + ".absmax")->file) << "group split across shards";
  }
  const auto index = nlohmann::json::parse(test::read_bytes(d / kSafetensorsIndexName));
  EXPECT_EQ(index["metadata"]["total_size"], 5 * 100);
  EXPECT_EQ(index["weight_map"].size(), 10u);
}

TEST(Safetensors, UnfinishedWriterLeavesNothing) {
  test::TempDir d;
  {
    auto w = SafetensorsWriter::create(d.path(), {{{"a", DType::kU8, {4}}}, {{"b", DType::kU8, {4}}}}, {});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->write("a", pattern(4, 0)).ok());
    auto st = (*w)->finish();
    EXPECT_FALSE(st.ok());
    EXPECT_NE(std::string(st.message()).find("'b' was declared but never written"), std::string::npos);
  }
  EXPECT_TRUE(fs::is_empty(d.path()));
}

TEST(Safetensors, WriterRejectsWrongSizesAndDuplicates) {
  test::TempDir d;
  auto dup = SafetensorsWriter::create(d.path(), {{{"a", DType::kU8, {4}}}, {{"a", DType::kU8, {4}}}}, {});
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(std::string(dup.status().message()).find("listed twice"), std::string::npos);
  auto w = SafetensorsWriter::create(d.path(), {{{"a", DType::kF32, {4}}}}, {});
  ASSERT_TRUE(w.ok());
  auto st = (*w)->write("a", pattern(15, 0));
  EXPECT_NE(std::string(st.message()).find("15 bytes given, 16 declared"), std::string::npos);
  EXPECT_FALSE((*w)->write("zzz", pattern(1, 0)).ok());
  ASSERT_TRUE((*w)->write("a", pattern(16, 0)).ok());
  EXPECT_FALSE((*w)->write("a", pattern(16, 0)).ok());  // twice
}

// A variable-length tensor (TensorSpec::max_nbytes, the quant_state JSON's case) goes after
// the fixed-size ones of its shard, written at finish(); every fixed-size tensor can be
// written before the variable ones are known, the header lands in the room reserved for its
// longest form, the data still start 8-byte aligned and tile the file exactly. Sharding
// counts the bound; the index counts what was written.
TEST(Safetensors, VariableLengthTensorsGoLastAndTheHeaderFitsItsRoom) {
  for (const uint64_t max_shard : {uint64_t{5'000'000'000}, uint64_t{200}}) {
    test::TempDir d;
    std::vector<TensorGroup> groups;
    for (int g = 0; g < 3; ++g) {
      TensorSpec state{"w" + std::to_string(g) + ".quant_state", DType::kU8, {}, 1000};
      groups.push_back({{"w" + std::to_string(g), DType::kU8, {40}}, state, {"w" + std::to_string(g) + ".absmax", DType::kF32, {3}}});
    }
    SafetensorsWriter::Options o;
    o.max_shard_bytes = max_shard;  // 200: each group alone (its bound, 1052 bytes, is over)
    auto w = SafetensorsWriter::create(d.path(), groups, o);
    ASSERT_TRUE(w.ok()) << w.status();
    std::map<std::string, std::vector<uint8_t>> want;
    for (int g = 2; g >= 0; --g) {  // any order, the variable ones first
      const std::string n = "w" + std::to_string(g);
      want[n + ".quant_state"] = pattern(static_cast<size_t>(5 + 400 * g), static_cast<uint8_t>(g));
      want[n] = pattern(40, static_cast<uint8_t>(10 + g));
      want[n + ".absmax"] = pattern(12, static_cast<uint8_t>(20 + g));
      ASSERT_TRUE((*w)->write(n + ".quant_state", want[n + ".quant_state"]).ok());
      ASSERT_TRUE((*w)->write(n, want[n]).ok());
      ASSERT_TRUE((*w)->write(n + ".absmax", want[n + ".absmax"]).ok());
    }
    EXPECT_NE(std::string((*w)->write("w0.quant_state", pattern(3, 0)).message()).find("written twice"),
              std::string::npos);
    ASSERT_TRUE((*w)->finish().ok());
    auto m = ModelFiles::open(d.path());  // the reader checks the tiling and the offsets
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->sharded(), max_shard == 200);
    for (const auto& [name, bytes] : want) {
      ASSERT_NE(m->find(name), nullptr) << name;
      EXPECT_EQ(test::as_bytes(m->find(name)->view()), bytes) << name;
    }
    EXPECT_EQ(m->find("w2.quant_state")->info->shape, (std::vector<int64_t>{805}));
    for (const auto& f : m->files()) EXPECT_EQ(f->data_offset() % 8, 0u);
    if (max_shard == 200) {
      const auto index = nlohmann::json::parse(test::read_bytes(d / kSafetensorsIndexName));
      EXPECT_EQ(index["metadata"]["total_size"], 3 * (40 + 12) + 5 + 405 + 805);
    }
  }
  test::TempDir d;
  auto too_long = SafetensorsWriter::create(d.path(), {{{"s", DType::kU8, {}, 8}}}, {});
  ASSERT_TRUE(too_long.ok());
  EXPECT_NE(std::string((*too_long)->write("s", pattern(9, 0)).message()).find("9 bytes given, at most 8"),
            std::string::npos);
  auto not_bytes = SafetensorsWriter::create(d.path(), {{{"s", DType::kF32, {}, 8}}}, {});
  EXPECT_FALSE(not_bytes.ok());
}

}  // namespace
}  // namespace sp
