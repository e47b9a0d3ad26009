#!/usr/bin/env bash
# System calls per request, by name, for Spillway and the proxies it is compared with: the kernel
# side of the CPU cost, which instruction counts (bench/instructions.sh) do not see. Counted with
# `perf stat -e 'syscalls:sys_enter_*'` attached to the proxy's processes while wrk runs, divided
# by the requests wrk completed.
#
#   bench/syscalls.sh                          # spillway haproxy nginx, wrk -c64 for 5 s each
#   SYSCALLS_TARGETS="spillway haproxy" SYSCALLS_CONNECTIONS=256 bench/syscalls.sh
#   SYSCALLS_SPILLWAY=/tmp/old/spillway bench/syscalls.sh
#
# Prints a Markdown table: one column per target, one row per system call seen (and the total).
# Needs perf (linux-perf) with tracepoints readable (root). Every process it starts is stopped on
# exit, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SPILLWAY_BIN=${SYSCALLS_SPILLWAY:-$ROOT/build/spillway}
SPILLWAY_TESTD_BIN=${SPILLWAY_TESTD_BIN:-$ROOT/build/spillway-testd}
TARGETS=${SYSCALLS_TARGETS:-spillway haproxy nginx}
CONNS=${SYSCALLS_CONNECTIONS:-64}
DURATION=${SYSCALLS_DURATION:-5}
PORT_BASE=${SYSCALLS_PORT_BASE:-24500}

WORKDIR=$(mktemp -d /tmp/spillway-syscalls-XXXXXX)
STARTED_PIDS=()
cleanup() {
  for pid in "${STARTED_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORKDIR"
}
trap cleanup EXIT
die() { echo "syscalls.sh: $*" >&2; exit 1; }

command -v perf >/dev/null || die "perf is not installed (apt-get install linux-perf)"
command -v wrk >/dev/null || die "wrk is not installed"
perf stat -e 'syscalls:sys_enter_read' -- true >/dev/null 2>&1 || die "perf cannot read syscall tracepoints here"

B1=$((PORT_BASE + 1)) B2=$((PORT_BASE + 2))
for port in $B1 $B2; do
  "$SPILLWAY_TESTD_BIN" --listen "127.0.0.1:$port" --name "b$port" --threads 1 >"$WORKDIR/b$port.out" 2>&1 &
  STARTED_PIDS+=($!)
done

wait_ready() {
  for ((i = 0; i < 100; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null) == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

fill() {
  sed -e "s|@PROXY_PORT@|$2|g" -e "s|@BACKEND1_PORT@|$B1|g" -e "s|@BACKEND2_PORT@|$B2|g" -e "s|@WORKDIR@|$WORKDIR|g" "$1"
}

# Comma-separated PIDs of a process and its descendants (NGINX's master and worker).
pids_of() {
  local all=("$1") k=0 kids
  while ((k < ${#all[@]})); do
    kids=$(cat /proc/"${all[$k]}"/task/*/children 2>/dev/null || true)
    for c in $kids; do all+=("$c"); done
    k=$((k + 1))
  done
  (IFS=,; echo "${all[*]}")
}

declare -A COUNT=()   # target,syscall -> per request
declare -A SEEN=()
n=0
for target in $TARGETS; do
  n=$((n + 1))
  port=$((PORT_BASE + 10 + 2 * n))
  case $target in
    spillway)
      cat >"$WORKDIR/spillway.yaml" <<EOF
workers: 1
admin: { listen: 127.0.0.1:$((port + 1)) }
listeners:
  - name: bench
    listen: 127.0.0.1:$port
    routes: [ { upstream: testd } ]
upstreams:
  - name: testd
    balance: least_request
    backends: [ { address: 127.0.0.1:$B1 }, { address: 127.0.0.1:$B2 } ]
    health_check: false
EOF
      "$SPILLWAY_BIN" run -c "$WORKDIR/spillway.yaml" >"$WORKDIR/spillway.log" 2>&1 &
      ;;
    haproxy)
      fill "$ROOT/bench/haproxy.cfg.in" "$port" >"$WORKDIR/haproxy.cfg"
      haproxy -db -f "$WORKDIR/haproxy.cfg" >"$WORKDIR/haproxy.log" 2>&1 &
      ;;
    nginx)
      mkdir -p "$WORKDIR/nginx-tmp"
      fill "$ROOT/bench/nginx.conf.in" "$port" >"$WORKDIR/nginx.conf"
      nginx -p "$WORKDIR" -e "$WORKDIR/nginx-error.log" -c "$WORKDIR/nginx.conf" >"$WORKDIR/nginx.log" 2>&1 &
      ;;
    *) die "unknown target $target (spillway, haproxy, nginx)" ;;
  esac
  pid=$!
  STARTED_PIDS+=("$pid")
  wait_ready "$port" || die "$target did not answer on :$port"
  wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$port/" >/dev/null  # warm-up
  perf stat -x, -e 'syscalls:sys_enter_*' -p "$(pids_of "$pid")" -o "$WORKDIR/$target.perf" -- sleep "$DURATION" &
  perf_pid=$!
  STARTED_PIDS+=("$perf_pid")
  requests=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$port/" | awk '/requests in/ { print $1 }')
  wait "$perf_pid" || true
  # lines: count,,syscalls:sys_enter_NAME,...
  while IFS=, read -r count _ event _; do
    [[ $event == syscalls:sys_enter_* && $count =~ ^[0-9]+$ && $count -gt 0 ]] || continue
    name=${event#syscalls:sys_enter_}
    SEEN[$name]=1
    COUNT[$target,$name]=$(awk -v c="$count" -v r="$requests" 'BEGIN { printf "%.3f", c / r }')
  done <"$WORKDIR/$target.perf"
  COUNT[$target,requests]=$requests
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done

header="| system call |"
rule="|---|"
for target in $TARGETS; do
  header+=" $target |"
  rule+="---:|"
done
echo "wrk -t2 -c$CONNS for ${DURATION} s against each proxy (one worker/thread), system calls per request:"
echo
echo "$header"
echo "$rule"
for name in $(printf '%s\n' "${!SEEN[@]}" | sort); do
  row="| $name |"
  for target in $TARGETS; do row+=" ${COUNT[$target,$name]:-0} |"; done
  echo "$row"
done
row="| **total** |"
for target in $TARGETS; do
  total=0
  for name in "${!SEEN[@]}"; do total=$(awk -v a="$total" -v b="${COUNT[$target,$name]:-0}" 'BEGIN { print a + b }'); done
  row+=" **$(printf '%.2f' "$total")** |"
done
echo "$row"
row="| requests |"
for target in $TARGETS; do row+=" ${COUNT[$target,requests]} |"; done
echo "$row"
