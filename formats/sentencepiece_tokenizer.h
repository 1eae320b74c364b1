// Text to token ids with a SentencePiece BPE `tokenizer.model` (Llama 1/2, Mistral, the
// stories260k fixture), as SentencePiece and llama.cpp's SPM tokenizer encode: a space
// prefix, spaces as U+2581, UTF-8 characters merged pairwise by the highest piece score
// (ties: leftmost first), and characters outside the vocabulary as <0xXX> byte pieces.
// Used by the multiple-choice evaluation for text items; models with another tokenizer
// (byte-level BPE: Llama 3, Qwen2, EXAONE) take token ids instead.
//
// Thread-safety: encode() is const and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "formats/sentencepiece_model.h"

namespace sp {

class SentencePieceTokenizer {
 public:
  // `bytes`: a tokenizer.model; INVALID_ARGUMENT when it is not a SentencePiece model or
  // has no byte pieces for the characters outside its vocabulary.
  static absl::StatusOr<SentencePieceTokenizer> from_model(std::string_view bytes, std::string_view label);
  // The `tokenizer.model` of a Hugging Face folder.
  static absl::StatusOr<SentencePieceTokenizer> open_folder(const std::string& dir);

  // Ids of `text` (no BOS); `space_prefix`: the model's dummy prefix (a leading space).
  std::vector<int32_t> encode(std::string_view text, bool space_prefix = true) const;
  int32_t bos_id() const { return bos_; }
  size_t vocab_size() const { return pieces_.size(); }

 private:
  std::vector<SentencePiece> pieces_;
  std::unordered_map<std::string, int32_t> ids_;  // normal and user-defined pieces by text
  int32_t byte_ids_[256] = {};
  int32_t bos_ = 1;
  int32_t unk_ = 0;
};

}  // namespace sp
