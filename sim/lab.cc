#include "sim/lab.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>

#include "common/byte_size.h"
#include "fmt/format.h"

namespace sp::sim {

namespace {

// What one TCP stream carries over an Ethernet link: ~110 MB/s of 1 GbE's 125 MB/s line rate.
constexpr double kUsableLinkFraction = 0.88;
constexpr double kGigabitLink = 1e9 / 8 * kUsableLinkFraction;

// Each named device with the lab PC it sits in. The GTX 1080 Ti: 11.34 TFLOP/s fp32 and
// 484 GB/s (NVIDIA's figures), an 11 GiB device budget; a 32 GB PC on 1 GbE with a SATA SSD.
// A CPU worker: this machine's one-thread rates, the same PC otherwise.
struct Preset {
  DeviceModel device;
  uint64_t ram;
  double nic, disk;
};
const std::map<std::string, Preset>& presets() {
  static const std::map<std::string, Preset> p = {
      {"cpu", {{"cpu", false, 0, 0, 0}, 32ull << 30, kGigabitLink, 500e6}},
      {"gtx1080ti", {{"gtx1080ti", true, 11.34e12, 484e9, 11ull << 30}, 32ull << 30, kGigabitLink, 500e6}},
  };
  return p;
}

// `shardpress local`'s workers: 4 GiB budget each (its --memory default).
constexpr uint64_t kLocalWorkerMemory = 4ull << 30;

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

}  // namespace

absl::StatusOr<double> parse_rate(std::string_view text) {
  const std::string t(text);
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  std::string unit(end);
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  std::string lower;
  for (char c : unit) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::map<std::string, double> units = {
      {"b/s", 1},          {"kb/s", 1e3},       {"mb/s", 1e6},        {"gb/s", 1e9},
      {"kib/s", 1024.0},   {"mib/s", 1048576.0}, {"gib/s", 1073741824.0},
      {"mbit", 1e6 / 8 * kUsableLinkFraction},   {"gbit", kGigabitLink}, {"gbe", kGigabitLink}};
  auto u = units.find(lower);
  if (end == t.c_str() || !std::isfinite(v) || v <= 0 || u == units.end())
    return absl::InvalidArgumentError(fmt::format(
        "'{}' is not a rate: write a positive number and a unit (MB/s, GB/s, MiB/s, Gbit, GbE), e.g. 110MB/s or 1GbE",
        t));
  return v * u->second;
}

absl::StatusOr<LabModel> parse_lab(const std::string& spec, const std::string& coordinator_nic,
                                   const std::string& coordinator_disk, bool local, int cores) {
  LabModel lab;
  lab.local = local;
  lab.cores = cores;
  lab.coordinator_nic = kGigabitLink;
  lab.coordinator_disk = 500e6;
  if (!coordinator_nic.empty()) {
    auto r = parse_rate(coordinator_nic);
    if (!r.ok()) return annotate(r.status(), "--coordinator-nic");
    lab.coordinator_nic = *r;
  }
  if (!coordinator_disk.empty()) {
    auto r = parse_rate(coordinator_disk);
    if (!r.ok()) return annotate(r.status(), "--coordinator-disk");
    lab.coordinator_disk = *r;
  }
  if (spec.empty()) return absl::InvalidArgumentError("--workers: empty (e.g. 4*gtx1080ti, or 2*cpu with --local)");
  for (const std::string& group : split(spec, '+')) {
    std::vector<std::string> parts = split(group, ':');
    std::string head = parts[0];
    long count = 1;
    if (auto star = head.find('*'); star != std::string::npos) {
      char* end = nullptr;
      count = std::strtol(head.c_str(), &end, 10);
      if (end != head.c_str() + star || count < 1 || count > 1024)
        return absl::InvalidArgumentError(
            fmt::format("--workers: '{}': the count before '*' must be 1..1024 (e.g. 4*gtx1080ti)", group));
      head = head.substr(star + 1);
    }
    auto p = presets().find(head);
    if (p == presets().end())
      return absl::InvalidArgumentError(
          fmt::format("--workers: unknown device '{}' in '{}' (known: cpu, gtx1080ti)", head, group));
    WorkerModel w;
    w.device = p->second.device;
    w.ram = local ? kLocalWorkerMemory : p->second.ram;
    w.nic = p->second.nic;
    w.disk = p->second.disk;
    w.sees_source = local;
    for (size_t k = 1; k < parts.size(); ++k) {
      const auto eq = parts[k].find('=');
      if (eq == std::string::npos)
        return absl::InvalidArgumentError(fmt::format("--workers: '{}' in '{}' is not KEY=VALUE", parts[k], group));
      const std::string key = parts[k].substr(0, eq), value = parts[k].substr(eq + 1);
      const std::string where = fmt::format("--workers: {} in '{}'", key, group);
      if (key == "ram" || key == "vram") {
        auto b = parse_byte_size(value);
        if (!b.ok() || *b == 0) return annotate(b.ok() ? absl::InvalidArgumentError("must be > 0") : b.status(), where);
        (key == "ram" ? w.ram : w.device.vram) = *b;
      } else if (key == "nic" || key == "disk") {
        auto r = parse_rate(value);
        if (!r.ok()) return annotate(r.status(), where);
        (key == "nic" ? w.nic : w.disk) = *r;
      } else if (key == "source") {
        if (value != "yes" && value != "no")
          return absl::InvalidArgumentError(fmt::format("{}: '{}' must be yes or no", where, value));
        w.sees_source = value == "yes";
      } else {
        return absl::InvalidArgumentError(
            fmt::format("--workers: unknown key '{}' in '{}' (ram, vram, nic, disk, source)", key, group));
      }
    }
    for (long i = 0; i < count; ++i) {
      w.id = fmt::format("w{}", lab.workers.size() + 1);
      lab.workers.push_back(w);
    }
    if (lab.workers.size() > 1024) return absl::InvalidArgumentError("--workers: more than 1024 workers");
  }
  return lab;
}

namespace {

std::string describe_worker(const LabModel& lab, const WorkerModel& w) {
  std::string d = w.device.gpu ? fmt::format("{} ({} device memory, {} RAM", w.device.name, format_bytes(w.device.vram),
                                             format_bytes(w.ram))
                               : fmt::format("{} (one thread, {} RAM", w.device.name, format_bytes(w.ram));
  return d + (lab.local ? ")"
                        : fmt::format(", {:.0f} MB/s link{})", w.nic / 1e6, w.sees_source ? ", sees the model files" : ""));
}

std::string describe_coordinator(const LabModel& lab) {
  if (lab.local) return fmt::format("all on this machine ({} cores, loopback gRPC)", lab.cores);
  return fmt::format("coordinator link {:.0f} MB/s, disk {:.0f} MB/s", lab.coordinator_nic / 1e6,
                     lab.coordinator_disk / 1e6);
}

}  // namespace

std::vector<std::string> lab_parts(const LabModel& lab) {
  std::vector<std::string> out;
  for (const auto& w : lab.workers) {
    std::string d = describe_worker(lab, w);
    if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(std::move(d));
  }
  out.push_back(describe_coordinator(lab));
  return out;
}

std::string describe_lab(const LabModel& lab) {
  std::vector<std::pair<std::string, int>> groups;  // in first-seen order
  for (const auto& w : lab.workers) {
    std::string d = describe_worker(lab, w);
    auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return x.first == d; });
    if (g == groups.end())
      groups.push_back({std::move(d), 1});
    else
      g->second++;
  }
  std::string out;
  for (const auto& [d, n] : groups) out += fmt::format("{}{} x {}", out.empty() ? "" : " + ", n, d);
  return out + "; " + describe_coordinator(lab);
}

std::string short_lab(const LabModel& lab) {
  std::vector<std::pair<std::string, int>> groups;
  for (const auto& w : lab.workers) {
    if (groups.empty() || groups.back().first != w.device.name) groups.push_back({w.device.name, 0});
    groups.back().second++;
  }
  std::string out;
  for (const auto& [name, n] : groups) out += fmt::format("{}{} x {}", out.empty() ? "" : " + ", n, name);
  return out;
}

}  // namespace sp::sim
