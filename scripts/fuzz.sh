#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) into build-fuzz/ with clang, ASan and UBSan, and runs
# each for SECONDS (default $SPILLWAY_FUZZ_SECONDS, else 60) from a copy of its seed corpus
# (tests/fuzz/corpus/<target>; the repository is never written to). Prints one line per target
# and exits non-zero when any target crashed, leaked or timed out; the input that did it is kept in
# build-fuzz/fuzz-artifacts/<target>/ (reproduce: build-fuzz/tests/fuzz/<target> <file>).
#   scripts/fuzz.sh            60 s per target
#   scripts/fuzz.sh 600        a longer hunt
#   SPILLWAY_FUZZ_TARGETS="fuzz_config" scripts/fuzz.sh 30   only some targets
# Reading a crash: SPILLWAY_FUZZ_VERBOSE=1 build-fuzz/tests/fuzz/fuzz_proxy FILE prints what the
# backend and the client received. Hunting past a known, unfixed bug (never in CI):
# SPILLWAY_FUZZ_IGNORE="empty header name,..." skips the invariants whose message contains those.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${SPILLWAY_FUZZ_SECONDS:-60}}
read -r -a targets <<<"${SPILLWAY_FUZZ_TARGETS:-fuzz_request_parser fuzz_response_parser fuzz_config fuzz_proxy fuzz_h2 fuzz_srv fuzz_resp}"
# Inputs bigger than a few heads buy nothing but slower runs; the proxy's limits are 8 KiB of head
# and 64 KiB of body in its fuzz config, so 8 KiB inputs reach the 431 path.
declare -A max_len=([fuzz_request_parser]=16384 [fuzz_response_parser]=16384 [fuzz_config]=4096
  [fuzz_proxy]=8192 [fuzz_h2]=8192 [fuzz_srv]=2048 [fuzz_resp]=4096)
declare -A dict=([fuzz_request_parser]=http.dict [fuzz_response_parser]=http.dict [fuzz_config]=config.dict
  [fuzz_proxy]=http.dict [fuzz_h2]=h2.dict [fuzz_srv]=dns.dict [fuzz_resp]=resp.dict)

# -gline-tables-only: stack traces with lines, and a smaller, faster build than -g.
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DSPILLWAY_FUZZ=ON -DSPILLWAY_TESTS=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}"

work=$(mktemp -d -t spillway-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  cp tests/fuzz/corpus/"$t"/* "$work/$t/corpus/"
  rc=0
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build-fuzz/tests/fuzz/"$t" "$work/$t/corpus" -max_total_time="$seconds" -max_len="${max_len[$t]}" \
    -dict="tests/fuzz/${dict[$t]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/$t/artifacts/" >"$work/$t/log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t/log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$work/$t/log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  if ((rc == 0)); then
    echo "$t: ok, ${execs:-0} execs (${rate:-0}/s), cov ${cov:-?}, features ${ft:-?}, corpus ${corp:-?}"
  else
    status=1
    mkdir -p build-fuzz/fuzz-artifacts/"$t"
    cp "$work/$t/artifacts/"* build-fuzz/fuzz-artifacts/"$t"/ 2>/dev/null || true
    cp "$work/$t/log" build-fuzz/fuzz-artifacts/"$t"/log
    echo "$t: FAILED (exit $rc) after ${execs:-?} execs; input and log in build-fuzz/fuzz-artifacts/$t/"
    grep -E 'invariant broken|ERROR:|SUMMARY' "$work/$t/log" | head -5 | sed 's/^/  /'
    grep -m 6 -E '#[0-9]+ .* in spillway::' "$work/$t/log" | sed 's/^ */    /' || true
  fi
done
exit "$status"
