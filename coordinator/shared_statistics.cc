#include "coordinator/shared_statistics.h"

#include "common/digest.h"
#include "fmt/format.h"
#include "jobs/job_plan.h"
#include "jobs/job_settings.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT: the record types

bool shares_dense_statistics(const JobSpec& spec) {
  auto s = job_settings(spec);
  if (!s.ok() || !s->calibration) return false;
  const CompressSettings& c = s->compress;
  return !c.gptq.true_sequential && !(c.gguf && c.gguf_importance);
}

std::string dense_statistics_key(const JobRecord& j, const TaskPlan& p, const std::vector<TensorMeta>& inputs) {
  if (p.kind() != CALIBRATE_STAGE || inputs.empty() || !shares_dense_statistics(j.spec())) return "";
  std::string text = fmt::format("dense statistics v1\n{}\nlayer {}\n", j.model_config(),
                                 j.plan().shards(p.shard()).layer());
  for (const TensorMeta& m : inputs) {
    if (m.digest().empty()) return "";
    text += fmt::format("{} {} [{}] {}\n", m.name(), m.dtype(), fmt::join(m.shape(), ","), m.digest());
  }
  return digest_hex({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

const TensorMeta* dense_statistics_output(const TaskRecord& t) {
  for (const auto& g : t.outputs())
    for (const auto& m : g.tensors())
      if (m.name() == kDenseStatisticsTensor) return &m;
  return nullptr;
}

}  // namespace sp
