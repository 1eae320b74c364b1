// Multiple-choice items (MMLU-style tasks scored by the log-likelihood of each choice),
// one JSON object per line:
//   {"context": "text", "choices": ["text", ...], "answer": 1}              (text)
//   {"context_ids": [1, 2, ...], "choices_ids": [[...], ...], "answer": 1}  (token ids)
// `answer` is the index of the right choice. Text items are tokenized with the model's
// SentencePiece tokenizer as lm-eval-harness pairs a context with a continuation: the
// context's trailing spaces move to the continuation, [BOS] + encode(context + choice)
// is split after encode(context)'s length; models with another tokenizer take ids (used
// as given: put the BOS id first where the model wants one).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "formats/sentencepiece_tokenizer.h"

namespace sp {

struct ChoiceItem {
  std::vector<int32_t> context;               // non-empty
  std::vector<std::vector<int32_t>> choices;  // 2 or more, each non-empty
  std::vector<int64_t> choice_bytes;          // UTF-8 bytes of each choice (ids: its token count)
  int answer = 0;
};

// Reads a JSONL file; INVALID_ARGUMENT naming the line and key for anything malformed (a
// missing key, an answer out of range, an id outside [0, vocab)), or text items without a
// tokenizer. `limit` > 0: the first `limit` items.
absl::StatusOr<std::vector<ChoiceItem>> read_choice_items(const std::string& path, int64_t vocab,
                                                          const SentencePieceTokenizer* tokenizer, int64_t limit = 0);

// The tokenizer text items of `model` use: its folder's tokenizer.model, or none (a GGUF
// file, a folder without one: id items only). An unreadable tokenizer.model is an error.
absl::StatusOr<std::optional<SentencePieceTokenizer>> model_tokenizer(const std::string& model);

// Items as sequences for a batched forward pass: sequence k is one (item, choice) pair —
// context then choice, right-padded with id 0 to the longest (a causal model's scores of
// earlier tokens do not see the padding) — and spans[2k], spans[2k+1] the first choice
// token and the sequence's length.
struct ChoiceBatch {
  int64_t sequences = 0, tokens = 0;
  std::vector<int32_t> ids;    // [sequences, tokens]
  std::vector<int32_t> spans;  // [sequences, 2]
};
ChoiceBatch choice_batch(const std::vector<ChoiceItem>& items);

}  // namespace sp
