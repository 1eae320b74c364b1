// Shared CLI plumbing: exit codes, status -> exit code, plain-text tables.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace sp::cli {

// Exit codes scripts can rely on.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,       // the job failed / the checkpoint is corrupt
  kExitBadInput = 2,     // bad input or usage
  kExitUnreachable = 3,  // cannot reach the coordinator
};

// Prints "shardpress: <message>" to stderr and returns the exit code for `s`.
int report_error(const absl::Status& s);

// A left-aligned text table with a header row.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// True when stderr is a terminal (progress bars only then).
bool stderr_is_tty();
// The terminal's height in lines (stderr's), or 0 when it is not a terminal.
int terminal_rows();

}  // namespace sp::cli
