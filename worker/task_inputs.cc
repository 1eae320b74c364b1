#include "worker/task_inputs.h"

#include "fmt/format.h"

namespace sp {

using shardpress::v1::TensorMeta;

namespace {
SourceRef source_ref(const TensorMeta& in) { return {in.source_file(), in.source_offset(), in.nbytes(), in.digest()}; }
}  // namespace

std::optional<SourceBytes> TaskInputs::at_source(const TensorMeta& in) {
  if (!direct_read_ || in.source_file().empty()) return std::nullopt;
  return source_.read(source_ref(in));
}

absl::Status TaskInputs::prefetch(const TensorMeta& in) {
  if (cache_->contains(in.digest()) || at_source(in)) return absl::OkStatus();
  return annotate(fetch_(in.digest(), in.nbytes()), in.name());
}

absl::StatusOr<TaskInputs::Bytes> TaskInputs::read(const TensorMeta& in) {
  if (auto s = at_source(in)) return Bytes{s->bytes, std::move(s->keep)};
  auto cached = cache_->open_blob(in.digest());
  if (!cached.ok()) {
    // Evicted or damaged since the prefetch (or the source changed): fetch it now.
    SP_RETURN_IF_ERROR(annotate(fetch_(in.digest(), in.nbytes()), in.name()));
    cached = cache_->open_blob(in.digest());
    if (!cached.ok()) return annotate(cached.status(), in.name());
  }
  auto keep = std::make_shared<const MappedFile>(std::move(*cached));
  const std::span<const uint8_t> bytes = keep->bytes();
  if (bytes.size() != in.nbytes())
    return absl::DataLossError(fmt::format("{}: {} bytes, the lease says {}", in.name(), bytes.size(), in.nbytes()));
  return Bytes{bytes, std::move(keep)};
}

void TaskInputs::release(const TensorMeta& in) {
  if (direct_read_ && !in.source_file().empty()) source_.release(source_ref(in));
}

}  // namespace sp
