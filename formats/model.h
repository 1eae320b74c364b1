// Opening a Hugging Face model folder: config.json, the safetensors files, and the
// description that checks one against the other.
#pragma once

#include <string>

#include "formats/model_files.h"
#include "formats/model_layout.h"

namespace sp {

struct Model {
  ModelFiles files;
  ModelDescription desc;
};

// Reads DIR/config.json and the weights and checks that they match. Errors name the
// file, key or tensor. Every file must resolve inside `root` (checked before opening).
absl::StatusOr<Model> open_model(const std::string& dir, const std::string& root = kAnyRoot);

}  // namespace sp
