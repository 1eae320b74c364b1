// Sharing a layer's dense calibration statistics between jobs (issue 16's sweeps): the
// variants of a sweep calibrate layer 0 on the same weights and the same embedded token
// ids, so its dense pass — the forward with taps and every linear input's sum X^T X
// (ops/calibrate_layer DenseStatistics) — is the same in each. One task computes it and
// returns it as a blob; the others take that blob instead of running the pass.
//
// The rule, in records (TaskRecord.statistics_key / returns_statistics / statistics_from):
//   - a CALIBRATE_STAGE task of a job whose settings allow it has a key: the digest of the
//     model's config, the layer and every input's name, dtype, shape and digest (so equal
//     keys mean equal statistics, whatever the settings that differ);
//   - leased, it takes the statistics of a DONE task of another job with its key whose
//     blob is still stored; else it returns its own when another job that is not finished
//     may want them (its task with the same key, or — a task reading no activations — a
//     job queued on the same model and calibration text, whose digests are not known yet);
//   - the blob is the producer job's until that job is deleted (blob_owners): jobs run one
//     at a time, so the others take it after the producer has finished. Only a task that
//     reads no activations (layer 0) returns them for jobs not started yet, so a job keeps
//     at most one layer's statistics (3.4 GB for a 32B model, 167 KB for stories260k).
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "shardpress.pb.h"

namespace sp {

// Whether `spec`'s calibration tasks have a dense pass others can share (calibrated, not
// gptq.true_sequential, not an importance-only GGUF job).
bool shares_dense_statistics(const shardpress::v1::JobSpec& spec);

// The key of task `p` of job `j` reading `inputs` (resolved); "" when the task has none
// (not CALIBRATE_STAGE, a job that does not share, or an input whose digest is unknown).
std::string dense_statistics_key(const shardpress::v1::JobRecord& j, const shardpress::v1::TaskPlan& p,
                                 const std::vector<shardpress::v1::TensorMeta>& inputs);

// The statistics tensor among a task's outputs, or null.
const shardpress::v1::TensorMeta* dense_statistics_output(const shardpress::v1::TaskRecord& t);

}  // namespace sp
