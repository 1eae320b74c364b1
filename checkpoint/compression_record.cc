#include "checkpoint/compression_record.h"

namespace sp {

using ojson = nlohmann::ordered_json;

ojson compression_record(const CompressSettings& s) {
  ojson r = ojson::object();
  r["prune"] = nullptr;
  if (s.prune)
    r["prune"] = {{"method", std::string(prune_method_name(s.prune->method))},
                  {"scope", std::string(prune_scope_name(s.prune->scope))},
                  {"sparsity", s.prune->sparsity}};
  r["quantize"] = nullptr;
  if (s.quantize)
    r["quantize"] = {{"format", std::string(bnb_type_name(s.quantize->quant_type))},
                     {"method", s.quant_method == QuantMethod::kGptq ? "gptq" : "rtn"},
                     {"blocksize", s.quantize->blocksize},
                     {"double_quant", s.quantize->double_quant}};
  return r;
}

std::optional<CompressSettings> reproducible_settings(const ojson& r) {
  try {
    if (!r.is_object() || !r.contains("quantize") || !r["quantize"].is_object()) return std::nullopt;
    const ojson& q = r["quantize"];
    const auto type = value_of(kBnbTypeNames, q.at("format").get<std::string>());
    if (!type || q.at("method") != "rtn") return std::nullopt;
    CompressSettings s;
    s.quantize = Nf4Settings{q.at("blocksize").get<int>(), q.at("double_quant").get<bool>()};
    s.quantize->quant_type = *type;
    if (r.contains("prune") && !r["prune"].is_null()) {
      const ojson& p = r["prune"];
      if (p.at("method") != "magnitude") return std::nullopt;
      const auto scope = prune_scope_from_name(p.at("scope").get<std::string>());
      if (!scope) return std::nullopt;
      s.prune = PruneSettings{*scope, p.at("sparsity").get<double>(), PruneMethod::kMagnitude};
    }
    if (!validate(s).ok()) return std::nullopt;
    return s;
  } catch (const ojson::exception&) {
    return std::nullopt;
  }
}

}  // namespace sp
