#include "ops/decoder_layer.h"

#include <cblas.h>

#include <cmath>
#include <limits>

#include "common/float_convert.h"
#include "fmt/format.h"
#include "ops/finite_check.h"
#include "ops/linalg.h"

namespace sp {

absl::StatusOr<LayerWeights> load_layer_weights(const ModelConfig& config, std::span<const InputTensor> inputs) {
  LayerWeights w;
  for (const InputTensor& in : inputs) {
    if (in.meta->role == TensorRole::kRotaryInvFreq) continue;
    // Checked here, where every forward pass starts: a NaN weight is named now, not later
    // as the activation or Hessian it poisons.
    SP_RETURN_IF_ERROR(check_finite(in.meta->name, in.bytes, in.meta->stored.dtype, in.meta->stored.shape));
    w.tensors[in.meta->role] = to_float32(in.bytes, in.meta->stored.dtype);
  }
  std::vector<TensorRole> need = {TensorRole::kQProj, TensorRole::kKProj,        TensorRole::kVProj,
                                  TensorRole::kOProj, TensorRole::kGateProj,     TensorRole::kUpProj,
                                  TensorRole::kDownProj, TensorRole::kPostAttentionNorm};
  if (config.arch == Arch::kExaone4) {
    need.insert(need.end(), {TensorRole::kQNorm, TensorRole::kKNorm, TensorRole::kPostFeedforwardNorm});
  } else {
    need.push_back(TensorRole::kInputNorm);
  }
  for (TensorRole r : need)
    if (!w.find(r)) return absl::InvalidArgumentError(fmt::format("layer is missing its {} tensor", role_name(r)));
  return w;
}

LinearInput linear_input_of(TensorRole r) {
  switch (r) {
    case TensorRole::kOProj: return LinearInput::kAttentionOutput;
    case TensorRole::kGateProj:
    case TensorRole::kUpProj: return LinearInput::kMlp;
    case TensorRole::kDownProj: return LinearInput::kDown;
    default: return LinearInput::kAttention;
  }
}

std::string_view linear_input_name(LinearInput i) {
  switch (i) {
    case LinearInput::kAttention: return "qkv";
    case LinearInput::kAttentionOutput: return "o";
    case LinearInput::kMlp: return "gate_up";
    case LinearInput::kDown: return "down";
  }
  return "?";
}

int64_t linear_input_width(const ModelConfig& c, LinearInput i) {
  switch (i) {
    case LinearInput::kAttentionOutput: return c.num_heads * c.head_dim;
    case LinearInput::kDown: return c.intermediate_size;
    default: return c.hidden_size;
  }
}

LayerAttention layer_attention(const ModelConfig& c, int64_t layer) {
  const bool sliding = c.layer_types[static_cast<size_t>(layer)] == AttentionKind::kSliding;
  LayerAttention a;
  a.rope = c.arch != Arch::kExaone4 || !c.sliding_window || sliding;  // EXAONE hybrid: global layers are NoPE
  a.window = sliding && c.sliding_window ? *c.sliding_window : 0;
  return a;
}

void rms_norm(const float* x, int64_t rows, int64_t width, const float* weight, double eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* v = x + r * width;
    float* o = out + r * width;
    double ss = 0;
    for (int64_t i = 0; i < width; ++i) ss += static_cast<double>(v[i]) * v[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(width) + eps));
    for (int64_t i = 0; i < width; ++i) o[i] = weight[i] * (v[i] * inv);
  }
}

namespace {

void add_bias(float* y, int64_t rows, int64_t width, const float* bias) {
  if (!bias) return;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < width; ++i) y[r * width + i] += bias[i];
}

// Softmax attention with GQA; ctx[T, nh*hd].
void attention(const ModelConfig& c, const float* q, const float* k, const float* v, int64_t T, int64_t window,
               float* ctx) {
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim;
  const int64_t group = nh / nkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> p(static_cast<size_t>(T * T));
  for (int64_t h = 0; h < nh; ++h) {
    const int64_t g = h / group;
    // scores = Q_h K_g^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T), static_cast<int>(T),
                static_cast<int>(hd), 1.0f, q + h * hd, static_cast<int>(nh * hd), k + g * hd,
                static_cast<int>(nkv * hd), 0.0f, p.data(), static_cast<int>(T));
    for (int64_t t = 0; t < T; ++t) {
      float* row = &p[t * T];
      const int64_t first = window > 0 ? std::max<int64_t>(0, t - window + 1) : 0;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t s = first; s <= t; ++s) {
        row[s] *= scale;
        mx = std::max(mx, row[s]);
      }
      double sum = 0;
      for (int64_t s = first; s <= t; ++s) {
        row[s] = std::exp(row[s] - mx);
        sum += row[s];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t s = 0; s < T; ++s) row[s] = (s >= first && s <= t) ? row[s] * inv : 0.0f;
    }
    // ctx_h = P V_g
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(T), static_cast<int>(hd),
                static_cast<int>(T), 1.0f, p.data(), static_cast<int>(T), v + g * hd, static_cast<int>(nkv * hd),
                0.0f, ctx + h * hd, static_cast<int>(nh * hd));
  }
}

}  // namespace

