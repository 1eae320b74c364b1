// libFuzzer: token-id files (calibration and evaluation text). Accepted batches must be
// exactly what was asked for: sequences x seq_len ids, every id inside the vocabulary.
#include "formats/token_ids.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (auto [samples, seq_len] : {std::pair<int64_t, int64_t>{0, 0}, {2, 3}}) {
    auto b = sp::parse_token_ids(text, "fuzz/ids.txt", 512, samples, seq_len);
    if (!b.ok()) continue;
    if (b->sequences < 1 || b->seq_len < 2 || b->ids.size() != static_cast<size_t>(b->sequences * b->seq_len))
      __builtin_trap();
    if (samples > 0 && b->sequences != samples) __builtin_trap();
    for (int32_t id : b->ids)
      if (id < 0 || id >= 512) __builtin_trap();
  }
  return 0;
}
