#include "formats/sentencepiece_tokenizer.h"

#include <filesystem>
#include <queue>

#include "common/file_util.h"
#include "fmt/format.h"

namespace sp {

namespace {

constexpr std::string_view kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's space

size_t utf8_length(uint8_t lead) {
  return lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xe ? 3 : (lead >> 3) == 0x1e ? 4 : 1;
}

}  // namespace

absl::StatusOr<SentencePieceTokenizer> SentencePieceTokenizer::from_model(std::string_view bytes,
                                                                          std::string_view label) {
  SentencePieceTokenizer t;
  SP_ASSIGN_OR_RETURN(t.pieces_, parse_sentencepiece_model(bytes, label));
  std::fill(std::begin(t.byte_ids_), std::end(t.byte_ids_), -1);
  for (size_t i = 0; i < t.pieces_.size(); ++i) {
    const SentencePiece& p = t.pieces_[i];
    const int32_t id = static_cast<int32_t>(i);
    if (p.type == PieceType::kByte) {
      unsigned v = 0;
      if (p.text.size() == 6 && std::sscanf(p.text.c_str(), "<0x%2X>", &v) == 1 && v < 256) t.byte_ids_[v] = id;
    } else if (p.type == PieceType::kNormal || p.type == PieceType::kUserDefined) {
      t.ids_.emplace(p.text, id);
    } else if (p.type == PieceType::kUnknown) {
      t.unk_ = id;
    } else if (p.type == PieceType::kControl && p.text == "<s>") {
      t.bos_ = id;
    }
  }
  for (int b = 0; b < 256; ++b)
    if (t.byte_ids_[b] < 0)
      return absl::InvalidArgumentError(
          fmt::format("{}: no byte piece <0x{:02X}>: only byte-fallback SentencePiece models can encode any text", label, b));
  return t;
}

absl::StatusOr<SentencePieceTokenizer> SentencePieceTokenizer::open_folder(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "tokenizer.model").string();
  SP_ASSIGN_OR_RETURN(const std::string bytes, read_file(path));
  return from_model(bytes, path);
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, bool space_prefix) const {
  std::string norm;
  if (space_prefix) norm += kSpace;
  for (char c : text)
    if (c == ' ')
      norm += kSpace;
    else
      norm += c;
  // Symbols: UTF-8 characters, a doubly linked list over `norm`.
  struct Symbol {
    size_t begin, size;
    int prev, next;
  };
  std::vector<Symbol> sym;
  for (size_t i = 0; i < norm.size();) {
    const size_t n = std::min(utf8_length(static_cast<uint8_t>(norm[i])), norm.size() - i);
    sym.push_back({i, n, static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1});
    i += n;
  }
  if (!sym.empty()) sym.back().next = -1;
  // Candidate merges by score (then leftmost); a stale one (a side changed) is skipped.
  struct Bigram {
    float score;
    int left;
    size_t size;
    bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
  };
  std::priority_queue<Bigram> queue;
  auto consider = [&](int left) {
    if (left < 0 || sym[left].next < 0) return;
    const Symbol &a = sym[left], &b = sym[a.next];
    auto it = ids_.find(norm.substr(a.begin, a.size + b.size));
    if (it != ids_.end()) queue.push({pieces_[it->second].score, left, a.size + b.size});
  };
  for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Bigram g = queue.top();
    queue.pop();
    Symbol& a = sym[g.left];
    if (a.size == 0 || a.next < 0 || a.size + sym[a.next].size != g.size) continue;
    Symbol& b = sym[a.next];
    a.size += b.size;
    b.size = 0;
    a.next = b.next;
    if (a.next >= 0) sym[a.next].prev = g.left;
    consider(a.prev);
    consider(g.left);
  }
  std::vector<int32_t> out;
  for (int i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) {
    const std::string piece = norm.substr(sym[i].begin, sym[i].size);
    if (auto it = ids_.find(piece); it != ids_.end()) {
      out.push_back(it->second);
    } else {
      for (char c : piece) out.push_back(byte_ids_[static_cast<uint8_t>(c)]);
    }
  }
  return out;
}

}  // namespace sp
