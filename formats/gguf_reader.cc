#include "formats/gguf_reader.h"

#include <cstring>

#include "fmt/format.h"

namespace sp {
namespace {

class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> b) : b_(b) {}
  template <typename T>
  bool get(T* v) {
    if (b_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool string(std::string* s) {
    uint64_t n = 0;
    if (!get(&n) || n > b_.size() - pos_) return false;
    s->assign(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  bool read(uint64_t n, void* out) {
    if (n > b_.size() - pos_) return false;
    std::memcpy(out, b_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(uint64_t n) {
    if (n > b_.size() - pos_) return false;
    pos_ += n;
    return true;
  }
  uint64_t pos() const { return pos_; }

 private:
  std::span<const uint8_t> b_;
  uint64_t pos_ = 0;
};

// Bytes of a scalar of GGUF value type `t` (0 for strings and arrays).
uint64_t scalar_size(int32_t t) {
  switch (t) {
    case 0: case 1: case 7: return 1;
    case 2: case 3: return 2;
    case 4: case 5: case 6: return 4;
    case 10: case 11: case 12: return 8;
    default: return 0;
  }
}

}  // namespace

const GgufTensorEntry* GgufLayout::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

absl::StatusOr<GgufFile> read_gguf(const std::string& path) {
  GgufFile g;
  SP_ASSIGN_OR_RETURN(g.file, MappedFile::open(path));
  SP_ASSIGN_OR_RETURN(static_cast<GgufLayout&>(g), parse_gguf(g.file.bytes(), path));
  return g;
}

absl::StatusOr<GgufLayout> parse_gguf(std::span<const uint8_t> bytes, std::string_view label) {
  GgufLayout g;
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(fmt::format("{}: not a GGUF v3 file ({})", label, why));
  };
  Cursor c(bytes);
  uint32_t magic = 0, version = 0;
  uint64_t n_tensors = 0, n_kv = 0;
  if (!c.get(&magic) || std::memcmp(&magic, "GGUF", 4) != 0) return bad("no GGUF magic");
  if (!c.get(&version) || version != 3) return bad(fmt::format("version {}", version));
  if (!c.get(&n_tensors) || !c.get(&n_kv) || n_tensors > (1u << 20) || n_kv > (1u << 20)) return bad("counts");
  uint32_t alignment = 32;
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    int32_t type = 0;
    if (!c.string(&key) || !c.get(&type)) return bad("truncated metadata");
    if (type == 8) {
      std::string v;
      if (!c.string(&v)) return bad(fmt::format("truncated string {}", key));
      g.strings[key] = v;
    } else if (type == 9) {
      int32_t et = 0;
      uint64_t n = 0;
      if (!c.get(&et) || !c.get(&n)) return bad(fmt::format("truncated array {}", key));
      g.array_lengths[key] = n;
      for (uint64_t k = 0; k < n; ++k) {
        std::string s;
        const bool ok = et == 8 ? c.string(&s) : scalar_size(et) > 0 && c.skip(scalar_size(et));
        if (!ok) return bad(fmt::format("bad array {}", key));
      }
    } else if (const uint64_t n = scalar_size(type); n > 0) {
      uint64_t v = 0;
      if (!c.read(n, &v)) return bad(fmt::format("truncated {}", key));  // little-endian: the low bytes
      const bool unsigned_int = type == 0 || type == 2 || type == 4 || type == 7 || type == 10;
      if (unsigned_int) g.integers[key] = v;
      if (type == 6) {
        float f;
        std::memcpy(&f, &v, 4);
        g.floats[key] = f;
      } else if (type == 12) {
        double f;
        std::memcpy(&f, &v, 8);
        g.floats[key] = f;
      }
      if (key == "general.alignment" && type == 4) {
        if (v == 0 || (v & (v - 1)) != 0) return bad("general.alignment is not a power of two");
        alignment = static_cast<uint32_t>(v);
      }
    } else {
      return bad(fmt::format("value type {} of {}", type, key));
    }
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorEntry t;
    uint32_t dims = 0;
    if (!c.string(&t.name) || !c.get(&dims) || dims == 0 || dims > 4) return bad("tensor info");
    for (uint32_t d = 0; d < dims; ++d) {
      int64_t v = 0;
      if (!c.get(&v) || v < 0) return bad(fmt::format("tensor shape of {}", t.name));
      t.ne.push_back(v);
    }
    int32_t type = 0;
    if (!c.get(&type) || !c.get(&t.offset)) return bad(fmt::format("tensor type/offset of {}", t.name));
    t.type = static_cast<uint32_t>(type);
    g.tensors.push_back(std::move(t));
  }
  g.data_offset = (c.pos() + alignment - 1) / alignment * alignment;
  if (g.data_offset > bytes.size()) return bad("no data section");
  for (auto& t : g.tensors) {
    if (t.offset > bytes.size() - g.data_offset) return bad(fmt::format("tensor {} outside the file", t.name));
    t.offset += g.data_offset;
  }
  return g;
}

}  // namespace sp
