#include "checkpoint/gguf_vocab.h"

#include <filesystem>
#include <map>
#include <optional>

#include "common/file_util.h"
#include "fmt/format.h"
#include "formats/sentencepiece_model.h"
#include "nlohmann/json.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

absl::StatusOr<json> read_json_if_present(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return json();
  SP_ASSIGN_OR_RETURN(std::string text, read_file(p.string()));
  try {
    return json::parse(text);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: not valid JSON: {}", p.string(), e.what()));
  }
}

// bos/eos/unk/pad ids (the content tokenizer_config.json names among tokenizer.json's
// added tokens, else config.json's ids), the add_bos/add_eos flags and the chat template.
absl::Status add_special_tokens(const ModelConfig& config, const json& tc, const json& added, GgufMetadata& md) {
  const json& raw = config.raw;
  for (const char* typ : {"bos", "eos", "unk", "pad"}) {
    std::optional<uint32_t> id;
    if (tc.is_object() && added.is_array() && tc.contains(fmt::format("{}_token", typ))) {
      const json& t = tc[fmt::format("{}_token", typ)];
      const std::string content = t.is_string() ? t.get<std::string>()
                                  : t.is_object() && t.contains("content") && t["content"].is_string()
                                      ? t["content"].get<std::string>()
                                      : std::string();
      for (const auto& a : added)
        if (!content.empty() && a.is_object() && a.value("content", "") == content && a.contains("id") &&
            a["id"].is_number_unsigned())
          id = a["id"].get<uint32_t>();
    }
    const std::string key = fmt::format("{}_token_id", typ);
    if (!id && raw.contains(key) && raw[key].is_number_unsigned()) id = raw[key].get<uint32_t>();
    if (id) md.add_u32(fmt::format("tokenizer.ggml.{}", key), *id);
  }
  if (tc.is_object())
    for (const char* typ : {"bos", "eos"}) {
      const std::string key = fmt::format("add_{}_token", typ);
      if (tc.contains(key) && tc[key].is_boolean()) md.add_bool(fmt::format("tokenizer.ggml.{}", key), tc[key].get<bool>());
    }
  if (tc.is_object() && tc.contains("chat_template") && tc["chat_template"].is_string())
    md.add_string("tokenizer.chat_template", tc["chat_template"]);
  return absl::OkStatus();
}

// The vocabulary keys of a SentencePiece model (§4.2).
absl::Status add_sentencepiece_vocab(const fs::path& dir, const ModelConfig& config, GgufMetadata& md) {
  SP_ASSIGN_OR_RETURN(std::string bytes, read_file((dir / "tokenizer.model").string()));
  SP_ASSIGN_OR_RETURN(std::vector<SentencePiece> pieces,
                      parse_sentencepiece_model(bytes, (dir / "tokenizer.model").string()));
  const size_t v = config.vocab_size > 0 ? static_cast<size_t>(config.vocab_size) : pieces.size();
  std::vector<std::string> tokens(v);
  std::vector<float> scores(v, -10000.0f);
  std::vector<int32_t> types(v, static_cast<int32_t>(PieceType::kUnused));
  for (size_t i = 0; i < v; ++i) tokens[i] = fmt::format("[PAD{}]", i);
  for (size_t i = 0; i < pieces.size() && i < v; ++i) {
    tokens[i] = pieces[i].text;
    scores[i] = pieces[i].score;
    // The converter's chain has no USER_DEFINED test: such a piece is written NORMAL.
    const PieceType t = pieces[i].type == PieceType::kUserDefined ? PieceType::kNormal : pieces[i].type;
    types[i] = static_cast<int32_t>(t);
  }
  SP_ASSIGN_OR_RETURN(const json tc, read_json_if_present(dir / "tokenizer_config.json"));
  if (tc.is_object() && tc.contains("added_tokens_decoder") && tc["added_tokens_decoder"].is_object())
    for (const auto& [id_text, tok] : tc["added_tokens_decoder"].items()) {
      char* end = nullptr;
      const unsigned long id = std::strtoul(id_text.c_str(), &end, 10);
      if (*end != '\0' || id >= v || !tok.is_object() || !tok.contains("content") || !tok["content"].is_string())
        continue;
      const std::string content = tok["content"];
      const bool special = tok.value("special", false) ||
                           (content.starts_with("<|") && content.ends_with("|>")) || content == "<pad>" ||
                           content == "<mask>";
      tokens[id] = content;
      scores[id] = -1000.0f;
      types[id] = static_cast<int32_t>(special ? PieceType::kControl : PieceType::kUserDefined);
    }
  md.add_string("tokenizer.ggml.model", "llama");
  md.add_string("tokenizer.ggml.pre", "default");
  md.add_strings("tokenizer.ggml.tokens", tokens);
  md.add_f32s("tokenizer.ggml.scores", scores);
  md.add_i32s("tokenizer.ggml.token_type", types);
  return add_special_tokens(config, tc, json(), md);
}

