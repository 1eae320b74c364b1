// safetensors: writing a checkpoint, split into shards, in bounded memory.
//
// The caller declares every tensor (name, dtype, shape) up front, in groups that must
// stay in one shard (bitsandbytes needs a quantized weight's side tensors beside it).
// The writer lays out the shards (each under `max_shard_bytes` unless one group alone is
// larger), preallocates temporary files, and accepts each tensor's bytes in any order,
// written straight to their final offsets: nothing is buffered. finish() checks that
// every tensor was written, fsyncs, renames the files into place and writes the index.
//
// One shard is written as `model.safetensors` with no index; N > 1 shards as
// `model-0000k-of-0000N.safetensors` plus `model.safetensors.index.json`. Headers carry
// `{"format":"pt"}` metadata and are space-padded so the data starts 8-byte aligned.
//
// A tensor may be declared with only a bound on its size (TensorSpec::max_nbytes: a 1-D
// U8 tensor such as bitsandbytes' quant_state JSON, whose length depends on the data).
// Such tensors go after the shard's fixed-size ones, in declared order, written at
// finish(); the header is written then too, into room reserved for its longest form
// (padded with spaces, as safetensors allows). So every fixed-size tensor still has its
// final offset from the start, and a writer can take results as they come.
//
// Thread-safety: not thread-safe; use from one thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/file_util.h"
#include "common/status.h"

namespace sp {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  // > 0: a 1-D U8 tensor of at most this many bytes, its length known when it is written
  // (`shape` is then ignored).
  uint64_t max_nbytes = 0;

  uint64_t numel() const;
  uint64_t nbytes() const { return numel() * dtype_size(dtype); }
  // Its size, or the bound of a variable one.
  uint64_t bound() const { return max_nbytes > 0 ? max_nbytes : nbytes(); }
};

// Tensors that must land in the same shard.
using TensorGroup = std::vector<TensorSpec>;

class SafetensorsWriter {
 public:
  struct Options {
    // Default as transformers' save_pretrained ("5GB").
    uint64_t max_shard_bytes = 5'000'000'000ull;
    std::map<std::string, std::string> metadata = {{"format", "pt"}};
    std::shared_ptr<WriteBudget> write_budget;  // test hook: a disk that fills up
  };

  // Plans the shards and creates their temporary files in `dir` (which must exist).
  // INVALID_ARGUMENT for duplicate or empty names.
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> create(const std::string& dir,
                                                                   std::vector<TensorGroup> groups,
                                                                   const Options& options);
  // Removes temporary files unless finish() succeeded.
  ~SafetensorsWriter();

  // Writes all bytes of tensor `name`; each tensor exactly once, with its exact size.
  absl::Status write(std::string_view name, std::span<const uint8_t> bytes);
  // Checks completeness, fsyncs and renames every shard into place, writes the index.
  absl::Status finish();

  // Final file name of each shard, in order.
  std::vector<std::string> shard_names() const;
  // Final file name holding `name` (empty if unknown).
  std::string shard_of(std::string_view name) const;

 private:
  struct Slot {
    size_t shard = 0;
    uint64_t offset = 0;  // from the shard's data start (a variable one's: its bound until finish())
    uint64_t nbytes = 0;  // the bound of a variable one until it is written
    bool variable = false;
    bool written = false;
    std::vector<uint8_t> bytes;  // a variable tensor's, until finish()
  };
  struct Shard {
    std::string name;
    std::string tmp_path;
    uint64_t file_size = 0;  // with variable tensors: at most this until finish()
    PositionalFile file;
    std::vector<const TensorSpec*> tensors;  // declared order (the header's)
    std::vector<std::string> variable;       // variable tensors, in declared order
    uint64_t header_room = 0;                // > 0: header written at finish(), padded to this
    uint64_t data_offset = 0;                // 8 + the header's length
    uint64_t fixed_end = 0;                  // where the variable tensors start (from data_offset)
  };
  // The header text of `shard` with the slots as they are (padded to `room` if > 0).
  std::string header_text(const Shard& shard, uint64_t room) const;
  absl::Status write_header(Shard& shard, const std::string& text);
  SafetensorsWriter() = default;

  std::string dir_;
  std::vector<TensorGroup> groups_;  // the declared specs (Shard::tensors point here)
  std::map<std::string, std::string> metadata_;
  std::vector<Shard> shards_;
  std::map<std::string, Slot, std::less<>> slots_;
  bool finished_ = false;
};

}  // namespace sp
