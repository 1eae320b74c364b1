#include "coordinator/blob_store.h"

#include <charconv>

#include "fmt/format.h"

namespace sp {
namespace {

std::string header_key(const std::string& d) { return "h/" + d; }
std::string chunk_prefix(const std::string& d) { return "c/" + d + "/"; }
std::string chunk_key(const std::string& d, uint32_t i) { return fmt::format("c/{}/{:08d}", d, i); }

}  // namespace

absl::StatusOr<bool> BlobStore::contains(const std::string& digest) const {
  SP_ASSIGN_OR_RETURN(auto v, store_->get(Table::kBlobs, header_key(digest)));
  return v.has_value();
}

absl::StatusOr<uint64_t> BlobStore::size(const std::string& digest) const {
  SP_ASSIGN_OR_RETURN(auto v, store_->get(Table::kBlobs, header_key(digest)));
  if (!v) return absl::NotFoundError(fmt::format("blob {} not in the store", digest));
  uint64_t n = 0;
  std::from_chars(v->data(), v->data() + v->size(), n);
  return n;
}

absl::Status BlobStore::read(const std::string& digest,
                             const std::function<absl::Status(std::span<const uint8_t>)>& sink) const {
  SP_ASSIGN_OR_RETURN(const uint64_t expected, size(digest));
  Digester h;
  uint64_t got = 0;
  absl::Status inner;
  SP_RETURN_IF_ERROR(store_->scan(Table::kBlobs, chunk_prefix(digest), [&](std::string_view, std::string_view v) {
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(v.data()), v.size());
    h.update(bytes);
    got += v.size();
    inner = sink(bytes);
    return inner.ok();
  }));
  SP_RETURN_IF_ERROR(inner);
  if (got != expected || h.hex() != digest)
    return absl::DataLossError(fmt::format("blob {}: stored bytes do not match the digest ({} of {} bytes)",
                                           digest, got, expected));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> BlobStore::read_all(const std::string& digest) const {
  std::vector<uint8_t> out;
  SP_ASSIGN_OR_RETURN(const uint64_t n, size(digest));
  out.reserve(n);
  SP_RETURN_IF_ERROR(read(digest, [&](std::span<const uint8_t> b) {
    out.insert(out.end(), b.begin(), b.end());
    return absl::OkStatus();
  }));
  return out;
}

std::unique_ptr<BlobStore::Writer> BlobStore::begin(const std::string& digest, uint64_t size, Durability d) {
  return std::unique_ptr<Writer>(new Writer(this, digest, size, d));
}

absl::Status BlobStore::Writer::write(const std::string& key, std::string_view value) {
  if (durability_ == Durability::kUnlogged) return store_->store_->put_unlogged(Table::kBlobs, key, value);
  return store_->store_->put(Table::kBlobs, key, value, false);
}

absl::Status BlobStore::Writer::flush_chunk() {
  if (pending_.empty()) return absl::OkStatus();
  SP_RETURN_IF_ERROR(write(chunk_key(digest_, chunk_index_++),
                           std::string_view(reinterpret_cast<const char*>(pending_.data()), pending_.size())));
  pending_.clear();
  return absl::OkStatus();
}

absl::Status BlobStore::Writer::append(std::span<const uint8_t> bytes) {
  received_ += bytes.size();
  if (received_ > size_)
    return absl::InvalidArgumentError(fmt::format("blob {}: more than the announced {} bytes", digest_, size_));
  hasher_.update(bytes);
  while (!bytes.empty()) {
    const size_t take = std::min(bytes.size(), kBlobChunkBytes - pending_.size());
    pending_.insert(pending_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(take));
    bytes = bytes.subspan(take);
    if (pending_.size() == kBlobChunkBytes) SP_RETURN_IF_ERROR(flush_chunk());
  }
  return absl::OkStatus();
}

absl::Status BlobStore::Writer::finish() {
  if (received_ != size_ || hasher_.hex() != digest_) {
    store_->store_->delete_range(Table::kBlobs, chunk_prefix(digest_), chunk_prefix(digest_) + "\xff").IgnoreError();
    return absl::DataLossError(fmt::format("blob {}: received {} of {} bytes, digest {}", digest_, received_, size_,
                                           hasher_.hex()));
  }
  SP_RETURN_IF_ERROR(flush_chunk());
  return write(header_key(digest_), std::to_string(size_));
}

absl::StatusOr<std::string> BlobStore::put(std::span<const uint8_t> bytes, Durability d) {
  std::string digest = digest_hex(bytes);
  SP_ASSIGN_OR_RETURN(const bool have, contains(digest));
  if (have) return digest;
  auto w = begin(digest, bytes.size(), d);
  SP_RETURN_IF_ERROR(w->append(bytes));
  SP_RETURN_IF_ERROR(w->finish());
  return digest;
}

}  // namespace sp
