#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace sp {
namespace {

using json = nlohmann::json;

absl::Status bad(std::string_view label, const std::string& msg) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", label, msg));
}

// Multiplies with overflow detection.
bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

absl::StatusOr<TensorInfo> parse_entry(const std::string& name, const json& e,
                                       uint64_t data_len, std::string_view label) {
  const std::string where = fmt::format("tensor '{}'", name);
  if (!e.is_object()) return bad(label, where + ": entry must be a JSON object");
  for (const auto& [key, _] : e.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      return bad(label, fmt::format("{}: unexpected key '{}'", where, key));
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!e.contains(key)) return bad(label, fmt::format("{}: missing '{}'", where, key));
  }
  TensorInfo t;
  t.name = name;
  if (!e["dtype"].is_string()) return bad(label, where + ": 'dtype' must be a string");
  const auto dt = dtype_from_name(e["dtype"].get<std::string>());
  if (!dt)
    return bad(label, fmt::format("{}: unknown dtype '{}'", where, e["dtype"].get<std::string>()));
  t.dtype = *dt;

  const json& shape = e["shape"];
  if (!shape.is_array()) return bad(label, where + ": 'shape' must be a list of integers");
  for (const auto& d : shape) {
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
      return bad(label, fmt::format("{}: shape {} has a dimension that is not a non-negative integer",
                                    where, shape.dump()));
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) return bad(label, where + ": shape dimension too large");
    t.shape.push_back(static_cast<int64_t>(v));
  }

  const json& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned())
    return bad(label, where + ": 'data_offsets' must be [begin, end] with non-negative integers");
  t.begin = off[0].get<uint64_t>();
  t.end = off[1].get<uint64_t>();
  if (t.begin > t.end)
    return bad(label, fmt::format("{}: data_offsets [{}, {}] end before begin", where, t.begin, t.end));
  if (t.end > data_len)
    return bad(label, fmt::format("{}: data_offsets [{}, {}] outside the data section ({} bytes)",
                                  where, t.begin, t.end, data_len));

  uint64_t expect = dtype_size(t.dtype);
  for (int64_t d : t.shape) {
    if (mul_overflows(expect, static_cast<uint64_t>(d), &expect))
      return bad(label, fmt::format("{}: shape {} overflows", where, shape.dump()));
  }
  if (expect != t.nbytes())
    return bad(label, fmt::format("{}: shape {} of {} needs {} bytes but data_offsets span {}",
                                  where, shape.dump(), dtype_name(t.dtype), expect, t.nbytes()));
  return t;
}

}  // namespace

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

absl::StatusOr<SafetensorsHeader> parse_safetensors_header(std::string_view json_text,
                                                           uint64_t data_len,
                                                           std::string_view label) {
  // Detect duplicate top-level keys while parsing (nlohmann keeps only the last one).
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      const std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(json_text.begin(), json_text.end(), cb);
  } catch (const json::exception& e) {
    return bad(label, fmt::format("header is not valid JSON: {}", e.what()));
  }
  if (!duplicate.empty())
    return bad(label, fmt::format("tensor '{}' appears twice in the header", duplicate));
  if (!header.is_object()) return bad(label, "header must be a JSON object");

  SafetensorsHeader out;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return bad(label, "'__metadata__' must be an object of strings");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string())
          return bad(label, fmt::format("'__metadata__' value of '{}' must be a string", k));
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (name.empty()) return bad(label, "a tensor has an empty name");
    SP_ASSIGN_OR_RETURN(TensorInfo t, parse_entry(name, entry, data_len, label));
    out.tensors.push_back(std::move(t));
  }

  // Tensors must tile the data section exactly: sorted by offset, each begins where the
  // previous ended (no overlap, no hole), and the last ends at the end of the file.
  std::sort(out.tensors.begin(), out.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const TensorInfo* prev = nullptr;
  for (const auto& t : out.tensors) {
    if (t.begin < pos)
      return bad(label, fmt::format("tensors '{}' and '{}' overlap (bytes {}..{} and {}..{})",
                                    prev->name, t.name, prev->begin, prev->end, t.begin, t.end));
    if (t.begin > pos)
      return bad(label, fmt::format("{} bytes before tensor '{}' (offset {}) belong to no tensor",
                                    t.begin - pos, t.name, t.begin));
    pos = t.end;
    prev = &t;
  }
  if (pos != data_len)
    return bad(label, fmt::format("data section has {} bytes but tensors cover only {}",
                                  data_len, pos));
  return out;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  SP_ASSIGN_OR_RETURN(MappedFile mf, MappedFile::open(path));
  const auto bytes = mf.bytes();
  if (bytes.size() < 8)
    return bad(path, fmt::format("file is {} bytes, too short for the 8-byte header length",
                                 bytes.size()));
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);  // little-endian host (x86-64, aarch64)
  // The length is the file's own first bytes: say what is wrong without repeating them.
  if (n > kMaxSafetensorsHeaderBytes)
    return bad(path, fmt::format("not a safetensors file: the header length in its first 8 bytes is over the {} byte "
                                 "limit", kMaxSafetensorsHeaderBytes));
  if (n > bytes.size() - 8)
    return bad(path, fmt::format("not a safetensors file (or cut short): the header length in its first 8 bytes runs "
                                 "past the end of the file ({} bytes)", bytes.size()));
  if (n == 0 || bytes[8] != '{') return bad(path, "header does not start with '{'");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), n);
  SP_ASSIGN_OR_RETURN(SafetensorsHeader header,
                      parse_safetensors_header(text, bytes.size() - 8 - n, path));
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->file_ = std::move(mf);
  f->header_ = std::move(header);
  f->data_offset_ = 8 + n;
  for (size_t i = 0; i < f->header_.tensors.size(); ++i)
    f->by_name_.emplace(f->header_.tensors[i].name, i);
  return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &header_.tensors[it->second];
}

TensorView SafetensorsFile::view(const TensorInfo& info) const {
  return TensorView{&info, file_.bytes().subspan(data_offset_ + info.begin, info.nbytes())};
}

}  // namespace sp
