#include "checkpoint/assembler.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/digest.h"
#include "common/file_util.h"
#include "fmt/format.h"

namespace sp {
namespace {
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;
}  // namespace

bool is_tokenizer_or_generation_file(std::string_view f) {
  if (f.starts_with("tokenizer") && !f.ends_with(".safetensors")) return true;  // .json, .model, _config.json
  for (std::string_view exact : {"special_tokens_map.json", "generation_config.json", "added_tokens.json",
                                 "vocab.json", "vocab.txt", "merges.txt", "chat_template.json",
                                 "chat_template.jinja", "preprocessor_config.json"})
    if (f == exact) return true;
  return f.ends_with(".tiktoken");
}

absl::StatusOr<std::unique_ptr<CheckpointAssembler>> CheckpointAssembler::create(
    const std::string& out_dir, std::vector<TensorGroup> groups, AssembleOptions options) {
  std::error_code ec;
  fs::path out = fs::path(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  if (fs::exists(out, ec) && !options.replace_existing)
    return absl::FailedPreconditionError(fmt::format(
        "output folder {} already exists; choose a new folder (nothing is overwritten)", out.string()));
  fs::path parent = out.parent_path();
  if (parent.empty()) parent = ".";
  fs::create_directories(parent, ec);
  if (ec) return absl::UnavailableError(fmt::format("{}: cannot create folder: {}", parent.string(), ec.message()));

  std::unique_ptr<CheckpointAssembler> a(new CheckpointAssembler());
  a->out_dir_ = out.string();
  a->options_ = std::move(options);
  // Deterministic name: a run that restarts after a crash removes the stale one.
  a->partial_dir_ = (parent / fmt::format(".{}.partial", out.filename().string())).string();
  fs::remove_all(a->partial_dir_, ec);
  if (!fs::create_directory(a->partial_dir_, ec))
    return absl::UnavailableError(fmt::format("{}: cannot create folder: {}", a->partial_dir_, ec.message()));
  SafetensorsWriter::Options wo;
  wo.max_shard_bytes = a->options_.max_shard_bytes;
  if (a->options_.fail_writes_after_bytes > 0)
    wo.write_budget = std::make_shared<WriteBudget>(a->options_.fail_writes_after_bytes);
  SP_ASSIGN_OR_RETURN(a->writer_, SafetensorsWriter::create(a->partial_dir_, std::move(groups), wo));
  return a;
}

CheckpointAssembler::~CheckpointAssembler() {
  writer_.reset();
  if (!finished_ && !partial_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(partial_dir_, ec);
  }
}

absl::Status CheckpointAssembler::write(std::string_view name, std::span<const uint8_t> bytes,
                                        std::string known_digest) {
  SP_RETURN_IF_ERROR(writer_->write(name, bytes));
  digests_[std::string(name)] = known_digest.empty() ? digest_hex(bytes) : std::move(known_digest);
  return absl::OkStatus();
}

absl::Status CheckpointAssembler::finish() {
  if (finished_) return absl::OkStatus();
  SP_RETURN_IF_ERROR(writer_->finish());
  const fs::path dir(partial_dir_);
  ojson files = ojson::object();

  ojson config = options_.config;
  if (options_.quantization) config["quantization_config"] = bnb_quantization_config(*options_.quantization);
  const std::string config_text = config.dump(2) + "\n";
  SP_RETURN_IF_ERROR(write_file_atomic((dir / "config.json").string(), config_text));
  files["config.json"] = digest_hex({reinterpret_cast<const uint8_t*>(config_text.data()), config_text.size()});

  if (!options_.source_dir.empty()) {
    std::error_code ec;
    std::vector<std::string> names;
    const fs::path source = fs::canonical(options_.source_dir, ec);
    for (const auto& e : fs::directory_iterator(options_.source_dir, ec)) {
      if (!e.is_regular_file() || !is_tokenizer_or_generation_file(e.path().filename().string())) continue;
      // Confinement: a symlink pointing out of the model folder is not followed.
      const fs::path real = fs::canonical(e.path(), ec);
      if (ec || real.parent_path() != source) continue;
      names.push_back(e.path().filename().string());
    }
    if (ec) return absl::UnavailableError(fmt::format("{}: cannot list: {}", options_.source_dir, ec.message()));
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      SP_RETURN_IF_ERROR(copy_file_synced((fs::path(options_.source_dir) / n).string(), (dir / n).string()));
      SP_ASSIGN_OR_RETURN(std::string text, read_file((dir / n).string()));
      files[n] = digest_hex({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    }
  }

  ojson manifest = ojson::object();
  manifest["format"] = kManifestFormat;
  manifest["digest"] = "xxh3-128";
  if (!options_.provenance.is_null()) manifest["source"] = options_.provenance;
  if (!options_.compression.is_null()) manifest["compression"] = options_.compression;
  ojson tensors = ojson::object();
  for (const auto& [name, digest] : digests_)
    tensors[name] = {{"file", writer_->shard_of(name)}, {"digest", digest}};
  manifest["tensors"] = std::move(tensors);
  manifest["files"] = std::move(files);
  SP_RETURN_IF_ERROR(write_file_atomic((dir / kManifestName).string(), manifest.dump(1) + "\n"));
  SP_RETURN_IF_ERROR(fsync_dir(partial_dir_));

  std::string replaced;
  std::error_code ec;
  if (options_.replace_existing && fs::exists(out_dir_, ec)) {
    const fs::path out(out_dir_);
    replaced = (out.parent_path() / fmt::format(".{}.replaced-{}", out.filename().string(), ::getpid())).string();
    if (std::rename(out_dir_.c_str(), replaced.c_str()) != 0)
      return absl::UnavailableError(fmt::format("{}: cannot move the old output aside: {}", out_dir_, std::strerror(errno)));
  }
  if (std::rename(partial_dir_.c_str(), out_dir_.c_str()) != 0) {
    const int err = errno;
    if (!replaced.empty()) std::rename(replaced.c_str(), out_dir_.c_str());  // put the old one back
    return absl::UnavailableError(fmt::format("{}: cannot rename {} into place: {}", out_dir_, partial_dir_,
                                              std::strerror(err)));
  }
  finished_ = true;
  if (!replaced.empty()) fs::remove_all(replaced, ec);
  fs::path parent = fs::path(out_dir_).parent_path();
  return fsync_dir(parent.empty() ? "." : parent.string());
}

}  // namespace sp
