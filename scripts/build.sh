#!/usr/bin/env bash
# Configures and builds into build/ (Release: LTO, and PGO with a profile trained below); with
# SPILLWAY_SANITIZE=1, into build-asan/ (ASan+UBSan); with SPILLWAY_SANITIZE=thread, into
# build-tsan/ (TSan). Both sanitizer builds use optimisation level -O1 with debug info, and compile
# everything of ours, Boost.Asio included (cmake/asio.cmake), with the sanitizer.
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
    # Profile-guided: a profile is trained once per checkout (build/pgo-profile) with an
    # instrumented build in build-pgo/ (scripts/pgo-train.sh), and the Release build is optimised
    # with it. SPILLWAY_PGO=0 builds without; SPILLWAY_PGO_TRAIN=1 trains again (after big
    # changes: functions changed since the profile are optimised without it). A training that
    # fails leaves a build without a profile, and says so.
    profile=$PWD/build/pgo-profile
    if [[ ${SPILLWAY_PGO:-1} != 0 && (! -d $profile || ${SPILLWAY_PGO_TRAIN:-0} == 1) ]]; then
      rm -rf "$profile.new"
      if cmake -S . -B build-pgo -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPILLWAY_LTO=OFF -DSPILLWAY_PGO=generate \
        -DSPILLWAY_PGO_DIR="$profile.new" >/dev/null &&
        cmake --build build-pgo -j "$jobs" --target spillway spillway-testd &&
        scripts/pgo-train.sh build-pgo && [[ -n $(find "$profile.new" -name '*.gcda' -print -quit 2>/dev/null) ]]; then
        rm -rf "$profile"
        mv "$profile.new" "$profile"
        # Objects compiled with the old profile are not out of date to ninja: compile all again.
        [[ -f build/build.ninja ]] && cmake --build build --target clean
      else
        echo "build: the PGO training failed; building without a profile" >&2
      fi
    fi
    pgo=(-DSPILLWAY_PGO=)
    if [[ ${SPILLWAY_PGO:-1} != 0 && -d $profile ]]; then
      pgo=(-DSPILLWAY_PGO=use -DSPILLWAY_PGO_DIR="$profile")
    fi
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${pgo[@]}" >/dev/null
    cmake --build build -j "$jobs"
    ;;
esac
