#include "coordinator/blob_store.h"

#include <sys/statvfs.h>

#include <random>

#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

TEST(BlobStore, PutReadChunkedAndDeduplicated) {
  test::TempDir d;
  auto store = StateStore::open(d / "db");
  ASSERT_TRUE(store.ok()) << store.status();
  BlobStore blobs(store->get());
  std::vector<uint8_t> data(3 * kBlobChunkBytes + 12345);
  std::mt19937 rng(1);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  auto digest = blobs.put(data);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(*digest, digest_hex(data));
  EXPECT_TRUE(*blobs.contains(*digest));
  EXPECT_EQ(*blobs.size(*digest), data.size());
  int chunks = 0;
  std::vector<uint8_t> back;
  ASSERT_TRUE(blobs.read(*digest, [&](std::span<const uint8_t> c) {
    ++chunks;
    EXPECT_LE(c.size(), kBlobChunkBytes);
    back.insert(back.end(), c.begin(), c.end());
    return absl::OkStatus();
  }).ok());
  EXPECT_EQ(chunks, 4);
  EXPECT_EQ(back, data);
  EXPECT_EQ(*blobs.put(data), *digest);  // same bytes, same blob
  EXPECT_TRUE(absl::IsNotFound(blobs.read_all("00000000000000000000000000000000").status()));
}

TEST(BlobStore, WriterRefusesBytesThatDoNotMatchTheDigest) {
  test::TempDir d;
  auto store = StateStore::open(d / "db");
  BlobStore blobs(store->get());
  const std::vector<uint8_t> good = {1, 2, 3, 4}, bad = {1, 2, 3, 5};
  auto w = blobs.begin(digest_hex(good), 4);
  ASSERT_TRUE(w->append(bad).ok());
  auto st = w->finish();
  EXPECT_TRUE(absl::IsDataLoss(st)) << st;
  EXPECT_FALSE(*blobs.contains(digest_hex(good)));
  auto over = blobs.begin(digest_hex(good), 2);
  EXPECT_FALSE(over->append(good).ok());  // more than announced
}

TEST(BlobStore, CorruptStoredBytesAreDetectedOnRead) {
  test::TempDir d;
  auto store = StateStore::open(d / "db");
  BlobStore blobs(store->get());
  const std::vector<uint8_t> data(1000, 7);
  const std::string digest = *blobs.put(data);
  // Overwrite the chunk behind the store's back.
  ASSERT_TRUE((*store)->put(Table::kBlobs, "c/" + digest + "/00000000", std::string(1000, 'x'), false).ok());
  auto r = blobs.read_all(digest);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsDataLoss(r.status()));
}

TEST(StateStore, SurvivesReopen) {
  test::TempDir d;
  {
    auto s = StateStore::open(d / "db");
    StateStore::Batch b;
    b.put(Table::kJobs, "job-1", "a");
    b.put(Table::kTasks, "job-1/layer.0", "b");
    ASSERT_TRUE((*s)->commit(b, true).ok());
  }
  auto s = StateStore::open(d / "db");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(**(*s)->get(Table::kJobs, "job-1"), "a");
  int n = 0;
  ASSERT_TRUE((*s)->scan(Table::kTasks, "job-1/", [&](std::string_view, std::string_view) { return ++n, true; }).ok());
  EXPECT_EQ(n, 1);
  EXPECT_FALSE((*(*s)->get(Table::kJobs, "nope")).has_value());
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// The store refuses a write that would leave less than its reserve free, before RocksDB
// sees it (Debian's RocksDB can abort on a full disk); small state commits may dip into
// half of the reserve, so a failure can still be recorded.
TEST(StateStoreSpace, WritesThatWouldFillTheDiskAreRefusedFirst) {
  test::TempDir d;
  {
    auto all = StateStore::open(d / "huge", uint64_t{1} << 62);  // more than any disk has
    ASSERT_TRUE(all.ok()) << all.status();
    auto put = (*all)->put_unlogged(Table::kBlobs, "k", "v");
    ASSERT_TRUE(absl::IsResourceExhausted(put)) << put;
    EXPECT_NE(std::string(put.message()).find("state store: no space left"), std::string::npos) << put;
    StateStore::Batch b;
    b.put(Table::kJobs, "j", "v");
    EXPECT_TRUE(absl::IsResourceExhausted((*all)->commit(b, true)));
    EXPECT_TRUE(absl::IsResourceExhausted((*all)->put(Table::kBlobs, "k", "v", false)));
  }
  struct statvfs fs {};
  ASSERT_EQ(::statvfs(d.path().c_str(), &fs), 0);
  const uint64_t avail = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (avail < (1ull << 30)) GTEST_SKIP() << "needs 1 GiB free to place the reserve";
  // A reserve of what is free now minus 256 MiB: a 4 MiB chunk still fits, then
  // (with reserve/2 for commits) a small state commit fits where a 300 MiB blob does not.
  auto s = StateStore::open(d / "db", avail - (256ull << 20));
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE((*s)->put_unlogged(Table::kBlobs, "chunk", std::string(4 << 20, 'x')).ok());
  EXPECT_TRUE(absl::IsResourceExhausted((*s)->put_unlogged(Table::kBlobs, "big", std::string(300 << 20, 'x'))));
  StateStore::Batch b;
  b.put(Table::kJobs, "job", "record");
  EXPECT_TRUE((*s)->commit(b, true).ok());
}

}  // namespace
}  // namespace sp
