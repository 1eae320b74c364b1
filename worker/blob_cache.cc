#include "worker/blob_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <thread>
#include <vector>

#include "common/digest.h"
#include "common/file_util.h"
#include "fmt/format.h"

namespace sp {

namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<BlobCache>> BlobCache::open(const std::string& dir, uint64_t capacity) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(fmt::format("{}: cannot create cache folder: {}", dir, ec.message()));
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().find(".part") != std::string::npos) fs::remove(e.path(), ec);
  return std::unique_ptr<BlobCache>(new BlobCache(dir, capacity));
}

std::string BlobCache::path_of(const std::string& digest) const { return (fs::path(dir_) / digest).string(); }

bool BlobCache::contains(const std::string& digest) const {
  std::error_code ec;
  return fs::exists(path_of(digest), ec);
}

absl::StatusOr<MappedFile> BlobCache::open_blob(const std::string& digest) {
  const std::string p = path_of(digest);
  auto mf = MappedFile::open(p);
  if (!mf.ok()) return absl::NotFoundError(fmt::format("blob {} not cached", digest));
  if (digest_hex(mf->bytes()) != digest) {
    std::error_code ec;
    fs::remove(p, ec);
    return absl::NotFoundError(fmt::format("cached blob {} was corrupt and has been dropped", digest));
  }
  std::error_code ec;
  fs::last_write_time(p, fs::file_time_type::clock::now(), ec);  // LRU: mark as used
  return mf;
}

absl::Status BlobCache::insert(
    const std::string& digest,
    const std::function<absl::Status(const std::function<absl::Status(std::span<const uint8_t>)>&)>& fill) {
  const std::string tmp = path_of(digest) + fmt::format(".part.{}.{}", ::getpid(), std::hash<std::thread::id>()(std::this_thread::get_id()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(fmt::format("{}: cannot create", tmp));
  Digester h;
  uint64_t size = 0;
  absl::Status st = fill([&](std::span<const uint8_t> b) -> absl::Status {
    h.update(b);
    size += b.size();
    const uint8_t* p = b.data();
    size_t n = b.size();
    while (n > 0) {
      const ssize_t w = ::write(fd, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return absl::UnavailableError(fmt::format("{}: write failed (disk full?)", tmp));
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return absl::OkStatus();
  });
  ::close(fd);
  if (st.ok() && h.hex() != digest)
    st = absl::DataLossError(fmt::format("blob {}: received bytes hash to {}", digest, h.hex()));
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  std::lock_guard lock(mu_);
  evict_locked(size);
  if (::rename(tmp.c_str(), path_of(digest).c_str()) != 0) {
    ::unlink(tmp.c_str());
    return absl::UnavailableError(fmt::format("{}: cannot rename into the cache", tmp));
  }
  return absl::OkStatus();
}

void BlobCache::evict_locked(uint64_t incoming) {
  std::error_code ec;
  struct Entry {
    fs::path path;
    fs::file_time_type used;
    uint64_t size;
  };
  std::vector<Entry> entries;
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (!e.is_regular_file() || e.path().filename().string().find('.') != std::string::npos) continue;
    entries.push_back({e.path(), e.last_write_time(ec), e.file_size(ec)});
    total += entries.back().size;
  }
  if (total + incoming <= capacity_) return;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.used < b.used; });
  for (const auto& e : entries) {
    if (total + incoming <= capacity_) break;
    fs::remove(e.path, ec);  // an open mapping stays valid after unlink
    total -= e.size;
  }
}

uint64_t BlobCache::used_bytes() const {
  std::lock_guard lock(mu_);
  std::error_code ec;
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.is_regular_file()) total += e.file_size(ec);
  return total;
}

}  // namespace sp
