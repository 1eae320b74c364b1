#include "formats/model.h"

namespace sp {

absl::StatusOr<Model> open_model(const std::string& dir, const std::string& root) {
  SP_ASSIGN_OR_RETURN(ModelConfig config, load_model_config(dir, root));
  SP_ASSIGN_OR_RETURN(ModelFiles files, ModelFiles::open(dir, root));
  std::map<std::string, TensorShape> actual;
  for (const auto& [name, ref] : files.tensors()) actual[name] = TensorShape{ref.info->dtype, ref.info->shape};
  SP_ASSIGN_OR_RETURN(ModelDescription desc, describe_model(config, actual, dir));
  return Model{std::move(files), std::move(desc)};
}

}  // namespace sp
