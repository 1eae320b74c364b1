#include "formats/safetensors_writer.h"

#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstring>
#include <filesystem>

#include "fmt/format.h"
#include "formats/model_files.h"
#include "nlohmann/json.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

// A tensor this large starts going to disk as soon as it is written (the final fsync of a
// 765 MB checkpoint took 0.17 s on the development VM when it all waited for the end).
constexpr uint64_t kWritebackBytes = 1 << 20;

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
  w->groups_ = std::move(groups);
  w->metadata_ = options.metadata;

  // 1. Split groups into shards greedily, in the order given (variable tensors at their bound).
  std::vector<std::vector<const TensorSpec*>> shard_tensors;
  uint64_t current = 0;
  for (const auto& group : w->groups_) {
    uint64_t gbytes = 0;
    for (const auto& t : group) {
      if (t.name.empty()) return absl::InvalidArgumentError("a tensor to write has an empty name");
      for (int64_t d : t.shape)
        if (d < 0) return absl::InvalidArgumentError(fmt::format("tensor '{}': negative dimension", t.name));
      if (t.max_nbytes > 0 && t.dtype != DType::kU8)
        return absl::InvalidArgumentError(fmt::format("tensor '{}': only U8 tensors may have a variable length", t.name));
      gbytes += t.bound();
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

  // 2. Lay out each shard: header, then the fixed-size tensors back to back, then room
  // for the variable ones (placed at finish()).
  const size_t n = shard_tensors.size();
  for (size_t s = 0; s < n; ++s) {
    Shard shard;
    shard.name = n == 1 ? std::string(kSafetensorsSingleName)
                        : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, n);
    shard.tmp_path = (fs::path(dir) / fmt::format(".{}.partial.{}", shard.name, ::getpid())).string();
    shard.tensors = shard_tensors[s];
    uint64_t pos = 0;
    for (const TensorSpec* t : shard.tensors) {
      if (t->max_nbytes > 0) {
        shard.variable.push_back(t->name);
        continue;
      }
      Slot slot;
      slot.shard = s, slot.offset = pos, slot.nbytes = t->nbytes();
      if (!w->slots_.emplace(t->name, std::move(slot)).second)
        return absl::InvalidArgumentError(fmt::format("tensor '{}' is listed twice", t->name));
      pos += t->nbytes();
    }
    shard.fixed_end = pos;
    for (const std::string& name : shard.variable) {  // at their bounds: the header's longest form
      const TensorSpec* t = *std::find_if(shard.tensors.begin(), shard.tensors.end(),
                                          [&](const TensorSpec* x) { return x->name == name; });
      Slot slot;
      slot.shard = s, slot.offset = pos, slot.nbytes = t->max_nbytes, slot.variable = true;
      if (!w->slots_.emplace(name, std::move(slot)).second)
        return absl::InvalidArgumentError(fmt::format("tensor '{}' is listed twice", name));
      pos += t->max_nbytes;
    }
    const std::string text = w->header_text(shard, 0);
    if (!shard.variable.empty()) shard.header_room = text.size();
    shard.data_offset = 8 + text.size();
    shard.file_size = shard.data_offset + pos;
    SP_ASSIGN_OR_RETURN(shard.file, PositionalFile::create(shard.tmp_path, shard.file_size, options.write_budget));
    w->shards_.push_back(std::move(shard));  // from here the destructor cleans up
    if (w->shards_.back().variable.empty()) SP_RETURN_IF_ERROR(w->write_header(w->shards_.back(), text));
  }
  return w;
}

std::string SafetensorsWriter::header_text(const Shard& shard, uint64_t room) const {
  ordered_json header = ordered_json::object();
  header["__metadata__"] = metadata_;
  for (const TensorSpec* t : shard.tensors) {
    const Slot& slot = slots_.find(t->name)->second;
    const std::vector<int64_t> shape =
        slot.variable ? std::vector<int64_t>{static_cast<int64_t>(slot.nbytes)} : t->shape;
    header[t->name] = {{"dtype", dtype_name(t->dtype)},
                       {"shape", shape},
                       {"data_offsets", {slot.offset, slot.offset + slot.nbytes}}};
  }
  std::string text = header.dump();
  const uint64_t want = room > 0 ? room : text.size() + (8 - (8 + text.size()) % 8) % 8;
  if (text.size() < want) text.append(want - text.size(), ' ');
  return text;
}

absl::Status SafetensorsWriter::write_header(Shard& shard, const std::string& text) {
  const uint64_t len = text.size();
  uint8_t prefix[8];
  std::memcpy(prefix, &len, 8);  // little-endian host
  SP_RETURN_IF_ERROR(shard.file.write_at(0, prefix));
  return shard.file.write_at(8, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
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
  if (slot.variable) {
    if (bytes.size() > slot.nbytes)
      return absl::InvalidArgumentError(fmt::format("tensor '{}': {} bytes given, at most {} declared", name,
                                                    bytes.size(), slot.nbytes));
    slot.bytes.assign(bytes.begin(), bytes.end());
    slot.written = true;
    return absl::OkStatus();
  }
  if (bytes.size() != slot.nbytes)
    return absl::InvalidArgumentError(fmt::format("tensor '{}': {} bytes given, {} declared", name,
                                                  bytes.size(), slot.nbytes));
  Shard& shard = shards_[slot.shard];
  SP_RETURN_IF_ERROR(shard.file.write_at(shard.data_offset + slot.offset, bytes));
  if (bytes.size() >= kWritebackBytes) shard.file.start_writeback(shard.data_offset + slot.offset, bytes.size());
  slot.written = true;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::finish() {
  if (finished_) return absl::OkStatus();
  for (const auto& [name, slot] : slots_)
    if (!slot.written)
      return absl::FailedPreconditionError(fmt::format("tensor '{}' was declared but never written", name));
  // The variable tensors after the fixed ones, then the header with their real places.
  for (auto& s : shards_) {
    if (s.variable.empty()) continue;
    uint64_t pos = s.fixed_end;
    for (const std::string& name : s.variable) {
      Slot& slot = slots_.find(name)->second;
      slot.offset = pos;
      slot.nbytes = slot.bytes.size();
      SP_RETURN_IF_ERROR(s.file.write_at(s.data_offset + pos, slot.bytes));
      pos += slot.nbytes;
      std::vector<uint8_t>().swap(slot.bytes);
    }
    const std::string text = header_text(s, s.header_room);
    if (text.size() != s.header_room)
      return absl::InternalError(fmt::format("{}: header of {} bytes does not fit its {} reserved", s.name,
                                             text.size(), s.header_room));
    SP_RETURN_IF_ERROR(write_header(s, text));
    s.file_size = s.data_offset + pos;
    SP_RETURN_IF_ERROR(s.file.truncate(s.file_size));
  }
  for (auto& s : shards_) SP_RETURN_IF_ERROR(s.file.sync_and_close());
  for (auto& s : shards_) {
    const std::string final_path = (fs::path(dir_) / s.name).string();
    if (std::rename(s.tmp_path.c_str(), final_path.c_str()) != 0)
      return absl::UnavailableError(fmt::format("{}: cannot rename into place: {}", final_path,
                                                std::strerror(errno)));
  }
  finished_ = true;
  if (shards_.size() > 1) {
    uint64_t total = 0;
    for (const auto& [name, slot] : slots_) total += slot.nbytes;
    ordered_json index = ordered_json::object();
    index["metadata"] = {{"total_size", total}};
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
