// Token-id files: sequences cut to length; bad ids, short lines and missing lines are
// errors that name the line.
#include "formats/token_ids.h"

#include "gtest/gtest.h"

namespace sp {
namespace {

TEST(TokenIds, ParsesAndCuts) {
  auto b = parse_token_ids("1 2 3 4\n5 6 7 8 9\n\n10 11 12 13\n", "f", 20, 2, 3);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->sequences, 2);
  EXPECT_EQ(b->seq_len, 3);
  EXPECT_EQ(b->ids, (std::vector<int32_t>{1, 2, 3, 5, 6, 7}));
  auto all = parse_token_ids("1 2 3 4\n5 6 7 8\n", "f", 20, 0, 0);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->sequences, 2);
  EXPECT_EQ(all->seq_len, 4);
}

TEST(TokenIds, ErrorsNameTheLine) {
  auto msg = [](const absl::StatusOr<TokenBatch>& r) { return std::string(r.status().message()); };
  auto out_of_vocab = parse_token_ids("1 2 3\n4 512 6\n", "calib.ids", 512, 0, 3);
  EXPECT_EQ(out_of_vocab.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(msg(out_of_vocab).find("calib.ids: line 2: token id 512 is outside"), std::string::npos) << msg(out_of_vocab);
  auto negative = parse_token_ids("1 -2 3\n", "f", 512, 0, 3);
  EXPECT_NE(msg(negative).find("token id -2"), std::string::npos);
  auto short_line = parse_token_ids("1 2 3\n4 5\n", "f", 512, 0, 3);
  EXPECT_NE(msg(short_line).find("line 2 has 2 tokens; sequences of 3 are needed"), std::string::npos);
  auto word = parse_token_ids("1 two 3\n", "f", 512, 0, 0);
  EXPECT_NE(msg(word).find("'two' is not a token id"), std::string::npos);
  auto few = parse_token_ids("1 2 3\n", "f", 512, 5, 3);
  EXPECT_NE(msg(few).find("5 sequences asked for, the file has 1"), std::string::npos);
  EXPECT_FALSE(parse_token_ids("", "f", 512, 0, 0).ok());
  EXPECT_FALSE(parse_token_ids("7\n", "f", 512, 0, 0).ok());  // one token predicts nothing
}

}  // namespace
}  // namespace sp
