// libFuzzer: a whole model folder (config.json, a safetensors header, optionally an
// index) read by the real readers and then planned as the coordinator and `inspect` plan
// it: shards, every task's memory estimate, calibration stages and the job plans. Sizes
// in config.json must be checked against what the files hold before anything
// proportional to them is built: run with -rss_limit_mb (scripts/fuzz.sh) so that a config
// which makes the planner allocate without bound is a crash.
//
// Input: CONFIG_JSON \0 SAFETENSORS_HEADER_JSON [\0 INDEX_JSON]. The data section is a
// sparse file as long as the header's largest data_offsets end (at most 1 GiB).
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "jobs/job_plan.h"
#include "formats/model.h"
#include "nlohmann/json.hpp"
#include "ops/task_memory.h"

namespace {

namespace fs = std::filesystem;

const std::string& folder() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/fuzz_model_plan.XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    if (!d) std::abort();
    return std::string(d);
  }();
  return dir;
}

void write(const std::string& path, std::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) std::abort();
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::abort();
  ::close(fd);
}

void write_safetensors(const std::string& path, std::string_view header) {
  uint64_t data_len = 0;
  const auto j = nlohmann::json::parse(header, nullptr, false);
  if (!j.is_discarded() && j.is_object())
    for (const auto& [name, e] : j.items())
      if (e.is_object() && e.contains("data_offsets") && e["data_offsets"].is_array() &&
          e["data_offsets"].size() == 2 && e["data_offsets"][1].is_number_unsigned())
        data_len = std::max(data_len, e["data_offsets"][1].get<uint64_t>());
  data_len = std::min<uint64_t>(data_len, 1ull << 30);
  std::string head(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(head.data(), &n, 8);
  head.append(header);
  write(path, head);
  if (::truncate(path.c_str(), static_cast<off_t>(head.size() + data_len)) != 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t a = in.find('\0');
  if (a == std::string_view::npos) return 0;
  const size_t b = in.find('\0', a + 1);
  const std::string_view config = in.substr(0, a);
  const std::string_view header = in.substr(a + 1, b == std::string_view::npos ? std::string_view::npos : b - a - 1);
  const std::string_view index = b == std::string_view::npos ? std::string_view() : in.substr(b + 1);

  const std::string& dir = folder();
  for (const auto& e : fs::directory_iterator(dir)) fs::remove(e.path());
  write(dir + "/config.json", config);
  if (index.empty()) {
    write_safetensors(dir + "/model.safetensors", header);
  } else {
    write(dir + "/model.safetensors.index.json", index);
    write_safetensors(dir + "/model-00001-of-00001.safetensors", header);
  }

  auto model = sp::open_model(dir);
  if (!model.ok()) return 0;
  const sp::ModelDescription& desc = model->desc;
  sp::CompressSettings rtn;
  sp::CompressSettings gptq;
  gptq.quant_method = sp::QuantMethod::kGptq;
  gptq.prune = sp::PruneSettings{sp::PruneScope::kRow, 0.3, sp::PruneMethod::kWanda};
  const sp::CalibrationShape calib{8, 64};
  uint64_t total = 0;
  for (const auto& s : desc.shards) {
    total += sp::estimate_task_memory(s, rtn).total();
    if (s.kind != sp::ShardKind::kLayer) continue;
    total += sp::estimate_calibration_memory(s, desc.config, gptq, calib).total();
    total += sp::estimate_forward_memory(s, desc.config, calib).total();
  }
  // The job plans the coordinator stores at import: RTN, calibrated (sequential and
  // pipelined) and evaluation. Each has at most two tasks per layer and one more.
  sp::JobSettings plans[4];
  plans[0].compress = rtn;
  for (int k : {1, 2}) {
    plans[k].compress = gptq;
    plans[k].calibration = sp::CalibrationSettings{};
    plans[k].calibration->pipelined = k == 2;
  }
  plans[3].kind = sp::JobKind::kEvaluate;
  plans[3].eval = sp::EvalSettings{};
  for (const auto& settings : plans) {
    const shardpress::v1::JobPlan plan = sp::plan_job(desc, settings, calib);
    if (static_cast<size_t>(plan.tasks_size()) > 2 * desc.shards.size() + 1) __builtin_trap();
    total += static_cast<uint64_t>(plan.tasks_size());
  }
  total += sp::estimate_eval_head_memory(desc.config, calib).total();
  const auto stages = sp::plan_stages(desc, gptq, calib, 11ull << 30);
  if (stages.size() > desc.shards.size()) __builtin_trap();  // at most a stage per layer
  return total == 0 ? 1 : 0;
}
