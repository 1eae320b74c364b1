// libFuzzer: a blob upload stream in any order and size, into a real RocksDB blob store.
// Input: 1 byte digest mode, 2 bytes announced size, then chunk lengths (1 byte) and
// bytes. A blob becomes visible only if its bytes match its digest.
#include <filesystem>

#include "common/digest.h"
#include "coordinator/blob_store.h"
#include "coordinator/rocksdb_store.h"

namespace {
sp::BlobStore& store() {
  static auto dir = std::filesystem::temp_directory_path() / ("shardpress-fuzz-blobs-" + std::to_string(::getpid()));
  static auto s = *sp::RocksStateStore::open(dir.string());
  static sp::SystemClock clock;
  static sp::BlobStore blobs(s.get(), clock);
  return blobs;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t mode = data[0];
  const uint64_t announced = data[1] | (static_cast<uint64_t>(data[2]) << 8);
  std::vector<std::vector<uint8_t>> chunks;
  std::vector<uint8_t> all;
  for (size_t i = 3; i < size;) {
    const size_t n = std::min<size_t>(data[i], size - i - 1);
    chunks.emplace_back(data + i + 1, data + i + 1 + n);
    all.insert(all.end(), data + i + 1, data + i + 1 + n);
    i += 1 + n;
  }
  // mode 0: the right digest of the bytes; otherwise a digest of something else.
  const std::string digest = mode % 2 == 0 ? sp::digest_hex(all) : sp::digest_hex(std::span(data, 1));
  auto w = store().begin(digest, announced);
  absl::Status st;
  for (const auto& c : chunks)
    if (st = w->append(c); !st.ok()) break;
  if (st.ok()) st = w->finish();
  const bool match = digest == sp::digest_hex(all) && announced == all.size();
  if (st.ok() != match) __builtin_trap();  // accepted exactly when bytes and size match
  if (st.ok()) {
    auto back = store().read_all(digest);
    if (!back.ok() || *back != all) __builtin_trap();
  }
  return 0;
}
