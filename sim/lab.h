// The lab a simulation runs on (`shardpress simulate --workers SPEC`): each worker's
// device, host memory, network link and disk; the coordinator's link and disk; or, for
// `--local`, one machine whose cores everything shares and whose transfers go over
// loopback gRPC. Rates are bytes per second; the constants behind the named devices and
// links are documented in sim/device_rates.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace sp::sim {

struct DeviceModel {
  std::string name;      // "cpu", "gtx1080ti"
  bool gpu = false;
  double tflops = 0;     // GPU: fp32 peak
  double bandwidth = 0;  // GPU: device memory bytes/s
  uint64_t vram = 0;     // GPU: device memory a task may use (host work: one thread, as workers compute)
};

struct WorkerModel {
  std::string id;  // "w1", "w2", ...
  DeviceModel device;
  uint64_t ram = 0;    // host memory budget for tasks (the worker's --memory)
  double nic = 0;      // bytes/s each way
  double disk = 0;     // bytes/s of its cache / the source files it reads
  bool sees_source = false;  // reads the model's files directly (same host or shared filesystem)
};

struct LabModel {
  std::vector<WorkerModel> workers;
  double coordinator_nic = 0;   // bytes/s each way, shared by every transfer
  double coordinator_disk = 0;  // bytes/s: import reads, result writes, assembly
  bool local = false;           // one machine: loopback gRPC, `cores` shared by all
  int cores = 0;                // local: the machine's cores
  bool copy_import = false;     // `--import copy`: the coordinator stores a copy of the model
};

// "110MB/s", "1.5GB/s", "800MiB/s"; "1Gbit", "1GbE", "10Gbit" (what a TCP stream carries
// over such a link: kUsableLinkFraction of the line rate).
absl::StatusOr<double> parse_rate(std::string_view text);

// A lab from `--workers SPEC`: GROUP[+GROUP...], GROUP = [N*]DEVICE[:KEY=VALUE...], DEVICE
// cpu or gtx1080ti, KEY one of ram, nic, disk, vram, source (yes|no). Defaults per
// device (sim/device_rates.h); `coordinator_nic`/`coordinator_disk` empty: the lab defaults.
// `local`: every worker on this machine with `cores` cores (as `shardpress local`).
absl::StatusOr<LabModel> parse_lab(const std::string& workers, const std::string& coordinator_nic,
                                   const std::string& coordinator_disk, bool local, int cores);

// "4 x gtx1080ti (11.00 GiB device memory, 32.00 GiB RAM, 110 MB/s link); coordinator link
// 110 MB/s, disk 500 MB/s".
std::string describe_lab(const LabModel& lab);
// Each kind of worker without its count, then the coordinator (or the machine, local).
std::vector<std::string> lab_parts(const LabModel& lab);
// "4 x gtx1080ti", "2 x cpu + 1 x gtx1080ti".
std::string short_lab(const LabModel& lab);

}  // namespace sp::sim
