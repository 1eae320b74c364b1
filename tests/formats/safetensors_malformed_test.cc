// Malformed safetensors files and indexes: each is rejected with a message that names
// the file and (where there is one) the tensor.
#include <cstring>
#include <filesystem>

#include "formats/model_files.h"
#include "formats/safetensors.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

// A file: u64 header length (or `length_override`), header text, then `data_len` bytes.
std::string make_file(const test::TempDir& d, const std::string& name, const std::string& header,
                      size_t data_len, std::optional<uint64_t> length_override = std::nullopt) {
  std::vector<uint8_t> b(8);
  const uint64_t len = length_override.value_or(header.size());
  std::memcpy(b.data(), &len, 8);
  b.insert(b.end(), header.begin(), header.end());
  b.resize(b.size() + data_len, 0xab);
  const std::string p = d / name;
  test::write_bytes(p, b);
  return p;
}

struct Malformed {
  const char* what;
  std::string header;
  size_t data_len;
  std::optional<uint64_t> length_override;
  const char* expected;  // substring of the error
};

class SafetensorsMalformed : public ::testing::TestWithParam<Malformed> {};

TEST_P(SafetensorsMalformed, IsRejectedWithSpecificMessage) {
  test::TempDir d;
  const auto& m = GetParam();
  const std::string path = make_file(d, "bad.safetensors", m.header, m.data_len, m.length_override);
  auto f = SafetensorsFile::open(path);
  ASSERT_FALSE(f.ok()) << m.what << " was accepted";
  const std::string msg(f.status().message());
  EXPECT_NE(msg.find(m.expected), std::string::npos) << m.what << ": got '" << msg << "'";
  EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
}

const Malformed kCases[] = {
    {"huge header length", "{}", 0, 1ull << 40, "not a safetensors file: the header length in its first 8 bytes is over"},
    {"header past end of file", R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1, 4096,
     "runs past the end of the file"},
    {"bad JSON", R"({"a":{"dtype":"U8",)", 0, std::nullopt, "not valid JSON"},
    {"not an object", R"(["a"])", 0, std::nullopt, "does not start with '{'"},
    {"unknown dtype", R"({"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})", 1, std::nullopt,
     "tensor 'w': unknown dtype 'Q7'"},
    {"wrong byte length", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,6]}})", 6, std::nullopt,
     "tensor 'w': shape [2] of F32 needs 8 bytes but data_offsets span 6"},
    {"offsets out of range", R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})", 8, std::nullopt,
     "tensor 'w': data_offsets [4, 12] outside the data section (8 bytes)"},
    {"overlapping tensors",
     R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
     6, std::nullopt, "tensors 'a' and 'b' overlap"},
    {"duplicate names",
     R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
     2, std::nullopt, "tensor 'a' appears twice"},
    {"end before begin", R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[3,1]}})", 4, std::nullopt,
     "tensor 'w': data_offsets [3, 1] end before begin"},
    {"missing shape", R"({"w":{"dtype":"U8","data_offsets":[0,1]}})", 1, std::nullopt, "tensor 'w': missing 'shape'"},
    {"negative dimension", R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1, std::nullopt,
     "tensor 'w': shape [-1] has a dimension that is not a non-negative integer"},
    {"hole between tensors",
     R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
     6, std::nullopt, "2 bytes before tensor 'b' (offset 4) belong to no tensor"},
    {"trailing bytes", R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", 5, std::nullopt,
     "data section has 5 bytes but tensors cover only 2"},
    {"metadata not strings", R"({"__metadata__":{"format":1}})", 0, std::nullopt,
     "'__metadata__' value of 'format' must be a string"},
    {"bad data_offsets", R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", 1, std::nullopt,
     "tensor 'w': 'data_offsets' must be [begin, end]"},
    {"unexpected entry key", R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", 1, std::nullopt,
     "tensor 'w': unexpected key 'x'"},
    // Found by fuzz_safetensors_header: nlohmann throws out_of_range (not parse_error) for
    // a number that overflows; it used to escape as an exception.
    {"number overflow", R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1e5555555]}})", 1, std::nullopt,
     "header is not valid JSON"},
    {"shape overflow", R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8,
     std::nullopt, "tensor 'w': shape [4294967296,4294967296] overflows"},
};

