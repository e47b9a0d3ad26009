#!/usr/bin/env bash
# Configures and builds into build/ (Release); with SPILLWAY_SANITIZE=1, into build-asan/
# (ASan+UBSan); with SPILLWAY_SANITIZE=thread, into build-tsan/ (TSan). Both sanitizer builds use
# optimisation level -O1 with debug info, and compile everything of ours, Boost.Asio included
# (cmake/asio.cmake), with the sanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
case "${SPILLWAY_SANITIZE:-0}" in
  1)
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPILLWAY_SANITIZE=address,undefined \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
    cmake --build build-asan -j "$jobs"
    ;;
  thread)
    # The Python tests of the TSan build run against the Release build's spillway-testd (see
    # SPILLWAY_TEST_BACKEND in tests/CMakeLists.txt), so only Spillway and its unit tests are built.
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build -j "$jobs" --target spillway-testd
    cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPILLWAY_SANITIZE=thread \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DSPILLWAY_TEST_BACKEND="$PWD/build/spillway-testd" >/dev/null
    scripts/tsan-run.sh cmake --build build-tsan -j "$jobs" --target spillway spillway_unit_tests
    ;;
  *)
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build -j "$jobs"
    ;;
esac
