#include "jobs/sweep_report.h"

#include <algorithm>
#include <cmath>

#include "common/byte_size.h"
#include "proto/job_state.h"
#include "common/xml_escape.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace sp {

namespace {

bool measured(const ReportRow& r) { return r.bytes > 0 && r.perplexity > 0 && std::isfinite(r.perplexity); }

std::string settings_text(const ReportRow& r) {
  std::string s;
  for (const auto& [k, v] : r.settings) s += (s.empty() ? "" : " ") + k + "=" + v;
  return s;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

ReportRow report_row(const shardpress::v1::JobStatus& s, const std::string& label) {
  ReportRow r;
  r.label = label;
  r.job = s.id();
  r.state = job_state_text(s.state());
  r.bytes = s.output_bytes();
  r.bits_per_weight = s.parameters() > 0 ? 8.0 * static_cast<double>(r.bytes) / static_cast<double>(s.parameters()) : 0;
  const auto& e = s.evaluation();
  r.perplexity = e.perplexity();
  r.original_perplexity = e.original_perplexity();
  r.passed = !e.done() || e.passed();
  r.items = e.choice_score().items();
  r.acc = e.choice_score().acc();
  r.acc_stderr = e.choice_score().acc_stderr();
  r.original_acc = e.original_choice_score().acc();
  const int64_t end = s.finished_ms() > 0 ? s.finished_ms() : s.now_ms();
  r.wall_s = s.started_ms() > 0 ? static_cast<double>(end - s.started_ms()) / 1000.0 : 0;
  for (const auto& t : s.tasks())
    if (t.state() == shardpress::v1::DONE && t.finished_ms() > t.started_ms())
      r.worker_s += static_cast<double>(t.finished_ms() - t.started_ms()) / 1000.0;
  return r;
}

std::vector<bool> pareto_front(const std::vector<ReportRow>& rows) {
  std::vector<bool> front(rows.size(), false);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!measured(rows[i])) continue;
    bool dominated = false;
    for (size_t j = 0; j < rows.size() && !dominated; ++j) {
      if (j == i || !measured(rows[j])) continue;
      const bool no_worse = rows[j].bytes <= rows[i].bytes && rows[j].perplexity <= rows[i].perplexity;
      const bool better = rows[j].bytes < rows[i].bytes || rows[j].perplexity < rows[i].perplexity;
      dominated = no_worse && better;
    }
    front[i] = !dominated;
  }
  return front;
}

std::string report_table(const std::vector<ReportRow>& rows) {
  const auto front = pareto_front(rows);
  const bool choices = std::any_of(rows.begin(), rows.end(), [](const ReportRow& r) { return r.items > 0; });
  auto acc_cell = [](const ReportRow& r) {
    return r.items > 0 ? fmt::format("{:.4f} ({:+.4f})", r.acc, r.acc - r.original_acc) : std::string("-");
  };
  std::string out = fmt::format("{:<24} {:<10} {:>11} {:>6} {:>10} {:>9} {}{:>8} {:>9}  {}\n", "VARIANT", "STATE", "BYTES",
                                "BITS/W", "PERPLEXITY", "DELTA", choices ? fmt::format("{:>17} ", "ACC (DELTA)") : "",
                                "WALL", "WORKER", "PARETO");
  for (size_t i = 0; i < rows.size(); ++i) {
    const ReportRow& r = rows[i];
    out += fmt::format("{:<24} {:<10} {:>11} {:>6} {:>10} {:>9} {}{:>7.1f}s {:>8.1f}s  {}\n", r.label, r.state,
                       r.bytes ? format_bytes(r.bytes) : "-", r.bytes ? fmt::format("{:.2f}", r.bits_per_weight) : "-",
                       r.perplexity > 0 ? fmt::format("{:.4f}", r.perplexity) : "-",
                       r.perplexity > 0 && r.original_perplexity > 0
                           ? fmt::format("{:+.4f}", r.perplexity - r.original_perplexity)
                           : "-",
                       choices ? fmt::format("{:>17} ", acc_cell(r)) : "", r.wall_s, r.worker_s, front[i] ? "*" : "");
  }
  return out;
}

std::string report_csv(const std::vector<ReportRow>& rows) {
  const auto front = pareto_front(rows);
  std::string out = "variant,job,state,settings,bytes,bits_per_weight,perplexity,original_perplexity,delta,passed,wall_s,"
                    "worker_s,pareto,items,acc,acc_stderr,original_acc\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const ReportRow& r = rows[i];
    out += fmt::format("{},{},{},{},{},{:.4f},{:.6f},{:.6f},{:.6f},{},{:.3f},{:.3f},{},{},{:.6f},{:.6f},{:.6f}\n",
                       csv_field(r.label), r.job, r.state, csv_field(settings_text(r)), r.bytes, r.bits_per_weight,
                       r.perplexity, r.original_perplexity,
                       r.perplexity > 0 && r.original_perplexity > 0 ? r.perplexity - r.original_perplexity : 0.0,
                       r.passed ? "true" : "false", r.wall_s, r.worker_s, front[i] ? "true" : "false", r.items, r.acc,
                       r.acc_stderr, r.original_acc);
  }
  return out;
}

