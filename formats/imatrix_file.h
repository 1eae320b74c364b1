// llama.cpp's importance-matrix file (`llama-imatrix` output, read by `llama-quantize
// --imatrix`; ../shared/docs/gguf-format.md §8): per quantized weight, by GGUF name, the
// sum over calls of the mean squared activation of each input column, and the number of
// calls (chunks) that went into it. `importance()` gives what the quantizers weigh by:
// values / ncall, as llama-quantize computes it.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace sp {

struct ImatrixEntry {
  std::string name;  // "blk.0.attn_q.weight"
  int32_t ncall = 0;
  std::vector<float> values;  // one per input column
};

// values[j] / ncall: what the quantizers weigh column j by (llama-quantize's division).
// A length other than `columns`, or a non-finite value, is an error naming the entry.
absl::StatusOr<std::vector<float>> entry_importance(const ImatrixEntry& e, int64_t columns);

// What a GGUF file records of the importance matrix it was quantized with (§7.6).
struct ImatrixRecord {
  std::string file;     // quantize.imatrix.file
  std::string dataset;  // quantize.imatrix.dataset
  int32_t entries = 0;  // quantize.imatrix.entries_count
  int32_t chunks = 0;   // quantize.imatrix.chunks_count (0: not written)
};

struct Imatrix {
  std::vector<ImatrixEntry> entries;
  int32_t last_call = 0;  // chunks; 0 when the file has no trailer
  std::string dataset;    // the calibration text's path as given

  const ImatrixEntry* find(std::string_view name) const;
  // values[j] / ncall for the weight `name`, or empty when the file has no entry for it.
  // An entry whose length is not `columns`, or that holds a non-finite value, is an
  // error naming both (llama-quantize refuses the same).
  absl::StatusOr<std::vector<float>> importance(std::string_view name, int64_t columns) const;
  ImatrixRecord record(const std::string& file) const;
};

absl::StatusOr<Imatrix> parse_imatrix(std::span<const uint8_t> bytes, const std::string& what);
absl::StatusOr<Imatrix> read_imatrix(const std::string& path);
// Written beside `path` and renamed into place; an existing file is not overwritten.
absl::Status write_imatrix(const std::string& path, const Imatrix& m);

}  // namespace sp
