// A whole decoder-only language model in float32, for evaluation: token embeddings, the
// decoder layers, the final norm and the (possibly tied) output head, and the
// perplexity protocol of the fixtures (algorithms.md §g): every sequence scored on its
// own, tokens 2..T predicted from their prefix, ppl = exp(sum NLL / predictions) with
// float64 accumulation.
//
// Thread-safety: a LanguageModel is read-only once built; perplexity() runs sequences
// on several threads and sums in sequence order (the result does not depend on them).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "formats/model_config.h"
#include "formats/token_ids.h"
#include "ops/decoder_layer.h"

namespace sp {

struct LanguageModel {
  ModelConfig config;
  std::vector<float> embed;  // [V, H]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [H]
  std::vector<float> lm_head;     // [V, H]; empty when tied to the embeddings
  const float* head() const { return lm_head.empty() ? embed.data() : lm_head.data(); }
};

// Builds the model from float32 tensors keyed by their Hugging Face names (an original
// checkpoint converted, or a compressed one dequantized). INVALID_ARGUMENT naming a
// missing tensor.
absl::StatusOr<LanguageModel> language_model_from(const ModelConfig& config,
                                                  std::map<std::string, std::vector<float>> tensors);

// x[t, :] = embed[ids[t], :].
void embed_tokens(const ModelConfig& config, const float* embed, const int32_t* ids, int64_t tokens, float* x);

// Runs the whole model on one sequence; logits [tokens, vocab] when asked for.
struct SequenceScore {
  double nll = 0;  // sum over the tokens-1 predictions
  int64_t predictions = 0;
};
// `first`: the first token predicted (tokens first..T-1 from their prefixes; a multiple-
// choice continuation after its context).
SequenceScore score_sequence(const LanguageModel& m, const RopeTable& rope, const int32_t* ids, int64_t tokens,
                             std::vector<float>* logits = nullptr, int64_t first = 1);

// The output end of the model on one sequence's last hidden states x[tokens, hidden]
// (overwritten): final RMSNorm, the head [vocab, hidden], and the NLL of tokens 1..T-1.
SequenceScore score_hidden(const ModelConfig& config, const float* final_norm, const float* head, float* x,
                           const int32_t* ids, int64_t tokens, std::vector<float>* logits = nullptr, int64_t first = 1);

struct Perplexity {
  int64_t sequences = 0;
  int64_t seq_len = 0;
  int64_t predictions = 0;
  double mean_nll = 0;
  double perplexity = 0;
};
absl::StatusOr<Perplexity> perplexity(const LanguageModel& m, const TokenBatch& batch, int threads);

}  // namespace sp
