#include "coordinator/blob_store.h"
#include "coordinator/memory_store.h"
#include "coordinator/rocksdb_store.h"

#include <sys/statvfs.h>

#include <filesystem>

#include <random>

#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

// One contract, every backend: the daemon's RocksDB store and the in-memory one the core's
// unit tests use must behave alike.
class StoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { store_ = open(); }
  std::shared_ptr<StateStore> open() {
    if (GetParam() == "memory") {
      if (!memory_) memory_ = std::make_shared<MemoryStateStore>();
      return memory_;
    }
    auto s = RocksStateStore::open(dir_ / "db");
    EXPECT_TRUE(s.ok()) << s.status();
    return std::shared_ptr<StateStore>(std::move(*s));
  }
  void reopen() {
    store_.reset();
    store_ = open();
  }
  test::TempDir dir_;
  FakeClock clock_;
  std::shared_ptr<MemoryStateStore> memory_;
  std::shared_ptr<StateStore> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::Values("rocksdb", "memory"));

TEST_P(StoreContract, BatchesPutDeleteRangesAndSurviveReopen) {
  StateStore::Batch b;
  b.put(Table::kJobs, "job-1", "a");
  b.put(Table::kTasks, "job-1/layer.0", "b");
  b.put(Table::kTasks, "job-1/layer.1", "c");
  b.put(Table::kTasks, "job-2/layer.0", "d");
  ASSERT_TRUE(store_->commit(b, true).ok());
  EXPECT_EQ(b.count(), 0u) << "a committed batch is cleared";
  reopen();
  EXPECT_EQ(**store_->get(Table::kJobs, "job-1"), "a");
  int n = 0;
  ASSERT_TRUE(store_->scan(Table::kTasks, "job-1/", [&](std::string_view, std::string_view) { return ++n, true; }).ok());
  EXPECT_EQ(n, 2);
  EXPECT_FALSE((*store_->get(Table::kJobs, "nope")).has_value());
  StateStore::Batch d;
  d.del(Table::kJobs, "job-1");
  d.del_range(Table::kTasks, "job-1/", "job-1/\xff");
  ASSERT_TRUE(store_->commit(d, true).ok());
  std::vector<std::string> left;
  ASSERT_TRUE(store_->scan(Table::kTasks, "", [&](std::string_view k, std::string_view) {
    left.emplace_back(k);
    return true;
  }).ok());
  EXPECT_EQ(left, std::vector<std::string>{"job-2/layer.0"});
  EXPECT_FALSE((*store_->get(Table::kJobs, "job-1")).has_value());
  EXPECT_TRUE(store_->reclaim().ok());
}

TEST_P(StoreContract, BlobsPutReadChunkedAndDeduplicated) {
  BlobStore blobs(store_.get(), clock_);
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

TEST_P(StoreContract, BlobWriterRefusesBytesThatDoNotMatchTheDigest) {
  BlobStore blobs(store_.get(), clock_);
  const std::vector<uint8_t> good = {1, 2, 3, 4}, bad = {1, 2, 3, 5};
  auto w = blobs.begin(digest_hex(good), 4);
  ASSERT_TRUE(w->append(bad).ok());
  auto st = w->finish();
  EXPECT_TRUE(absl::IsDataLoss(st)) << st;
  EXPECT_FALSE(*blobs.contains(digest_hex(good)));
  auto over = blobs.begin(digest_hex(good), 2);
  EXPECT_FALSE(over->append(good).ok());  // more than announced
}

TEST_P(StoreContract, CorruptStoredBytesAreDetectedOnRead) {
  BlobStore blobs(store_.get(), clock_);
  const std::vector<uint8_t> data(1000, 7);
  const std::string digest = *blobs.put(data);
  // Overwrite the chunk behind the store's back.
  ASSERT_TRUE(store_->put(Table::kBlobs, "c/" + digest + "/00000000", std::string(1000, 'x')).ok());
  auto r = blobs.read_all(digest);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsDataLoss(r.status()));
}