std::string report_json(const std::string& sweep, const std::vector<ReportRow>& rows) {
  const auto front = pareto_front(rows);
  nlohmann::ordered_json j;
  j["sweep"] = sweep;
  j["variants"] = nlohmann::json::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    const ReportRow& r = rows[i];
    nlohmann::ordered_json v;
    v["variant"] = r.label;
    v["job"] = r.job;
    v["state"] = r.state;
    nlohmann::ordered_json settings = nlohmann::ordered_json::object();
    for (const auto& [k, val] : r.settings) settings[k] = val;
    v["settings"] = settings;
    v["bytes"] = r.bytes;
    v["bits_per_weight"] = r.bits_per_weight;
    v["perplexity"] = r.perplexity;
    v["original_perplexity"] = r.original_perplexity;
    v["delta"] = r.perplexity > 0 && r.original_perplexity > 0 ? r.perplexity - r.original_perplexity : 0.0;
    v["passed"] = r.passed;
    v["wall_s"] = r.wall_s;
    v["worker_s"] = r.worker_s;
    v["pareto"] = static_cast<bool>(front[i]);
    if (r.items > 0) {
      v["items"] = r.items;
      v["acc"] = r.acc;
      v["acc_stderr"] = r.acc_stderr;
      v["original_acc"] = r.original_acc;
    }
    j["variants"].push_back(v);
  }
  return j.dump(2) + "\n";
}

std::string report_svg(const std::string& sweep, const std::vector<ReportRow>& rows) {
  const auto front = pareto_front(rows);
  constexpr double W = 760, H = 480, L = 80, R = 230, T = 50, B = 60;  // plot area inside the margins
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  double original = 0;
  for (const auto& r : rows) {
    if (!measured(r)) continue;
    const double mib = static_cast<double>(r.bytes) / (1 << 20);
    x0 = std::min(x0, mib), x1 = std::max(x1, mib), y0 = std::min(y0, r.perplexity), y1 = std::max(y1, r.perplexity);
    if (r.original_perplexity > 0) original = r.original_perplexity;
  }
  std::string out = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
      "width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n<text x=\"{2}\" y=\"24\" font-size=\"15\">{3}: perplexity "
      "against size (Pareto front filled)</text>\n",
      W, H, L, xml_escape(sweep));
  if (x0 > x1) return out + fmt::format("<text x=\"{}\" y=\"{}\">no variant is written and evaluated yet</text>\n</svg>\n", L, H / 2);
  if (original > 0) y0 = std::min(y0, original);
  // A little room around the points; a single point gets a span of its own.
  const double xs = std::max(x1 - x0, 0.1 * std::max(x1, 1e-9)), ys = std::max(y1 - y0, 0.05 * std::max(y1, 1e-9));
  x0 -= 0.08 * xs, x1 += 0.08 * xs, y0 -= 0.08 * ys, y1 += 0.08 * ys;
  auto px = [&](double mib) { return L + (mib - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double ppl) { return H - B - (ppl - y0) / (y1 - y0) * (H - T - B); };
  out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n", L, T,
                     W - L - R, H - T - B);
  for (int k = 0; k <= 4; ++k) {  // ticks
    const double xv = x0 + (x1 - x0) * k / 4, yv = y0 + (y1 - y0) * k / 4;
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.3g}</text>\n", px(xv), H - B + 18, xv);
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.4g}</text>\n", L - 6, py(yv) + 4, yv);
  }
  out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">size on disk (MiB)</text>\n",
                     L + (W - L - R) / 2, H - 16);
  out += fmt::format("<text x=\"16\" y=\"{:.1f}\" transform=\"rotate(-90 16 {:.1f})\" text-anchor=\"middle\">perplexity</text>\n",
                     T + (H - T - B) / 2, T + (H - T - B) / 2);
  if (original > 0)
    out += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>"
                       "<text x=\"{}\" y=\"{:.1f}\" fill=\"#666\">original {:.4f}</text>\n",
                       L, W - R, py(original), py(original), L + 6, py(original) - 5, original);
  // The front, joined in order of size.
  std::vector<size_t> on;
  for (size_t i = 0; i < rows.size(); ++i)
    if (front[i]) on.push_back(i);
  std::sort(on.begin(), on.end(), [&](size_t a, size_t b) { return rows[a].bytes < rows[b].bytes; });
  std::string line;
  for (size_t i : on)
    line += fmt::format("{:.1f},{:.1f} ", px(static_cast<double>(rows[i].bytes) / (1 << 20)), py(rows[i].perplexity));
  if (on.size() > 1) out += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"1.5\"/>\n", line);
  // Points numbered (a number is left out where it would cover another); the legend on
  // the right names every number.
  std::vector<std::pair<double, double>> placed;
  int number = 0;
  double legend_y = T + 8;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!measured(rows[i])) continue;
    ++number;
    const double x = px(static_cast<double>(rows[i].bytes) / (1 << 20)), y = py(rows[i].perplexity);
    out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"5\" fill=\"{}\" stroke=\"#c0392b\"><title>{} {:.4f}</title>"
                       "</circle>\n",
                       x, y, front[i] ? "#c0392b" : "white", xml_escape(rows[i].label), rows[i].perplexity);
    const bool crowded = std::any_of(placed.begin(), placed.end(), [&](const auto& p) {
      return std::fabs(p.first - (x + 8)) < 18 && std::fabs(p.second - (y - 6)) < 12;
    });
    if (!crowded) {
      out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", x + 8, y - 6, number);
      placed.push_back({x + 8, y - 6});
    }
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\"{}>{} {} {:.4f}</text>\n", W - R + 12,
                       legend_y, front[i] ? " font-weight=\"bold\"" : "", number, xml_escape(rows[i].label),
                       rows[i].perplexity);
    legend_y += 14;
  }
  return out + "</svg>\n";
}

}  // namespace sp
