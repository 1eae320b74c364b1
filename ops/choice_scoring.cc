#include "ops/choice_scoring.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "fmt/format.h"

namespace sp {

absl::StatusOr<std::vector<std::vector<double>>> choice_logliks(const LanguageModel& m,
                                                                const std::vector<ChoiceItem>& items, int threads) {
  int64_t longest = 2;
  for (const auto& it : items)
    for (const auto& c : it.choices)
      longest = std::max<int64_t>(longest, static_cast<int64_t>(it.context.size() + c.size()));
  SP_ASSIGN_OR_RETURN(const RopeTable rope, rope_table(m.config, longest));
  std::vector<std::vector<double>> out(items.size());
  threads = std::max(1, std::min<int>(threads, static_cast<int>(items.size())));
  std::vector<std::thread> pool;
  for (int w = 0; w < threads; ++w)
    pool.emplace_back([&, w] {
      std::vector<int32_t> seq;
      for (size_t i = w; i < items.size(); i += static_cast<size_t>(threads)) {
        const ChoiceItem& it = items[i];
        for (const auto& c : it.choices) {
          seq = it.context;
          seq.insert(seq.end(), c.begin(), c.end());
          const auto s = score_sequence(m, rope, seq.data(), static_cast<int64_t>(seq.size()), nullptr,
                                        static_cast<int64_t>(it.context.size()));
          out[i].push_back(-s.nll);
        }
      }
    });
  for (auto& t : pool) t.join();
  for (size_t i = 0; i < out.size(); ++i)
    for (double v : out[i])
      if (!std::isfinite(v))
        return absl::InvalidArgumentError(
            fmt::format("item {}: a choice's log-likelihood is {}: the model's output is not finite", i + 1, v));
  return out;
}

ChoiceAccuracy choice_accuracy(const std::vector<ChoiceItem>& items, const std::vector<std::vector<double>>& loglik) {
  ChoiceAccuracy a;
  a.items = static_cast<int64_t>(items.size());
  for (size_t i = 0; i < items.size() && i < loglik.size(); ++i) {
    const auto& ll = loglik[i];
    size_t best = 0, best_norm = 0;
    for (size_t c = 1; c < ll.size(); ++c) {
      if (ll[c] > ll[best]) best = c;
      const auto per = [&](size_t k) { return ll[k] / static_cast<double>(std::max<int64_t>(1, items[i].choice_bytes[k])); };
      if (per(c) > per(best_norm)) best_norm = c;
    }
    a.correct += static_cast<int>(best) == items[i].answer;
    a.correct_norm += static_cast<int>(best_norm) == items[i].answer;
  }
  const double n = static_cast<double>(a.items);
  auto stderr_of = [n](double p) { return n > 1 ? std::sqrt(p * (1 - p) / (n - 1)) : 0.0; };
  if (a.items > 0) {
    a.acc = static_cast<double>(a.correct) / n;
    a.acc_norm = static_cast<double>(a.correct_norm) / n;
  }
  a.acc_stderr = stderr_of(a.acc);
  a.acc_norm_stderr = stderr_of(a.acc_norm);
  return a;
}

}  // namespace sp
