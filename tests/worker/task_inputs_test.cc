// A worker's inputs from source files, its cache and the coordinator: every combination
// of digests, files and cache contents gives the right bytes or an error — never a crash
// (issue 11: the same bytes verified in one file and then asked for from another aborted
// the worker with std::out_of_range).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <map>
#include <random>

#include "common/digest.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"
#include "worker/source_reader.h"
#include "worker/task_inputs.h"

namespace sp {
namespace {

namespace fs = std::filesystem;
using shardpress::v1::TensorMeta;

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

std::vector<uint8_t> bytes_of(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

// A "model file": 16 header bytes, then the tensor.
SourceRef write_source(const std::string& path, const std::vector<uint8_t>& tensor) {
  std::vector<uint8_t> file(16, 0xAB);
  file.insert(file.end(), tensor.begin(), tensor.end());
  test::write_bytes(path, file);
  return SourceRef{path, 16, tensor.size(), digest_hex(tensor)};
}

TEST(SourceReader, SameBytesInTwoFilesAreReadFromEachFile) {
  test::TempDir d;
  const auto t = pattern(4096, 3);
  const SourceRef a = write_source(d / "a.safetensors", t), b = write_source(d / "b.safetensors", t);
  SourceReader r;
  auto ra = r.read(a);
  ASSERT_TRUE(ra);
  EXPECT_EQ(bytes_of(ra->bytes), t);
  auto rb = r.read(b);  // the digest is known, the file is new: mapped and checked
  ASSERT_TRUE(rb);
  EXPECT_EQ(bytes_of(rb->bytes), t);
  EXPECT_NE(ra->bytes.data(), rb->bytes.data());
  fs::remove(d / "a.safetensors");  // a held mapping stays valid; the next read sees it gone
  EXPECT_EQ(bytes_of(ra->bytes), t);
  EXPECT_FALSE(r.read(a));
  EXPECT_TRUE(r.read(b));
}

TEST(SourceReader, AFileChangedTruncatedOrReplacedIsCheckedAgain) {
  test::TempDir d;
  const auto t = pattern(8192, 5);
  const SourceRef ref = write_source(d / "m.safetensors", t);
  SourceReader r;
  ASSERT_TRUE(r.read(ref));
  auto other = t;
  other[100] ^= 1;
  write_source(d / "m.safetensors", other);  // same size, other bytes
  EXPECT_FALSE(r.read(ref));
  write_source(d / "m.safetensors", t);  // restored
  EXPECT_TRUE(r.read(ref));
  ASSERT_EQ(::truncate((d / "m.safetensors").c_str(), 100), 0);  // shorter than offset + nbytes
  EXPECT_FALSE(r.read(ref));
  write_source(d / "tmp", t);
  fs::rename(d / "tmp", d / "m.safetensors");  // replaced by a new inode with the right bytes
  EXPECT_TRUE(r.read(ref));
}

// An old file's check is remembered; rewriting it in place and putting its old times back
// still changes its change time (ctime, which nobody can set), so it is checked again.
TEST(SourceReader, AnOldFileRewrittenWithItsTimesPutBackIsCheckedAgain) {
  test::TempDir d;
  const auto t = pattern(2048, 8);
  const SourceRef ref = write_source(d / "old.safetensors", t);
  const struct timespec old[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, ref.file.c_str(), old, 0), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // the ctime too is older than the check
  SourceReader r;
  ASSERT_TRUE(r.read(ref));
  ASSERT_TRUE(r.read(ref));  // remembered
  auto other = t;
  other[5] ^= 0x10;
  write_source(ref.file, other);
  ASSERT_EQ(::utimensat(AT_FDCWD, ref.file.c_str(), old, 0), 0);
  EXPECT_FALSE(r.read(ref));
}

TEST(SourceReader, WhatCannotBeReadIsNotReadableHere) {
  test::TempDir d;
  const auto t = pattern(512, 9);
  const SourceRef ok = write_source(d / "m.safetensors", t);
  fs::create_directories(d / "dir");
  SourceReader r;
  for (SourceRef bad : {SourceRef{"", 0, 1, ok.digest}, SourceRef{d / "missing", 16, 512, ok.digest},
                        SourceRef{d / "dir", 0, 0, digest_hex({})}, SourceRef{"/proc/self/mem", 0, 8, ok.digest},
                        SourceRef{ok.file, UINT64_MAX - 4, 512, ok.digest}, SourceRef{ok.file, 17, 512, ok.digest},
                        SourceRef{ok.file, 16, UINT64_MAX, ok.digest}, SourceRef{ok.file, 16, 512, "nothex"}})
    EXPECT_FALSE(r.read(bad)) << bad.file << " @" << bad.offset << "+" << bad.nbytes;
  auto empty = r.read(SourceRef{ok.file, 16, 0, digest_hex({})});
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->bytes.empty());
  EXPECT_TRUE(r.read(ok));
  r.release(ok);
  r.release(SourceRef{d / "missing", 0, 10, ""});
  r.release(SourceRef{ok.file, UINT64_MAX, 10, ""});
}

// Random files, rewrites, truncations, deletions and links between reads: each read is
// either exactly the bytes of its digest or not readable. Bounded: 600 steps.
TEST(SourceReader, RandomChangesNeverGiveWrongBytes) {
  test::TempDir d;
  std::mt19937 rng(11);
  std::vector<std::vector<uint8_t>> contents;
  for (uint8_t s = 0; s < 4; ++s) contents.push_back(pattern(1024 + 512 * s, s));
  std::vector<SourceRef> refs;
  for (size_t f = 0; f < 3; ++f)
    for (size_t c = 0; c < contents.size(); ++c)
      refs.push_back(SourceRef{d / ("f" + std::to_string(f)), 16, contents[c].size(), digest_hex(contents[c])});
  SourceReader r;
  int readable = 0;
  for (int step = 0; step < 600; ++step) {
    const std::string file = d / ("f" + std::to_string(rng() % 3));
    switch (rng() % 6) {
      case 0: write_source(file, contents[rng() % contents.size()]); break;
      case 1: (void)!::truncate(file.c_str(), static_cast<off_t>(rng() % 2000)); break;
      case 2: fs::remove(file); break;
      case 3: {
        std::error_code ec;
        fs::remove(file, ec);
        fs::create_symlink(d / ("f" + std::to_string(rng() % 3)), file, ec);
        break;
      }
      default: {
        const SourceRef& ref = refs[rng() % refs.size()];
        auto got = r.read(ref);
        if (got) {
          ++readable;
          ASSERT_EQ(got->bytes.size(), ref.nbytes);
          ASSERT_EQ(digest_hex(got->bytes), ref.digest);
        }
      }
    }
  }
  EXPECT_GT(readable, 0);
}

TensorMeta meta(const SourceRef& ref, const std::string& name) {
  TensorMeta m;
  m.set_name(name);
  m.set_digest(ref.digest);
  m.set_nbytes(ref.nbytes);
  m.set_source_file(ref.file);
  m.set_source_offset(ref.offset);
  return m;
}

// A coordinator stand-in: holds blobs, counts fetches, can be told to fail.
struct FakeCoordinator {
  std::map<std::string, std::vector<uint8_t>> blobs;
  int fetches = 0;
  absl::Status fail = absl::OkStatus();
  bool deliver = true;  // false: report success without delivering (a broken peer)
  BlobCache* cache = nullptr;
  TaskInputs::Fetch fetch() {
    return [this](const std::string& digest, uint64_t) -> absl::Status {
      ++fetches;
      if (!fail.ok()) return fail;
      auto it = blobs.find(digest);
      if (it == blobs.end()) return absl::NotFoundError("no blob " + digest);
      if (!deliver) return absl::OkStatus();
      return cache->insert(digest, [&](const auto& write) { return write(it->second); });
    };
  }
};

TEST(TaskInputs, ReadsTheSourceThenTheCacheThenFetches) {
  test::TempDir d;
  const auto t = pattern(3000, 1);
  const SourceRef a = write_source(d / "a", t), b = write_source(d / "b", t);
  auto cache = BlobCache::open(d / "cache", 1 << 20);
  ASSERT_TRUE(cache.ok());
  FakeCoordinator coord;
  coord.cache = cache->get();
  coord.blobs[a.digest] = t;
  TaskInputs in(cache->get(), coord.fetch(), /*direct_read=*/true);

  // The reported crash: prefetched (checked) in file a, then read as file b.
  ASSERT_TRUE(in.prefetch(meta(a, "x")).ok());
  auto rb = in.read(meta(b, "x"));
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(bytes_of(rb->bytes), t);
  EXPECT_EQ(coord.fetches, 0);

  // The source changed after the import: fetched from the coordinator, right bytes.
  auto changed = t;
  changed[0] ^= 0xff;
  write_source(d / "b", changed);
  ASSERT_TRUE(in.prefetch(meta(b, "x")).ok());
  EXPECT_EQ(coord.fetches, 1);
  auto again = in.read(meta(b, "x"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(bytes_of(again->bytes), t);

  // Evicted from the cache between the prefetch and the task: fetched again.
  fs::remove(d / ("cache/" + a.digest));
  auto refetched = in.read(meta(b, "x"));
  ASSERT_TRUE(refetched.ok()) << refetched.status();
  EXPECT_EQ(bytes_of(refetched->bytes), t);
  EXPECT_EQ(coord.fetches, 2);

  // Damaged in the cache: dropped and fetched again.
  test::write_bytes(d / ("cache/" + a.digest), pattern(3000, 2));
  auto repaired = in.read(meta(b, "x"));
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_EQ(bytes_of(repaired->bytes), t);
}

TEST(TaskInputs, AnInputThatCannotBeHadIsAnErrorNamingTheTensor) {
  test::TempDir d;
  const auto t = pattern(100, 4);
  const SourceRef a = write_source(d / "a", t);
  auto cache = BlobCache::open(d / "cache", 1 << 20);
  ASSERT_TRUE(cache.ok());
  FakeCoordinator coord;
  coord.cache = cache->get();
  TaskInputs no_direct(cache->get(), coord.fetch(), /*direct_read=*/false);
  auto missing = no_direct.read(meta(a, "model.layers.0.mlp.up_proj.weight"));  // the coordinator lacks it too
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_NE(std::string(missing.status().message()).find("model.layers.0.mlp.up_proj.weight"), std::string::npos);

  coord.blobs[a.digest] = t;
  coord.fail = absl::UnavailableError("coordinator gone");
  auto down = no_direct.read(meta(a, "w"));
  EXPECT_TRUE(absl::IsUnavailable(down.status())) << down.status();

  coord.fail = absl::OkStatus();
  coord.deliver = false;  // says OK, delivers nothing
  auto lying = no_direct.read(meta(a, "w"));
  EXPECT_FALSE(lying.ok());

  coord.deliver = true;
  TensorMeta wrong_size = meta(a, "w");
  wrong_size.set_nbytes(99);
  auto bad = no_direct.read(wrong_size);
  EXPECT_TRUE(absl::IsDataLoss(bad.status())) << bad.status();
  auto good = no_direct.read(meta(a, "w"));
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(bytes_of(good->bytes), t);
}

}  // namespace
}  // namespace sp
