#include "common/file_util.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

TEST(FileUtil, AtomicWriteReplacesAndLeavesNoTemp) {
  test::TempDir d;
  const std::string p = d / "a.json";
  ASSERT_TRUE(write_file_atomic(p, std::string_view("one")).ok());
  ASSERT_TRUE(write_file_atomic(p, std::string_view("two")).ok());
  EXPECT_EQ(*read_file(p), "two");
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(d.path())) ++files, (void)e;
  EXPECT_EQ(files, 1u);
}

TEST(FileUtil, AtomicWriteIntoMissingFolderFailsCleanly) {
  test::TempDir d;
  auto st = write_file_atomic(d / "nope/a.json", std::string_view("x"));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("nope"), std::string::npos);
}

TEST(FileUtil, PositionalFileWritesAtOffsets) {
  test::TempDir d;
  auto f = PositionalFile::create(d / "p.bin", 8);
  ASSERT_TRUE(f.ok());
  const uint8_t b[] = {5, 6, 7, 8};
  const uint8_t a[] = {1, 2, 3, 4};
  ASSERT_TRUE(f->write_at(4, b).ok());
  ASSERT_TRUE(f->write_at(0, a).ok());
  ASSERT_TRUE(f->sync_and_close().ok());
  EXPECT_EQ(test::read_bytes(d / "p.bin"), (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(FileUtil, ReadMissingIsNotFound) {
  auto r = read_file("/nonexistent/shardpress/x");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsNotFound(r.status()));
}

}  // namespace
}  // namespace sp
