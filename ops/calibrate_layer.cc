#include "ops/calibrate_layer.h"

#include "formats/gguf_names.h"
#include "ops/ggml_grid.h"

#include <array>
#include <cmath>
#include <cstring>
#include <optional>

#include "common/float_convert.h"
#include "fmt/format.h"
#include "ops/decoder_layer.h"
#include "ops/hessian.h"
#include "ops/importance.h"
#include "ops/language_model.h"
#include "ops/linalg.h"
#include "ops/obs_compress.h"

namespace sp {

void round_activations(Activations& acts, DType dtype) {
  if (dtype == DType::kF32) return;
  const std::vector<uint8_t> stored = from_float32(acts.data, dtype);
  acts.data = to_float32(stored, dtype);
}

Activations embed_calibration(const ModelConfig& config, std::span<const float> embed, const int32_t* ids,
                              int64_t sequences, int64_t tokens) {
  Activations a{sequences, tokens, config.hidden_size, {}};
  a.data.resize(static_cast<size_t>(sequences * tokens * config.hidden_size));
  for (int64_t s = 0; s < sequences; ++s) embed_tokens(config, embed.data(), ids + s * tokens, tokens, a.row(s));
  return a;
}

namespace {

// ||W X - Q X||^2 / ||W X||^2 = tr((W-Q) H (W-Q)^T) / tr(W H W^T), from the Hessian.
double relative_output_error(const std::vector<float>& w, const std::vector<float>& q, int64_t rows, int64_t cols,
                             const std::vector<float>& h) {
  double num = 0, den = 0;
  std::vector<double> d(static_cast<size_t>(cols)), x(static_cast<size_t>(cols));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      d[j] = static_cast<double>(w[i * cols + j]) - q[i * cols + j];
      x[j] = w[i * cols + j];
    }
    for (int64_t a = 0; a < cols; ++a) {
      double hd = 0, hx = 0;
      const float* hr = &h[a * cols];
      for (int64_t b = 0; b < cols; ++b) {
        hd += hr[b] * d[b];
        hx += hr[b] * x[b];
      }
      num += d[a] * hd;
      den += x[a] * hx;
    }
  }
  return den > 0 ? num / den : 0.0;
}

}  // namespace

absl::Status forward_layer(const ModelConfig& config, int64_t layer, const LayerWeights& w, const RopeTable& rope,
                           Activations& acts, const CalibrationDevice& device) {
  if (device.forward) {
    const absl::Status st = device.forward(config, layer, w, rope, acts, {}, acts.data.data());
    if (st.ok()) return st;
    if (absl::IsDataLoss(st)) return annotate(st, fmt::format("layer {} forward on the device", layer));
  }
  for (int64_t s = 0; s < acts.sequences; ++s) decoder_layer_forward(config, layer, w, rope, acts.row(s), acts.tokens);
  return absl::OkStatus();
}

absl::Status forward_layer(const ModelConfig& config, int64_t layer, const LayerWeights& w, Activations& acts,
                           const CalibrationDevice& device) {
  SP_ASSIGN_OR_RETURN(RopeTable rope, rope_table(config, acts.tokens));
  return forward_layer(config, layer, w, rope, acts, device);
}

int64_t dense_statistics_size(const ModelConfig& config) {
  int64_t n = 0;
  for (int i = 0; i < kLinearInputs; ++i) {
    const int64_t c = linear_input_width(config, static_cast<LinearInput>(i));
    n += c * c;
  }
  return n;
}

