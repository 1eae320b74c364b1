#include "jobs/job_plan.h"
#include "ops/calibrate_layer.h"
#include "jobs/job_settings.h"
#include "jobs/output_check.h"

#include "formats/bnb_format.h"
#include "gtest/gtest.h"

namespace sp {
namespace {

using namespace shardpress::v1;  // NOLINT

TensorMeta meta(const std::string& name, const std::string& dtype, std::vector<int64_t> shape, uint64_t itemsize,
                const std::string& role, const std::string& digest = "d") {
  TensorMeta m;
  m.set_name(name);
  m.set_dtype(dtype);
  uint64_t n = 1;
  for (auto d : shape) {
    m.add_shape(d);
    n *= static_cast<uint64_t>(d);
  }
  m.set_nbytes(n * itemsize);
  m.set_role(role);
  m.set_digest(digest);
  return m;
}

class OutputCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    *shard_.add_tensors() = meta("n.weight", "BF16", {64}, 2, "input_norm", "norm-digest");
    *shard_.add_tensors() = meta("q.weight", "BF16", {64, 64}, 2, "q_proj", "q-digest");
    spec_.mutable_prune()->set_method("none");
    spec_.mutable_quantize()->set_format("nf4");
    spec_.mutable_quantize()->set_blocksize(64);
    spec_.mutable_quantize()->set_double_quant(true);
    spec_.mutable_quantize()->set_compute_dtype("bfloat16");
    *good_.add_outputs()->add_tensors() = meta("n.weight", "BF16", {64}, 2, "", "norm-digest");
    OutputGroup* g = good_.add_outputs();
    for (const auto& s : nf4_weight_specs("q.weight", 64, 64, 64, true, 150)) {
      *g->add_tensors() = meta(s.name, std::string(dtype_name(s.dtype)), s.shape, dtype_size(s.dtype), "");
    }
  }
  ShardPlan shard_;
  JobSpec spec_;
  CompleteRequest good_;
};

TEST_F(OutputCheck, AcceptsWhatThePlanImplies) { EXPECT_TRUE(check_outputs(shard_, compress_settings(spec_), good_).ok()); }

TEST_F(OutputCheck, RefusesDamagedResults) {
  CompleteRequest r = good_;
  r.mutable_outputs(1)->mutable_tensors(0)->set_shape(0, 2047);  // packed weight shape
  EXPECT_FALSE(check_outputs(shard_, compress_settings(spec_), r).ok());
  r = good_;
  r.mutable_outputs(0)->mutable_tensors(0)->set_digest("other");  // a pass-through that changed
  EXPECT_FALSE(check_outputs(shard_, compress_settings(spec_), r).ok());
  r = good_;
  r.mutable_outputs(1)->mutable_tensors(1)->set_dtype("F32");  // absmax must be U8 with double quant
  EXPECT_FALSE(check_outputs(shard_, compress_settings(spec_), r).ok());
  r = good_;
  r.mutable_outputs(1)->mutable_tensors(2)->set_name("q.weight.quant_mop");
  EXPECT_FALSE(check_outputs(shard_, compress_settings(spec_), r).ok());
  r = good_;
  r.mutable_outputs()->RemoveLast();
  EXPECT_FALSE(check_outputs(shard_, compress_settings(spec_), r).ok());
}

// The activations group: in the dtype the job hands them on in (bfloat16 for compression,
// float32 for evaluation), with the plan's shape and exactly its bytes.
TEST_F(OutputCheck, ActivationsComeInTheJobsDtypeAndShape) {
  const std::vector<int64_t> shape{2, 8, 64};
  CompleteRequest r = good_;
  *r.add_outputs()->add_tensors() = meta("__activations__", "BF16", shape, 2, "");
  EXPECT_TRUE(check_outputs(shard_, compress_settings(spec_), r, shape, false, DType::kBF16).ok());
  EXPECT_FALSE(check_outputs(shard_, compress_settings(spec_), r, shape, false, DType::kF32).ok());
  EXPECT_FALSE(check_outputs(shard_, compress_settings(spec_), r, {2, 8, 32}, false, DType::kBF16).ok());
  r.mutable_outputs(2)->mutable_tensors(0)->set_nbytes(2 * 8 * 64 * 4);  // BF16 named, float32 bytes
  EXPECT_FALSE(check_outputs(shard_, compress_settings(spec_), r, shape, false, DType::kBF16).ok());
  CompleteRequest fwd;
  *fwd.add_outputs()->add_tensors() = meta("__activations__", "F32", shape, 4, "");
  EXPECT_TRUE(check_outputs(shard_, compress_settings(spec_), fwd, shape, true, DType::kF32).ok());
  EXPECT_FALSE(check_outputs(shard_, compress_settings(spec_), fwd, shape, true, DType::kBF16).ok());
}

