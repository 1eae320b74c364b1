#include "formats/sentencepiece_model.h"

#include <cstring>

#include "fmt/format.h"

namespace sp {
namespace {

// A protobuf wire-format reader over a byte range; every read is bounds-checked.
class Wire {
 public:
  explicit Wire(std::string_view b) : p_(b.data()), end_(b.data() + b.size()) {}
  bool done() const { return p_ >= end_; }
  bool varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      const uint8_t c = static_cast<uint8_t>(*p_++);
      *v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return true;
    }
    return false;
  }
  bool bytes(std::string_view* out) {
    uint64_t n = 0;
    if (!varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    *out = std::string_view(p_, n);
    p_ += n;
    return true;
  }
  bool fixed(size_t n, void* out) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    std::memcpy(out, p_, n);
    p_ += n;
    return true;
  }
  // Skips a field of wire type `wt`.
  bool skip(uint64_t wt) {
    uint64_t v = 0;
    std::string_view s;
    char buf[8];
    switch (wt) {
      case 0: return varint(&v);
      case 1: return fixed(8, buf);
      case 2: return bytes(&s);
      case 5: return fixed(4, buf);
      default: return false;  // groups (3, 4) do not occur in this message
    }
  }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace

absl::StatusOr<std::vector<SentencePiece>> parse_sentencepiece_model(std::string_view bytes, std::string_view label) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(fmt::format("{}: not a SentencePiece model ({})", label, why));
  };
  std::vector<SentencePiece> pieces;
  Wire top(bytes);
  while (!top.done()) {
    uint64_t tag = 0;
    if (!top.varint(&tag)) return bad("truncated field tag");
    if ((tag >> 3) != 1 || (tag & 7) != 2) {
      if (!top.skip(tag & 7)) return bad(fmt::format("bad field {}", tag >> 3));
      continue;
    }
    std::string_view msg;
    if (!top.bytes(&msg)) return bad("truncated piece");
    SentencePiece piece;
    Wire w(msg);
    while (!w.done()) {
      uint64_t t = 0;
      if (!w.varint(&t)) return bad("truncated piece field");
      if (t == 0x0a) {
        std::string_view s;
        if (!w.bytes(&s)) return bad("truncated piece text");
        piece.text = std::string(s);
      } else if (t == 0x15) {
        if (!w.fixed(4, &piece.score)) return bad("truncated score");
      } else if (t == 0x18) {
        uint64_t v = 0;
        if (!w.varint(&v)) return bad("truncated type");
        if (v < 1 || v > 6) return bad(fmt::format("piece {} has type {}", pieces.size(), v));
        piece.type = static_cast<PieceType>(v);
      } else if (!w.skip(t & 7)) {
        return bad("bad piece field");
      }
    }
    pieces.push_back(std::move(piece));
  }
  if (pieces.empty()) return bad("no pieces");
  return pieces;
}

}  // namespace sp
