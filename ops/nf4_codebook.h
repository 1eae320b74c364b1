// The NF4 code book and its decision thresholds, defined once for CPU and CUDA code.
// Values: shared/docs/nf4-format.md §1 (bitsandbytes' get_4bit_type("nf4"), stored in
// checkpoints as `quant_map`); each literal round-trips to the exact float32 listed there.
#pragma once

#include <cstddef>

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

// Block sizes bitsandbytes accepts for 4-bit quantization (32 needs bitsandbytes >= 0.50).
inline constexpr int kNf4BlockSizes[] = {32, 64, 128, 256, 512, 1024, 2048, 4096};
inline constexpr int kNf4DefaultBlockSize = 64;

inline constexpr bool nf4_blocksize_ok(long bs) {
  for (int b : kNf4BlockSizes)
    if (b == bs) return true;
  return false;
}

}  // namespace sp
