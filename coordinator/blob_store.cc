#include "coordinator/blob_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "fmt/format.h"

namespace sp {
namespace {

std::string header_key(const std::string& d) { return "h/" + d; }
std::string chunk_prefix(const std::string& d) { return "c/" + d + "/"; }
std::string chunk_key(const std::string& d, uint32_t i) { return fmt::format("c/{}/{:08d}", d, i); }
std::string reference_key(const std::string& d) { return "s/" + d; }

uint64_t parse_u64(std::string_view v) {
  uint64_t n = 0;
  std::from_chars(v.data(), v.data() + v.size(), n);
  return n;
}

}  // namespace

absl::StatusOr<bool> BlobStore::contains(const std::string& digest) const {
  SP_ASSIGN_OR_RETURN(auto v, store_->get(Table::kBlobs, header_key(digest)));
  if (v) return true;
  SP_ASSIGN_OR_RETURN(auto r, store_->get(Table::kBlobs, reference_key(digest)));
  return r.has_value();
}

absl::StatusOr<std::optional<BlobStore::Reference>> BlobStore::reference(const std::string& digest) const {
  SP_ASSIGN_OR_RETURN(auto v, store_->get(Table::kBlobs, reference_key(digest)));
  if (!v) return std::optional<Reference>();
  const size_t a = v->find(' '), b = a == std::string::npos ? a : v->find(' ', a + 1);
  if (b == std::string::npos)
    return absl::DataLossError(fmt::format("blob {}: its source reference is corrupt", digest));
  return std::optional<Reference>(
      Reference{v->substr(b + 1), parse_u64(std::string_view(*v).substr(a + 1, b - a - 1)), parse_u64(v->substr(0, a))});
}

absl::Status BlobStore::put_reference(const std::string& digest, const std::string& file, uint64_t offset,
                                      uint64_t size) {
  SP_ASSIGN_OR_RETURN(const bool have, refresh(digest));
  if (have) return absl::OkStatus();
  SP_RETURN_IF_ERROR(store_->put(Table::kBlobs, reference_key(digest), fmt::format("{} {} {}", size, offset, file)));
  written(digest);
  return absl::OkStatus();
}

absl::Status BlobStore::read_reference(const std::string& digest, const Reference& ref,
                                       const std::function<absl::Status(std::span<const uint8_t>)>& sink) const {
  auto changed = [&](const std::string& why) {
    return absl::DataLossError(fmt::format(
        "source file {} changed since the job imported it ({}); restore it and resume the job", ref.file, why));
  };
  // O_NOFOLLOW: the path was resolved inside the model root at import; a link put in its
  // place since is not followed out of it.
  const int fd = ::open(ref.file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return changed(std::strerror(errno));
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(ref.size, kBlobChunkBytes)));
  Digester h;
  uint64_t done = 0;
  absl::Status st;
  while (done < ref.size && st.ok()) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(ref.size - done, buf.size()));
    const ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(ref.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      st = changed(n < 0 ? std::strerror(errno) : "it is shorter now");
      break;
    }
    const std::span<const uint8_t> bytes(buf.data(), static_cast<size_t>(n));
    h.update(bytes);
    done += static_cast<uint64_t>(n);
    st = sink(bytes);
  }
  ::close(fd);
  SP_RETURN_IF_ERROR(st);
  if (h.hex() != digest) return changed(fmt::format("the {} bytes at offset {} differ", ref.size, ref.offset));
  return absl::OkStatus();
}

absl::StatusOr<bool> BlobStore::refresh(const std::string& digest) {
  SP_ASSIGN_OR_RETURN(const bool have, contains(digest));
  if (have) written(digest);
  return have;
}

void BlobStore::written(const std::string& digest) {
  std::lock_guard lock(written_mu_);
  written_[digest] = clock_.now_ms();
}

