// What handing activations on as bfloat16 costs: the default GPTQ job on stories260k
// (job defaults; 128 calibration sequences of the fixture's text), compressed once with
// float32 layer boundaries and once with the bfloat16 ones jobs use, each evaluated on the
// fixture's eval set. The bar: bfloat16 only if the perplexity moves by at most 0.005,
// else jobs keep float32 (kCalibrationActivationsDType). Prints both figures.
#include <cmath>
#include <cstdio>

#include "checkpoint/float_model.h"
#include "checkpoint/local_compress.h"
#include "formats/model_config.h"
#include "gtest/gtest.h"
#include "jobs/job_settings.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

double perplexity_of(const std::string& dir, const TokenBatch& eval) {
  auto m = load_float_model(dir);
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return NAN;
  auto p = perplexity(m->model, eval, 2);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? p->perplexity : NAN;
}

TEST(ActivationsPrecision, JobsUseBfloat16OnlyWhereItCostsAtMostFiveThousandthsOfPerplexity) {
  const std::string model = test::fixture("stories260k/hf-bf16");
  shardpress::v1::JobSpec spec = default_job_spec();
  spec.set_name("precision");
  spec.set_model(model);
  spec.set_output("out");
  spec.mutable_quantize()->set_method("gptq");
  spec.mutable_calibrate()->set_ids(test::fixture("stories260k/text/calib.ids.txt"));
  auto settings = job_settings(spec);
  ASSERT_TRUE(settings.ok()) << settings.status();
  ASSERT_TRUE(settings->calibration.has_value());
  auto config = load_model_config(model);
  ASSERT_TRUE(config.ok()) << config.status();
  auto calib = read_token_ids(settings->calibration->ids, config->vocab_size, settings->calibration->samples,
                              settings->calibration->seq_len);
  ASSERT_TRUE(calib.ok()) << calib.status();
  auto eval = read_token_ids(test::fixture("stories260k/text/eval.ids.txt"), config->vocab_size, 0, 0);
  ASSERT_TRUE(eval.ok()) << eval.status();

  test::TempDir d;
  double ppl[2];
  const DType boundary[2] = {DType::kF32, DType::kBF16};
  for (int i = 0; i < 2; ++i) {
    LocalCompressOptions o;
    o.settings = settings->compress;
    o.calibration = *calib;
    o.activations_dtype = boundary[i];
    const std::string out = d / std::string(dtype_name(boundary[i]));
    auto r = compress_model_local(model, out, o);
    ASSERT_TRUE(r.ok()) << r.status();
    ppl[i] = perplexity_of(out, *eval);
  }
  std::printf("default GPTQ job on stories260k, eval perplexity: float32 boundaries %.4f, bfloat16 %.4f (%+.4f)\n",
              ppl[0], ppl[1], ppl[1] - ppl[0]);
  // The rule: bfloat16 where it costs at most 0.005 of perplexity, else float32.
  const bool bf16_good_enough = std::fabs(ppl[1] - ppl[0]) <= 0.005;
  EXPECT_EQ(kCalibrationActivationsDType, bf16_good_enough ? DType::kBF16 : DType::kF32)
      << "bfloat16 boundaries cost " << ppl[1] - ppl[0] << " of perplexity";
}

}  // namespace
}  // namespace sp
