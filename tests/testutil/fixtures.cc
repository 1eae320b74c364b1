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

CliResult run_cli(const std::vector<std::string>& args) {
  TempDir tmp;
  const std::string out_path = tmp / "out", err_path = tmp / "err";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> argv;
    std::string bin = SP_CLI_PATH;
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

}  // namespace sp::test