// A blob lives while it has an owner; the change that drops the last one deletes it, in
// the same batch; shared content stays while any owner remains.
TEST_P(StoreContract, BlobsGoWithTheirLastOwner) {
  BlobStore blobs(store_.get(), clock_);
  const std::string a = *blobs.put(std::vector<uint8_t>(10, 1)), b = *blobs.put(std::vector<uint8_t>(20, 2));
  auto apply = [&](const BlobStore::OwnerChanges& changes) {
    StateStore::Batch batch;
    auto deleted = blobs.write(changes, batch);
    EXPECT_TRUE(deleted.ok());
    EXPECT_TRUE(store_->commit(batch, true).ok());
    return deleted.ok() ? deleted->blobs : 0;
  };
  BlobStore::OwnerChanges own;
  own.add(a, "job-0001");
  own.add(a, "job-0002");
  own.add(b, "job-0001/layer.1");
  EXPECT_EQ(apply(own), 0u);
  EXPECT_EQ(*blobs.owners(a), (std::vector<std::string>{"job-0001", "job-0002"}));
  BlobStore::OwnerChanges drop1;
  drop1.drop(a, "job-0001");
  drop1.drop(b, "job-0001/layer.1");
  EXPECT_EQ(apply(drop1), 1u) << "b had one owner";
  EXPECT_TRUE(*blobs.contains(a)) << "a is still owned by job-0002";
  EXPECT_FALSE(*blobs.contains(b));
  EXPECT_TRUE(absl::IsNotFound(blobs.read_all(b).status()));
  BlobStore::OwnerChanges moved;  // dropped and re-owned in one change: kept
  moved.drop(a, "job-0002");
  moved.add(a, "job-0003");
  EXPECT_EQ(apply(moved), 0u);
  EXPECT_TRUE(*blobs.contains(a));
  // Recovery: owners follow the records; what nobody owns may be an upload whose result
  // is on its way: it goes only once its grace has passed unclaimed.
  const std::string c = *blobs.put(std::vector<uint8_t>(30, 3));
  StateStore::Batch batch;
  auto orphans = blobs.reconcile({{a, "job-0003"}}, batch);
  ASSERT_TRUE(orphans.ok());
  EXPECT_EQ(*orphans, 1u);
  ASSERT_TRUE(store_->commit(batch, true).ok());
  EXPECT_TRUE(*blobs.contains(c));
  EXPECT_EQ(*blobs.owners(a), (std::vector<std::string>{"job-0003"}));
  clock_.advance(60'001);
  StateStore::Batch sweep;
  auto swept = blobs.sweep_unowned(60'000, sweep);
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(swept->digests, std::vector<std::string>{c});
  EXPECT_EQ(swept->bytes, 30u);
  ASSERT_TRUE(store_->commit(sweep, true).ok());
  blobs.forget(swept->digests);
  EXPECT_FALSE(*blobs.contains(c));
  EXPECT_EQ(blobs.census()->first, 1u);
}

// An upload no result claims (its task failed or lost its lease) goes once it is older
// than the grace time; an owned one, or one uploaded again meanwhile, stays.
TEST_P(StoreContract, UnownedUploadsAreSweptAfterTheirGrace) {
  BlobStore blobs(store_.get(), clock_);
  const std::vector<uint8_t> orphan(100, 1), owned(100, 2), again(100, 3);
  const std::string o = *blobs.put(orphan), k = *blobs.put(owned), a = *blobs.put(again);
  BlobStore::OwnerChanges own;
  own.add(k, "job-0001");
  StateStore::Batch batch;
  ASSERT_TRUE(blobs.write(own, batch).ok());
  ASSERT_TRUE(store_->commit(batch, true).ok());
  auto sweep = [&](int64_t grace) {
    StateStore::Batch b;
    auto n = blobs.sweep_unowned(grace, b);
    EXPECT_TRUE(n.ok());
    EXPECT_TRUE(store_->commit(b, true).ok());
    if (!n.ok()) return size_t{0};
    blobs.forget(n->digests);
    return n->digests.size();
  };
  EXPECT_EQ(sweep(60'000), 0u) << "within the grace";
  clock_.advance(50'000);
  ASSERT_TRUE(*blobs.refresh(a));  // uploaded again: its grace starts over
  clock_.advance(20'000);
  EXPECT_EQ(sweep(60'000), 1u);
  EXPECT_FALSE(*blobs.contains(o));
  EXPECT_TRUE(*blobs.contains(k));
  EXPECT_TRUE(*blobs.contains(a));
  clock_.advance(60'000);
  EXPECT_EQ(sweep(60'000), 1u);
  EXPECT_FALSE(*blobs.contains(a));
  EXPECT_TRUE(*blobs.contains(k));
}

// The source is the store: an imported tensor is a reference into the model's file, read
// from there (in pieces larger than a chunk too) and checked against its digest; a file
// changed, cut or replaced by a link since is DATA_LOSS naming it; references are owned and
// deleted like stored blobs but hold no store bytes.
TEST_P(StoreContract, ReferencesReadTheSourceFileAndNoticeItChanged) {
  BlobStore blobs(store_.get(), clock_);
  std::vector<uint8_t> file_bytes(kBlobChunkBytes + 12345);
  std::mt19937 rng(7);
  for (auto& b : file_bytes) b = static_cast<uint8_t>(rng());
  const std::string file = dir_ / "model.safetensors";
  test::write_bytes(file, file_bytes);
  const uint64_t offset = 100, size = kBlobChunkBytes + 1000;
  const std::span<const uint8_t> region(file_bytes.data() + offset, size);
  const std::string d = digest_hex(region);
  ASSERT_TRUE(blobs.put_reference(d, file, offset, size).ok());
  EXPECT_TRUE(*blobs.contains(d));
  EXPECT_EQ(*blobs.size(d), size);
  auto back = blobs.read_all(d);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(std::equal(back->begin(), back->end(), region.begin(), region.end()));
  EXPECT_EQ(*blobs.census(), std::make_pair(size_t{1}, uint64_t{0})) << "a reference stores no bytes";
  // Putting the same bytes again (a worker's pass-through result) keeps the reference.
  ASSERT_TRUE(blobs.put(region).ok());
  EXPECT_EQ(blobs.census()->second, 0u);

  // Changed in place, cut short, or replaced by a link: refused, naming the file.
  file_bytes[offset + 5] ^= 1;
  test::write_bytes(file, file_bytes);
  auto changed = blobs.read_all(d);
  EXPECT_TRUE(absl::IsDataLoss(changed.status())) << changed.status();
  EXPECT_NE(changed.status().message().find(file), std::string::npos) << changed.status();
  EXPECT_NE(changed.status().message().find("restore it and resume"), std::string::npos) << changed.status();
  file_bytes[offset + 5] ^= 1;
  test::write_bytes(file, std::vector<uint8_t>(file_bytes.begin(), file_bytes.begin() + 5000));
  EXPECT_TRUE(absl::IsDataLoss(blobs.read_all(d).status()));
  std::filesystem::remove(file);
  test::write_bytes(dir_ / "elsewhere", file_bytes);
  std::filesystem::create_symlink(dir_ / "elsewhere", file);
  EXPECT_TRUE(absl::IsDataLoss(blobs.read_all(d).status())) << "a link put in the file's place is not followed";
  std::filesystem::remove(file);
  test::write_bytes(file, file_bytes);  // restored
  EXPECT_TRUE(blobs.read_all(d).ok());

  BlobStore::OwnerChanges own, drop;
  own.add(d, "job-0001");
  drop.drop(d, "job-0001");
  StateStore::Batch b1, b2;
  ASSERT_TRUE(blobs.write(own, b1).ok());
  ASSERT_TRUE(store_->commit(b1, true).ok());
  auto freed = blobs.write(drop, b2);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(freed->blobs, 1u);
  EXPECT_EQ(freed->bytes, 0u) << "deleting a reference frees no store bytes";
  ASSERT_TRUE(store_->commit(b2, true).ok());
  EXPECT_FALSE(*blobs.contains(d));
  EXPECT_TRUE(absl::IsNotFound(blobs.read_all(d).status()));
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
    auto all = RocksStateStore::open(d / "huge", uint64_t{1} << 62);  // more than any disk has
    ASSERT_TRUE(all.ok()) << all.status();
    auto put = (*all)->put_unlogged(Table::kBlobs, "k", "v");
    ASSERT_TRUE(absl::IsResourceExhausted(put)) << put;
    EXPECT_NE(std::string(put.message()).find("state store: no space left"), std::string::npos) << put;
    StateStore::Batch b;
    b.put(Table::kJobs, "j", "v");
    EXPECT_TRUE(absl::IsResourceExhausted((*all)->commit(b, true)));
    EXPECT_TRUE(absl::IsResourceExhausted((*all)->put(Table::kBlobs, "k", "v")));
  }
  struct statvfs fs {};
  ASSERT_EQ(::statvfs(d.path().c_str(), &fs), 0);
  const uint64_t avail = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (avail < (1ull << 30)) GTEST_SKIP() << "needs 1 GiB free to place the reserve";
  // A reserve of what is free now minus 256 MiB: a 4 MiB chunk still fits, then
  // (with reserve/2 for commits) a small state commit fits where a 300 MiB blob does not.
  auto s = RocksStateStore::open(d / "db", avail - (256ull << 20));
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE((*s)->put_unlogged(Table::kBlobs, "chunk", std::string(4 << 20, 'x')).ok());
  EXPECT_TRUE(absl::IsResourceExhausted((*s)->put_unlogged(Table::kBlobs, "big", std::string(300 << 20, 'x'))));
  StateStore::Batch b;
  b.put(Table::kJobs, "job", "record");
  EXPECT_TRUE((*s)->commit(b, true).ok());
}

}  // namespace
}  // namespace sp
