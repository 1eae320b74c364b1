// Multiple-choice evaluation: the JSONL items (text and ids, errors by line), the accuracy
// and its standard error by hand, each choice's log-likelihood against log-softmax of the
// full logits, and the stories task built by scripts/make-stories-choices.py.
#include "ops/choice_scoring.h"

#include <cmath>
#include <algorithm>
#include <cstdio>

#include "checkpoint/float_model.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

std::string items_error(const std::string& jsonl, const SentencePieceTokenizer* tok = nullptr) {
  test::TempDir d;
  test::write_text(d / "c.jsonl", jsonl);
  auto r = read_choice_items(d / "c.jsonl", 512, tok);
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(ChoiceItems, IdsTextAndErrorsByLine) {
  test::TempDir d;
  test::write_text(d / "ids.jsonl", "{\"context_ids\": [1, 5], \"choices_ids\": [[7], [8, 9]], \"answer\": 1}\n\n");
  auto ids = read_choice_items(d / "ids.jsonl", 512, nullptr);
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_EQ(ids->size(), 1u);
  EXPECT_EQ((*ids)[0].context, std::vector<int32_t>({1, 5}));
  EXPECT_EQ((*ids)[0].choices[1], std::vector<int32_t>({8, 9}));
  EXPECT_EQ((*ids)[0].choice_bytes, std::vector<int64_t>({1, 2}));
  EXPECT_EQ((*ids)[0].answer, 1);

  auto tok = SentencePieceTokenizer::open_folder(test::fixture("stories260k/hf-bf16"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  test::write_text(d / "text.jsonl", "{\"context\": \"Tom had a red ball. \", \"choices\": [\"He threw it.\", \"Cats fly.\"], \"answer\": 0}\n");
  auto text = read_choice_items(d / "text.jsonl", 512, &*tok);
  ASSERT_TRUE(text.ok()) << text.status();
  const ChoiceItem& it = (*text)[0];
  // [BOS] + context, then the continuation (with the context's trailing space): together
  // exactly the encoding of the whole text.
  std::vector<int32_t> whole = it.context;
  whole.insert(whole.end(), it.choices[0].begin(), it.choices[0].end());
  std::vector<int32_t> want{1};
  const auto enc = tok->encode("Tom had a red ball. He threw it.");
  want.insert(want.end(), enc.begin(), enc.end());
  EXPECT_EQ(whole, want);
  EXPECT_EQ(it.context[0], 1);
  EXPECT_EQ(it.choice_bytes, std::vector<int64_t>({12, 9}));

  EXPECT_NE(items_error("{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 0}\n").find("line 1: text items need"),
            std::string::npos);
  EXPECT_NE(items_error("{\"context_ids\": [1], \"choices_ids\": [[2], [3]], \"answer\": 2}\n").find("line 1: 'answer'"),
            std::string::npos);
  EXPECT_NE(items_error("\n{\"context_ids\": [1], \"choices_ids\": [[2], [600]], \"answer\": 0}\n")
                .find("line 2: 'choices_ids' has 600, not a token id in [0, 512)"),
            std::string::npos);
  EXPECT_NE(items_error("{\"context_ids\": [1], \"choices_ids\": [[2]], \"answer\": 0}\n").find("2 or more"),
            std::string::npos);
  EXPECT_NE(items_error("{\"context_ids\": [1], \"choices_ids\": [[2], []], \"answer\": 0}\n").find("non-empty"),
            std::string::npos);
  EXPECT_NE(items_error("[1, 2]\n").find("line 1: not a JSON object"), std::string::npos);
  EXPECT_NE(items_error("{\"choices\": [\"b\", \"c\"], \"answer\": 0}\n", &*tok).find("needs 'context'"),
            std::string::npos);
  EXPECT_NE(items_error("\n").find("no items"), std::string::npos);
  EXPECT_FALSE(read_choice_items(d / "missing.jsonl", 512, nullptr).ok());
}

TEST(ChoiceAccuracy, ByHand) {
  // Three items; choice_bytes make acc_norm differ from acc on the second.
  std::vector<ChoiceItem> items(3);
  items[0].choice_bytes = {1, 1};
  items[0].answer = 0;
  items[1].choice_bytes = {10, 1};
  items[1].answer = 0;
  items[2].choice_bytes = {1, 1, 1};
  items[2].answer = 2;
  const std::vector<std::vector<double>> ll = {{-1.0, -2.0}, {-5.0, -1.0}, {-3.0, -3.0, -3.0}};
  const ChoiceAccuracy a = choice_accuracy(items, ll);
  EXPECT_EQ(a.items, 3);
  EXPECT_EQ(a.correct, 1);       // item 0; item 1 picks choice 1; item 2's tie goes to choice 0
  EXPECT_EQ(a.correct_norm, 2);  // item 1: -0.5 per byte beats -1.0
  EXPECT_DOUBLE_EQ(a.acc, 1.0 / 3);
  EXPECT_DOUBLE_EQ(a.acc_stderr, std::sqrt((1.0 / 3) * (2.0 / 3) / 2));
  EXPECT_DOUBLE_EQ(a.acc_norm, 2.0 / 3);
  EXPECT_DOUBLE_EQ(a.acc_norm_stderr, std::sqrt((2.0 / 3) * (1.0 / 3) / 2));
}

TEST(ChoiceLogliks, EqualLogSoftmaxOfTheFullLogitsOnAnyThreads) {
  auto m = load_float_model(test::fixture("stories260k/hf-f32"));
  ASSERT_TRUE(m.ok()) << m.status();
  std::vector<ChoiceItem> items(2);
  items[0].context = {1, 403, 407};
  items[0].choices = {{261, 378}, {300}};
  items[0].choice_bytes = {2, 1};
  items[1].context = {1};
  items[1].choices = {{403}, {404, 405, 406}};
  items[1].choice_bytes = {1, 3};
  auto one = choice_logliks(m->model, items, 1);
  auto two = choice_logliks(m->model, items, 2);
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_EQ(*one, *two);
  const int64_t V = m->model.config.vocab_size;
  for (size_t i = 0; i < items.size(); ++i)
    for (size_t c = 0; c < items[i].choices.size(); ++c) {
      std::vector<int32_t> seq = items[i].context;
      seq.insert(seq.end(), items[i].choices[c].begin(), items[i].choices[c].end());
      std::vector<float> logits;
      auto rope = rope_table(m->model.config, static_cast<int64_t>(seq.size()));
      score_sequence(m->model, *rope, seq.data(), static_cast<int64_t>(seq.size()), &logits);
      double want = 0;
      for (size_t t = items[i].context.size(); t < seq.size(); ++t) {
        const float* row = &logits[(t - 1) * V];
        double z = 0;
        for (int64_t v = 0; v < V; ++v) z += std::exp(static_cast<double>(row[v]));
        want += static_cast<double>(row[seq[t]]) - std::log(z);
      }
      // float32 logits shifted by their max in float32 there: the same sum within rounding.
      EXPECT_NEAR((*one)[i][c], want, 1e-7 * std::max(1.0, std::fabs(want))) << i << "/" << c;
    }
}

TEST(StoriesChoices, TheScriptIsDeterministicAndTheTaskIsAboveChance) {
  test::TempDir d;
  const std::string script = std::string(SP_PROJECT_DIR) + "/scripts/make-stories-choices.py";
  const std::string text = test::fixture("stories260k/text/eval.txt");
  for (const char* out : {"a.jsonl", "b.jsonl"})
    ASSERT_EQ(std::system(("python3 " + script + " " + text + " > " + (d / out)).c_str()), 0);
  auto a = read_file(d / "a.jsonl"), b = read_file(d / "b.jsonl");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  auto tok = SentencePieceTokenizer::open_folder(test::fixture("stories260k/hf-bf16"));
  auto items = read_choice_items(d / "a.jsonl", 512, &*tok);
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(items->size(), 101u);
  int answers[4] = {};
  for (const auto& it : *items) {
    ASSERT_EQ(it.choices.size(), 4u);
    ++answers[it.answer];
  }
  EXPECT_GE(*std::min_element(answers, answers + 4), 25) << "the right answer's place rotates";
  // The trained model picks the true next sentence more often than chance (1/4) by
  // several standard errors: the task measures the model, not noise.
  auto m = load_float_model(test::fixture("stories260k/hf-bf16"));
  ASSERT_TRUE(m.ok());
  auto ll = choice_logliks(m->model, *items, 2);
  ASSERT_TRUE(ll.ok());
  const ChoiceAccuracy acc = choice_accuracy(*items, *ll);
  std::printf("stories choices, bf16: acc %.4f +- %.4f, acc_norm %.4f +- %.4f\n", acc.acc, acc.acc_stderr, acc.acc_norm,
              acc.acc_norm_stderr);
  EXPECT_GT(acc.acc_norm, 0.25 + 3 * acc.acc_norm_stderr);
}

}  // namespace
}  // namespace sp
