#include "ops/rope.h"

#include <cmath>
#include <numbers>

#include "fmt/format.h"

namespace sp {

absl::StatusOr<std::vector<float>> rope_inv_freq(const ModelConfig& config, int64_t seq_len) {
  const int64_t d = config.head_dim;
  double theta = config.rope_theta;
  const nlohmann::json& rs = config.rope_scaling;
  std::string type = "default";
  if (rs.is_object()) {
    if (rs.contains("rope_type") && rs["rope_type"].is_string()) type = rs["rope_type"];
    else if (rs.contains("type") && rs["type"].is_string()) type = rs["type"];
    if (rs.contains("rope_theta") && rs["rope_theta"].is_number()) theta = rs["rope_theta"];
  }
  auto num = [&](const char* key, double dflt) {
    return rs.is_object() && rs.contains(key) && rs[key].is_number() ? rs[key].get<double>() : dflt;
  };
  // HF: 1 / base ** (arange(0, d, 2).float() / d), in float32.
  std::vector<float> f(static_cast<size_t>(d / 2));
  if (type == "dynamic") {  // NTK: only beyond the trained length
    const double factor = num("factor", 1.0);
    const auto& mp = config.raw.contains("max_position_embeddings") ? config.raw["max_position_embeddings"]
                                                                    : nlohmann::ordered_json();
    const double max_pos = mp.is_number() ? mp.get<double>() : 0;
    if (max_pos > 0 && seq_len > max_pos)
      theta = theta * std::pow(factor * seq_len / max_pos - (factor - 1), static_cast<double>(d) / (d - 2));
  }
  const float base = static_cast<float>(theta);
  for (int64_t i = 0; i < d / 2; ++i)
    f[i] = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(d));
  if (type == "default") return f;
  if (type == "linear") {
    const float factor = static_cast<float>(num("factor", 1.0));
    for (float& x : f) x /= factor;
    return f;
  }
  if (type == "dynamic") return f;
  if (type == "llama3") {
    const double factor = num("factor", 8.0), low = num("low_freq_factor", 1.0), high = num("high_freq_factor", 4.0);
    const double orig = num("original_max_position_embeddings", 8192.0);
    const double low_wl = orig / low, high_wl = orig / high;
    for (float& x : f) {
      const double wl = 2 * std::numbers::pi / x;
      if (wl < high_wl) continue;
      if (wl > low_wl) {
        x = static_cast<float>(x / factor);
      } else {
        const double s = (orig / wl - low) / (high - low);
        x = static_cast<float>((1 - s) * x / factor + s * x);
      }
    }
    return f;
  }
  return absl::InvalidArgumentError(fmt::format(
      "rope_scaling type '{}' is not supported (supported: default, linear, dynamic, llama3)", type));
}

std::optional<std::vector<float>> llama3_rope_factors(const ModelConfig& config) {
  const nlohmann::json& rs = config.rope_scaling;
  if (!rs.is_object()) return std::nullopt;
  const std::string type = rs.contains("rope_type") && rs["rope_type"].is_string() ? rs["rope_type"].get<std::string>()
                           : rs.contains("type") && rs["type"].is_string()       ? rs["type"].get<std::string>()
                                                                                  : "";
  if (type != "llama3") return std::nullopt;
  auto num = [&](const char* key, double dflt) { return rs.contains(key) && rs[key].is_number() ? rs[key].get<double>() : dflt; };
  const float factor = static_cast<float>(num("factor", 8.0)), low = static_cast<float>(num("low_freq_factor", 1.0));
  const float high = static_cast<float>(num("high_freq_factor", 4.0));
  const float orig = static_cast<float>(num("original_max_position_embeddings", 8192.0));
  const float low_wl = orig / low, high_wl = orig / high;
  const float base = static_cast<float>(config.rope_theta);
  const int64_t d = config.head_dim;
  std::vector<float> out(static_cast<size_t>(d / 2));
  for (int64_t i = 0; i < d / 2; ++i) {
    const float freq = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(d));
    const float wl = static_cast<float>(2 * std::numbers::pi) / freq;
    if (wl < high_wl) {
      out[i] = 1.0f;
    } else if (wl > low_wl) {
      out[i] = factor;
    } else {
      const float smooth = (orig / wl - low) / (high - low);
      out[i] = 1.0f / ((1.0f - smooth) / factor + smooth);
    }
  }
  return out;
}

absl::StatusOr<RopeTable> rope_table(const ModelConfig& config, int64_t positions) {
  SP_ASSIGN_OR_RETURN(std::vector<float> inv, rope_inv_freq(config, positions));
  RopeTable t;
  t.head_dim = config.head_dim;
  t.positions = positions;
  const int64_t d = t.head_dim, half = d / 2;
  t.cos.resize(static_cast<size_t>(positions * d));
  t.sin.resize(static_cast<size_t>(positions * d));
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const float a = static_cast<float>(p) * inv[i];  // fp32, as HF
      const float c = std::cos(a), s = std::sin(a);
      t.cos[p * d + i] = t.cos[p * d + i + half] = c;
      t.sin[p * d + i] = t.sin[p * d + i + half] = s;
    }
  return t;
}

void apply_rope(const RopeTable& rope, float* x, int64_t tokens, int64_t heads) {
  const int64_t d = rope.head_dim, half = d / 2;
  for (int64_t t = 0; t < tokens; ++t) {
    const float* c = &rope.cos[t * d];
    const float* s = &rope.sin[t * d];
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * d;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];                // x*cos + (-x2)*sin
        v[i + half] = b * c[i + half] + a * s[i + half];  // x2*cos + x1*sin
      }
    }
  }
}

}  // namespace sp
