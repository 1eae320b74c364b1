#include "formats/choice_items.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace sp {

namespace {

using json = nlohmann::json;

absl::Status bad(const std::string& path, int64_t line, const std::string& what) {
  return absl::InvalidArgumentError(fmt::format("{}: line {}: {}", path, line, what));
}

// A JSON array of token ids, each in [0, vocab).
absl::StatusOr<std::vector<int32_t>> ids_of(const json& v, int64_t vocab, const std::string& what) {
  if (!v.is_array() || v.empty()) return absl::InvalidArgumentError(fmt::format("'{}' must be a non-empty list of token ids", what));
  std::vector<int32_t> out;
  for (const auto& x : v) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= vocab)
      return absl::InvalidArgumentError(
          fmt::format("'{}' has {}, not a token id in [0, {})", what, x.dump(), vocab));
    out.push_back(static_cast<int32_t>(x.get<int64_t>()));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<ChoiceItem>> read_choice_items(const std::string& path, int64_t vocab,
                                                          const SentencePieceTokenizer* tokenizer, int64_t limit) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(fmt::format("{}: cannot open", path));
  std::vector<ChoiceItem> items;
  std::string text;
  for (int64_t line = 1; std::getline(in, text) && (limit <= 0 || static_cast<int64_t>(items.size()) < limit); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return bad(path, line, "not a JSON object");
    ChoiceItem item;
    const bool by_ids = j.contains("context_ids");
    if (by_ids) {
      auto ctx = ids_of(j["context_ids"], vocab, "context_ids");
      if (!ctx.ok()) return bad(path, line, std::string(ctx.status().message()));
      item.context = std::move(*ctx);
      if (!j.contains("choices_ids") || !j["choices_ids"].is_array() || j["choices_ids"].size() < 2)
        return bad(path, line, "'choices_ids' must be a list of 2 or more token-id lists");
      for (const auto& c : j["choices_ids"]) {
        auto ids = ids_of(c, vocab, "choices_ids");
        if (!ids.ok()) return bad(path, line, std::string(ids.status().message()));
        item.choice_bytes.push_back(static_cast<int64_t>(ids->size()));
        item.choices.push_back(std::move(*ids));
      }
    } else {
      if (!j.contains("context") || !j["context"].is_string())
        return bad(path, line, "needs 'context' (text) or 'context_ids' (token ids)");
      if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].size() < 2)
        return bad(path, line, "'choices' must be a list of 2 or more texts");
      if (!tokenizer)
        return bad(path, line,
                   "text items need the model's SentencePiece tokenizer.model; for another tokenizer give "
                   "'context_ids' and 'choices_ids'");
      std::string context = j["context"];
      std::string moved;  // the context's trailing spaces start the continuation
      while (!context.empty() && context.back() == ' ') {
        moved += ' ';
        context.pop_back();
      }
      std::vector<int32_t> ctx{tokenizer->bos_id()};
      const auto enc = tokenizer->encode(context);
      ctx.insert(ctx.end(), enc.begin(), enc.end());
      for (const auto& c : j["choices"]) {
        if (!c.is_string() || c.get<std::string>().empty()) return bad(path, line, "every choice must be a non-empty text");
        const std::string cont = moved + c.get<std::string>();
        std::vector<int32_t> whole{tokenizer->bos_id()};
        const auto w = tokenizer->encode(context + cont);
        whole.insert(whole.end(), w.begin(), w.end());
        std::vector<int32_t> ids;
        if (whole.size() > ctx.size() && std::equal(ctx.begin(), ctx.end(), whole.begin()))
          ids.assign(whole.begin() + static_cast<int64_t>(ctx.size()), whole.end());
        else  // the pair merged across the boundary: the continuation alone
          ids = tokenizer->encode(cont, false);
        if (ids.empty()) return bad(path, line, "a choice encodes to no tokens");
        item.choice_bytes.push_back(static_cast<int64_t>(c.get<std::string>().size()));
        item.choices.push_back(std::move(ids));
      }
      item.context = std::move(ctx);
    }
    if (!j.contains("answer") || !j["answer"].is_number_integer() || j["answer"].get<int64_t>() < 0 ||
        j["answer"].get<int64_t>() >= static_cast<int64_t>(item.choices.size()))
      return bad(path, line, fmt::format("'answer' must be the index of a choice, 0..{}", item.choices.size() - 1));
    item.answer = j["answer"].get<int>();
    items.push_back(std::move(item));
  }
  if (items.empty()) return absl::InvalidArgumentError(fmt::format("{}: no items", path));
  return items;
}

absl::StatusOr<std::optional<SentencePieceTokenizer>> model_tokenizer(const std::string& model) {
  std::error_code ec;
  const std::filesystem::path path = std::filesystem::path(model) / "tokenizer.model";
  if (!std::filesystem::is_directory(model, ec) || !std::filesystem::exists(path, ec))
    return std::optional<SentencePieceTokenizer>();
  SP_ASSIGN_OR_RETURN(auto tok, SentencePieceTokenizer::open_folder(model));
  return std::optional<SentencePieceTokenizer>(std::move(tok));
}

ChoiceBatch choice_batch(const std::vector<ChoiceItem>& items) {
  ChoiceBatch b;
  for (const auto& it : items)
    for (const auto& c : it.choices) {
      ++b.sequences;
      b.tokens = std::max<int64_t>(b.tokens, static_cast<int64_t>(it.context.size() + c.size()));
    }
  b.ids.assign(static_cast<size_t>(b.sequences * b.tokens), 0);
  int64_t k = 0;
  for (const auto& it : items)
    for (const auto& c : it.choices) {
      int32_t* row = b.ids.data() + k * b.tokens;
      std::copy(it.context.begin(), it.context.end(), row);
      std::copy(c.begin(), c.end(), row + it.context.size());
      b.spans.push_back(static_cast<int32_t>(it.context.size()));
      b.spans.push_back(static_cast<int32_t>(it.context.size() + c.size()));
      ++k;
    }
  return b;
}

}  // namespace sp
