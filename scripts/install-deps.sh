#!/usr/bin/env bash
# Installs every Debian 12 package shardpress needs to build and test.
# Idempotent: packages already present are skipped by apt. Run as root (or via sudo).
# CUDA is optional and not installed here: with nvcc on PATH (or /usr/local/cuda) the
# kernels are compiled as well.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev
  libyaml-cpp-dev
  libboost-dev libboost-system-dev libssl-dev
  libgtest-dev libgmock-dev
  libbenchmark-dev
  nlohmann-json3-dev
  libxxhash-dev
  libopenblas-dev liblapacke-dev
  libcli11-dev
  libspdlog-dev libfmt-dev
  python3 time bc openssl
  clang libclang-rt-14-dev
  chromium chromium-driver     # the status page's browser test (headless)
  systemd                      # systemd-analyze verify of deploy/systemd
  slurm-wlm munge              # the Slurm test: a one-node cluster on 127.0.0.1
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
