#include "common/token.h"

#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

TEST(Token, ReadTrimsAndValidates) {
  test::TempDir d;
  test::write_text(d / "t", "  0123456789abcdef0123\n");
  EXPECT_EQ(*read_token_file(d / "t"), "0123456789abcdef0123");
  test::write_text(d / "short", "abc\n");
  auto s = read_token_file(d / "short");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("at least 16 characters"), std::string::npos);
  EXPECT_EQ(std::string(s.status().message()).find("abc"), std::string::npos) << "a token must never be echoed";
  test::write_text(d / "space", "0123456789 abcdef0123\n");
  EXPECT_FALSE(read_token_file(d / "space").ok());
  EXPECT_TRUE(absl::IsNotFound(read_token_file(d / "missing").status()));
  EXPECT_EQ(bearer("x"), "Bearer x");
}

TEST(Token, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("Bearer abc", "Bearer abc"));
  EXPECT_FALSE(constant_time_equal("Bearer abc", "Bearer abd"));
  EXPECT_FALSE(constant_time_equal("Bearer abc", "Bearer abcd"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

}  // namespace
}  // namespace sp
