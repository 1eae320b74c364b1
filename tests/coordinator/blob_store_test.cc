#include "coordinator/blob_store.h"

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
