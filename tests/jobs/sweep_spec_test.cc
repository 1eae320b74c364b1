// Sweep files: the product of the axes and the explicit variants, each a validated job
// spec named SWEEP.LABEL writing under the base's output; errors name what is wrong.
#include "jobs/sweep_spec.h"

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "jobs/job_settings.h"

namespace sp {
namespace {

constexpr char kBase[] = R"(name: s
base:
  model: /m
  output: /out/s
  calibrate: {ids: /c.txt}
)";

std::string err(const std::string& text) {
  auto r = parse_sweep_yaml(text, "sweep.yaml");
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(SweepSpec, ProductThenExplicitVariants) {
  auto s = parse_sweep_yaml(std::string(kBase) + R"(axes:
  prune.method: [magnitude, sparsegpt]
  prune.sparsity: [0.2, 0.4]
  quantize.method: [rtn, gptq]
variants:
  - {prune.method: none, label: nf4}
  - {prune.method: none, quantize.format: gguf, quantize.type: Q4_K_M}
)",
                            "sweep.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->variants.size(), 10u);
  EXPECT_EQ(s->variants[0].label, "magnitude-0.2-rtn");
  EXPECT_EQ(s->variants[1].label, "magnitude-0.2-gptq");  // the last axis varies fastest
  EXPECT_EQ(s->variants[2].label, "magnitude-0.4-rtn");
  EXPECT_EQ(s->variants[7].label, "sparsegpt-0.4-gptq");
  const shardpress::v1::JobSpec& v = s->variants[7].spec;
  EXPECT_EQ(v.name(), "s.sparsegpt-0.4-gptq");
  EXPECT_EQ(v.output(), "/out/s/sparsegpt-0.4-gptq");
  EXPECT_EQ(v.prune().method(), "sparsegpt");
  EXPECT_EQ(v.prune().sparsity(), 0.4);
  EXPECT_EQ(v.quantize().method(), "gptq");
  EXPECT_EQ(v.calibrate().ids(), "/c.txt") << "the base's settings stay";
  EXPECT_EQ(s->variants[7].settings,
            (std::vector<std::pair<std::string, std::string>>{
                {"prune.method", "sparsegpt"}, {"prune.sparsity", "0.4"}, {"quantize.method", "gptq"}}));
  EXPECT_EQ(s->variants[8].label, "nf4");
  EXPECT_EQ(s->variants[8].spec.prune().method(), "none");
  EXPECT_EQ(s->variants[9].label, "none-gguf-Q4_K_M");
  EXPECT_EQ(s->variants[9].spec.output(), "/out/s/none-gguf-Q4_K_M.gguf") << "a GGUF output is a file";
  EXPECT_EQ(s->base.output(), "/out/s");
}

TEST(SweepSpec, ErrorsNameWhatIsWrong) {
  EXPECT_NE(err(kBase).find("nothing to compare"), std::string::npos);
  EXPECT_NE(err("base: {model: /m, output: /o}\naxes: {prune.sparsity: [0.2]}\n").find("'name' is required"),
            std::string::npos);
  EXPECT_NE(err(std::string(kBase) + "axes: {prune.sparsity: 0.2}\n").find("'axes.prune.sparsity' must be a list"),
            std::string::npos);
  EXPECT_NE(err(std::string(kBase) + "axes: {output: [a, b]}\n").find("'output' cannot vary"), std::string::npos);
  EXPECT_NE(err(std::string(kBase) + "variants: [{label: a}, {label: a}]\n").find("two variants are labelled 'a'"),
            std::string::npos);
  // A bad combination names its variant and the key.
  const std::string bad = err(std::string(kBase) + "axes: {prune.method: [magnitude, random]}\n");
  EXPECT_NE(bad.find("variant random"), std::string::npos) << bad;
  EXPECT_NE(bad.find("'prune.method' is 'random'"), std::string::npos) << bad;
  EXPECT_NE(err(std::string(kBase) + "axes: {prune.sparsty: [0.1]}\n").find("unknown key 'prune.sparsty'"),
            std::string::npos);
  EXPECT_NE(err(std::string(kBase) + "variants: [{label: " + std::string(70, 'x') + "}]\n").find("over 64 characters"),
            std::string::npos);
  EXPECT_NE(err(std::string(kBase) + "axis: {}\n").find("unknown key 'axis'"), std::string::npos);
  EXPECT_NE(err("name: s\nbase: {name: x, model: /m, output: /o}\nvariants: [{label: a}]\n").find("'base.name'"),
            std::string::npos);
}

// The README's example (the seed project's plan) parses into its 17 variants.
TEST(SweepSpec, TheSeedPlanExample) {
  auto text = read_file(std::string(SP_PROJECT_DIR) + "/deploy/examples/seed-plan-sweep.yaml");
  ASSERT_TRUE(text.ok());
  auto s = parse_sweep_yaml(*text, "seed-plan-sweep.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->variants.size(), 17u);
  EXPECT_EQ(s->variants[16].spec.name(), "seed-plan.q8");
  EXPECT_EQ(describe_spec(s->variants[15].spec), "GGUF Q4_K_M (importance-weighted)");
}

}  // namespace
}  // namespace sp
