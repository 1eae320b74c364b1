#include "common/byte_size.h"

#include "gtest/gtest.h"

namespace sp {
namespace {

TEST(ByteSize, ParsesUnits) {
  EXPECT_EQ(*parse_byte_size("11GiB"), 11ull << 30);
  EXPECT_EQ(*parse_byte_size("512 MiB"), 512ull << 20);
  EXPECT_EQ(*parse_byte_size("1.5GB"), 1'500'000'000ull);
  EXPECT_EQ(*parse_byte_size("4096"), 4096ull);
  EXPECT_EQ(*parse_byte_size("2g"), 2ull << 30);
  EXPECT_EQ(*parse_byte_size("5GB"), 5'000'000'000ull);
}

TEST(ByteSize, RejectsGarbageWithUsefulMessage) {
  auto r = parse_byte_size("eleven");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("not a byte size"), std::string::npos);
  r = parse_byte_size("3 parsecs");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("unknown unit"), std::string::npos);
}

TEST(ByteSize, Formats) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(11ull << 30), "11.00 GiB");
  EXPECT_EQ(format_count(0), "0");
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_count(32768), "32,768");
  EXPECT_EQ(format_count(260032), "260,032");
  EXPECT_EQ(format_count(32003216384ull), "32,003,216,384");
}

}  // namespace
}  // namespace sp