INSTANTIATE_TEST_SUITE_P(Files, SafetensorsMalformed, ::testing::ValuesIn(kCases), [](const auto& info) {
  std::string n = info.param.what;
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
});

TEST(SafetensorsMalformedFile, TooShort) {
  test::TempDir d;
  test::write_bytes(d / "short.safetensors", std::vector<uint8_t>{1, 2, 3});
  auto f = SafetensorsFile::open(d / "short.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(std::string(f.status().message()).find("too short for the 8-byte header length"), std::string::npos);
}

TEST(SafetensorsMalformedFile, TruncatedData) {
  // A real file cut short: the header now claims more data than the file holds.
  test::TempDir d;
  auto bytes = test::read_bytes(test::fixture("stories260k/hf-bf16/model.safetensors"));
  bytes.resize(bytes.size() - 100);
  test::write_bytes(d / "cut.safetensors", bytes);
  auto f = SafetensorsFile::open(d / "cut.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(std::string(f.status().message()).find("outside the data section"), std::string::npos)
      << f.status();
}

TEST(SafetensorsMalformedFile, Missing) {
  auto f = SafetensorsFile::open("/nonexistent/model.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(absl::IsNotFound(f.status()));
}

// Sharded folders: the index must be consistent with the files.
class IndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    make_file(d_, "s1.safetensors", R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1);
    make_file(d_, "s2.safetensors", R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1);
  }
  std::string open_with_index(const std::string& text) {
    test::write_text(d_ / "model.safetensors.index.json", text);
    auto m = ModelFiles::open(d_.path());
    if (m.ok()) return "";
    return std::string(m.status().message());
  }
  test::TempDir d_;
};

TEST_F(IndexTest, ConsistentIndexOpens) {
  EXPECT_EQ(open_with_index(R"({"metadata":{"total_size":2},"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})"), "");
}

TEST_F(IndexTest, BadJson) {
  EXPECT_NE(open_with_index(R"({"weight_map": )").find("model.safetensors.index.json: not valid JSON"), std::string::npos);
}

TEST_F(IndexTest, NoWeightMap) {
  EXPECT_NE(open_with_index(R"({"metadata":{}})").find("must be an object with a 'weight_map' object"), std::string::npos);
}

TEST_F(IndexTest, MissingShardFile) {
  EXPECT_NE(open_with_index(R"({"weight_map":{"a":"s1.safetensors","b":"s9.safetensors"}})")
                .find("names shard 's9.safetensors', which does not exist"),
            std::string::npos);
}

TEST_F(IndexTest, TensorNotInItsFile) {
  EXPECT_NE(open_with_index(R"({"weight_map":{"a":"s2.safetensors","b":"s2.safetensors"}})")
                .find("tensor 'a' is mapped to 's2.safetensors' but that file does not hold it"),
            std::string::npos);
}

TEST_F(IndexTest, PathOutsideFolder) {
  EXPECT_NE(open_with_index(R"({"weight_map":{"a":"../s1.safetensors"}})").find("not a plain file name"),
            std::string::npos);
}

TEST_F(IndexTest, TensorMissingFromIndex) {
  make_file(d_, "s3.safetensors",
            R"({"c":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"d":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", 2);
  EXPECT_NE(open_with_index(R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","c":"s3.safetensors"}})")
                .find("tensor 'd' in 's3.safetensors' is not listed for that file in weight_map"),
            std::string::npos);
}

TEST_F(IndexTest, EmptyFolder) {
  test::TempDir empty;
  auto m = ModelFiles::open(empty.path());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(std::string(m.status().message()).find("no model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace sp
