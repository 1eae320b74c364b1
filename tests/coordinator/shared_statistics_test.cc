// The key under which jobs share a layer's dense calibration statistics: it follows the
// layer's weights and entering activations (by digest), not the settings that differ
// between variants; jobs that cannot share have none.
#include "coordinator/shared_statistics.h"

#include <gtest/gtest.h>

#include "fmt/format.h"
#include "jobs/job_plan.h"
#include "jobs/job_yaml.h"

namespace sp {
namespace {

using namespace shardpress::v1;  // NOLINT

constexpr char kConfig[] =
    R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
        "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 512, "rope_theta": 10000.0, "tie_word_embeddings": true})";

JobRecord job(const std::string& prune_method, bool true_sequential = false) {
  JobRecord j;
  j.set_model_config(kConfig);
  auto spec = parse_job_yaml(fmt::format("name: x\nmodel: /m\noutput: /o\nprune: {{method: {}, sparsity: 0.3}}\n"
                                         "calibrate: {{ids: /ids.txt, samples: 8, true_sequential: {}}}\n",
                                         prune_method, true_sequential),
                             "spec");
  EXPECT_TRUE(spec.ok()) << spec.status();
  *j.mutable_spec() = *spec;
  j.mutable_plan()->add_shards()->set_layer(0);
  TaskPlan* t = j.mutable_plan()->add_tasks();
  t->set_name("layer.0");
  t->set_kind(CALIBRATE_STAGE);
  t->set_shard(0);
  return j;
}

std::vector<TensorMeta> inputs(const std::string& q_digest) {
  std::vector<TensorMeta> out(2);
  out[0].set_name("model.layers.0.self_attn.q_proj.weight");
  out[0].set_dtype("BF16");
  out[0].add_shape(64);
  out[0].add_shape(64);
  out[0].set_digest(q_digest);
  out[1].set_name(kCalibrationIdsTensor);
  out[1].set_dtype("I32");
  out[1].add_shape(8);
  out[1].add_shape(256);
  out[1].set_digest("ids");
  return out;
}

TEST(SharedStatistics, KeyFollowsWeightsAndActivationsNotTheSettings) {
  const JobRecord wanda = job("wanda"), sparsegpt = job("sparsegpt");
  ASSERT_TRUE(shares_dense_statistics(wanda.spec()));
  const std::string k = dense_statistics_key(wanda, wanda.plan().tasks(0), inputs("aa"));
  ASSERT_EQ(k.size(), 32u);
  EXPECT_EQ(dense_statistics_key(sparsegpt, sparsegpt.plan().tasks(0), inputs("aa")), k);
  EXPECT_NE(dense_statistics_key(wanda, wanda.plan().tasks(0), inputs("ab")), k) << "other weights";
  EXPECT_EQ(dense_statistics_key(wanda, wanda.plan().tasks(0), inputs("")), "") << "a digest not known yet";
  const JobRecord ts = job("sparsegpt", /*true_sequential=*/true);
  EXPECT_FALSE(shares_dense_statistics(ts.spec()));
  EXPECT_EQ(dense_statistics_key(ts, ts.plan().tasks(0), inputs("aa")), "");
  JobRecord compress = wanda;
  compress.mutable_plan()->mutable_tasks(0)->set_kind(COMPRESS_LAYER);
  EXPECT_EQ(dense_statistics_key(compress, compress.plan().tasks(0), inputs("aa")), "");
}

}  // namespace
}  // namespace sp
