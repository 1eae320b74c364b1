#!/usr/bin/env bash
# Sets everything up (Debian packages), builds, and runs the whole test suite with ctest.
# Usage: ./scripts/test.sh            (as root on a fresh Debian 12 machine)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
cd build
ctest --output-on-failure --timeout 900 -j "$(nproc)"
