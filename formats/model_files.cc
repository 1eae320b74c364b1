#include "formats/model_files.h"

#include <filesystem>

#include "common/file_util.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

absl::Status bad_index(const std::string& path, const std::string& msg) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", path, msg));
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> parse_safetensors_index(std::string_view text,
                                                                           const std::string& label) {
  json index;
  try {
    index = json::parse(text);
  } catch (const json::exception& e) {
    return bad_index(label, fmt::format("not valid JSON: {}", e.what()));
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    return bad_index(label, "must be an object with a 'weight_map' object");
  if (index.contains("metadata") && !index["metadata"].is_object())
    return bad_index(label, "'metadata' must be an object");
  std::map<std::string, std::string> wanted;  // tensor -> file
  for (const auto& [tensor, file] : index["weight_map"].items()) {
    if (!file.is_string())
      return bad_index(label, fmt::format("weight_map entry '{}' must be a file name", tensor));
    const std::string fname = file.get<std::string>();
    if (fname.empty() || fname.find('/') != std::string::npos || fname == "." || fname == "..")
      return bad_index(label, fmt::format(
          "weight_map entry '{}' names '{}', which is not a plain file name in the folder", tensor, fname));
    wanted[tensor] = fname;
  }
  if (wanted.empty()) return bad_index(label, "weight_map is empty");
  return wanted;
}

absl::StatusOr<ModelFiles> ModelFiles::open(const std::string& dir, const std::string& root) {
  std::error_code ec;
  SP_RETURN_IF_ERROR(resolve_under(dir, root, "model").status());
  if (!fs::is_directory(dir, ec))
    return absl::NotFoundError(fmt::format("{}: not a folder", dir));
  ModelFiles m;
  m.dir_ = dir;
  const std::string index_path = (fs::path(dir) / kSafetensorsIndexName).string();
  const std::string single_path = (fs::path(dir) / kSafetensorsSingleName).string();

  if (!fs::exists(fs::symlink_status(index_path, ec))) {
    if (!fs::exists(fs::symlink_status(single_path, ec)))
      return absl::NotFoundError(fmt::format(
          "{}: no {} or {} (only safetensors checkpoints are supported)", dir,
          kSafetensorsSingleName, kSafetensorsIndexName));
    SP_ASSIGN_OR_RETURN(const std::string single, resolve_in(dir, kSafetensorsSingleName, root, "weight file"));
    SP_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(single));
    for (const auto& t : f->tensors()) m.tensors_.emplace(t.name, TensorRef{f.get(), &t});
    m.files_.push_back(std::move(f));
    return m;
  }

  m.sharded_ = true;
  SP_ASSIGN_OR_RETURN(const std::string index_file, resolve_in(dir, kSafetensorsIndexName, root, "index"));
  SP_ASSIGN_OR_RETURN(std::string text, read_file(index_file));
  SP_ASSIGN_OR_RETURN(const auto wanted, parse_safetensors_index(text, index_path));
  // Open each distinct shard once, in name order (deterministic).
  std::map<std::string, SafetensorsFile*> by_file;
  for (const auto& [tensor, fname] : wanted) by_file.emplace(fname, nullptr);
  for (auto& [fname, ptr] : by_file) {
    const std::string path = (fs::path(dir) / fname).string();
    if (!fs::exists(fs::symlink_status(path, ec)))
      return bad_index(index_path, fmt::format("names shard '{}', which does not exist", fname));
    SP_ASSIGN_OR_RETURN(const std::string shard, resolve_in(dir, fname, root, "weight file"));
    SP_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(shard));
    ptr = f.get();
    m.files_.push_back(std::move(f));
  }
  for (const auto& [tensor, fname] : wanted) {
    const SafetensorsFile* f = by_file.at(fname);
    const TensorInfo* info = f->find(tensor);
    if (!info)
      return bad_index(index_path, fmt::format("tensor '{}' is mapped to '{}' but that file does not hold it",
                                               tensor, fname));
    m.tensors_.emplace(tensor, TensorRef{f, info});
  }
  for (const auto& f : m.files_) {
    for (const auto& t : f->tensors()) {
      auto it = m.tensors_.find(t.name);
      if (it == m.tensors_.end() || it->second.file != f.get())
        return bad_index(index_path, fmt::format("tensor '{}' in '{}' is not listed for that file in weight_map",
                                                 t.name, fs::path(f->path()).filename().string()));
    }
  }
  return m;
}

void TensorRef::release() const { file->release(*info); }

const TensorRef* ModelFiles::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace sp
