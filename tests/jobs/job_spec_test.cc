#include "jobs/job_plan.h"
#include "jobs/job_yaml.h"

#include "common/file_util.h"
#include "common/config_file.h"
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
            "job.yaml: unknown key 'quantise' (allowed: calibrate, evaluate, model, name, output, overwrite, prune, quantize)");
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

namespace sp {
namespace {

// The example job in deploy/ parses (with the calibration keys) and says what it does.
TEST(JobSpecCalibration, DeployExampleAndCalibrationErrors) {
  auto text = read_file(std::string(SP_PROJECT_DIR) + "/deploy/examples/job.yaml");
  ASSERT_TRUE(text.ok());
  auto spec = parse_job_yaml(*text, "job.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec_needs_calibration(*spec));
  EXPECT_EQ(spec->calibrate().samples(), 128);
  EXPECT_EQ(spec->calibrate().stage_memory(), 10ull << 30);
  EXPECT_EQ(describe_spec(*spec), "GPTQ-NF4 (block 64, double quant, act-order)");
  auto check = [](const std::string& yaml) {
    auto s = parse_job_yaml(yaml, "job.yaml");
    return s.ok() ? std::string("ok") : std::string(s.status().message());
  };
  const std::string base = "model: m\noutput: o\n";
  EXPECT_EQ(check(base + "quantize: {method: gptq}\n"),
            "job.yaml: GPTQ-NF4 (block 64, double quant, act-order) needs calibration text: set 'calibrate.ids' to a "
            "token-id file (one sequence per line)");
  EXPECT_EQ(check(base + "prune: {method: magnitude}\nquantize: {method: gptq, format: none}\ncalibrate: {ids: x}\n"),
            "job.yaml: 'quantize.method' gptq quantizes to a 4-bit grid: it needs quantize.format nf4, fp4 or gguf");
  EXPECT_EQ(check(base + "prune: {method: wanda}\ncalibrate: {ids: x, mode: sideways}\n"),
            "job.yaml: 'calibrate.mode' is 'sideways'; expected sequential or pipelined");
  EXPECT_EQ(check(base + "prune: {method: sparsegpt, scope: '2:4'}\nquantize: {method: gptq, act_order: true}\n"
                       "calibrate: {ids: x}\n"),
            "job.yaml: 'quantize.act_order' cannot be combined with 2:4 pruning (its groups of 4 are in column order)");
  // 2:4 without an explicit act_order: act-order is off by default.
  EXPECT_EQ(check(base + "prune: {method: sparsegpt, scope: '2:4'}\nquantize: {method: gptq}\ncalibrate: {ids: x}\n"), "ok");
  EXPECT_EQ(check(base + "prune: {method: obs}\n"),
            "job.yaml: 'prune.method' is 'obs'; expected none, magnitude, wanda or sparsegpt");
  EXPECT_EQ(check(base + "quantize: {method: gptq, damp: 1.5}\ncalibrate: {ids: x}\n"),
            "job.yaml: 'quantize.damp' is 1.5; expected a number in (0, 1)");
  EXPECT_EQ(check(base + "calibrate: {stage_memory: lots}\n").rfind("job.yaml: 'calibrate.stage_memory': ", 0), 0u);
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// Issue 11: a key given twice is an error (yaml-cpp would silently use the first).
TEST(JobSpecStrict, AKeyGivenTwiceIsAnErrorAtAnyDepth) {
  EXPECT_EQ(err("model: m\noutput: o\nmodel: n\n"), "job.yaml: key 'model' appears twice (lines 1 and 3); give it once");
  EXPECT_EQ(err("model: m\noutput: o\nprune: {method: magnitude, sparsity: 0.3, sparsity: 0.5}\n"),
            "job.yaml: key 'prune.sparsity' appears twice (lines 3 and 3); give it once");
  EXPECT_EQ(err("model: m\noutput: o\nquantize:\n  blocksize: 64\n  format: nf4\n  blocksize: 128\n"),
            "job.yaml: key 'quantize.blocksize' appears twice (lines 4 and 6); give it once");
  EXPECT_EQ(err("model: m\noutput: o\nquantize: {format: nf4}\nquantize: {format: none}\n"),
            "job.yaml: key 'quantize' appears twice (lines 3 and 4); give it once");
  std::string daemon;
  auto st = parse_config_text("listen: a\ndata_dir: b\nlisten: c\n", "c.yaml", {{"listen", &daemon}, {"data_dir", &daemon}});
  EXPECT_EQ(std::string(st.message()), "c.yaml: key 'listen' appears twice (lines 1 and 3); give it once");
}

// 2:4 removes exactly half: a sparsity other than 0.5 is refused, not ignored.
TEST(JobSpecStrict, TwoFourWithASparsityIsAnError) {
  const std::string base = "model: m\noutput: o\n";
  for (const char* s : {"0.3", "0", "0.75"})
    EXPECT_NE(err(base + "prune: {method: magnitude, scope: '2:4', sparsity: " + s + "}\n")
                  .find("2:4 pruning removes exactly 2 of every 4 weights: a sparsity of "),
              std::string::npos)
        << s;
  for (const char* ok : {"prune: {method: magnitude, scope: '2:4'}\n", "prune: {method: magnitude, scope: '2:4', sparsity: 0.5}\n"}) {
    auto spec = parse_job_yaml(base + ok, "job.yaml");
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_EQ(spec->prune().sparsity(), 0.5);
    EXPECT_TRUE(validate(compress_settings(*spec)).ok());
  }
  shardpress::v1::JobSpec wire = *parse_job_yaml(base + "prune: {method: magnitude, scope: '2:4'}\n", "job.yaml");
  wire.mutable_prune()->set_sparsity(0.3);  // over the wire the same rule holds
  EXPECT_FALSE(validate_job_spec(wire).ok());
}

// A rerun resumes only the same spec: the digest of the normalized spec says which.
// calibrate.activations: bfloat16 is the one other choice; float32 written out is the
// default (the same digest as leaving it out); anything else names the key.
TEST(JobSpecCalibration, ActivationsDtype) {
  const std::string base = "name: a\nmodel: /m\noutput: /o\nquantize: {method: gptq}\ncalibrate: {ids: /ids";
  auto bf = parse_job_yaml(base + ", activations: bfloat16}\n", "job.yaml");
  ASSERT_TRUE(bf.ok()) << bf.status();
  EXPECT_EQ(job_settings(*bf)->calibration->activations, DType::kBF16);
  EXPECT_EQ(activations_dtype(*bf), DType::kBF16);
  EXPECT_NE(describe_spec(*bf).find("bfloat16 activations"), std::string::npos) << describe_spec(*bf);
  auto f32 = parse_job_yaml(base + ", activations: float32}\n", "job.yaml");
  auto plain = parse_job_yaml(base + "}\n", "job.yaml");
  ASSERT_TRUE(f32.ok() && plain.ok());
  EXPECT_EQ(spec_digest(*f32), spec_digest(*plain));
  EXPECT_EQ(activations_dtype(*plain), DType::kF32);
  EXPECT_EQ(describe_spec(*plain).find("activations"), std::string::npos);
  auto bad = parse_job_yaml(base + ", activations: float16}\n", "job.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'calibrate.activations' is 'float16'; expected float32 or bfloat16"),
            std::string_view::npos)
      << bad.status();
  // An evaluation hands float32 on whatever the calibrate section says.
  shardpress::v1::JobSpec eval = *bf;
  eval.mutable_eval()->set_ids("/eval.ids");
  EXPECT_EQ(activations_dtype(eval), DType::kF32);
}

// calibrate.checkpoint_every: 1 written out is the default (same digest); a count below
// 0, or more than 1 with pipelined calibration, names the key and says why.
TEST(JobSpecCalibration, CheckpointEvery) {
  const std::string base = "name: a\nmodel: /m\noutput: /o\nquantize: {method: gptq}\ncalibrate: {ids: /ids";
  auto four = parse_job_yaml(base + ", checkpoint_every: 4}\n", "job.yaml");
  ASSERT_TRUE(four.ok()) << four.status();
  EXPECT_EQ(job_settings(*four)->calibration->checkpoint_every, 4);
  auto one = parse_job_yaml(base + ", checkpoint_every: 1}\n", "job.yaml");
  auto plain = parse_job_yaml(base + "}\n", "job.yaml");
  ASSERT_TRUE(one.ok() && plain.ok());
  EXPECT_EQ(spec_digest(*one), spec_digest(*plain));
  EXPECT_EQ(job_settings(*plain)->calibration->checkpoint_every, 1);
  EXPECT_NE(spec_digest(*four), spec_digest(*plain));
  EXPECT_NE(err(base + ", checkpoint_every: -2}\n").find("'calibrate.checkpoint_every' is -2"), std::string::npos);
  const std::string piped = err(base + ", mode: pipelined, checkpoint_every: 4}\n");
  EXPECT_NE(piped.find("'calibrate.checkpoint_every' is 4, but mode is pipelined"), std::string::npos) << piped;
  EXPECT_EQ(err(base + ", mode: pipelined, checkpoint_every: 1}\n"), "");
  EXPECT_NE(err(base + ", checkpoint_every: lots}\n").find("checkpoint_every"), std::string::npos);
}

// quantize.format: gguf takes its llama.cpp type from quantize.type (one rule, the
// ggml_types table); a type without gguf, an unknown type, and what is not built yet
// (GPTQ, pruning) are errors that say so.
TEST(JobSpec, GgufFormatAndType) {
  auto q8 = parse_job_yaml("model: /m\noutput: /o.gguf\nquantize: {format: gguf, type: q8_0}\n", "job.yaml");
  ASSERT_TRUE(q8.ok()) << q8.status();
  auto s = job_settings(*q8);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->compress.gguf.has_value());
  EXPECT_EQ(s->compress.gguf->name, "Q8_0");
  EXPECT_EQ(s->compress.gguf->base, GgmlType::kQ8_0);
  auto mix = parse_job_yaml("model: /m\noutput: /o.gguf\nquantize: {format: gguf, type: q4_k_m, imatrix: /i.dat}\n", "job.yaml");
  ASSERT_TRUE(mix.ok()) << mix.status();
  auto ms = job_settings(*mix);
  ASSERT_TRUE(ms.ok()) << ms.status();
  EXPECT_EQ(ms->compress.gguf->name, "Q4_K_M");
  EXPECT_TRUE(ms->compress.gguf->mix);
  EXPECT_EQ(ms->gguf_imatrix, "/i.dat");
  EXPECT_NE(err("model: /m\noutput: /o\nquantize: {imatrix: /i.dat}\n").find("'quantize.imatrix' is for format gguf"),
            std::string::npos);
  EXPECT_FALSE(s->compress.quantize.has_value());
  EXPECT_NE(err("model: /m\noutput: /o\nquantize: {format: gguf, type: Q3_X}\n").find("'quantize.type' is 'Q3_X'; format gguf writes one of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q4_K, Q5_K, Q6_K, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M"),
            std::string::npos);
  EXPECT_NE(err("model: /m\noutput: /o\nquantize: {format: gguf}\n").find("'quantize.type' is ''"), std::string::npos);
  EXPECT_NE(err("model: /m\noutput: /o\nquantize: {type: Q4_0}\n").find("'quantize.type' is for format gguf"),
            std::string::npos);
  // GPTQ on the grid is calibrated (the ids are its calibration text); pruning is not built.
  auto gptq = parse_job_yaml("model: /m\noutput: /o\nquantize: {format: gguf, type: Q4_0, method: gptq}\ncalibrate: {ids: /x}\n", "g.yaml");
  ASSERT_TRUE(gptq.ok());
  auto gs = job_settings(*gptq);
  ASSERT_TRUE(gs.ok()) << gs.status();
  EXPECT_TRUE(gs->calibration.has_value());
  EXPECT_FALSE(gs->compress.gguf_importance);
  auto weighted = parse_job_yaml("model: /m\noutput: /o\nquantize: {format: fp4, method: gptq, scales: weighted}\n"
                                 "calibrate: {ids: /x}\n", "w.yaml");
  ASSERT_TRUE(weighted.ok());
  auto ws = job_settings(*weighted);
  ASSERT_TRUE(ws.ok()) << ws.status();
  EXPECT_EQ(ws->compress.gptq.scales, ScaleChoice::kWeighted);
  EXPECT_EQ(ws->compress.quantize->quant_type, BnbType::kFp4);
  EXPECT_EQ(describe(ws->compress), "GPTQ-FP4 (block 64, double quant, act-order, weighted scales)");
  EXPECT_NE(err("model: /m\noutput: /o\nquantize: {method: gptq, scales: best}\ncalibrate: {ids: /x}\n")
                .find("'quantize.scales' is 'best'; expected search or weighted"),
            std::string::npos);
  // Round to nearest with calibration text: importance-weighted, a calibrated job.
  auto rtn = parse_job_yaml("model: /m\noutput: /o\nquantize: {format: gguf, type: Q4_K_M}\ncalibrate: {ids: /x}\n", "r.yaml");
  ASSERT_TRUE(rtn.ok());
  auto rs = job_settings(*rtn);
  ASSERT_TRUE(rs.ok()) << rs.status();
  EXPECT_TRUE(rs->compress.gguf_importance);
  EXPECT_TRUE(rs->calibration.has_value());
  EXPECT_EQ(describe(rs->compress), "GGUF Q4_K_M (importance-weighted)");
  EXPECT_NE(err("model: /m\noutput: /o\nquantize: {format: gguf, type: Q4_0, imatrix: /i.dat}\ncalibrate: {ids: /x}\n")
                .find("not both"),
            std::string::npos);
  EXPECT_NE(err("model: /m\noutput: /o\nquantize: {format: gguf, type: Q4_0, method: gptq, imatrix: /i.dat}\n"
                "calibrate: {ids: /x}\n")
                .find("GPTQ weighs the columns by its own Hessian"),
            std::string::npos);
  EXPECT_NE(err("model: /m\noutput: /o\nquantize: {format: gguf, type: Q4_0, method: gptq}\n").find("needs calibration text"),
            std::string::npos);
  EXPECT_NE(err("model: /m\noutput: /o\nprune: {method: magnitude}\nquantize: {format: gguf, type: Q4_0}\n").find("not yet"),
            std::string::npos);
}

TEST(JobSpecStrict, DigestAndDifferences) {
  auto a = parse_job_yaml("model: /m\noutput: /o\nprune: {method: magnitude}\n", "a.yaml");
  auto same = parse_job_yaml("output: /o\nprune: {sparsity: 0.3, method: magnitude}\nmodel: /m\n", "b.yaml");
  auto other = parse_job_yaml("model: /m\noutput: /o\nprune: {method: magnitude, sparsity: 0.4}\nquantize: {blocksize: 128}\n",
                              "c.yaml");
  ASSERT_TRUE(a.ok() && same.ok() && other.ok());
  EXPECT_EQ(spec_digest(*a), spec_digest(*same));
  EXPECT_EQ(spec_digest(*a).size(), 32u);
  EXPECT_NE(spec_digest(*a), spec_digest(*other));
  EXPECT_TRUE(spec_differences(*a, *same).empty());
  EXPECT_EQ(spec_differences(*a, *other),
            (std::vector<std::string>{"prune.sparsity: 0.3 -> 0.4", "quantize.blocksize: 64 -> 128"}));
}

}  // namespace
}  // namespace sp
