// What was done to a checkpoint, as shardpress records it in `shardpress_manifest.json`
// ("compression"), so that `verify --against` can hold a checkpoint to it: one made by
// round-to-nearest (after no pruning, or magnitude pruning, which need no data) must have
// exactly the codes that rounding the original gives.
//
//   "compression": {"prune": null | {"method": "magnitude", "scope": "row", "sparsity": 0.3},
//                   "quantize": null | {"format": "nf4", "method": "rtn", "blocksize": 64,
//                                       "double_quant": true}}
#pragma once

#include <optional>

#include "nlohmann/json.hpp"
#include "ops/compress_shard.h"

namespace sp {

nlohmann::ordered_json compression_record(const CompressSettings& s);

// The settings that reproduce a checkpoint's quantized codes from its original, when the
// record says they can be (round-to-nearest after no or magnitude pruning); nullopt for
// anything data-dependent (GPTQ, Wanda, SparseGPT) or a record this version cannot read.
std::optional<CompressSettings> reproducible_settings(const nlohmann::ordered_json& record);

}  // namespace sp
