#include "ops/ggml_grid.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fmt/format.h"
#include "ops/ggml_quant_helpers.h"

namespace sp {
namespace {

using ggml::get_f16;
using ggml::kIq4nlValues;

// What element e of a block can decode to: a * (q - zero) + b for codes q in [lo, hi], or
// a * values[q] + b with a lookup table.
struct Cell {
  float a = 0, b = 0;
  int zero = 0, lo = 0, hi = 0;
  const int8_t* values = nullptr;
  float value(int q) const { return a * static_cast<float>(values ? values[q] : q - zero) + b; }
};

void scale_min_k4(int j, const uint8_t* s, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63, *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Nibble q of element e (0..31) of a 32-block: e < 16 low nibble of qs[e], else high of qs[e - 16].
void set_nibble32(uint8_t* qs, int e, int q) {
  uint8_t& b = qs[e % 16];
  b = e < 16 ? static_cast<uint8_t>((b & 0xF0) | (q & 0xF)) : static_cast<uint8_t>((b & 0x0F) | ((q & 0xF) << 4));
}
void set_bit(uint8_t* p, int bit, bool on) {
  if (on) p[bit / 8] = static_cast<uint8_t>(p[bit / 8] | (1u << (bit % 8)));
  else p[bit / 8] = static_cast<uint8_t>(p[bit / 8] & ~(1u << (bit % 8)));
}

Cell cell_of(GgmlType t, const uint8_t* blk, int e) {
  Cell c;
  switch (t) {
    case GgmlType::kQ8_0: c.a = get_f16(blk), c.lo = -127, c.hi = 127; break;
    case GgmlType::kQ4_0: c.a = get_f16(blk), c.zero = 8, c.hi = 15; break;
    case GgmlType::kQ5_0: c.a = get_f16(blk), c.zero = 16, c.hi = 31; break;
    case GgmlType::kQ4_1: c.a = get_f16(blk), c.b = get_f16(blk + 2), c.hi = 15; break;
    case GgmlType::kQ5_1: c.a = get_f16(blk), c.b = get_f16(blk + 2), c.hi = 31; break;
    case GgmlType::kIQ4_NL: c.a = get_f16(blk), c.hi = 15, c.values = kIq4nlValues; break;
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K: {
      int sc, m;
      scale_min_k4(e / 32, blk + 4, &sc, &m);
      c.a = get_f16(blk) * static_cast<float>(sc);
      c.b = -(get_f16(blk + 2) * static_cast<float>(m));
      c.hi = t == GgmlType::kQ4_K ? 15 : 31;
      break;
    }
    case GgmlType::kQ6_K:
      c.a = get_f16(blk + 208) * static_cast<float>(static_cast<int8_t>(blk[192 + e / 16]));
      c.zero = 32, c.hi = 63;
      break;
    default: break;
  }
  return c;
}

void set_code(GgmlType t, uint8_t* blk, int e, int q) {
  switch (t) {
    case GgmlType::kQ8_0: blk[2 + e] = static_cast<uint8_t>(static_cast<int8_t>(q)); break;
    case GgmlType::kQ4_0:
    case GgmlType::kIQ4_NL: set_nibble32(blk + 2, e, q); break;
    case GgmlType::kQ4_1: set_nibble32(blk + 4, e, q); break;
    case GgmlType::kQ5_0: set_nibble32(blk + 6, e, q), set_bit(blk + 2, e, q & 16); break;
    case GgmlType::kQ5_1: set_nibble32(blk + 8, e, q), set_bit(blk + 4, e, q & 16); break;
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K: {
      const int c = e / 64, l = e % 64;
      uint8_t& b = blk[(t == GgmlType::kQ4_K ? 16 : 48) + 32 * c + l % 32];
      b = l < 32 ? static_cast<uint8_t>((b & 0xF0) | (q & 0xF)) : static_cast<uint8_t>((b & 0x0F) | ((q & 0xF) << 4));
      if (t == GgmlType::kQ5_K) set_bit(blk + 16 + l % 32, 2 * c + (l >= 32), q & 16);
      break;
    }
    case GgmlType::kQ6_K: {
      const int h = e / 128, k = (e % 128) / 32, l = e % 32;
      uint8_t& b = blk[64 * h + (k % 2) * 32 + l];
      b = k < 2 ? static_cast<uint8_t>((b & 0xF0) | (q & 0xF)) : static_cast<uint8_t>((b & 0x0F) | ((q & 0xF) << 4));
      uint8_t& hb = blk[128 + 32 * h + l];
      hb = static_cast<uint8_t>((hb & ~(3u << (2 * k))) | (((q >> 4) & 3) << (2 * k)));
      break;
    }
    default: break;
  }
}

}  // namespace

absl::StatusOr<GgmlGrid> GgmlGrid::make(GgmlType type, std::span<const float> w, int64_t rows, int64_t cols,
                                        std::span<const float> importance) {
  const GgmlTypeTraits& tr = ggml_traits(type);
  if (tr.block == 1) return absl::InvalidArgumentError(fmt::format("{} has no blocks to run GPTQ on", tr.name));
  if (cols % tr.block != 0 || static_cast<int64_t>(w.size()) != rows * cols)
    return absl::InvalidArgumentError(fmt::format("{}x{} is not whole {} blocks of {}", rows, cols, tr.name, tr.block));
  GgmlGrid g;
  g.type_ = type;
  g.cols_ = cols;
  g.block_ = tr.block;
  g.block_bytes_ = tr.block_bytes;
  g.bytes_ = ggml_quantize(type, w, cols, 1, importance);
  g.original_.assign(w.begin(), w.end());
  g.rtn_ = ggml_dequantize(type, g.bytes_, rows * cols);
  return g;
}

float GgmlGrid::snap(int64_t row, int64_t col, float x) {
  const auto idx = static_cast<size_t>(row * cols_ + col);
  if (std::memcmp(&x, &original_[idx], sizeof(float)) == 0) return rtn_[idx];  // unchanged: the quantizer's code
  uint8_t* blk = bytes_.data() + (row * (cols_ / block_) + col / block_) * block_bytes_;
  const int e = static_cast<int>(col % block_);
  const Cell c = cell_of(type_, blk, e);
  int q;
  if (c.values) {  // a sorted table: the nearest entry
    q = c.a != 0.0f ? ggml::best_index_iq4nl((x - c.b) / c.a) : 0;
    if (c.a < 0) {  // a negative scale reverses the table's order: compare both neighbours
      q = 0;
      for (int k = 1; k <= c.hi; ++k)
        if (std::fabs(c.value(k) - x) < std::fabs(c.value(q) - x)) q = k;
    }
  } else if (c.a != 0.0f) {
    q = std::clamp(static_cast<int>(std::lrint((x - c.b) / c.a)) + c.zero, c.lo, c.hi);
  } else {
    q = std::clamp(c.zero, c.lo, c.hi);
  }
  set_code(type_, blk, e, q);
  return c.value(q);
}

}  // namespace sp