// Dense statistics returned for other jobs: a last group, one float32 tensor with the
// layer's number of values (stories260k: hidden 64, intermediate 172).
TEST_F(OutputCheck, DenseStatisticsAreOneFloat32TensorOfTheLayersSize) {
  auto config = parse_model_config(
      R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
          "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512, "rms_norm_eps": 1e-5,
          "max_position_embeddings": 512, "rope_theta": 10000.0, "tie_word_embeddings": true})",
      "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  const int64_t n = dense_statistics_size(*config);
  EXPECT_EQ(n, 3 * 64 * 64 + 172 * 172);
  CompleteRequest r = good_;
  TensorMeta* m = r.add_outputs()->add_tensors();
  *m = meta(kDenseStatisticsTensor, "F32", {n}, 4, "");
  EXPECT_TRUE(check_outputs(shard_, compress_settings(spec_), r, {}, false, DType::kF32, n).ok());
  EXPECT_FALSE(check_outputs(shard_, compress_settings(spec_), r).ok()) << "not asked for";
  EXPECT_FALSE(check_outputs(shard_, compress_settings(spec_), good_, {}, false, DType::kF32, n).ok()) << "missing";
  *m = meta(kDenseStatisticsTensor, "F32", {n - 1}, 4, "");
  const absl::Status st = check_outputs(shard_, compress_settings(spec_), r, {}, false, DType::kF32, n);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("not one float32 tensor of 41872 values"), std::string::npos) << st;
}

TEST(ActivationsDtype, CompressionUsesTheCalibrationDtypeAndEvaluationFloat32) {
  JobSpec compress;
  compress.mutable_calibrate()->set_ids("calib.ids.txt");
  EXPECT_EQ(activations_dtype(compress), kCalibrationActivationsDType);
  JobSpec eval;
  eval.mutable_eval()->set_ids("eval.ids.txt");
  EXPECT_EQ(activations_dtype(eval), DType::kF32);
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// A GGUF target from the plan is checked before a worker acts on it: a type we decode,
// whole blocks, the bytes its shape implies, the tensor's own shape reversed. A bad one is
// an error (the worker reports it and keeps serving), never an exception.
TEST(GgufTargets, AreCheckedBeforeAWorkerUsesThem) {
  shardpress::v1::TensorMeta in;
  in.set_name("q.weight");
  in.add_shape(64);
  in.add_shape(256);
  GgufTensorPlan p;
  p.name = "blk.0.attn_q.weight";
  p.type = GgmlType::kQ4_K;
  p.ne = {256, 64};
  p.bytes = ggml_nbytes(GgmlType::kQ4_K, 256 * 64);
  p.permute_heads = 4;
  *in.mutable_gguf() = gguf_target(p);
  auto back = gguf_tensor_plan(in);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->name, p.name);
  EXPECT_EQ(back->type, p.type);
  EXPECT_EQ(back->ne, p.ne);
  EXPECT_EQ(back->permute_heads, 4);
  auto bad = [&](auto change) {
    shardpress::v1::TensorMeta m = in;
    change(*m.mutable_gguf());
    return gguf_tensor_plan(m).ok();
  };
  EXPECT_FALSE(bad([](auto& g) { g.set_type(99); }));
  EXPECT_FALSE(bad([](auto& g) { g.set_nbytes(g.nbytes() + 1); }));
  EXPECT_FALSE(bad([](auto& g) { g.set_ne(0, 128), g.set_ne(1, 128); }));  // same count, not its shape
  EXPECT_FALSE(bad([](auto& g) { g.set_type(static_cast<uint32_t>(GgmlType::kQ4_K)), g.set_ne(0, 64), g.set_ne(1, 256); }));
  EXPECT_FALSE(bad([](auto& g) { g.clear_ne(); }));
}

}  // namespace
}  // namespace sp
