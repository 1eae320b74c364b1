// Token-id files for calibration and evaluation: one sequence per line, ids separated by
// spaces (the fixtures' `*.ids.txt`). The first `samples` lines are taken, each cut to
// its first `seq_len` ids.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace sp {

struct TokenBatch {
  int64_t sequences = 0;
  int64_t seq_len = 0;
  std::vector<int32_t> ids;  // [sequences, seq_len]
  const int32_t* row(int64_t i) const { return ids.data() + i * seq_len; }
};

// Parses `text` (label = the path, for errors). samples <= 0: every line. seq_len <= 0:
// the length of the first line, and every line must have it. INVALID_ARGUMENT naming the
// line for an id that is not an integer in [0, vocab_size), a line shorter than seq_len,
// fewer lines than `samples`, or no lines at all.
absl::StatusOr<TokenBatch> parse_token_ids(std::string_view text, std::string_view label, int64_t vocab_size,
                                           int64_t samples, int64_t seq_len);
absl::StatusOr<TokenBatch> read_token_ids(const std::string& path, int64_t vocab_size, int64_t samples,
                                          int64_t seq_len);

}  // namespace sp