void BlobStore::erase(const std::string& digest, StateStore::Batch& b) {
  b.del(Table::kBlobs, header_key(digest));
  b.del(Table::kBlobs, reference_key(digest));
  b.del_range(Table::kBlobs, chunk_prefix(digest), chunk_prefix(digest) + "\xff");
}

absl::StatusOr<uint64_t> BlobStore::stored_size(const std::string& digest) const {
  SP_ASSIGN_OR_RETURN(auto v, store_->get(Table::kBlobs, header_key(digest)));
  if (v) return parse_u64(*v);
  SP_ASSIGN_OR_RETURN(auto r, store_->get(Table::kBlobs, reference_key(digest)));
  if (r) return 0;
  return absl::NotFoundError(fmt::format("blob {} not in the store", digest));
}

absl::StatusOr<uint64_t> BlobStore::size(const std::string& digest) const {
  SP_ASSIGN_OR_RETURN(auto v, store_->get(Table::kBlobs, header_key(digest)));
  if (v) return parse_u64(*v);
  SP_ASSIGN_OR_RETURN(auto ref, reference(digest));
  if (ref) return ref->size;
  return absl::NotFoundError(fmt::format("blob {} not in the store", digest));
}

absl::Status BlobStore::read(const std::string& digest,
                             const std::function<absl::Status(std::span<const uint8_t>)>& sink) const {
  SP_ASSIGN_OR_RETURN(auto stored, store_->get(Table::kBlobs, header_key(digest)));
  if (!stored) {
    SP_ASSIGN_OR_RETURN(auto ref, reference(digest));
    if (!ref) return absl::NotFoundError(fmt::format("blob {} not in the store", digest));
    return read_reference(digest, *ref, sink);
  }
  const uint64_t expected = parse_u64(*stored);
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
  return store_->store_->put(Table::kBlobs, key, value);
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
    StateStore::Batch b;  // what was written of it goes (a best effort: it has no header, so no reader sees it)
    b.del_range(Table::kBlobs, chunk_prefix(digest_), chunk_prefix(digest_) + "\xff");
    (void)store_->store_->commit(b, false);
    return absl::DataLossError(fmt::format("blob {}: received {} of {} bytes, digest {}", digest_, received_, size_,
                                           hasher_.hex()));
  }
  SP_RETURN_IF_ERROR(flush_chunk());
  SP_RETURN_IF_ERROR(write(header_key(digest_), std::to_string(size_)));
  store_->written(digest_);
  return absl::OkStatus();
}

absl::StatusOr<std::string> BlobStore::put(std::span<const uint8_t> bytes, Durability d) {
  std::string digest = digest_hex(bytes);
  SP_RETURN_IF_ERROR(put(digest, bytes, d));
  return digest;
}

absl::Status BlobStore::put(const std::string& digest, std::span<const uint8_t> bytes, Durability d) {
  SP_ASSIGN_OR_RETURN(const bool have, refresh(digest));
  if (have) return absl::OkStatus();
  auto w = begin(digest, bytes.size(), d);
  SP_RETURN_IF_ERROR(w->append(bytes));
  return w->finish();
}

absl::StatusOr<std::vector<std::string>> BlobStore::owners(const std::string& digest) const {
  std::vector<std::string> out;
  const std::string prefix = digest + "/";
  SP_RETURN_IF_ERROR(store_->scan(Table::kBlobOwners, prefix, [&](std::string_view k, std::string_view) {
    out.emplace_back(k.substr(prefix.size()));
    return true;
  }));
  return out;
}

