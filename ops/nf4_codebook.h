// The 4-bit code books (NF4 and FP4) and their decisions, defined once for CPU and CUDA code.
// Values: shared/docs/nf4-format.md §1 (bitsandbytes' get_4bit_type("nf4"), stored in
// checkpoints as `quant_map`); each literal round-trips to the exact float32 listed there.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sp {

inline constexpr size_t kNf4Levels = 16;

inline constexpr float kNf4Code[kNf4Levels] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

// t[j] = (code[j] + code[j+1]) / 2 in float32 (§3). A scaled value s gets the code
// "number of j with s > t[j]": nearest level, exact midpoints go to the lower code,
// NaN gets code 0 (as the CUDA kernel does for an all-zero block: 0 * inf).
inline constexpr float kNf4Threshold[kNf4Levels - 1] = {
    -0.8480963706970215f,  -0.6106328964233398f, -0.4599952697753906f,
    -0.33967941999435425f, -0.23460739850997925f, -0.13791173696517944f,
    -0.045525018125772476f, 0.03979014977812767f, 0.120255246758461f,
    0.2035212516784668f,   0.2920137643814087f,  0.3893125355243683f,
    0.5016634464263916f,   0.6427869200706482f,  0.8614784479141235f,
};

// FP4 (bnb-fp4-int8-format.md A.1): get_4bit_type("fp4") — magnitudes {0, 1/192, 2/3, 1,
// 1/3, 1/2, 1/6, 1/4} by code bits 0-2, bit 3 the sign; entry 8 is +0.0. Stored as quant_map.
inline constexpr float kFp4Code[kNf4Levels] = {
    0.0f,  0.0052083334885537624f,  0.6666666865348816f,  1.0f,  0.3333333432674408f,  0.5f,
    0.1666666716337204f,  0.25f,  0.0f, -0.0052083334885537624f, -0.6666666865348816f, -1.0f,
    -0.3333333432674408f, -0.5f, -0.1666666716337204f, -0.25f,
};

// The code of a scaled value s = x * (1/absmax), as bitsandbytes' dQuantizeFP4 decides it
// (A.2): a decision tree on |s| with strict comparisons against these float32 literals — a
// value on a threshold takes the smaller magnitude, a negative value that rounds to zero
// gets code 8, -0.0 and NaN get code 0.
inline constexpr uint8_t fp4_code_of(float s) {
  const uint8_t sign = s < 0.0f ? 8 : 0;
  const float a = s < 0.0f ? -s : s;
  uint8_t m = 0;
  if (a > 0.29166667f)
    m = a > 0.583333f ? (a > 0.8333333f ? 3 : 2) : (a > 0.4166667f ? 5 : 4);
  else
    m = a > 0.0859375f ? (a > 0.20833333f ? 7 : 6) : (a > 0.00260417f ? 1 : 0);
  return static_cast<uint8_t>(m + sign);
}

// Block sizes bitsandbytes accepts for 4-bit quantization (32 needs bitsandbytes >= 0.50).
inline constexpr int kNf4BlockSizes[] = {32, 64, 128, 256, 512, 1024, 2048, 4096};
inline constexpr int kNf4DefaultBlockSize = 64;

inline constexpr bool nf4_blocksize_ok(long bs) {
  for (int b : kNf4BlockSizes)
    if (b == bs) return true;
  return false;
}

}  // namespace sp
