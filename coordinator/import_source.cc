#include "coordinator/import_source.h"

#include <filesystem>

#include "common/file_util.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace sp {

namespace fs = std::filesystem;

bool is_quantized_checkpoint(const std::string& dir, const std::string& root) {
  auto path = resolve_in(dir, "config.json", root, "config.json");
  if (!path.ok()) return false;
  auto text = read_file(*path);
  if (!text.ok()) return false;
  const auto j = nlohmann::json::parse(*text, nullptr, false);
  return !j.is_discarded() && j.is_object() && j.contains("quantization_config");
}

absl::StatusOr<std::unique_ptr<ImportSource>> ImportSource::open(const std::string& dir, const std::string& root,
                                                                 bool allow_checkpoint) {
  std::unique_ptr<ImportSource> s(new ImportSource());
  if (allow_checkpoint && is_gguf_file(dir)) {  // a GGUF file (prepare resolved its path inside the root)
    SP_ASSIGN_OR_RETURN(s->gguf_, GgufModel::open(dir));
    return s;
  }
  if (allow_checkpoint && is_quantized_checkpoint(dir, root)) {
    SP_ASSIGN_OR_RETURN(s->decoder_, CheckpointDecoder::open(dir, root));
    return s;
  }
  SP_ASSIGN_OR_RETURN(Model m, open_model(dir, root));
  s->model_ = std::make_unique<Model>(std::move(m));
  return s;
}

const ModelDescription& ImportSource::desc() const {
  return gguf_ ? gguf_->desc() : decoder_ ? decoder_->desc() : model_->desc;
}

absl::StatusOr<ImportSource::Tensor> ImportSource::read(const std::string& name) {
  if (gguf_ || decoder_) {
    if (gguf_) {
      if (!gguf_->desc().find(name)) return absl::NotFoundError(fmt::format("{}: not in the model", name));
      scratch_ = gguf_->decode(name);
    } else {
      SP_ASSIGN_OR_RETURN(scratch_, decoder_->decode(name));
    }
    return Tensor{{reinterpret_cast<const uint8_t*>(scratch_.data()), scratch_.size() * sizeof(float)}, DType::kF32, "",
                  0};
  }
  const TensorRef* ref = model_->files.find(name);
  const ModelTensor* mt = model_->desc.find(name);
  if (!ref || !mt) return absl::NotFoundError(fmt::format("{}: not in the model", name));
  return Tensor{ref->view().bytes, mt->stored.dtype, ref->file->path(), ref->file_offset()};
}

void ImportSource::release(const std::string& name) {
  if (gguf_ || decoder_) {
    scratch_.clear();
    scratch_.shrink_to_fit();
  } else if (const TensorRef* ref = model_->files.find(name)) {
    ref->release();  // the coordinator streams the model: it never keeps it resident
  }
}

}  // namespace sp