absl::StatusOr<CalibratedLayer> calibrate_layer(const ModelConfig& config, int64_t layer,
                                                std::span<const InputTensor> inputs, Activations& acts,
                                                const CompressSettings& settings, bool sequential,
                                                const Nf4Backend& backend, const CalibrationDevice& device,
                                                DenseStatistics shared) {
  SP_RETURN_IF_ERROR(validate(settings));
  if ((shared.given || shared.collected) && (settings.gptq.true_sequential || (settings.gguf && settings.gguf_importance)))
    return absl::InvalidArgumentError(
        "dense statistics cannot be shared with gptq.true_sequential or an importance-only GGUF job");
  const size_t stats_bytes = static_cast<size_t>(dense_statistics_size(config)) * sizeof(float);
  if (shared.given && shared.given->size() != stats_bytes)
    return absl::DataLossError(fmt::format("the shared statistics hold {} bytes; layer {} needs {}",
                                           shared.given->size(), layer, stats_bytes));
  if (acts.hidden != config.hidden_size || acts.data.size() != static_cast<size_t>(acts.sequences * acts.tokens * acts.hidden))
    return absl::InvalidArgumentError(fmt::format("activations [{}, {}, {}] do not fit hidden size {}", acts.sequences,
                                                  acts.tokens, acts.hidden, config.hidden_size));
  if (settings.gguf && settings.gguf_importance) return importance_weighted_layer(config, layer, inputs, acts);
  SP_ASSIGN_OR_RETURN(LayerWeights lw, load_layer_weights(config, inputs));
  SP_ASSIGN_OR_RETURN(RopeTable rope, rope_table(config, acts.tokens));
  const int64_t T = acts.tokens, H = acts.hidden;

  // 1. Forward passes with taps collect the statistics of the linear inputs: one dense
  // pass for all four, or (true-sequential) one per input, each seeing the projections
  // compressed before it. The first pass is dense: its output feeds `pipelined` mode.
  std::array<std::optional<HessianAccumulator>, kLinearInputs> acc;  // allocated by the pass that fills it
  Activations dense_out;
  bool first_pass = true;
  std::vector<float> x(static_cast<size_t>(T * H));
  // The dense statistics in and out: each input's [c, c] sums in turn.
  auto copy_sums = [&](bool in) {
    size_t at = 0;
    for (int i = 0; i < kLinearInputs; ++i) {
      const size_t n = static_cast<size_t>(acc[i]->columns() * acc[i]->columns());
      if (in) {
        std::memcpy(acc[i]->sums(), shared.given->data() + at, n * sizeof(float));
        acc[i]->count_samples(acts.sequences);
      } else {
        std::memcpy(shared.collected->data() + at, acc[i]->sums(), n * sizeof(float));
      }
      at += n * sizeof(float);
    }
  };
  auto collect = [&](int which) {  // -1: all inputs
    for (int i = 0; i < kLinearInputs; ++i)
      if (which < 0 || which == i) acc[i].emplace(linear_input_width(config, static_cast<LinearInput>(i)));
    if (which < 0 && shared.given) {  // another job ran this pass on the same weights and activations
      copy_sums(true);
      first_pass = false;
      return;
    }
    if (which < 0 && shared.collected) shared.collected->resize(stats_bytes);
    LinearTap tap = [&](LinearInput in, const float* v, int64_t tokens, int64_t) {
      if (which < 0 || which == static_cast<int>(in)) acc[static_cast<int>(in)]->add(v, tokens);
    };
    const bool keep = first_pass && !sequential;
    if (keep) dense_out = acts;
    first_pass = false;
    if (device.forward) {
      std::array<HessianAccumulator*, kLinearInputs> c{};
      for (int i = 0; i < kLinearInputs; ++i)
        if (which < 0 || which == i) c[i] = &*acc[i];
      if (device.forward(config, layer, lw, rope, acts, c, keep ? dense_out.data.data() : nullptr).ok()) {
        if (which < 0 && shared.collected) copy_sums(false);
        return;
      }
      for (int i = 0; i < kLinearInputs; ++i)  // the CPU starts from empty sums
        if (c[i]) acc[i].emplace(linear_input_width(config, static_cast<LinearInput>(i)));
    }
    for (int64_t s = 0; s < acts.sequences; ++s) {
      std::memcpy(x.data(), acts.row(s), x.size() * sizeof(float));
      decoder_layer_forward(config, layer, lw, rope, x.data(), T, &tap);
      if (keep) std::memcpy(dense_out.row(s), x.data(), x.size() * sizeof(float));
    }
    if (which < 0 && shared.collected) copy_sums(false);
  };

  // 2. Compress every projection.
  CalibratedLayer out;
  const bool gptq = settings.quantize && settings.quant_method == QuantMethod::kGptq;
  std::vector<std::vector<OutputTensor>> groups(inputs.size());
  std::vector<TensorReport> reports(inputs.size());
  std::vector<std::optional<LinearReport>> linears(inputs.size());
  std::vector<bool> last_user(inputs.size(), false);  // the last projection reading each input
  std::array<int64_t, kLinearInputs> last{-1, -1, -1, -1};
  for (size_t k = 0; k < inputs.size(); ++k)
    if (is_linear_weight(inputs[k].meta->role)) last[static_cast<int>(linear_input_of(inputs[k].meta->role))] = k;
  for (int64_t k : last)
    if (k >= 0) last_user[static_cast<size_t>(k)] = true;
  auto compress_one = [&](size_t k) -> absl::Status {
    const InputTensor& in = inputs[k];
    const ModelTensor& meta = *in.meta;
    const int64_t rows = meta.stored.shape[0], cols = meta.stored.shape[1];
    HessianAccumulator& stats = *acc[static_cast<int>(linear_input_of(meta.role))];
    // A diagnostic at O(rows * cols^2): only where it is cheap.
    const bool small = static_cast<double>(rows) * static_cast<double>(cols) * static_cast<double>(cols) <= 1e9;
    std::vector<float>& wref = lw.tensors.at(meta.role);
    const std::vector<float> original = wref;
    TensorReport report{meta.name, meta.role};
    LinearReport lr{meta.name};
    auto fail = [&](const absl::Status& st) { return annotate(st, meta.name); };
    std::optional<std::vector<float>> hess;
    // Every path ends here with the weights as the output decodes: the diagnostic, and they
    // replace the layer's for what follows.
    auto finish = [&](std::vector<float> final_w) {
      if (!hess && small) {
        auto h = stats.hessian();
        if (h.ok()) hess = std::move(*h);
      }
      if (hess && small) lr.output_error = relative_output_error(original, final_w, rows, cols, *hess);
      wref = std::move(final_w);
      reports[k] = std::move(report);
      linears[k] = std::move(lr);
      return absl::OkStatus();
    };

    if (settings.gguf) {  // llama.cpp's grid: GPTQ with block parameters fixed first, or round to nearest
      if (!in.gguf) return fail(absl::InvalidArgumentError("no GGUF target in the plan"));
      const GgufTensorPlan& plan = *in.gguf;
      std::vector<float> wg = original;  // in llama.cpp's row order (rows are independent in GPTQ)
      if (plan.permute_heads > 0) wg = permute_qk_rows(wg, rows, cols, plan.permute_heads);
      std::vector<uint8_t> bytes;
      const bool blocks = ggml_traits(plan.type).block > 1;
      if (settings.quant_method == QuantMethod::kGptq && blocks) {
        auto h = last_user[k] && !small ? stats.take_hessian() : stats.hessian();
        if (!h.ok()) return fail(h.status());
        // The importance of each column: the Hessian's diagonal (as an imatrix weighs
        // columns), damped as the loop damps it, so a dead column is not weightless.
        double mean = 0;
        for (int64_t j = 0; j < cols; ++j) mean += (*h)[j * cols + j];
        mean /= static_cast<double>(cols);
        std::vector<float> importance(static_cast<size_t>(cols));
        for (int64_t j = 0; j < cols; ++j)
          importance[j] = (*h)[j * cols + j] + static_cast<float>(settings.gptq.damp * mean);
        auto grid = GgmlGrid::make(plan.type, wg, rows, cols, importance);
        if (!grid.ok()) return fail(grid.status());
        ObsSettings os;
        os.block_size = settings.gptq.block_size;
        os.damp = settings.gptq.damp;
        os.act_order = settings.gptq.act_order;
        os.quantize = false;
        os.grid = &*grid;
        if (small) hess = *h;
        auto r = obs_compress(wg, rows, cols, std::move(*h), os, nullptr);
        if (!r.ok())
          return fail(annotate(r.status(), fmt::format("layer {} {} input", layer,
                                                       linear_input_name(linear_input_of(meta.role)))));
        lr.loss = r->loss;
        lr.damp = r->damp_used;
        lr.dead_columns = r->dead_columns;
        bytes = grid->bytes();
      } else {
        bytes = ggml_quantize(plan.type, wg, cols, 1);
      }
      std::vector<float> final_g = ggml_dequantize(plan.type, bytes, rows * cols);  // what the file decodes to
      if (plan.permute_heads > 0) final_g = unpermute_qk_rows(final_g, rows, cols, plan.permute_heads);
      groups[k] = {{TensorSpec{plan.name, DType::kU8, {static_cast<int64_t>(bytes.size())}}, std::move(bytes)}};
      report.quantized = blocks;
      return finish(std::move(final_g));
    }
    std::optional<std::vector<uint8_t>> mask;
    if (settings.prune && settings.prune->method != PruneMethod::kSparseGpt) {
      std::vector<float> score = original;
      if (settings.prune->method == PruneMethod::kWanda) {
        const std::vector<float> ss = stats.sum_squares();
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j)
            score[i * cols + j] = std::fabs(original[i * cols + j]) * std::sqrt(ss[j]);
      }
      auto m = prune_mask(score, rows, cols, settings.prune->scope, settings.prune->sparsity);
      if (!m.ok()) return fail(m.status());
      mask = std::move(*m);
    }
    const bool obs = gptq || (settings.prune && settings.prune->method == PruneMethod::kSparseGpt);
    std::vector<float> final_w;
    if (obs) {
      // The last projection on an input takes its Hessian without a copy (3 GB for a
      // 32B down_proj) unless the diagnostic below needs it again.
      auto h = last_user[k] && !small ? stats.take_hessian() : stats.hessian();
      if (!h.ok()) return fail(h.status());
      hess = std::move(*h);
      ObsSettings os;
      os.block_size = settings.gptq.block_size;
      os.damp = settings.gptq.damp;
      os.act_order = settings.gptq.act_order;
      os.quantize = gptq;
      // int8: GPTQ on its row grid (each row's scale fixed from the weight), no blocks.
      std::optional<Int8RowGrid> int8_grid;
      const bool int8 = gptq && settings.quantize->quant_type == BnbType::kInt8;
      if (int8) {
        auto scb = int8_row_scales(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(original.data()),
                                                            original.size() * sizeof(float)),
                                   DType::kF32, rows, cols);
        if (!scb.ok()) return fail(scb.status());
        int8_grid.emplace(std::move(*scb), rows, cols);
        os.quantize = false;
        os.grid = &*int8_grid;
      } else if (gptq) {
        os.nf4_blocksize = settings.quantize->blocksize;
        os.quant_type = settings.quantize->quant_type;
        os.double_quant = settings.quantize->double_quant;
        os.scale_range = settings.gptq.scale_search;
        os.weighted_scales = settings.gptq.scales == ScaleChoice::kWeighted;
      }
      if (mask) {
        os.mask = ObsSettings::Mask::kFixed;
        os.fixed_mask = &*mask;
      } else if (settings.prune) {
        os.mask = ObsSettings::Mask::kAdaptive;
        os.scope = settings.prune->scope;
        os.sparsity = settings.prune->sparsity;
      }
      // The device's GPTQ loop knows NF4's code book only.
      const bool device_loop = device.obs && !(gptq && os.quant_type != BnbType::kNf4);
      auto r = obs_compress(original, rows, cols, std::move(*hess), os, device_loop ? &device.obs : nullptr);
      hess.reset();
      if (!r.ok())
        return fail(annotate(r.status(), fmt::format("layer {} {} input", layer,
                                                     linear_input_name(linear_input_of(meta.role)))));
      lr.loss = r->loss;
      lr.damp = r->damp_used;
      lr.dead_columns = r->dead_columns;
      if (settings.prune) {
        PruneStats ps;
        ps.total = r->weight.size();
        ps.pruned = r->pruned;
        ps.zeros = static_cast<uint64_t>(std::count(r->weight.begin(), r->weight.end(), 0.0f));
        report.prune = ps;
      }
      if (int8) {
        groups[k] = int8_output_tensors(meta, int8_grid->take());
        report.quantized = true;
        final_w = std::move(r->weight);
      } else if (gptq) {
        groups[k] = bnb_output_tensors(meta, std::move(r->packed), r->absmax, r->dq, *settings.quantize);
        report.quantized = true;
        final_w = std::move(r->weight);
      } else {
        final_w = std::move(r->weight);  // SparseGPT without GPTQ: RTN below, or stored as is
      }
    } else {
      final_w = original;
      if (mask) report.prune = apply_mask(final_w, *mask);
    }
    if (!report.quantized) {
      if (settings.quantize && settings.quantize->quant_type == BnbType::kInt8) {  // LLM.int8's rows
        auto q8 = int8_quantize(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(final_w.data()),
                                                         final_w.size() * sizeof(float)),
                                DType::kF32, rows, cols);
        if (!q8.ok()) return fail(q8.status());
        final_w = int8_dequantize(q8->codes, q8->scb, cols);
        groups[k] = int8_output_tensors(meta, *q8);
        report.quantized = true;
      } else if (settings.quantize) {  // round to nearest, as bitsandbytes
        const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(final_w.data()),
                                             final_w.size() * sizeof(float));
        const Nf4Backend& kernels = bnb4_backend(settings.quantize->quant_type, backend);
        auto q = nf4_quantize(bytes, DType::kF32, rows, cols, settings.quantize->blocksize, kernels);
        if (!q.ok()) return fail(q.status());
        std::optional<DoubleQuantized> dq;
        std::vector<float> decoded = q->absmax;  // what the checkpoint decodes, for the next layer
        if (settings.quantize->double_quant) {
          dq = double_quantize(q->absmax);
          double_dequantize(dq->codes, dq->nested_absmax, dq->offset, dq->map.data(), decoded.data());
        }
        kernels.dequantize(q->packed.data(), decoded.data(), final_w.size(),
                           static_cast<size_t>(settings.quantize->blocksize), final_w.data());
        groups[k] = bnb_output_tensors(meta, std::move(q->packed), q->absmax, dq, *settings.quantize);
        report.quantized = true;
      } else {
        const std::vector<uint8_t> stored = from_float32(final_w, meta.stored.dtype);
        final_w = to_float32(stored, meta.stored.dtype);
        groups[k] = {{TensorSpec{meta.name, meta.stored.dtype, meta.stored.shape}, stored}};
      }
    }
    return finish(std::move(final_w));
  };
  for (int stage = 0; stage < (settings.gptq.true_sequential ? kLinearInputs : 1); ++stage) {
    collect(settings.gptq.true_sequential ? stage : -1);
    for (size_t k = 0; k < inputs.size(); ++k) {
      const TensorRole role = inputs[k].meta->role;
      if (!is_linear_weight(role)) continue;
      if (settings.gptq.true_sequential && static_cast<int>(linear_input_of(role)) != stage) continue;
      SP_RETURN_IF_ERROR(compress_one(k));
    }
  }
  for (size_t k = 0; k < inputs.size(); ++k) {
    const ModelTensor& meta = *inputs[k].meta;
    if (!is_linear_weight(meta.role) && settings.gguf) {  // norms and biases: their GGUF tensors
      if (!inputs[k].gguf) return annotate(absl::InvalidArgumentError("no GGUF target in the plan"), meta.name);
      groups[k] = {{TensorSpec{inputs[k].gguf->name, DType::kU8, {static_cast<int64_t>(inputs[k].gguf->bytes)}},
                    gguf_tensor_bytes(*inputs[k].gguf, inputs[k].bytes, meta.stored.dtype, meta.stored.shape, 1)}};
      reports[k] = TensorReport{meta.name, meta.role};
    } else if (!is_linear_weight(meta.role)) {
      groups[k] = {{TensorSpec{meta.name, meta.stored.dtype, meta.stored.shape},
                    std::vector<uint8_t>(inputs[k].bytes.begin(), inputs[k].bytes.end())}};
      reports[k] = TensorReport{meta.name, meta.role};
    }
    out.result.groups.push_back(std::move(groups[k]));
    out.result.reports.push_back(std::move(reports[k]));
    if (linears[k]) out.linears.push_back(std::move(*linears[k]));
  }

  // 3. What enters the next layer.
  if (sequential) {
    SP_RETURN_IF_ERROR(forward_layer(config, layer, lw, rope, acts, device));
  } else if (!shared.given) {
    acts = std::move(dense_out);
  }
  return out;
}

}  // namespace sp
