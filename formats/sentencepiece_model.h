// The vocabulary of a SentencePiece `tokenizer.model` (a protobuf ModelProto), read
// without the SentencePiece library (../shared/docs/gguf-format.md §4.2): the pieces are
// the repeated top-level field 1, in id order; each has its text (field 1), score (field 2,
// float) and type (field 3; absent = NORMAL). Everything else is skipped. A file that is
// not such a message is an error naming it, never a crash.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace sp {

// SentencePiece piece types; numerically the same as llama.cpp's token types.
enum class PieceType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct SentencePiece {
  std::string text;
  float score = 0.0f;
  PieceType type = PieceType::kNormal;
};

absl::StatusOr<std::vector<SentencePiece>> parse_sentencepiece_model(std::string_view bytes, std::string_view label);

}  // namespace sp
