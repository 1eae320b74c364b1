// libFuzzer: GGUF files (parse_gguf), SentencePiece models and llama.cpp importance
// matrices (parse_imatrix) — read from files a user
// points at; damaged ones must be errors, never crashes, and what is accepted must be
// inside the bytes.
#include "formats/gguf_reader.h"
#include "formats/imatrix_file.h"
#include "formats/sentencepiece_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = sp::parse_gguf({data, size}, "fuzz.gguf");
  if (g.ok()) {
    if (g->data_offset > size) __builtin_trap();
    for (const auto& t : g->tensors)
      if (t.offset > size || t.ne.empty() || t.ne.size() > 4) __builtin_trap();
  }
  auto p = sp::parse_sentencepiece_model({reinterpret_cast<const char*>(data), size}, "fuzz/tokenizer.model");
  if (p.ok() && p->empty()) __builtin_trap();
  auto m = sp::parse_imatrix({data, size}, "fuzz/imatrix.dat");
  if (m.ok()) {
    size_t floats = 0;
    for (const auto& e : m->entries) floats += e.values.size();
    if (m->entries.empty() || floats * 4 > size) __builtin_trap();
  }
  return 0;
}
