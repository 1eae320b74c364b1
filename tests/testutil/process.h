// Real processes for end-to-end tests: start with extra environment and a log file,
// kill (SIGKILL/SIGTERM), wait. The destructor kills what is still running.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace sp::test {

class Process {
 public:
  Process(const std::string& binary, const std::vector<std::string>& args,
          const std::map<std::string, std::string>& env, const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  void kill(int sig);
  // Waits up to `timeout_ms`; returns the exit code (128+signal), or -1 on timeout.
  int wait(int timeout_ms = 10'000);
  bool running();
  const std::string& log_path() const { return log_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_;
};

// Directory of build/bin (next to the CLI).
std::string bin_dir();

}  // namespace sp::test
