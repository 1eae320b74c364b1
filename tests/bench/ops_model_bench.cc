// The bare ops on a whole model in one process, one thread, no I/O beyond reading the
// (memory-mapped) source: what a job's orchestration overhead is measured against.
//   build/bin/bench_ops_model MODEL_DIR [prune]
#include <chrono>
#include <cstdio>
#include <string>

#include "formats/model.h"
#include "ops/compress_shard.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_ops_model MODEL_DIR [prune]\n");
    return 2;
  }
  auto model = sp::open_model(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 2;
  }
  sp::CompressSettings s;
  if (argc > 2) s.prune = sp::PruneSettings{sp::PruneScope::kRow, 0.3};
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t in = 0, out = 0;
  for (const auto& shard : model->desc.shards) {
    if (shard.kind != sp::ShardKind::kLayer) continue;
    std::vector<sp::InputTensor> inputs;
    for (const auto& name : shard.tensors) {
      inputs.push_back({model->desc.find(name), model->files.find(name)->view().bytes});
      in += inputs.back().bytes.size();
    }
    auto r = sp::compress_shard(inputs, s);
    if (!r.ok()) return 1;
    for (const auto& g : r->groups)
      for (const auto& t : g) out += t.data.size();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("bare ops: %.2f s for %.2f GB of layer weights in, %.2f GB out (%s)\n", secs, in / 1e9, out / 1e9,
              sp::describe(s).c_str());
  return 0;
}
