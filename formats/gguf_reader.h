// Reading a GGUF v3 file's tensor table (../shared/docs/gguf-format.md §1): the metadata is
// walked (and its string and integer scalars kept), every tensor's name, shape, type and
// place in the file is returned. Bounds-checked: a damaged file is an error naming it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/mapped_file.h"
#include "common/status.h"

namespace sp {

struct GgufTensorEntry {
  std::string name;
  std::vector<int64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;  // absolute in the file
};

struct GgufLayout {
  std::vector<GgufTensorEntry> tensors;  // in file order
  std::map<std::string, std::string> strings;  // STRING metadata
  std::map<std::string, uint64_t> integers;    // unsigned integer metadata (UINT8..UINT64, BOOL)
  std::map<std::string, double> floats;        // FLOAT32 / FLOAT64 metadata
  std::map<std::string, uint64_t> array_lengths;  // every array's element count
  uint64_t data_offset = 0;

  const GgufTensorEntry* find(const std::string& name) const;
};

struct GgufFile : GgufLayout {
  MappedFile file;
};

// The layout of the GGUF file whose bytes are `bytes` (every tensor's start inside them).
absl::StatusOr<GgufLayout> parse_gguf(std::span<const uint8_t> bytes, std::string_view label);
absl::StatusOr<GgufFile> read_gguf(const std::string& path);

}  // namespace sp
