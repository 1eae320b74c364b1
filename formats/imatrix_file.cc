#include "formats/imatrix_file.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/file_util.h"
#include "fmt/format.h"

namespace sp {
namespace {

class Cursor {
 public:
  Cursor(std::span<const uint8_t> b, const std::string& what) : b_(b), what_(what) {}
  size_t left() const { return b_.size() - pos_; }
  absl::StatusOr<int32_t> i32(std::string_view field) {
    if (left() < 4) return truncated(field);
    int32_t v;
    std::memcpy(&v, b_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  absl::StatusOr<std::string> text(int32_t n, std::string_view field) {
    if (n < 0 || static_cast<size_t>(n) > left()) return truncated(field);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  absl::StatusOr<std::vector<float>> floats(int32_t n, std::string_view field) {
    if (n < 0 || static_cast<size_t>(n) > left() / 4) return truncated(field);
    std::vector<float> v(static_cast<size_t>(n));
    std::memcpy(v.data(), b_.data() + pos_, v.size() * 4);
    pos_ += v.size() * 4;
    return v;
  }

 private:
  absl::Status truncated(std::string_view field) const {
    return absl::InvalidArgumentError(
        fmt::format("{}: not an importance-matrix file: {} runs past the end (offset {})", what_, field, pos_));
  }
  std::span<const uint8_t> b_;
  const std::string& what_;
  size_t pos_ = 0;
};

void put_i32(std::vector<uint8_t>& out, int32_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + 4);
}

}  // namespace

const ImatrixEntry* Imatrix::find(std::string_view name) const {
  for (const auto& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

absl::StatusOr<std::vector<float>> entry_importance(const ImatrixEntry& e, int64_t columns) {
  if (static_cast<int64_t>(e.values.size()) != columns)
    return absl::InvalidArgumentError(fmt::format("the importance matrix has {} values for {}, which has {} columns",
                                                  e.values.size(), e.name, columns));
  std::vector<float> w(e.values.size());
  for (size_t j = 0; j < w.size(); ++j) {
    w[j] = e.values[j] / static_cast<float>(e.ncall);
    if (!std::isfinite(w[j]))
      return absl::InvalidArgumentError(fmt::format("the importance matrix holds a non-finite value for {}", e.name));
  }
  return w;
}

absl::StatusOr<std::vector<float>> Imatrix::importance(std::string_view name, int64_t columns) const {
  const ImatrixEntry* e = find(name);
  if (!e) return std::vector<float>();
  return entry_importance(*e, columns);
}

ImatrixRecord Imatrix::record(const std::string& file) const {
  return ImatrixRecord{file, dataset, static_cast<int32_t>(entries.size()), last_call};
}

absl::StatusOr<Imatrix> parse_imatrix(std::span<const uint8_t> bytes, const std::string& what) {
  Cursor c(bytes, what);
  SP_ASSIGN_OR_RETURN(const int32_t n, c.i32("the entry count"));
  if (n < 1) return absl::InvalidArgumentError(fmt::format("{}: not an importance-matrix file: {} entries", what, n));
  Imatrix m;
  for (int32_t i = 0; i < n; ++i) {
    ImatrixEntry e;
    SP_ASSIGN_OR_RETURN(const int32_t len, c.i32("an entry's name length"));
    SP_ASSIGN_OR_RETURN(e.name, c.text(len, "an entry's name"));
    SP_ASSIGN_OR_RETURN(e.ncall, c.i32("an entry's call count"));
    SP_ASSIGN_OR_RETURN(const int32_t nval, c.i32("an entry's value count"));
    SP_ASSIGN_OR_RETURN(e.values, c.floats(nval, "an entry's values"));
    if (e.ncall < 1)
      return absl::InvalidArgumentError(fmt::format("{}: entry {} has {} calls (1 or more expected)", what, e.name, e.ncall));
    m.entries.push_back(std::move(e));
  }
  if (c.left() > 0) {  // the trailer: chunks, then the dataset's name
    SP_ASSIGN_OR_RETURN(m.last_call, c.i32("the chunk count"));
    SP_ASSIGN_OR_RETURN(const int32_t len, c.i32("the dataset name's length"));
    SP_ASSIGN_OR_RETURN(m.dataset, c.text(len, "the dataset name"));
  }
  return m;
}

absl::StatusOr<Imatrix> read_imatrix(const std::string& path) {
  SP_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  return parse_imatrix({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, path);
}

absl::Status write_imatrix(const std::string& path, const Imatrix& m) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec))
    return absl::FailedPreconditionError(fmt::format("{} exists; choose a new file name", path));
  if (m.entries.empty()) return absl::InvalidArgumentError("an importance matrix needs at least one entry");
  std::vector<uint8_t> out;
  put_i32(out, static_cast<int32_t>(m.entries.size()));
  for (const auto& e : m.entries) {
    put_i32(out, static_cast<int32_t>(e.name.size()));
    out.insert(out.end(), e.name.begin(), e.name.end());
    put_i32(out, e.ncall);
    put_i32(out, static_cast<int32_t>(e.values.size()));
    const auto* p = reinterpret_cast<const uint8_t*>(e.values.data());
    out.insert(out.end(), p, p + e.values.size() * 4);
  }
  put_i32(out, m.last_call);
  put_i32(out, static_cast<int32_t>(m.dataset.size()));
  out.insert(out.end(), m.dataset.begin(), m.dataset.end());
  return write_file_atomic(path, out);
}

}  // namespace sp
