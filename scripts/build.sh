#!/usr/bin/env bash
# Configures and builds into build/ (Release) or, with SPILLWAY_SANITIZE=1, into build-asan/
# (ASan+UBSan, Debug optimisation level -O1).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
if [[ "${SPILLWAY_SANITIZE:-0}" == "1" ]]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPILLWAY_SANITIZE=address,undefined \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
  cmake --build build-asan -j "$jobs"
else
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j "$jobs"
fi
