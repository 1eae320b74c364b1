// Test helpers: paths to ../shared fixtures, temporary folders, running the CLI.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "nlohmann/json.hpp"

namespace sp::test {

// ../shared beside the checkout (SHARDPRESS_SHARED_DIR overrides).
std::string shared_dir();
// shared/fixtures/<rel>; the test fails (not skips) when fixtures are missing.
std::string fixture(const std::string& rel);

// A fresh empty folder, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs build/bin/shardpress with `args`, capturing stdout and stderr.
CliResult run_cli(const std::vector<std::string>& args);
// Runs `program` (a path) with `args`, capturing stdout and stderr.
CliResult run_program(const std::string& program, const std::vector<std::string>& args);
// shared/tools/llama.cpp/bin/<name>, or "" where the tools are absent (tests skip then).
std::string llama_tool(const std::string& name);

// Tensor contents as raw bytes.
std::vector<uint8_t> as_bytes(const TensorView& v);

// Writes a file (test data).
void write_bytes(const std::string& path, std::span<const uint8_t> bytes);
void write_text(const std::string& path, const std::string& text);
std::vector<uint8_t> read_bytes(const std::string& path);

// Sets `keys` (a JSON object) in `model_dir`/config.json, replacing what was there.
void set_config_keys(const std::string& model_dir, const nlohmann::json& keys);
// config.json's rope_scaling for Llama-3 RoPE (low_freq_factor 1, high_freq_factor 4).
nlohmann::json llama3_rope_scaling(double factor, int original_max_position_embeddings);

// A model folder with EXAONE-4.0-32B's real shapes and `layers` of its 64 layers: config.json
// and a safetensors file whose data section is sparse (header + ftruncate), so it costs no
// disk. Enough for inspect, simulate and planning; its weights read as zeros.
void write_exaone32b_headers(const std::string& dir, int layers);

}  // namespace sp::test
