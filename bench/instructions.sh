#!/usr/bin/env bash
# Instructions per request, counted by callgrind: the one cost figure that does not move with the
# load of a shared machine. Runs a Spillway binary under `valgrind --tool=callgrind` in front of two
# spillway-testd backends, drives it with wrk for a short and a long run, and divides the difference
# in instructions by the difference in requests, so that start-up and connection set-up cancel out.
#
#   bench/instructions.sh [BINARY ...]        # default: build/spillway
#   INSTR_CONNECTIONS="16 256" INSTR_MODE=tcp bench/instructions.sh build/spillway /tmp/old-spillway
#   bench/instructions.sh build/spillway haproxy   # a binary named haproxy runs bench/haproxy.cfg.in
#
# Prints one Markdown row per binary and connection level: instructions per request and heap
# allocations (malloc, calloc, realloc, operator new) per request. Every process it starts is
# stopped on exit, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SPILLWAY_TESTD_BIN=${SPILLWAY_TESTD_BIN:-$ROOT/build/spillway-testd}
INSTR_CONNECTIONS=${INSTR_CONNECTIONS:-16 256}
INSTR_MODE=${INSTR_MODE:-http}            # http or tcp
INSTR_SHORT=${INSTR_SHORT:-3}             # seconds
INSTR_LONG=${INSTR_LONG:-9}
INSTR_PORT_BASE=${INSTR_PORT_BASE:-23900}
BINARIES=("$@")
[[ ${#BINARIES[@]} -gt 0 ]] || BINARIES=("$ROOT/build/spillway")

WORKDIR=$(mktemp -d /tmp/spillway-instr-XXXXXX)
STARTED_PIDS=()
cleanup() {
  for pid in "${STARTED_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORKDIR"
}
trap cleanup EXIT
die() { echo "instructions.sh: $*" >&2; exit 1; }

command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
command -v wrk >/dev/null || die "wrk is not installed"
[[ -x $SPILLWAY_TESTD_BIN ]] || die "$SPILLWAY_TESTD_BIN not built"

B1=$((INSTR_PORT_BASE + 1)) B2=$((INSTR_PORT_BASE + 2))
for port in $B1 $B2; do
  "$SPILLWAY_TESTD_BIN" --listen "127.0.0.1:$port" --name "b$port" --threads 1 >"$WORKDIR/b$port.out" 2>&1 &
  STARTED_PIDS+=($!)
done

# Waits until GET / on PORT answers 200 (a process under valgrind starts slowly).
wait_ready() {
  for ((i = 0; i < 300; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null) == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

# Total instructions in a callgrind dump file.
dump_total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# Calls to the heap allocators in a callgrind dump file (call counts follow a `cfn=` line; names
# are given once, then referred to by their number).
dump_allocs() {
  awk '
    function name_of(line, key,    id, name) {
      id = line; sub("^" key "=", "", id); sub(/\).*/, ")", id)
      name = line; sub("^" key "=\\([0-9]+\\) ?", "", name)
      if (name != "") names[id] = name
      return names[id]
    }
    /^fn=/ { caller = name_of($0, "fn"); current = ""; next }
    /^cfn=/ { current = name_of($0, "cfn"); next }
    /^calls=/ {
      n = $1; sub(/^calls=/, "", n)
      is_new = current ~ /^operator new(\[\])?\(unsigned long(, std::align_val_t)?\)$/
      is_malloc = current ~ /^(malloc|calloc|realloc)$/
      # malloc called by operator new is the same allocation: count it once.
      if (is_new || (is_malloc && caller !~ /^operator new/)) total += n
    }
    END { print total + 0 }
  ' "$1"
}

# Requests wrk completed, from its summary line "N requests in ...".
wrk_requests() { awk '/requests in/ { print $1; exit }'; }

echo "| binary | mode | conns | Ir per request | allocations per request | requests (short, long) |"
echo "|---|---|---:|---:|---:|---:|"
n=0
for bin in "${BINARIES[@]}"; do
  bin=$(command -v "$bin") || die "$bin is not an executable"
  for conns in $INSTR_CONNECTIONS; do
    n=$((n + 1))
    port=$((INSTR_PORT_BASE + 10 + 2 * n))
    if [[ $(basename "$bin") == haproxy* ]]; then
      sed -e "s|@PROXY_PORT@|$port|g" -e "s|@BACKEND1_PORT@|$B1|g" -e "s|@BACKEND2_PORT@|$B2|g" \
        "$ROOT/bench/haproxy.cfg.in" >"$WORKDIR/$n.cfg"
      if [[ $INSTR_MODE == tcp ]]; then
        sed -i -e 's/^    mode http$/    mode tcp/' -e '/option http-keep-alive/d' -e '/http-reuse always/d' \
          -e '/timeout http-keep-alive/d' "$WORKDIR/$n.cfg"
      fi
      command=("$bin" -db -f "$WORKDIR/$n.cfg")
    else
      command=("$bin" run -c "$WORKDIR/$n.yaml")
    fi
    if [[ $INSTR_MODE == tcp ]]; then
      listener="protocol: tcp
    upstream: testd"
    else
      listener="protocol: http
    routes: [ { upstream: testd } ]"
    fi
    cat >"$WORKDIR/$n.yaml" <<EOF
workers: 1
admin: { listen: 127.0.0.1:$((port + 1)) }
listeners:
  - name: bench
    listen: 127.0.0.1:$port
    $listener
upstreams:
  - name: testd
    balance: least_request
    backends: [ { address: 127.0.0.1:$B1 }, { address: 127.0.0.1:$B2 } ]
    health_check: false
EOF
    out=$WORKDIR/cg.$n
    valgrind --tool=callgrind --callgrind-out-file="$out.%p" --dump-instr=no \
      "${command[@]}" >"$WORKDIR/$n.log" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    wait_ready "$port" || die "$bin did not answer on :$port: $(tail -n 3 "$WORKDIR/$n.log")"
    wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$port/" >/dev/null  # warm-up: pools, caches
    declare -A ir=() req=() allocs=()
    for d in "$INSTR_SHORT" "$INSTR_LONG"; do
      callgrind_control -z "$pid" >/dev/null 2>&1
      req[$d]=$(wrk -t1 -c"$conns" -d"${d}s" "http://127.0.0.1:$port/" | wrk_requests)
      callgrind_control -d "run$d" "$pid" >/dev/null 2>&1
      sleep 0.5
      dump=$(ls -t "$out.$pid".* | head -n 1)
      ir[$d]=$(dump_total "$dump")
      allocs[$d]=$(dump_allocs "$dump")
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    dreq=$((req[$INSTR_LONG] - req[$INSTR_SHORT]))
    ((dreq > 0)) || die "the long run did not complete more requests than the short one"
    per=$(((ir[$INSTR_LONG] - ir[$INSTR_SHORT]) / dreq))
    per_alloc=$(awk -v a="${allocs[$INSTR_LONG]}" -v b="${allocs[$INSTR_SHORT]}" -v r="$dreq" 'BEGIN { printf "%.2f", (a - b) / r }')
    echo "| $(basename "$bin") | $INSTR_MODE | $conns | $per | $per_alloc | ${req[$INSTR_SHORT]}, ${req[$INSTR_LONG]} |"
    unset ir req allocs
  done
done
