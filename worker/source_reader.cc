#include "worker/source_reader.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>

#include "common/digest.h"

namespace sp {

namespace {
// Filesystems keep change times to a tick (a few ms locally, 1 s on some network
// filesystems): a file changed within a tick of being checked may show the same
// identity. Only checks made this long after the file's last change are remembered.
constexpr int64_t kRacyNs = 2'000'000'000;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

std::optional<SourceReader::Identity> SourceReader::identity_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  Identity id;
  id.dev = static_cast<uint64_t>(st.st_dev);
  id.ino = static_cast<uint64_t>(st.st_ino);
  id.size = static_cast<uint64_t>(st.st_size);
  id.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return id;
}

std::optional<SourceBytes> SourceReader::read(const SourceRef& ref) {
  if (ref.file.empty()) return std::nullopt;
  const auto id = identity_of(ref.file);
  if (!id) return std::nullopt;  // gone, not a regular file, or not visible here
  uint64_t end = 0;
  if (__builtin_add_overflow(ref.offset, ref.nbytes, &end) || end > id->size) return std::nullopt;

  std::shared_ptr<const MappedFile> map;
  const auto key = std::make_tuple(ref.offset, ref.nbytes, ref.digest);
  {
    std::lock_guard lock(mu_);
    auto it = files_.find(ref.file);
    if (it == files_.end() || !(it->second.id == *id)) {
      // New, or changed since it was mapped: map it again and forget what was checked.
      auto mf = MappedFile::open(ref.file);
      if (!mf.ok()) {
        if (it != files_.end()) files_.erase(it);
        return std::nullopt;
      }
      Mapped m;
      m.id = *id;
      m.map = std::make_shared<const MappedFile>(std::move(*mf));
      it = files_.insert_or_assign(ref.file, std::move(m)).first;
    }
    map = it->second.map;
    // The mapping covers the size seen when it was made; the identity check above makes
    // sure the file has not shrunk since (it would fault on access).
    if (end > map->size()) return std::nullopt;
    if (it->second.verified.count(key)) return SourceBytes{map->bytes().subspan(ref.offset, ref.nbytes), map};
  }
  const int64_t checked_ns = now_ns();
  const std::span<const uint8_t> bytes = map->bytes().subspan(ref.offset, ref.nbytes);
  if (digest_hex(bytes) != ref.digest) return std::nullopt;  // changed since the import
  if (std::max(id->mtime_ns, id->ctime_ns) + kRacyNs < checked_ns) {
    std::lock_guard lock(mu_);
    auto it = files_.find(ref.file);
    if (it != files_.end() && it->second.map == map) it->second.verified.insert(key);
  }
  return SourceBytes{bytes, map};
}

void SourceReader::release(const SourceRef& ref) {
  std::lock_guard lock(mu_);
  auto it = files_.find(ref.file);
  if (it == files_.end()) return;
  const MappedFile& mf = *it->second.map;
  uint64_t end = 0;
  if (__builtin_add_overflow(ref.offset, ref.nbytes, &end) || end > mf.size()) return;
  mf.release(mf.bytes().subspan(ref.offset, ref.nbytes));
}

}  // namespace sp
