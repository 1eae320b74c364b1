// Blob transfer over loopback gRPC between an in-process coordinator and a worker client:
// PutBlob (worker -> coordinator, into RocksDB) and FetchBlob (coordinator -> worker cache).
//   build/bin/bench_blob_transfer [MiB]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "common/digest.h"
#include "coordinator/runtime.h"
#include "worker/blob_cache.h"
#include "worker/coordinator_client.h"

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::stoul(argv[1]) : 512;
  const std::string dir = (std::filesystem::temp_directory_path() / "shardpress-blob-bench").string();
  std::filesystem::remove_all(dir);
  sp::SystemClock clock;
  sp::RuntimeOptions ro;
  ro.listen = "127.0.0.1:0";
  ro.core.data_dir = dir + "/coordinator";
  auto rt = sp::CoordinatorRuntime::start(ro, clock);
  if (!rt.ok()) return 1;
  std::vector<uint8_t> data(mib << 20);
  std::mt19937_64 rng(7);
  for (size_t i = 0; i + 8 <= data.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(data.data() + i, &v, 8);
  }
  const std::string digest = sp::digest_hex(data);
  sp::CoordinatorClient client((*rt)->address());
  auto t0 = std::chrono::steady_clock::now();
  auto st = client.put(digest, data);
  const double put_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!st.ok()) {
    std::fprintf(stderr, "put: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  auto cache = sp::BlobCache::open(dir + "/cache", 4ull << 30);
  t0 = std::chrono::steady_clock::now();
  st = client.fetch(digest, "bench", **cache);
  const double fetch_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!st.ok()) {
    std::fprintf(stderr, "fetch: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  std::printf("blob of %zu MiB over loopback gRPC: put %.2f GB/s (%.2f s), fetch %.2f GB/s (%.2f s)\n", mib,
              data.size() / put_s / 1e9, put_s, data.size() / fetch_s / 1e9, fetch_s);
  (*rt)->stop();
  std::filesystem::remove_all(dir);
  return 0;
}
