#include "ops/language_model.h"

#include <cmath>
#include <cstring>
#include <thread>

#include "fmt/format.h"
#include "formats/model_layout.h"
#include "ops/linalg.h"

namespace sp {

absl::StatusOr<LanguageModel> language_model_from(const ModelConfig& config,
                                                  std::map<std::string, std::vector<float>> tensors) {
  LanguageModel m;
  m.config = config;
  m.layers.resize(static_cast<size_t>(config.num_layers));
  for (const ExpectedTensor& e : expected_tensors(config)) {
    auto it = tensors.find(e.name);
    if (it == tensors.end()) {
      if (e.optional) continue;
      return absl::InvalidArgumentError(fmt::format("tensor {} is missing", e.name));
    }
    std::vector<float> v = std::move(it->second);
    switch (e.role) {
      case TensorRole::kEmbedding: m.embed = std::move(v); break;
      case TensorRole::kFinalNorm: m.final_norm = std::move(v); break;
      case TensorRole::kLmHead: m.lm_head = std::move(v); break;
      default: m.layers[static_cast<size_t>(e.layer)].tensors[e.role] = std::move(v);
    }
  }
  if (m.lm_head.empty() && !config.tie_word_embeddings)
    return absl::InvalidArgumentError("lm_head.weight is missing (the model does not tie it to the embeddings)");
  return m;
}

void embed_tokens(const ModelConfig& c, const float* embed, const int32_t* ids, int64_t T, float* x) {
  const int64_t H = c.hidden_size;
  for (int64_t t = 0; t < T; ++t) std::memcpy(x + t * H, embed + static_cast<int64_t>(ids[t]) * H, H * sizeof(float));
}

SequenceScore score_sequence(const LanguageModel& m, const RopeTable& rope, const int32_t* ids, int64_t T,
                             std::vector<float>* logits_out, int64_t first) {
  const ModelConfig& c = m.config;
  std::vector<float> x(static_cast<size_t>(T * c.hidden_size));
  embed_tokens(c, m.embed.data(), ids, T, x.data());
  for (int64_t l = 0; l < c.num_layers; ++l) decoder_layer_forward(c, l, m.layers[l], rope, x.data(), T);
  return score_hidden(c, m.final_norm.data(), m.head(), x.data(), ids, T, logits_out, first);
}

SequenceScore score_hidden(const ModelConfig& c, const float* final_norm, const float* head, float* x,
                           const int32_t* ids, int64_t T, std::vector<float>* logits_out, int64_t first) {
  const int64_t H = c.hidden_size, V = c.vocab_size;
  rms_norm(x, T, H, final_norm, c.rms_norm_eps, x);
  std::vector<float> logits(static_cast<size_t>(T * V));
  matmul_nt(x, T, H, head, V, logits.data());
  SequenceScore s;
  for (int64_t t = std::max<int64_t>(first, 1) - 1; t + 1 < T; ++t) {
    const float* row = &logits[t * V];
    float mx = row[0];
    for (int64_t i = 1; i < V; ++i) mx = std::max(mx, row[i]);
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(row[i] - mx));
    s.nll += std::log(sum) - static_cast<double>(row[ids[t + 1]] - mx);
    ++s.predictions;
  }
  if (logits_out) *logits_out = std::move(logits);
  return s;
}

absl::StatusOr<Perplexity> perplexity(const LanguageModel& m, const TokenBatch& batch, int threads) {
  SP_ASSIGN_OR_RETURN(RopeTable rope, rope_table(m.config, batch.seq_len));
  std::vector<SequenceScore> scores(static_cast<size_t>(batch.sequences));
  threads = std::max(1, std::min<int>(threads, static_cast<int>(batch.sequences)));
  std::vector<std::thread> pool;
  for (int w = 0; w < threads; ++w)
    pool.emplace_back([&, w] {
      for (int64_t i = w; i < batch.sequences; i += threads)
        scores[i] = score_sequence(m, rope, batch.row(i), batch.seq_len);
    });
  for (auto& t : pool) t.join();
  Perplexity p;
  p.sequences = batch.sequences;
  p.seq_len = batch.seq_len;
  double nll = 0;
  for (const auto& s : scores) {
    nll += s.nll;
    p.predictions += s.predictions;
  }
  if (!std::isfinite(nll))
    return absl::InvalidArgumentError(
        "the model's log-likelihood is not finite: its activations overflow float32 (weights out of range?)");
  p.mean_nll = nll / static_cast<double>(p.predictions);
  p.perplexity = std::exp(p.mean_nll);
  return p;
}

}  // namespace sp
