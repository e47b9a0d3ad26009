#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: unit, integration, conformance
# and chaos tests on the Release build, then the same suite on an ASan+UBSan build, then on a TSan
# build, then each libFuzzer target for SPILLWAY_FUZZ_SECONDS (default 30) from its seed corpus.
# SPILLWAY_SKIP_TSAN=1 skips the TSan pass; SPILLWAY_SKIP_SANITIZE=1 skips both sanitizer passes;
# SPILLWAY_SKIP_FUZZ=1 skips the fuzzing (e.g. while iterating locally).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "== format (clang-format, .clang-format)"
git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run --Werror
scripts/build.sh
echo "== tests (Release)"
ctest --test-dir build --output-on-failure --timeout 300 -j 2
if [[ "${SPILLWAY_SKIP_SANITIZE:-0}" != "1" ]]; then
  SPILLWAY_SANITIZE=1 scripts/build.sh
  echo "== tests (ASan+UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure --timeout 300 -j 2
fi
if [[ "${SPILLWAY_SKIP_SANITIZE:-0}" != "1" && "${SPILLWAY_SKIP_TSAN:-0}" != "1" ]]; then
  SPILLWAY_SANITIZE=thread scripts/build.sh
  echo "== tests (TSan)"
  # halt_on_error: the first report ends the process, so that a test fails on it (spillway exits
  # non-zero, which the harness checks on stop). The Python tests run against the Release build's
  # spillway-testd (scripts/build.sh); slow tests get a longer timeout than in the other passes.
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp" \
    scripts/tsan-run.sh ctest --test-dir build-tsan --output-on-failure --timeout 600 -j 2
fi
if [[ "${SPILLWAY_SKIP_FUZZ:-0}" != "1" ]]; then
  fuzz_seconds=${SPILLWAY_FUZZ_SECONDS:-30}
  echo "== fuzz (libFuzzer, $fuzz_seconds s per target)"
  scripts/fuzz.sh "$fuzz_seconds"
fi
