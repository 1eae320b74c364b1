// Synthetic decoder layers for tests and benchmarks: a config from JSON text, and a
// layer's float32 tensors drawn at random (projections N(0, sd), norms N(1, 0.1)).
#pragma once

#include <cstdint>
#include <string>

#include "formats/model_config.h"
#include "ops/decoder_layer.h"

namespace sp::test {

ModelConfig config_from_json(const std::string& json);
LayerWeights random_layer(const ModelConfig& c, int64_t layer, uint32_t seed, float sd = 0.2f);

}  // namespace sp::test
