#include "formats/safetensors_writer.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "fmt/format.h"
#include "formats/model_files.h"
#include "nlohmann/json.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

}  // namespace

uint64_t TensorSpec::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::create(
    const std::string& dir, std::vector<TensorGroup> groups, const Options& options) {
  std::unique_ptr<SafetensorsWriter> w(new SafetensorsWriter());
  w->dir_ = dir;

  // 1. Split groups into shards greedily, in the order given.
  std::vector<std::vector<const TensorSpec*>> shard_tensors;
  uint64_t current = 0;
  for (const auto& group : groups) {
    uint64_t gbytes = 0;
    for (const auto& t : group) {
      if (t.name.empty()) return absl::InvalidArgumentError("a tensor to write has an empty name");
      for (int64_t d : t.shape)
        if (d < 0) return absl::InvalidArgumentError(fmt::format("tensor '{}': negative dimension", t.name));
      gbytes += t.nbytes();
    }
    if (group.empty()) continue;
    if (shard_tensors.empty() || (current > 0 && current + gbytes > options.max_shard_bytes)) {
      shard_tensors.emplace_back();
      current = 0;
    }
    for (const auto& t : group) shard_tensors.back().push_back(&t);
    current += gbytes;
  }
  if (shard_tensors.empty()) return absl::InvalidArgumentError("no tensors to write");

  // 2. Lay out each shard: header JSON, padded, then tensors back to back.
  const size_t n = shard_tensors.size();
  for (size_t s = 0; s < n; ++s) {
    Shard shard;
    shard.name = n == 1 ? std::string(kSafetensorsSingleName)
                        : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, n);
    shard.tmp_path = (fs::path(dir) / fmt::format(".{}.partial.{}", shard.name, ::getpid())).string();
    ordered_json header = ordered_json::object();
    header["__metadata__"] = options.metadata;
    uint64_t pos = 0;
    for (const TensorSpec* t : shard_tensors[s]) {
      header[t->name] = {{"dtype", dtype_name(t->dtype)},
                         {"shape", t->shape},
                         {"data_offsets", {pos, pos + t->nbytes()}}};
      pos += t->nbytes();
    }
    std::string text = header.dump();
    text.append((8 - (8 + text.size()) % 8) % 8, ' ');
    const uint64_t data_offset = 8 + text.size();
    pos = 0;
    for (const TensorSpec* t : shard_tensors[s]) {
      Slot slot{s, data_offset + pos, t->nbytes(), false};
      if (!w->slots_.emplace(t->name, slot).second)
        return absl::InvalidArgumentError(fmt::format("tensor '{}' is listed twice", t->name));
      shard.tensor_names.push_back(t->name);
      pos += t->nbytes();
      w->total_tensor_bytes_ += t->nbytes();
    }
    shard.file_size = data_offset + pos;
    SP_ASSIGN_OR_RETURN(shard.file, PositionalFile::create(shard.tmp_path, shard.file_size, options.write_budget));
    w->shards_.push_back(std::move(shard));  // from here the destructor cleans up

    const uint64_t len = text.size();
    uint8_t prefix[8];
    std::memcpy(prefix, &len, 8);  // little-endian host
    auto& f = w->shards_.back().file;
    SP_RETURN_IF_ERROR(f.write_at(0, prefix));
    SP_RETURN_IF_ERROR(f.write_at(8, std::span<const uint8_t>(
                                         reinterpret_cast<const uint8_t*>(text.data()), text.size())));
  }
  return w;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (finished_) return;
  for (auto& s : shards_) {
    s.file = PositionalFile();
    std::remove(s.tmp_path.c_str());
  }
}

absl::Status SafetensorsWriter::write(std::string_view name, std::span<const uint8_t> bytes) {
  if (finished_) return absl::FailedPreconditionError("writer already finished");
  auto it = slots_.find(name);
  if (it == slots_.end())
    return absl::InvalidArgumentError(fmt::format("tensor '{}' was not declared", name));
  Slot& slot = it->second;
  if (slot.written)
    return absl::InvalidArgumentError(fmt::format("tensor '{}' written twice", name));
  if (bytes.size() != slot.nbytes)
    return absl::InvalidArgumentError(fmt::format("tensor '{}': {} bytes given, {} declared", name,
                                                  bytes.size(), slot.nbytes));
  SP_RETURN_IF_ERROR(shards_[slot.shard].file.write_at(slot.offset, bytes));
  slot.written = true;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::finish() {
  if (finished_) return absl::OkStatus();
  for (const auto& [name, slot] : slots_)
    if (!slot.written)
      return absl::FailedPreconditionError(fmt::format("tensor '{}' was declared but never written", name));
  for (auto& s : shards_) SP_RETURN_IF_ERROR(s.file.sync_and_close());
  for (auto& s : shards_) {
    const std::string final_path = (fs::path(dir_) / s.name).string();
    if (std::rename(s.tmp_path.c_str(), final_path.c_str()) != 0)
      return absl::UnavailableError(fmt::format("{}: cannot rename into place: {}", final_path,
                                                std::strerror(errno)));
  }
  finished_ = true;
  if (shards_.size() > 1) {
    ordered_json index = ordered_json::object();
    index["metadata"] = {{"total_size", total_tensor_bytes_}};
    ordered_json map = ordered_json::object();
    for (const auto& [name, slot] : slots_) map[name] = shards_[slot.shard].name;  // sorted
    index["weight_map"] = std::move(map);
    SP_RETURN_IF_ERROR(write_file_atomic((fs::path(dir_) / kSafetensorsIndexName).string(),
                                         index.dump(2) + "\n"));
  }
  return fsync_dir(dir_);
}

std::vector<std::string> SafetensorsWriter::shard_names() const {
  std::vector<std::string> out;
  for (const auto& s : shards_) out.push_back(s.name);
  return out;
}

std::string SafetensorsWriter::shard_of(std::string_view name) const {
  auto it = slots_.find(name);
  return it == slots_.end() ? std::string() : shards_[it->second.shard].name;
}

}  // namespace sp
