#include "formats/token_ids.h"

#include <charconv>

#include "common/file_util.h"
#include "fmt/format.h"

namespace sp {

absl::StatusOr<TokenBatch> parse_token_ids(std::string_view text, std::string_view label, int64_t vocab_size,
                                           int64_t samples, int64_t seq_len) {
  TokenBatch b;
  b.seq_len = seq_len;
  int64_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size() && (samples <= 0 || b.sequences < samples)) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // blank line
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      if (i >= line.size()) break;
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
      const std::string_view tok = line.substr(i, j - i);
      int64_t v = -1;
      auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
      if (ec != std::errc() || p != tok.data() + tok.size())
        return absl::InvalidArgumentError(
            fmt::format("{}: line {}: '{}' is not a token id (expected integers separated by spaces)", label, line_no,
                        std::string(tok.substr(0, 32))));
      if (v < 0 || v >= vocab_size)
        return absl::InvalidArgumentError(fmt::format(
            "{}: line {}: token id {} is outside the model's vocabulary [0, {})", label, line_no, v, vocab_size));
      ids.push_back(static_cast<int32_t>(v));
      i = j;
    }
    if (b.seq_len <= 0) b.seq_len = static_cast<int64_t>(ids.size());
    if (static_cast<int64_t>(ids.size()) < b.seq_len)
      return absl::InvalidArgumentError(fmt::format("{}: line {} has {} tokens; sequences of {} are needed", label,
                                                    line_no, ids.size(), b.seq_len));
    if (b.seq_len < 2)
      return absl::InvalidArgumentError(fmt::format("{}: sequences need at least 2 tokens", label));
    b.ids.insert(b.ids.end(), ids.begin(), ids.begin() + b.seq_len);
    ++b.sequences;
  }
  if (b.sequences == 0) return absl::InvalidArgumentError(fmt::format("{}: no token sequences in the file", label));
  if (samples > 0 && b.sequences < samples)
    return absl::InvalidArgumentError(
        fmt::format("{}: {} sequences asked for, the file has {}", label, samples, b.sequences));
  return b;
}

absl::StatusOr<TokenBatch> read_token_ids(const std::string& path, int64_t vocab_size, int64_t samples,
                                          int64_t seq_len) {
  SP_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_token_ids(text, path, vocab_size, samples, seq_len);
}

}  // namespace sp
