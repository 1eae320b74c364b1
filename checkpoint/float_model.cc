#include "checkpoint/float_model.h"

#include <filesystem>

#include "checkpoint/gguf_model.h"
#include "checkpoint/verify.h"
#include "common/file_util.h"
#include "common/float_convert.h"
#include "fmt/format.h"
#include "formats/model.h"
#include "ops/finite_check.h"

namespace sp {

absl::StatusOr<LoadedModel> load_float_model(const std::string& dir) {
  if (is_gguf_file(dir)) {  // a GGUF file: every tensor dequantized
    SP_ASSIGN_OR_RETURN(auto g, GgufModel::open(dir));
    LoadedModel out;
    out.quantized = true;
    std::map<std::string, std::vector<float>> tensors;
    for (const ModelTensor& t : g->desc().tensors) tensors[t.name] = g->decode(t.name);
    SP_ASSIGN_OR_RETURN(out.model, language_model_from(g->desc().config, std::move(tensors)));
    return out;
  }
  const std::string config_path = (std::filesystem::path(dir) / "config.json").string();
  SP_ASSIGN_OR_RETURN(std::string text, read_file(config_path));
  nlohmann::ordered_json cj;
  try {
    cj = nlohmann::ordered_json::parse(text);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: not valid JSON: {}", config_path, e.what()));
  }
  LoadedModel out;
  std::map<std::string, std::vector<float>> tensors;
  ModelConfig config;
  if (cj.is_object() && cj.contains("quantization_config")) {
    out.quantized = true;
    SP_ASSIGN_OR_RETURN(auto decoder, CheckpointDecoder::open(dir));
    config = decoder->desc().config;
    for (const ModelTensor& t : decoder->desc().tensors) {
      SP_ASSIGN_OR_RETURN(tensors[t.name], decoder->decode(t.name));
    }
  } else {
    SP_ASSIGN_OR_RETURN(Model m, open_model(dir));
    config = m.desc.config;
    for (const ModelTensor& t : m.desc.tensors) {
      const TensorRef* ref = m.files.find(t.name);
      SP_RETURN_IF_ERROR(check_finite(t.name, ref->view().bytes, t.stored.dtype, t.stored.shape));
      tensors[t.name] = to_float32(ref->view().bytes, t.stored.dtype);
      ref->release();
    }
  }
  SP_ASSIGN_OR_RETURN(out.model, language_model_from(config, std::move(tensors)));
  return out;
}

}  // namespace sp
