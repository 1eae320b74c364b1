#include "jobs/sweep_spec.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <set>

#include "common/yaml_keys.h"
#include "fmt/format.h"
#include "jobs/job_yaml.h"

namespace sp {

namespace {

using shardpress::v1::JobSpec;

absl::Status bad(std::string_view label, const std::string& msg) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", label, msg));
}

// Sets `key` ("prune.sparsity", "model") in a copy of the base's YAML.
absl::Status set_key(YAML::Node& root, const std::string& key, const YAML::Node& value, std::string_view label) {
  const size_t dot = key.find('.');
  if (key == "name" || key == "output")
    return bad(label, fmt::format("'{}' cannot vary: each variant's is made from the sweep's", key));
  if (!value.IsScalar()) return bad(label, fmt::format("'{}': a sweep sets single values", key));
  if (dot == std::string::npos) {
    root[key] = value.Scalar();
    return absl::OkStatus();
  }
  const std::string section = key.substr(0, dot), field = key.substr(dot + 1);
  if (field.empty() || field.find('.') != std::string::npos)
    return bad(label, fmt::format("'{}' is not a key (section.key, e.g. prune.sparsity)", key));
  if (root[section] && !root[section].IsMap()) return bad(label, fmt::format("'{}' in the base is not a mapping", section));
  root[section][field] = value.Scalar();
  return absl::OkStatus();
}

// "0.2" -> "0.2"; characters a job name cannot hold become '_'.
std::string label_part(const std::string& v) {
  std::string out;
  for (char c : v) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
  return out.empty() ? "_" : out;
}

}  // namespace

absl::StatusOr<SweepSpec> parse_sweep_yaml(std::string_view text, std::string_view label) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return bad(label, fmt::format("not valid YAML: {}", e.what()));
  }
  if (!root.IsMap()) return bad(label, "a sweep is a mapping with name, base, and axes and/or variants");
  SP_RETURN_IF_ERROR(check_unique_keys(root, label));
  for (const auto& kv : root) {
    const std::string k = kv.first.Scalar();
    if (k != "name" && k != "base" && k != "axes" && k != "variants")
      return bad(label, fmt::format("unknown key '{}' (allowed: axes, base, name, variants)", k));
  }
  SweepSpec s;
  if (!root["name"] || !root["name"].IsScalar()) return bad(label, "'name' is required (the jobs are named NAME.LABEL)");
  s.name = root["name"].Scalar();
  if (!root["base"] || !root["base"].IsMap()) return bad(label, "'base' is required: a job spec (model, output, ...)");
  const YAML::Node base = root["base"];
  if (base["name"]) return bad(label, "'base.name': the sweep names its jobs NAME.LABEL; leave it out");
  {
    YAML::Node named = YAML::Clone(base);
    named["name"] = s.name;
    YAML::Emitter e;
    e << named;
    SP_ASSIGN_OR_RETURN(s.base, parse_job_yaml(e.c_str(), fmt::format("{}: base", label)));
  }

  // The variants' settings: the product of the axes, then the explicit ones.
  std::vector<std::vector<std::pair<std::string, YAML::Node>>> sets{{}};
  std::vector<std::string> explicit_labels;
  bool any = false;
  if (const YAML::Node axes = root["axes"]) {
    if (!axes.IsMap() || axes.size() == 0) return bad(label, "'axes' must map keys to lists of values");
    for (const auto& kv : axes) {
      const std::string key = kv.first.Scalar();
      if (!kv.second.IsSequence() || kv.second.size() == 0)
        return bad(label, fmt::format("'axes.{}' must be a list of values", key));
      std::vector<std::vector<std::pair<std::string, YAML::Node>>> next;
      for (const auto& partial : sets)
        for (const auto& v : kv.second) {
          auto p = partial;
          p.push_back({key, v});
          next.push_back(std::move(p));
        }
      sets = std::move(next);
    }
    explicit_labels.assign(sets.size(), "");
    any = true;
  } else {
    sets.clear();
  }
  if (const YAML::Node vs = root["variants"]) {
    if (!vs.IsSequence() || vs.size() == 0) return bad(label, "'variants' must be a list of mappings");
    for (const auto& v : vs) {
      if (!v.IsMap()) return bad(label, "each of 'variants' is a mapping of keys to set");
      std::vector<std::pair<std::string, YAML::Node>> one;
      std::string vlabel;
      for (const auto& kv : v) {
        if (kv.first.Scalar() == "label") {
          vlabel = kv.second.Scalar();
        } else {
          one.push_back({kv.first.Scalar(), kv.second});
        }
      }
      sets.push_back(std::move(one));
      explicit_labels.push_back(vlabel);
    }
    any = true;
  }
  if (!any) return bad(label, "nothing to compare: give 'axes' (every combination) and/or 'variants'");
  if (sets.size() > 256) return bad(label, fmt::format("{} variants; a sweep runs at most 256", sets.size()));

  std::set<std::string> labels;
  for (size_t i = 0; i < sets.size(); ++i) {
    SweepVariant v;
    YAML::Node spec = YAML::Clone(base);
    std::string made;
    for (const auto& [key, value] : sets[i]) {
      SP_RETURN_IF_ERROR(set_key(spec, key, value, label));
      v.settings.push_back({key, value.Scalar()});
      made += (made.empty() ? "" : "-") + label_part(value.Scalar());
    }
    v.label = !explicit_labels[i].empty() ? label_part(explicit_labels[i]) : made.empty() ? "base" : made;
    if (!labels.insert(v.label).second)
      return bad(label, fmt::format("two variants are labelled '{}': give one a 'label'", v.label));
    const std::string name = fmt::format("{}.{}", s.name, v.label);
    if (name.size() > 64)
      return bad(label, fmt::format("the job name '{}' is over 64 characters: a shorter sweep name or 'label'", name));
    spec["name"] = name;
    const bool gguf = spec["quantize"] && spec["quantize"]["format"] && spec["quantize"]["format"].Scalar() == "gguf";
    spec["output"] = (std::filesystem::path(s.base.output()) / (v.label + (gguf ? ".gguf" : ""))).string();
    YAML::Emitter e;
    e << spec;
    SP_ASSIGN_OR_RETURN(v.spec, parse_job_yaml(e.c_str(), fmt::format("{}: variant {}", label, v.label)));
    s.variants.push_back(std::move(v));
  }
  return s;
}

}  // namespace sp
