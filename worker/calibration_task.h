// The calibration and evaluation tasks a worker runs (CALIBRATE_STAGE, FORWARD_LAYER,
// EVAL_HEAD): rebuild the
// layer's inputs and the activations entering it (from the previous task's output, or
// from the embeddings and the calibration ids for the first layer), then calibrate,
// prune and quantize the layer (ops/calibrate_layer) or run its original forward. Plain
// functions of the lease and its input bytes, tested without a network.
#pragma once

#include <span>
#include <vector>

#include "common/status.h"
#include "formats/model_layout.h"
#include "jobs/job_settings.h"
#include "ops/calibrate_layer.h"
#include "ops/compress_shard.h"
#include "shardpress.pb.h"

namespace sp {

struct LeaseInput {
  const shardpress::v1::TensorMeta* meta;
  std::span<const uint8_t> bytes;
};

// The settings of the job a lease is for (from the spec it carries).
absl::StatusOr<JobSettings> lease_settings(const shardpress::v1::LeaseResponse& lease);

struct CalibrationTaskResult {
  // The groups to upload: the layer's outputs (unless a forward task), then, where the
  // next layer needs them, one group with the `__activations__`, then, where the lease
  // asked for them (return_statistics), one with the `__dense_statistics__`.
  ShardResult result;
  // EVAL_HEAD: the summed NLL over all sequences (in sequence order) and the predictions.
  double nll = 0;
  int64_t predictions = 0;
  // EVAL_HEAD of a multiple-choice evaluation: each sequence's choice log-likelihood.
  std::vector<double> logliks;
};

// `backend` and `device`: where NF4 and the forward / GPTQ work run (the CPU by default).
absl::StatusOr<CalibrationTaskResult> run_calibration_task(const shardpress::v1::LeaseResponse& lease,
                                                           std::span<const LeaseInput> inputs,
                                                           const Nf4Backend& backend = nf4_best_backend(),
                                                           const CalibrationDevice& device = {});

}  // namespace sp
