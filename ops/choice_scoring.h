// Multiple-choice evaluation (formats/choice_items): each choice's log-likelihood given
// its context, summed over its tokens, and the accuracy as lm-eval-harness reports it —
// `acc` (the choice with the highest log-likelihood), `acc_norm` (per UTF-8 byte of the
// choice; per token for id items) — with the standard error of the mean,
// sqrt(p (1 - p) / (n - 1)).
//
// Thread-safety: pure functions; choice_logliks runs items on several threads and gives
// the same numbers for any thread count.
#pragma once

#include <vector>

#include "common/status.h"
#include "formats/choice_items.h"
#include "ops/language_model.h"

namespace sp {

// loglik[i][c] of choice c of item i (natural log).
absl::StatusOr<std::vector<std::vector<double>>> choice_logliks(const LanguageModel& m,
                                                                const std::vector<ChoiceItem>& items, int threads);

struct ChoiceAccuracy {
  int64_t items = 0;
  int64_t correct = 0, correct_norm = 0;
  double acc = 0, acc_stderr = 0;
  double acc_norm = 0, acc_norm_stderr = 0;
};
// Ties go to the first of the best choices (numpy's argmax, as lm-eval-harness).
ChoiceAccuracy choice_accuracy(const std::vector<ChoiceItem>& items, const std::vector<std::vector<double>>& loglik);

}  // namespace sp
