#include "coordinator/job_spec.h"

#include "gtest/gtest.h"

namespace sp {
namespace {

std::string err(const std::string& yaml) {
  auto r = parse_job_yaml(yaml, "job.yaml");
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(JobSpec, DefaultsReproduceBitsandbytes) {
  auto s = parse_job_yaml("model: m\noutput: /x/out-dir\n", "job.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->name(), "out-dir");
  EXPECT_EQ(s->prune().method(), "none");
  EXPECT_EQ(s->quantize().format(), "nf4");
  EXPECT_EQ(s->quantize().blocksize(), 64);
  EXPECT_TRUE(s->quantize().double_quant());
  EXPECT_EQ(s->quantize().compute_dtype(), "bfloat16");
  EXPECT_EQ(describe_spec(*s), "NF4 (block 64, double quant)");
}

TEST(JobSpec, FullSpec) {
  auto s = parse_job_yaml(R"(
name: j1
model: /m
output: /o
prune: {method: magnitude, sparsity: 0.5, scope: "2:4"}
quantize: {format: nf4, blocksize: 128, double_quant: false, compute_dtype: float16}
)", "job.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(describe_spec(*s), "magnitude 2:4 + NF4 (block 128)");
  const CompressSettings c = compress_settings(*s);
  EXPECT_EQ(c.prune->scope, PruneScope::kTwoFour);
  EXPECT_EQ(c.quantize->compute_dtype, DType::kF16);
}

TEST(JobSpec, ErrorsNameTheKey) {
  EXPECT_EQ(err("model: m\noutput: o\nquantise: {}\n"),
            "job.yaml: unknown key 'quantise' (allowed: calibrate, model, name, output, overwrite, prune, quantize)");
  EXPECT_NE(err("model: m\noutput: o\nprune: {method: magnitude, sparsty: 0.3}\n").find("unknown key 'prune.sparsty'"),
            std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nquantize: {blocksize: 100}\n").find("'quantize.blocksize' is 100"),
            std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nquantize: {blocksize: lots}\n").find("'quantize.blocksize' has a bad value 'lots'"),
            std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nprune: {method: magnitude, sparsity: 1.2}\n").find("'prune.sparsity' is 1.2"),
            std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nprune: {method: random}\n").find("'prune.method' is 'random'"), std::string::npos);
  EXPECT_NE(err("output: o\n").find("'model' is required"), std::string::npos);
  EXPECT_NE(err("model: m\n").find("'output' is required"), std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nname: 'bad name!'\n").find("'name'"), std::string::npos);
  EXPECT_NE(err("model: [m\n").find("not valid YAML"), std::string::npos);
  EXPECT_NE(err("- a\n- b\n").find("a job spec is a mapping"), std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nquantize: {format: none}\n").find("nothing to do"), std::string::npos);
}

}  // namespace
}  // namespace sp