// What the converter calls "looks special": <|...|>, <pad>, <mask>.
bool looks_special(const std::string& s) {
  return (s.starts_with("<|") && s.ends_with("|>")) || s == "<pad>" || s == "<mask>";
}

// A byte-level BPE tokenizer.json (§4.3): the vocabulary, its added tokens, the merges.
absl::Status add_bpe_vocab(const fs::path& dir, const ModelConfig& config, GgufMetadata& md) {
  const std::string path = (dir / "tokenizer.json").string();
  SP_ASSIGN_OR_RETURN(const json tj, read_json_if_present(path));
  auto bad = [&](const std::string& why) { return absl::InvalidArgumentError(fmt::format("{}: {}", path, why)); };
  if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object()) return bad("no tokenizer model");
  const json& model = tj["model"];
  if (model.value("type", "") != "BPE")
    return absl::UnimplementedError(fmt::format("{}: a '{}' tokenizer; GGUF output writes BPE and SentencePiece ones",
                                                path, model.value("type", "")));
  // llama.cpp's pre-tokenizer (§4.3: the converter finds it by hashing the tokenizer's output;
  // for these architectures it is always this one).
  const char* pre = config.arch == Arch::kQwen2 ? "qwen2" : config.arch == Arch::kExaone4 ? "exaone4" : nullptr;
  if (!pre)
    return absl::UnimplementedError(fmt::format(
        "{}: a BPE vocabulary for {} needs llama.cpp's pre-tokenizer name, which shardpress knows for qwen2 and "
        "exaone4 only so far",
        path, config.model_type));
  if (!model.contains("vocab") || !model["vocab"].is_object()) return bad("model.vocab is not an object");
  int64_t v = config.vocab_size;
  std::map<int64_t, std::string> by_id;
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_unsigned()) return bad(fmt::format("the id of '{}' is not a number", text));
    by_id[id.get<int64_t>()] = text;
  }
  const json added = tj.value("added_tokens", json::array());
  std::map<int64_t, int32_t> added_type;
  for (const auto& a : added) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_unsigned() || !a.contains("content") ||
        !a["content"].is_string())
      return bad("an added token without id or content");
    const std::string content = a["content"];
    by_id[a["id"].get<int64_t>()] = content;
    added_type[a["id"].get<int64_t>()] =
        static_cast<int32_t>(a.value("special", false) || looks_special(content) ? PieceType::kControl : PieceType::kUserDefined);
  }
  if (v <= 0) v = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
  std::vector<std::string> tokens(static_cast<size_t>(v));
  std::vector<int32_t> types(static_cast<size_t>(v), static_cast<int32_t>(PieceType::kUnused));
  for (int64_t i = 0; i < v; ++i) tokens[static_cast<size_t>(i)] = fmt::format("[PAD{}]", i);
  for (const auto& [id, text] : by_id) {
    if (id >= v) continue;
    tokens[static_cast<size_t>(id)] = text;
    auto t = added_type.find(id);
    types[static_cast<size_t>(id)] = t != added_type.end() ? t->second : static_cast<int32_t>(PieceType::kNormal);
  }
  std::vector<std::string> merges;
  if (model.contains("merges") && model["merges"].is_array())
    for (const auto& m : model["merges"]) {
      if (m.is_string()) {
        merges.push_back(m);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        auto part = [](std::string s) {  // a space inside a part is written as U+0120
          std::string out;
          for (char ch : s) out += ch == ' ' ? std::string("\xC4\xA0") : std::string(1, ch);
          return out;
        };
        merges.push_back(part(m[0]) + " " + part(m[1]));
      } else {
        return bad("a merge is neither \"a b\" nor [a, b]");
      }
    }
  if (merges.empty()) return bad("no merges (a BPE vocabulary needs them)");
  md.add_string("tokenizer.ggml.model", "gpt2");
  md.add_string("tokenizer.ggml.pre", pre);
  md.add_strings("tokenizer.ggml.tokens", tokens);
  md.add_i32s("tokenizer.ggml.token_type", types);
  md.add_strings("tokenizer.ggml.merges", merges);
  SP_ASSIGN_OR_RETURN(const json tc, read_json_if_present(dir / "tokenizer_config.json"));
  return add_special_tokens(config, tc, added, md);
}

}  // namespace

absl::Status add_gguf_vocab(const std::string& model_dir, const ModelConfig& config, GgufMetadata& md) {
  const fs::path dir(model_dir);
  std::error_code ec;
  if (fs::exists(dir / "tokenizer.model", ec)) return add_sentencepiece_vocab(dir, config, md);
  if (fs::exists(dir / "tokenizer.json", ec)) return add_bpe_vocab(dir, config, md);
  return absl::FailedPreconditionError(fmt::format(
      "{} has neither tokenizer.model nor tokenizer.json: GGUF output needs the vocabulary", model_dir));
}

}  // namespace sp