absl::StatusOr<BlobStore::Freed> BlobStore::write(const OwnerChanges& changes, StateStore::Batch& b) const {
  std::set<std::string> touched;
  for (const auto& [digest, owner] : changes.drops_) {
    b.del(Table::kBlobOwners, digest + "/" + owner);
    touched.insert(digest);
  }
  for (const auto& [digest, owner] : changes.adds_) b.put(Table::kBlobOwners, digest + "/" + owner, "");
  Freed freed;
  for (const auto& digest : touched) {
    SP_ASSIGN_OR_RETURN(const auto current, owners(digest));
    bool kept = false;
    for (const auto& o : current) kept = kept || !changes.drops_.count({digest, o});
    for (const auto& [d, o] : changes.adds_) kept = kept || d == digest;
    if (kept) continue;
    auto n = stored_size(digest);
    if (!n.ok() && !absl::IsNotFound(n.status())) return n.status();
    if (!n.ok()) continue;  // already gone
    erase(digest, b);
    ++freed.blobs;
    freed.bytes += *n;
  }
  return freed;
}

absl::StatusOr<size_t> BlobStore::reconcile(const std::set<std::pair<std::string, std::string>>& expected,
                                            StateStore::Batch& b) {
  std::set<std::pair<std::string, std::string>> present;
  SP_RETURN_IF_ERROR(store_->scan(Table::kBlobOwners, "", [&](std::string_view k, std::string_view) {
    const size_t slash = k.find('/');
    if (slash != std::string_view::npos) present.insert({std::string(k.substr(0, slash)), std::string(k.substr(slash + 1))});
    return true;
  }));
  for (const auto& [d, o] : present)
    if (!expected.count({d, o})) b.del(Table::kBlobOwners, d + "/" + o);
  for (const auto& [d, o] : expected)
    if (!present.count({d, o})) b.put(Table::kBlobOwners, d + "/" + o, "");
  std::set<std::string> owned;
  for (const auto& [d, o] : expected) owned.insert(d);
  std::vector<std::string> unowned;
  for (const char* prefix : {"h/", "s/"})
    SP_RETURN_IF_ERROR(store_->scan(Table::kBlobs, prefix, [&](std::string_view k, std::string_view) {
      std::string digest(k.substr(2));
      if (!owned.count(digest)) unowned.push_back(std::move(digest));
      return true;
    }));
  for (const auto& d : unowned) written(d);
  return unowned.size();
}

absl::StatusOr<BlobStore::Swept> BlobStore::sweep_unowned(int64_t grace_ms, StateStore::Batch& b) {
  std::vector<std::string> aged;
  {
    std::lock_guard lock(written_mu_);
    const int64_t cutoff = clock_.now_ms() - grace_ms;
    for (const auto& [digest, when] : written_)
      if (when <= cutoff) aged.push_back(digest);
  }
  Swept swept;
  std::vector<std::string> settled;
  for (const auto& digest : aged) {
    SP_ASSIGN_OR_RETURN(const auto owned_by, owners(digest));
    auto n = stored_size(digest);
    if (!n.ok() && !absl::IsNotFound(n.status())) return n.status();
    if (!owned_by.empty() || !n.ok()) {
      settled.push_back(digest);  // claimed by a result (its owners delete it), or gone
      continue;
    }
    erase(digest, b);
    swept.digests.push_back(digest);
    swept.bytes += *n;
  }
  forget(settled);
  return swept;
}

void BlobStore::forget(const std::vector<std::string>& digests) {
  std::lock_guard lock(written_mu_);
  for (const auto& d : digests) written_.erase(d);
}

absl::StatusOr<std::pair<size_t, uint64_t>> BlobStore::census() const {
  size_t blobs = 0;
  uint64_t bytes = 0;
  SP_RETURN_IF_ERROR(store_->scan(Table::kBlobs, "h/", [&](std::string_view, std::string_view v) {
    ++blobs;
    bytes += parse_u64(v);
    return true;
  }));
  SP_RETURN_IF_ERROR(store_->scan(Table::kBlobs, "s/", [&](std::string_view k, std::string_view) {
    std::string digest(k.substr(2));
    auto stored = store_->get(Table::kBlobs, header_key(digest));
    if (stored.ok() && !stored->has_value()) ++blobs;  // not counted twice
    return true;
  }));
  return std::make_pair(blobs, bytes);
}

}  // namespace sp
