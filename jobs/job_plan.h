// A job cut into shards and tasks, by a pure function of the model's description, the
// job's settings and the calibration/evaluation text's shape — computed once, when the
// job is imported, and stored with it (DESIGN.md "Data flow"). The coordinator creates a
// task when the shards it reads are imported, leases hand out what its plan says (inputs,
// memory), results are checked against it, and assembly follows its shard order.
//
//   compression:           layer.i (COMPRESS_LAYER) per decoder layer, all independent
//   calibrated sequential: layer.0 -> layer.1 -> ... (CALIBRATE_STAGE, each reads the
//                          activations the previous one made with the compressed layer;
//                          with checkpoint_every K, only every K-th boundary and stage
//                          ends are uploaded: the others stay on the worker that made them)
//   calibrated pipelined:  fwd.0 -> fwd.1 -> ... (FORWARD_LAYER, the original layers);
//                          layer.i reads fwd.(i-1)'s activations
//   evaluation:            fwd.0 -> ... -> fwd.(L-1) -> head (EVAL_HEAD: final norm,
//                          output head, the NLL of every sequence)
//
// Calibrated and evaluation jobs have the token ids as an auxiliary shard 0; the first
// layer's tasks read the embeddings and the ids instead of activations.
#pragma once

#include <functional>
#include <vector>

#include "formats/model_layout.h"
#include "formats/imatrix_file.h"
#include "jobs/job_settings.h"
#include "ops/task_memory.h"
#include "shardpress.pb.h"

namespace sp {

inline constexpr char kActivationsTensor[] = "__activations__";
inline constexpr char kCalibrationIdsTensor[] = "__calibration_ids__";
inline constexpr char kCalibrationShardId[] = "calibration";
// A layer's dense calibration statistics (ops/calibrate_layer DenseStatistics), float32, as
// a task returns them for other jobs to take (coordinator/shared_statistics).
inline constexpr char kDenseStatisticsTensor[] = "__dense_statistics__";
// A multiple-choice evaluation's [sequences, 2] int32: each sequence's first choice token and length.
inline constexpr char kChoiceSpansTensor[] = "__choice_spans__";

// The dtype of the activations a job's tasks hand to each other: for compression
// kCalibrationActivationsDType (as a local run rounds them) unless the spec asks for
// bfloat16 (calibrate.activations: half the bytes over the network, a small cost in
// quality), float32 for an evaluation, whose perplexity is the one-process `eval`'s to
// the last bit.
DType activations_dtype(const shardpress::v1::JobSpec& spec);

// Tensors that travel between tasks but never reach the checkpoint.
inline bool is_internal_tensor(std::string_view name) { return name.starts_with("__"); }

// The plan of a job on `model`; `data` is the token ids' shape (calibrated and evaluation
// jobs); `imatrix`: the quantize.imatrix file's contents (format gguf), put in the GGUF
// targets. Tensor digests are left empty: the import fills them in.
shardpress::v1::JobPlan plan_job(const ModelDescription& model, const JobSettings& settings, CalibrationShape data,
                                 const Imatrix* imatrix = nullptr);
// The targets of a format gguf job with `imatrix` attached (plan_job uses exactly these):
// an entry whose length is not its weight's columns, or a non-finite value, is an error
// naming the file.
absl::StatusOr<std::vector<GgufTensorPlan>> weighted_gguf_targets(const ModelDescription& model,
                                                                  const JobSettings& settings, const Imatrix* imatrix);

// The highest plan shard a task reads: it can exist once shards 0..this are imported.
int last_shard_read(const shardpress::v1::TaskPlan& task);

// What a task reads, in order: its shard references expanded to the imported tensors, and
// the activations its producer made (`task` looks a task of the job up by name; inputs
// not produced yet are left out).
std::vector<shardpress::v1::TensorMeta> resolve_inputs(
    const shardpress::v1::JobPlan& plan, const shardpress::v1::TaskPlan& task,
    const std::function<const shardpress::v1::TaskRecord*(const std::string& name)>& find_task);

// The worker `task` must run on: the one that made and kept (TaskPlan.keeps_activations)
// the activations it reads, or "" when any worker may run it.
std::string holder_of_inputs(
    const shardpress::v1::JobPlan& plan, const shardpress::v1::TaskPlan& task,
    const std::function<const shardpress::v1::TaskRecord*(const std::string& name)>& find_task);

// The tensor metas of a plan shard's tensors for a model tensor list (names, roles,
// dtypes, shapes, sizes; no digests).
shardpress::v1::TensorMeta tensor_meta(const ModelTensor& t);
// A GGUF target in the plan and back (the target of tensor `in`); the way back checks what
// a worker cannot trust blindly (a type we decode, whole blocks, the bytes the shape implies,
// the tensor's own shape reversed).
shardpress::v1::GgufTarget gguf_target(const GgufTensorPlan& p);
absl::StatusOr<GgufTensorPlan> gguf_tensor_plan(const shardpress::v1::TensorMeta& in);

}  // namespace sp
