#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>

#include "common/mapped_file.h"

namespace sp {
namespace {

absl::Status io_error(const std::string& what, const std::string& path, int err) {
  std::string msg = path + ": " + what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::UnavailableError(msg);
}

absl::Status write_all(int fd, const uint8_t* p, size_t n, uint64_t offset, const std::string& path,
                       WriteBudget* budget = nullptr) {
  if (budget && !budget->take(n)) return io_error("write failed", path, ENOSPC);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_error("write failed", path, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return absl::OkStatus();
}

std::string parent_dir(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

absl::Status fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open folder", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return io_error("fsync failed", dir, err);
  return absl::OkStatus();
}

absl::Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot create", tmp, errno);
  absl::Status st = write_all(fd, bytes.data(), bytes.size(), 0, tmp);
  if (st.ok() && ::fsync(fd) != 0) st = io_error("fsync failed", tmp, errno);
  if (::close(fd) != 0 && st.ok()) st = io_error("close failed", tmp, errno);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    st = io_error("cannot rename into place", path, errno);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return fsync_dir(parent_dir(path));
}

absl::Status write_file(const std::string& path, std::span<const uint8_t> bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot create", path, errno);
  absl::Status st = write_all(fd, bytes.data(), bytes.size(), 0, path);
  if (::close(fd) != 0 && st.ok()) st = io_error("close failed", path, errno);
  if (!st.ok()) ::unlink(path.c_str());
  return st;
}

absl::Status write_file_atomic(const std::string& path, std::string_view text) {
  return write_file_atomic(
      path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

absl::StatusOr<std::string> read_file(const std::string& path) {
  SP_ASSIGN_OR_RETURN(MappedFile mf, MappedFile::open(path));
  auto b = mf.bytes();
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

absl::Status copy_file_synced(const std::string& src, const std::string& dst) {
  SP_ASSIGN_OR_RETURN(MappedFile in, MappedFile::open(src));
  const int fd = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot create", dst, errno);
  absl::Status st = write_all(fd, in.bytes().data(), in.size(), 0, dst);
  if (st.ok() && ::fsync(fd) != 0) st = io_error("fsync failed", dst, errno);
  if (::close(fd) != 0 && st.ok()) st = io_error("close failed", dst, errno);
  if (!st.ok()) ::unlink(dst.c_str());
  return st;
}

absl::StatusOr<PositionalFile> PositionalFile::create(const std::string& path, uint64_t size,
                                                     std::shared_ptr<WriteBudget> budget) {
  PositionalFile f;
  f.budget_ = std::move(budget);
  f.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd_ < 0) return io_error("cannot create", path, errno);
  f.path_ = path;
  if (size > 0) {
    // Reserve the blocks now so that a full disk shows up here, not mid-write.
    int rc = ::posix_fallocate(f.fd_, 0, static_cast<off_t>(size));
    if (rc == EOPNOTSUPP || rc == EINVAL) rc = ::ftruncate(f.fd_, static_cast<off_t>(size)) ? errno : 0;
    if (rc != 0) return io_error("cannot allocate " + std::to_string(size) + " bytes", path, rc);
  }
  return f;
}

void PositionalFile::start_writeback(uint64_t offset, uint64_t len) {
  (void)::sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(len), SYNC_FILE_RANGE_WRITE);
}

absl::Status PositionalFile::truncate(uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return io_error("cannot truncate", path_, errno);
  return absl::OkStatus();
}

PositionalFile::PositionalFile(PositionalFile&& o) noexcept
    : path_(std::move(o.path_)), fd_(std::exchange(o.fd_, -1)), budget_(std::move(o.budget_)) {}

PositionalFile& PositionalFile::operator=(PositionalFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    budget_ = std::move(o.budget_);
  }
  return *this;
}

PositionalFile::~PositionalFile() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status PositionalFile::write_at(uint64_t offset, std::span<const uint8_t> bytes) {
  if (fd_ < 0) return absl::FailedPreconditionError(path_ + ": file is closed");
  return write_all(fd_, bytes.data(), bytes.size(), offset, path_, budget_.get());
}

absl::Status PositionalFile::sync_and_close() {
  if (fd_ < 0) return absl::OkStatus();
  absl::Status st;
  if (::fsync(fd_) != 0) st = io_error("fsync failed", path_, errno);
  if (::close(fd_) != 0 && st.ok()) st = io_error("close failed", path_, errno);
  fd_ = -1;
  return st;
}

}  // namespace sp
