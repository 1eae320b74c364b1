// The SentencePiece encoder against the fixture's own ids: [BOS] + encode(story) for every
// story of stories260k's eval.txt reproduces text/eval.ids.txt (41,472 ids), and a few
// hand-checked cases (byte fallback, the space prefix).
#include "formats/sentencepiece_tokenizer.h"

#include <sstream>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

TEST(SentencePieceTokenizer, ReproducesTheFixtureIds) {
  auto tok = SentencePieceTokenizer::open_folder(test::fixture("stories260k/hf-bf16"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->vocab_size(), 512u);
  EXPECT_EQ(tok->bos_id(), 1);
  auto text = read_file(test::fixture("stories260k/text/eval.txt"));
  auto ids_text = read_file(test::fixture("stories260k/text/eval.ids.txt"));
  ASSERT_TRUE(text.ok() && ids_text.ok());
  std::vector<int32_t> want;
  std::istringstream in(*ids_text);
  for (int32_t v; in >> v;) want.push_back(v);
  ASSERT_EQ(want.size(), 41472u);
  std::vector<int32_t> got;
  const std::string sep = "<|endoftext|>";
  size_t stories = 0;
  for (size_t at = 0; at < text->size() && got.size() < want.size();) {
    size_t end = text->find(sep, at);
    if (end == std::string::npos) end = text->size();
    std::string story = text->substr(at, end - at);
    while (!story.empty() && story.front() == '\n') story.erase(0, 1);
    while (!story.empty() && story.back() == '\n') story.pop_back();
    at = end + sep.size();
    if (story.empty()) continue;
    got.push_back(tok->bos_id());
    const auto ids = tok->encode(story);
    got.insert(got.end(), ids.begin(), ids.end());
    ++stories;
  }
  ASSERT_GE(got.size(), want.size());
  got.resize(want.size());
  size_t first_diff = 0;
  while (first_diff < want.size() && got[first_diff] == want[first_diff]) ++first_diff;
  EXPECT_EQ(first_diff, want.size()) << "first difference at id " << first_diff << " (" << stories << " stories)";
}

TEST(SentencePieceTokenizer, SpacePrefixAndByteFallback) {
  auto tok = SentencePieceTokenizer::open_folder(test::fixture("stories260k/hf-bf16"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  // "<0x0A>" is id 3 + 10; a CJK character is outside this vocabulary: three byte pieces.
  EXPECT_EQ(tok->encode("\n", false), std::vector<int32_t>({3 + 0x0A}));
  EXPECT_EQ(tok->encode("\xe6\xbc\xa2", false), std::vector<int32_t>({3 + 0xE6, 3 + 0xBC, 3 + 0xA2}));
  EXPECT_TRUE(tok->encode("").size() <= 1);
  EXPECT_NE(tok->encode("the"), tok->encode("the", false)) << "the dummy prefix makes it ' the'";
  EXPECT_EQ(tok->encode(" the", false), tok->encode("the"));
  EXPECT_FALSE(SentencePieceTokenizer::from_model("not a model", "x").ok());
}

}  // namespace
}  // namespace sp