void decoder_layer_forward(const ModelConfig& c, int64_t layer, const LayerWeights& w, const RopeTable& rope, float* x,
                           int64_t T, const LinearTap* tap) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const int64_t qw = c.num_heads * c.head_dim, kw = c.num_kv_heads * c.head_dim;
  const bool exaone = c.arch == Arch::kExaone4;
  const LayerAttention kind = layer_attention(c, layer);
  const bool use_rope = kind.rope;
  const int64_t window = kind.window;
  auto emit = [&](LinearInput which, const float* in, int64_t width) {
    if (tap) (*tap)(which, in, T, width);
  };

  // Attention block.
  std::vector<float> a;
  const float* attn_in = x;
  if (!exaone) {
    a.resize(static_cast<size_t>(T * H));
    rms_norm(x, T, H, w.find(TensorRole::kInputNorm), c.rms_norm_eps, a.data());
    attn_in = a.data();
  }
  emit(LinearInput::kAttention, attn_in, H);
  std::vector<float> q(static_cast<size_t>(T * qw)), k(static_cast<size_t>(T * kw)), v(static_cast<size_t>(T * kw));
  matmul_nt(attn_in, T, H, w.find(TensorRole::kQProj), qw, q.data());
  matmul_nt(attn_in, T, H, w.find(TensorRole::kKProj), kw, k.data());
  matmul_nt(attn_in, T, H, w.find(TensorRole::kVProj), kw, v.data());
  add_bias(q.data(), T, qw, w.find(TensorRole::kQBias));
  add_bias(k.data(), T, kw, w.find(TensorRole::kKBias));
  add_bias(v.data(), T, kw, w.find(TensorRole::kVBias));
  if (exaone) {
    rms_norm(q.data(), T * c.num_heads, c.head_dim, w.find(TensorRole::kQNorm), c.rms_norm_eps, q.data());
    rms_norm(k.data(), T * c.num_kv_heads, c.head_dim, w.find(TensorRole::kKNorm), c.rms_norm_eps, k.data());
  }
  if (use_rope) {
    apply_rope(rope, q.data(), T, c.num_heads);
    apply_rope(rope, k.data(), T, c.num_kv_heads);
  }
  std::vector<float> ctx(static_cast<size_t>(T * qw));
  attention(c, q.data(), k.data(), v.data(), T, window, ctx.data());
  emit(LinearInput::kAttentionOutput, ctx.data(), qw);
  std::vector<float> o(static_cast<size_t>(T * H));
  matmul_nt(ctx.data(), T, qw, w.find(TensorRole::kOProj), H, o.data());
  add_bias(o.data(), T, H, w.find(TensorRole::kOBias));
  if (exaone) rms_norm(o.data(), T, H, w.find(TensorRole::kPostAttentionNorm), c.rms_norm_eps, o.data());
  for (int64_t i = 0; i < T * H; ++i) x[i] += o[i];

  // MLP block.
  const float* mlp_in = x;
  if (!exaone) {
    a.resize(static_cast<size_t>(T * H));
    rms_norm(x, T, H, w.find(TensorRole::kPostAttentionNorm), c.rms_norm_eps, a.data());
    mlp_in = a.data();
  }
  emit(LinearInput::kMlp, mlp_in, H);
  std::vector<float> g(static_cast<size_t>(T * I)), u(static_cast<size_t>(T * I));
  matmul_nt(mlp_in, T, H, w.find(TensorRole::kGateProj), I, g.data());
  matmul_nt(mlp_in, T, H, w.find(TensorRole::kUpProj), I, u.data());
  add_bias(g.data(), T, I, w.find(TensorRole::kGateBias));
  add_bias(u.data(), T, I, w.find(TensorRole::kUpBias));
  for (int64_t i = 0; i < T * I; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  emit(LinearInput::kDown, g.data(), I);
  matmul_nt(g.data(), T, I, w.find(TensorRole::kDownProj), H, o.data());
  add_bias(o.data(), T, H, w.find(TensorRole::kDownBias));
  if (exaone) rms_norm(o.data(), T, H, w.find(TensorRole::kPostFeedforwardNorm), c.rms_norm_eps, o.data());
  for (int64_t i = 0; i < T * H; ++i) x[i] += o[i];
}

}  // namespace sp
