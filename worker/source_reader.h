// Reading task inputs straight from the source model's files, when this machine sees them
// (same host, or a shared filesystem): each file is mapped once, and each tensor's bytes
// are checked against the digest the coordinator recorded at import before they are used.
//
// What was checked is remembered per file *as it is now* (device, inode, size, change
// times; not for files changed moments before the check, whose times may not move on a
// rewrite): a file that is replaced, rewritten or truncated is mapped and checked again, and
// two files holding the same bytes (two copies of a model, a fine-tune sharing tensors
// with its base) are separate entries. Anything that does not check out — a missing,
// unreadable, short or changed file, an offset past its end — is "not readable here"
// (nullopt), never an error or a crash: the caller fetches the blob instead.
//
// Thread-safety: safe for concurrent use; hashing runs outside the lock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>

#include "common/mapped_file.h"

namespace sp {

// Where an input's bytes are in a source file, and what they must hash to.
struct SourceRef {
  std::string file;
  uint64_t offset = 0;
  uint64_t nbytes = 0;
  std::string digest;
};

// Checked bytes at the source; `keep` holds the mapping alive while they are used.
struct SourceBytes {
  std::span<const uint8_t> bytes;
  std::shared_ptr<const MappedFile> keep;
};

class SourceReader {
 public:
  // The bytes of `ref`, when its file is visible here and they match its digest.
  std::optional<SourceBytes> read(const SourceRef& ref);
  // Drops the bytes of `ref` from this process's resident set (they stay in the page
  // cache); a no-op when the file is not mapped.
  void release(const SourceRef& ref);

 private:
  // What identifies a file's current contents without reading them.
  struct Identity {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t ctime_ns = 0, mtime_ns = 0;
    bool operator==(const Identity&) const = default;
  };
  struct Mapped {
    Identity id;
    std::shared_ptr<const MappedFile> map;
    std::set<std::tuple<uint64_t, uint64_t, std::string>> verified;  // (offset, nbytes, digest)
  };
  static std::optional<Identity> identity_of(const std::string& path);

  std::mutex mu_;
  std::map<std::string, Mapped> files_;
};

}  // namespace sp
