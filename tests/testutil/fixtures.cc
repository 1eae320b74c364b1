#include "tests/testutil/fixtures.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "nlohmann/json.hpp"

#include "gtest/gtest.h"

namespace sp::test {
namespace fs = std::filesystem;

std::string shared_dir() {
  const char* env = std::getenv("SHARDPRESS_SHARED_DIR");
  return env && *env ? env : SP_SHARED_DIR;
}

std::string fixture(const std::string& rel) {
  const std::string p = shared_dir() + "/fixtures/" + rel;
  if (!fs::exists(p)) ADD_FAILURE() << "fixture missing: " << p << " (is ../shared beside the checkout?)";
  return p;
}

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "shardpress-test-XXXXXX").string();
  char* p = ::mkdtemp(tmpl.data());
  if (!p) ADD_FAILURE() << "mkdtemp failed";
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  // Make everything writable again (tests may chmod) before removing.
  fs::remove_all(path_, ec);
}

static std::string slurp_fd(int fd) {
  std::string s;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

CliResult run_cli(const std::vector<std::string>& args) { return run_program(SP_CLI_PATH, args); }

std::string llama_tool(const std::string& name) {
  const std::string path = shared_dir() + "/tools/llama.cpp/bin/" + name;
  return ::access(path.c_str(), X_OK) == 0 ? path : "";
}

CliResult run_program(const std::string& program, const std::vector<std::string>& args) {
  TempDir tmp;
  const std::string out_path = tmp / "out", err_path = tmp / "err";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> argv;
    std::string bin = program;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    std::_Exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  const int o = ::open(out_path.c_str(), O_RDONLY), e = ::open(err_path.c_str(), O_RDONLY);
  r.out = slurp_fd(o);
  r.err = slurp_fd(e);
  ::close(o);
  ::close(e);
  return r;
}

std::vector<uint8_t> as_bytes(const TensorView& v) { return {v.bytes.begin(), v.bytes.end()}; }

void write_bytes(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void set_config_keys(const std::string& model_dir, const nlohmann::json& keys) {
  const std::string path = model_dir + "/config.json";
  const std::vector<uint8_t> bytes = read_bytes(path);
  nlohmann::json cfg = nlohmann::json::parse(bytes.begin(), bytes.end());
  cfg.update(keys);
  std::filesystem::remove(path);  // the fixture may be a read-only copy
  write_text(path, cfg.dump(2));
}

nlohmann::json llama3_rope_scaling(double factor, int original_max_position_embeddings) {
  return {{"rope_type", "llama3"}, {"factor", factor}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
          {"original_max_position_embeddings", original_max_position_embeddings}};
}

void write_exaone32b_headers(const std::string& dir, int layers) {
  nlohmann::json cfg = {{"architectures", {"Exaone4ForCausalLM"}}, {"model_type", "exaone4"}, {"hidden_size", 5120},
              {"intermediate_size", 27392}, {"num_hidden_layers", layers}, {"num_attention_heads", 40},
              {"num_key_value_heads", 8}, {"head_dim", 128}, {"vocab_size", 102400},
              {"tie_word_embeddings", false}, {"sliding_window", 4096}, {"sliding_window_pattern", "LLLG"},
              {"torch_dtype", "bfloat16"}};
  write_text(dir + "/config.json", cfg.dump());
  std::vector<std::pair<std::string, std::vector<int64_t>>> t = {{"model.embed_tokens.weight", {102400, 5120}}};
  for (int i = 0; i < layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (auto [n, s] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
             {"self_attn.q_proj.weight", {5120, 5120}}, {"self_attn.k_proj.weight", {1024, 5120}},
             {"self_attn.v_proj.weight", {1024, 5120}}, {"self_attn.o_proj.weight", {5120, 5120}},
             {"self_attn.q_norm.weight", {128}}, {"self_attn.k_norm.weight", {128}},
             {"post_attention_layernorm.weight", {5120}}, {"mlp.gate_proj.weight", {27392, 5120}},
             {"mlp.up_proj.weight", {27392, 5120}}, {"mlp.down_proj.weight", {5120, 27392}},
             {"post_feedforward_layernorm.weight", {5120}}})
      t.push_back({p + n, s});
  }
  t.push_back({"model.norm.weight", {5120}});
  t.push_back({"lm_head.weight", {102400, 5120}});
  nlohmann::json header = nlohmann::json::object();
  uint64_t pos = 0;
  for (const auto& [n, s] : t) {
    uint64_t bytes = 2;
    for (auto x : s) bytes *= static_cast<uint64_t>(x);
    header[n] = {{"dtype", "BF16"}, {"shape", s}, {"data_offsets", {pos, pos + bytes}}};
    pos += bytes;
  }
  std::string text = header.dump();
  std::vector<uint8_t> head(8);
  const uint64_t len = text.size();
  std::memcpy(head.data(), &len, 8);
  head.insert(head.end(), text.begin(), text.end());
  write_bytes(dir + "/model.safetensors", head);
  std::filesystem::resize_file(dir + "/model.safetensors", head.size() + pos);  // sparse data section
}

}  // namespace sp::test
