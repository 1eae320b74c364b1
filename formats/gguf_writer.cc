#include "formats/gguf_writer.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "fmt/format.h"

namespace sp {
namespace {

namespace fs = std::filesystem;

// gguf_type (§1.2).
enum : int32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian host
  out.append(b, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

uint64_t pad(uint64_t x) { return (x + kGgufAlignment - 1) / kGgufAlignment * kGgufAlignment; }

}  // namespace

void GgufMetadata::key(const std::string& k, int32_t type) {
  ++keys_[k];
  ++count_;
  put_string(bytes_, k);
  put<int32_t>(bytes_, type);
}

void GgufMetadata::add_u32(const std::string& k, uint32_t v) {
  key(k, kU32);
  put(bytes_, v);
}

void GgufMetadata::add_i32(const std::string& k, int32_t v) {
  key(k, kI32);
  put(bytes_, v);
}

void GgufMetadata::add_f32(const std::string& k, float v) {
  key(k, kF32);
  put(bytes_, v);
}

void GgufMetadata::add_bool(const std::string& k, bool v) {
  key(k, kBool);
  put<uint8_t>(bytes_, v ? 1 : 0);
}

void GgufMetadata::add_bools(const std::string& k, const std::vector<bool>& v) {
  key(k, kArray);
  put<int32_t>(bytes_, kBool);
  put<uint64_t>(bytes_, v.size());
  for (bool x : v) put<uint8_t>(bytes_, x ? 1 : 0);
}

void GgufMetadata::add_string(const std::string& k, const std::string& v) {
  key(k, kString);
  put_string(bytes_, v);
}

void GgufMetadata::add_strings(const std::string& k, const std::vector<std::string>& v) {
  key(k, kArray);
  put<int32_t>(bytes_, kString);
  put<uint64_t>(bytes_, v.size());
  for (const auto& s : v) put_string(bytes_, s);
}

void GgufMetadata::add_f32s(const std::string& k, const std::vector<float>& v) {
  key(k, kArray);
  put<int32_t>(bytes_, kF32);
  put<uint64_t>(bytes_, v.size());
  for (float x : v) put(bytes_, x);
}

void GgufMetadata::add_i32s(const std::string& k, const std::vector<int32_t>& v) {
  key(k, kArray);
  put<int32_t>(bytes_, kI32);
  put<uint64_t>(bytes_, v.size());
  for (int32_t x : v) put(bytes_, x);
}

absl::StatusOr<std::unique_ptr<GgufWriter>> GgufWriter::create(const std::string& path, const GgufMetadata& metadata,
                                                               std::vector<GgufTensor> tensors) {
  for (const auto& [k, n] : metadata.key_counts())
    if (n > 1) return absl::InvalidArgumentError(fmt::format("GGUF key '{}' is given {} times", k, n));
  std::unique_ptr<GgufWriter> w(new GgufWriter());
  w->path_ = path;
  const fs::path p(path);
  // What an earlier writer of this file left when its process died goes first.
  const std::string prefix = fmt::format(".{}.partial.", p.filename().string());
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(p.parent_path().empty() ? "." : p.parent_path(), ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) std::filesystem::remove(e.path(), ec);
  w->tmp_path_ = (p.parent_path() / fmt::format("{}{}", prefix, ::getpid())).string();
  // Header: magic, version, counts, metadata, tensor infos; data at the next 32 bytes.
  std::string head = "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors.size());
  put<uint64_t>(head, metadata.count());
  head += metadata.bytes();
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name.size() >= 64)
      return absl::InvalidArgumentError(fmt::format("GGUF tensor name '{}' must be 1-63 bytes", t.name));
    if (t.ne.empty() || t.ne.size() > 4)
      return absl::InvalidArgumentError(fmt::format("GGUF tensor '{}' has {} dimensions (1-4)", t.name, t.ne.size()));
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(head, static_cast<uint64_t>(d));
    put<int32_t>(head, static_cast<int32_t>(t.type));
    put<uint64_t>(head, offset);
    offsets.push_back(offset);
    offset += pad(t.nbytes);
  }
  const uint64_t data_start = pad(head.size());
  head.resize(data_start, '\0');
  for (size_t i = 0; i < tensors.size(); ++i)
    if (!w->slots_.emplace(tensors[i].name, Slot{data_start + offsets[i], tensors[i].nbytes}).second)
      return absl::InvalidArgumentError(fmt::format("GGUF tensor '{}' is listed twice", tensors[i].name));
  // Preallocated: the padding between tensors stays zero.
  SP_ASSIGN_OR_RETURN(w->file_, PositionalFile::create(w->tmp_path_, data_start + offset));
  SP_RETURN_IF_ERROR(
      w->file_.write_at(0, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(head.data()), head.size())));
  return w;
}

GgufWriter::~GgufWriter() {
  if (finished_ || tmp_path_.empty()) return;
  file_ = PositionalFile();
  std::remove(tmp_path_.c_str());
}

absl::Status GgufWriter::write(std::string_view name, std::span<const uint8_t> bytes) {
  auto it = slots_.find(name);
  if (it == slots_.end()) return absl::InvalidArgumentError(fmt::format("GGUF tensor '{}' was not declared", name));
  Slot& s = it->second;
  if (s.written) return absl::InvalidArgumentError(fmt::format("GGUF tensor '{}' written twice", name));
  if (bytes.size() != s.nbytes)
    return absl::InvalidArgumentError(
        fmt::format("GGUF tensor '{}': {} bytes given, {} declared", name, bytes.size(), s.nbytes));
  SP_RETURN_IF_ERROR(file_.write_at(s.offset, bytes));
  s.written = true;
  return absl::OkStatus();
}

absl::Status GgufWriter::finish() {
  if (finished_) return absl::OkStatus();
  for (const auto& [name, s] : slots_)
    if (!s.written) return absl::FailedPreconditionError(fmt::format("GGUF tensor '{}' was never written", name));
  SP_RETURN_IF_ERROR(file_.sync_and_close());
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    return absl::UnavailableError(fmt::format("{}: cannot rename into place: {}", path_, std::strerror(errno)));
  finished_ = true;
  const fs::path parent = fs::path(path_).parent_path();
  return fsync_dir(parent.empty() ? "." : parent.string());
}

}  // namespace sp
