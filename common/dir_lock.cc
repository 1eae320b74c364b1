#include "common/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "fmt/format.h"

namespace sp {

namespace {
namespace fs = std::filesystem;

std::string host_name() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

void write_description(int fd, const std::string& who) {
  const std::string text = fmt::format("{}, pid {} on {}\n", who, ::getpid(), host_name());
  if (::ftruncate(fd, 0) != 0) return;
  [[maybe_unused]] const ssize_t n = ::pwrite(fd, text.data(), text.size(), 0);
}
}  // namespace

absl::StatusOr<DirLock> DirLock::acquire(const std::string& dir, const std::string& who) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    return absl::InvalidArgumentError(fmt::format("{} is not a folder", dir));
  fs::create_directories(dir, ec);
  if (ec) return absl::InvalidArgumentError(fmt::format("{}: cannot create the folder: {}", dir, ec.message()));
  const std::string path = (fs::path(dir) / ".lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return absl::InvalidArgumentError(fmt::format("{}: cannot open its lock file: {}", dir, std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[512] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "another process";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    if (err == EWOULDBLOCK)
      return absl::FailedPreconditionError(fmt::format("{} is in use by {}; stop it first or use another folder", dir, holder));
    return absl::InvalidArgumentError(fmt::format("{}: cannot lock it: {}", dir, std::strerror(err)));
  }
  DirLock lock;
  lock.fd_ = fd;
  write_description(fd, who);
  return lock;
}

DirLock::DirLock(DirLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}

DirLock& DirLock::operator=(DirLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

void DirLock::describe(const std::string& who) {
  if (fd_ >= 0) write_description(fd_, who);
}

}  // namespace sp
