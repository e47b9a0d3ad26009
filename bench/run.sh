#!/usr/bin/env bash
# Spillway benchmark: wrk against one backend straight, Spillway, HAProxy and NGINX, all in front
# of the same two spillway-testd backends on 127.0.0.1. Targets are interleaved (every connection
# level runs each target in turn, for BENCH_ROUNDS rounds) so that machine noise hits all alike.
# Prints a Markdown table and writes it to bench/results-latest.md. See bench/README.md.
#
# Every process this script starts is recorded by PID and stopped on exit, however it exits.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

BUILD_DIR=${BUILD_DIR:-$REPO_DIR/build}
SPILLWAY_BIN=${SPILLWAY_BIN:-$BUILD_DIR/spillway}
SPILLWAY_TESTD_BIN=${SPILLWAY_TESTD_BIN:-$BUILD_DIR/spillway-testd}
# Another Spillway binary (e.g. the previous commit's) for the spillway-before and spillway-before-tcp
# targets: measured in the same interleaved run as the current one, for before/after rows.
SPILLWAY_BASELINE_BIN=${SPILLWAY_BASELINE_BIN:-}
HAPROXY_BIN=${HAPROXY_BIN:-haproxy}
NGINX_BIN=${NGINX_BIN:-nginx}
WRK_BIN=${WRK_BIN:-wrk}
H2LOAD_BIN=${H2LOAD_BIN:-h2load}

BENCH_DURATION=${BENCH_DURATION:-10s}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-16 64 256}
BENCH_ROUNDS=${BENCH_ROUNDS:-1}
BENCH_WRK_THREADS=${BENCH_WRK_THREADS:-2}
BENCH_TARGETS=${BENCH_TARGETS:-direct spillway spillway-nometrics spillway-ratelimit spillway-tracing haproxy nginx spillway-tcp haproxy-tcp spillway-https haproxy-https spillway-h2 haproxy-h2 spillway-h2h2 haproxy-h2h2 spillway-grpc haproxy-grpc}
BENCH_PATH=${BENCH_PATH:-/}
# The h2 targets (cleartext HTTP/2 with prior knowledge, to the same HTTP/1 backends) are driven by
# h2load: BENCH_CONNECTIONS connections with BENCH_H2_STREAMS streams in flight on each.
BENCH_H2_STREAMS=${BENCH_H2_STREAMS:-10}
# The h2h2 targets: the same h2load load, HTTP/2 to two `nghttpd --no-tls` backends (nghttp2-server;
# GET / answered from a 13-byte index.html) instead of HTTP/1.1: HTTP/2 on both sides, with backends
# fast enough that the proxies' own work shows.
# The grpc targets: h2load's gRPC unary calls (test.Echo/Unary, a 5-byte message) through the proxy
# to two Python grpcio servers (tests/integration/grpc_backend.py) over HTTP/2 (`protocol: http2` /
# HAProxy `proto h2` on both sides). The Python servers are slower than the proxies: the rows
# compare the proxies' CPU per call, not their ceilings.
GRPC_PYTHON=${GRPC_PYTHON:-/usr/bin/python3}
# Request bodies: BENCH_BODY_BYTES=N (read by bench/report.lua) POSTs N bytes per request, e.g. with
# BENCH_PATH=/upload; big responses come from BENCH_PATH=/download?size=1m.
export BENCH_BODY_BYTES=${BENCH_BODY_BYTES:-0}
BENCH_WARMUP=${BENCH_WARMUP:-1s}
BENCH_PORT_BASE=${BENCH_PORT_BASE:-20000}
BENCH_OUTPUT=${BENCH_OUTPUT:-$SCRIPT_DIR/results-latest.md}
BENCH_KEEP_WORKDIR=${BENCH_KEEP_WORKDIR:-0}
# Idle keep-alive connections opened against each http proxy (and `direct`) after the wrk runs, for
# the memory-per-idle-connection table; 0 skips it.
BENCH_IDLE_CONNECTIONS=${BENCH_IDLE_CONNECTIONS:-4000}
# Idle keep-alive connections held open against spillway while a wrk -c64 run of BENCH_DURATION goes
# through the same listener, next to a run without them (issue #14: req/s within 10%, no errors);
# 0 skips it. Spillway only: the HAProxy and NGINX configs here cap connections below this.
BENCH_IDLE_LOAD=${BENCH_IDLE_LOAD:-15000}
# What each request costs, counted rather than timed: system calls (perf's syscalls:sys_enter_*
# tracepoints) and heap allocations (uprobes on libc's and tcmalloc's allocators) of the proxy's
# processes during a wrk run of BENCH_COUNT_DURATION at each of BENCH_COUNT_CONNECTIONS, for every
# running proxy target. Needs perf and root; skipped (with a note) otherwise. 0 skips it.
BENCH_COUNTS=${BENCH_COUNTS:-1}
BENCH_COUNT_CONNECTIONS=${BENCH_COUNT_CONNECTIONS:-64}
BENCH_COUNT_DURATION=${BENCH_COUNT_DURATION:-3s}
# Seconds of bench/rapid_reset.py per h2 target (spillway-h2, haproxy-h2): the latency of
# well-behaved HTTP/2 clients alone and while BENCH_RAPID_RESET_FLOODERS processes flood the proxy
# with streams reset at once (CVE-2023-44487). 0 skips it.
BENCH_RAPID_RESET=${BENCH_RAPID_RESET:-5}
BENCH_RAPID_RESET_FLOODERS=${BENCH_RAPID_RESET_FLOODERS:-2}

BACKEND1_PORT=$((BENCH_PORT_BASE + 1))
BACKEND2_PORT=$((BENCH_PORT_BASE + 2))
SPILLWAY_PORT=$((BENCH_PORT_BASE + 10))
SPILLWAY_ADMIN_PORT=$((BENCH_PORT_BASE + 11))
HAPROXY_PORT=$((BENCH_PORT_BASE + 20))
NGINX_PORT=$((BENCH_PORT_BASE + 30))
# Variants: each its own process, so that its CPU time is its own.
declare -A VARIANT_PORT=(
  [spillway-nometrics]=$((BENCH_PORT_BASE + 12)) [spillway-tcp]=$((BENCH_PORT_BASE + 14))
  [spillway-https]=$((BENCH_PORT_BASE + 16)) [spillway-copy-tcp]=$((BENCH_PORT_BASE + 18))
  [spillway-before]=$((BENCH_PORT_BASE + 26)) [spillway-before-tcp]=$((BENCH_PORT_BASE + 28))
  [haproxy-tcp]=$((BENCH_PORT_BASE + 22))
  [haproxy-https]=$((BENCH_PORT_BASE + 24))
  [spillway-2w]=$((BENCH_PORT_BASE + 32)) [haproxy-2t]=$((BENCH_PORT_BASE + 34))
  [spillway-h2]=$((BENCH_PORT_BASE + 36)) [haproxy-h2]=$((BENCH_PORT_BASE + 38))
  [spillway-grpc]=$((BENCH_PORT_BASE + 42)) [haproxy-grpc]=$((BENCH_PORT_BASE + 44))
  [spillway-ratelimit]=$((BENCH_PORT_BASE + 46)) [spillway-tracing]=$((BENCH_PORT_BASE + 48))
  [spillway-h2h2]=$((BENCH_PORT_BASE + 50)) [haproxy-h2h2]=$((BENCH_PORT_BASE + 52))
)
NGHTTPD1_PORT=$((BENCH_PORT_BASE + 54))
NGHTTPD2_PORT=$((BENCH_PORT_BASE + 55))
GRPC1_PORT=$((BENCH_PORT_BASE + 40))
GRPC2_PORT=$((BENCH_PORT_BASE + 41))

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

WORKDIR=$(mktemp -d /tmp/spillway-bench.XXXXXX)
STARTED_PIDS=()          # everything we started, in start order
declare -A TARGET_PORT=()
declare -A TARGET_PID=() # the proxy's main process; its children are found through /proc
declare -A TARGET_NOTE=()
declare -A TARGET_SCHEME=()  # https for the TLS targets
RUNNING_TARGETS=()
ADDED_PROBES=""  # the uprobes this run added, removed on exit

# ----- process bookkeeping -------------------------------------------------------------------

# Prints PID and all its descendants, from /proc (threads' children lists).
process_tree() {
  local pid=$1 child
  [[ -d /proc/$pid ]] || return 0
  echo "$pid"
  # shellcheck disable=SC2013  # the children files are space-separated PIDs: words are wanted
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    process_tree "$child"
  done
}

# Sum of utime+stime, and of stime alone, in clock ticks, over a process and its descendants (nginx
# and haproxy workers included): "TOTAL SYSTEM".
cpu_ticks() {
  local total=0 system=0 pid line rest
  local -a fields
  for pid in $(process_tree "$1"); do
    line=$(cat /proc/"$pid"/stat 2>/dev/null) || continue
    rest=${line##*) }          # drop "pid (comm) ": comm may contain spaces
    read -r -a fields <<<"$rest"
    total=$((total + fields[11] + fields[12]))  # stat fields 14 and 15
    system=$((system + fields[12]))
  done
  echo "$total $system"
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local -a victims=()
  local pid i alive
  # Collect descendants first: once a parent dies its children are re-parented and lost to us.
  for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
    for pid in $(process_tree "${STARTED_PIDS[i]}"); do
      victims+=("$pid")
    done
  done
  for pid in "${victims[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for ((i = 0; i < 50; i++)); do
    alive=0
    for pid in "${victims[@]}"; do
      if kill -0 "$pid" 2>/dev/null && [[ $(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null) != Z ]]; then
        alive=1
      fi
    done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${victims[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  local probe
  for probe in $ADDED_PROBES; do
    perf probe -q -d "$probe" 2>/dev/null || true
  done
  if [[ $BENCH_KEEP_WORKDIR == 1 || $status != 0 ]]; then
    log "logs and configs kept in $WORKDIR"
  else
    rm -rf "$WORKDIR"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

# Waits until GET BENCH_PATH on PORT answers 200, while PID lives. Returns 1 on timeout or death.
wait_ready() {
  local port=$1 pid=$2 tries=${3:-100} scheme=${4:-http} code
  for ((i = 0; i < tries; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ $scheme == grpc ]]; then
      code=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' --max-time 1 -X POST \
        -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @"$WORKDIR/grpc.msg" \
        "http://127.0.0.1:$port/test.Echo/Unary" || true)
    elif [[ $scheme == h2c ]]; then
      code=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' --max-time 1 \
        "http://127.0.0.1:$port$BENCH_PATH" || true)
    else
      code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "$scheme://127.0.0.1:$port$BENCH_PATH" || true)
    fi
    [[ $code == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

fill_template() {
  sed -e "s|@PROXY_PORT@|$2|g" -e "s|@BACKEND1_PORT@|$BACKEND1_PORT|g" -e "s|@BACKEND2_PORT@|$BACKEND2_PORT|g" \
      -e "s|@WORKDIR@|$WORKDIR|g" "$1"
}

# ----- targets -------------------------------------------------------------------------------

start_backend() {
  local name=$1 port=$2 pid
  "$SPILLWAY_TESTD_BIN" --listen "127.0.0.1:$port" --name "$name" --threads 1 \
    >"$WORKDIR/$name.out" 2>"$WORKDIR/$name.err" &
  pid=$!
  STARTED_PIDS+=("$pid")
  for ((i = 0; i < 50; i++)); do
    grep -q '^listening ' "$WORKDIR/$name.out" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  die "backend $name did not start: $(cat "$WORKDIR/$name.err")"
}

# The grpc targets' two backends (once), and the message every call sends.
start_grpc_backends() {
  [[ -f $WORKDIR/grpc.msg ]] && return 0
  "$GRPC_PYTHON" -c 'import grpc' 2>/dev/null || return 1
  printf '\x00\x00\x00\x00\x05hello' >"$WORKDIR/grpc.msg"
  local name port pid
  for name in g1 g2; do
    port=$GRPC1_PORT
    [[ $name == g2 ]] && port=$GRPC2_PORT
    "$GRPC_PYTHON" "$REPO_DIR/tests/integration/grpc_backend.py" --port "$port" --name "$name" \
      >"$WORKDIR/$name.out" 2>"$WORKDIR/$name.err" &
    pid=$!
    STARTED_PIDS+=("$pid")
    for ((i = 0; i < 100; i++)); do
      grep -q '^listening ' "$WORKDIR/$name.out" 2>/dev/null && break
      kill -0 "$pid" 2>/dev/null || { rm -f "$WORKDIR/grpc.msg"; return 1; }
      sleep 0.1
    done
  done
}

# The h2h2 targets' two nghttpd backends (once).
start_nghttpd_backends() {
  [[ -f $WORKDIR/www/index.html ]] && return 0
  command -v nghttpd >/dev/null || return 1
  mkdir -p "$WORKDIR/www"
  echo 'hello, h2 h2' >"$WORKDIR/www/index.html"
  local port pid
  for port in "$NGHTTPD1_PORT" "$NGHTTPD2_PORT"; do
    nghttpd --no-tls -d "$WORKDIR/www" "$port" >"$WORKDIR/nghttpd-$port.out" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    for ((i = 0; i < 50; i++)); do
      port_in_use "$port" && break
      kill -0 "$pid" 2>/dev/null || { rm -f "$WORKDIR/www/index.html"; return 1; }
      sleep 0.1
    done
  done
}

# A throwaway certificate for the https targets (EC P-256, like most sites today).
make_cert() {
  [[ -f $WORKDIR/bench.pem ]] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.test \
    -keyout "$WORKDIR/bench.key" -out "$WORKDIR/bench.crt" >/dev/null 2>&1 || return 1
  cat "$WORKDIR/bench.crt" "$WORKDIR/bench.key" >"$WORKDIR/bench.pem"  # HAProxy wants both in one file
}

# start_spillway [VARIANT]: spillway (http), spillway-nometrics (metrics: false), spillway-tcp (an
# L4 listener, splice), spillway-copy-tcp (L4 with the copy loop), spillway-https (TLS terminated),
# spillway-ratelimit (a client_ip rate limit that never limits), spillway-tracing (every request
# sampled, spans exported to the second backend's /upload, which reads and answers 200).
start_spillway() {
  local target=${1:-spillway} port=$SPILLWAY_PORT admin=$SPILLWAY_ADMIN_PORT scheme=http
  local listener="protocol: http
    routes:
      - upstream: testd" metrics=true bin=$SPILLWAY_BIN workers=1 top_extra=""
  [[ $target == spillway-before* ]] && bin=$SPILLWAY_BASELINE_BIN
  if [[ ! -x $bin ]]; then
    TARGET_NOTE[$target]="skipped: '$bin' not found (the proxy is not built yet, or SPILLWAY_BASELINE_BIN is not set)"
    return 1
  fi
  if [[ $target != spillway ]]; then
    port=${VARIANT_PORT[$target]}
    admin=$((port + 1))
  fi
  case $target in
    spillway-nometrics) metrics=false ;;
    spillway-ratelimit)
      listener="$listener
        rate_limit: bench"
      top_extra="rate_limits: [ { name: bench, key: client_ip, rate: 1000000000/s, burst: 1000000 } ]" ;;
    spillway-tracing)
      top_extra="tracing: { sample: 100%, otlp: \"http://127.0.0.1:$BACKEND2_PORT/upload\" }" ;;
    spillway-2w) workers=2 ;;
    spillway-tcp | spillway-before-tcp) listener="protocol: tcp
    upstream: testd" ;;
    spillway-copy-tcp) listener="protocol: tcp
    upstream: testd
    splice: false" ;;
    spillway-h2) scheme=h2c ;;  # the same listener: HTTP/2 is on by default
    spillway-h2h2)
      start_nghttpd_backends || { TARGET_NOTE[$target]="skipped: nghttpd (nghttp2-server) could not be started"; return 1; }
      scheme=h2c ;;
    spillway-grpc)
      start_grpc_backends || { TARGET_NOTE[$target]="skipped: no grpc backends ($GRPC_PYTHON cannot import grpc)"; return 1; }
      scheme=grpc ;;
    spillway-https)
      make_cert || { TARGET_NOTE[$target]="skipped: openssl could not make a certificate"; return 1; }
      scheme=https
      listener="$listener
    tls: { cert: $WORKDIR/bench.crt, key: $WORKDIR/bench.key }" ;;
  esac
  local be1=$BACKEND1_PORT be2=$BACKEND2_PORT upstream_extra=""
  if [[ $scheme == grpc ]]; then
    be1=$GRPC1_PORT be2=$GRPC2_PORT upstream_extra="
    protocol: http2"
  elif [[ $target == spillway-h2h2 ]]; then
    be1=$NGHTTPD1_PORT be2=$NGHTTPD2_PORT upstream_extra="
    protocol: http2"
  fi
  cat >"$WORKDIR/$target.yaml" <<EOF
# Generated by bench/run.sh: one worker, like HAProxy's nbthread 1 and NGINX's one worker.
workers: $workers
metrics: $metrics
admin:
  listen: 127.0.0.1:$admin
listeners:
  - name: bench
    listen: 127.0.0.1:$port
    max_connections: 19000  # room for BENCH_IDLE_LOAD's idle connections beside wrk's (default 10000)
    $listener
upstreams:
  - name: testd
    balance: least_request
    backends:
      - address: 127.0.0.1:$be1
      - address: 127.0.0.1:$be2
    health_check: false
    # As many requests and connections as HAProxy's maxconn (bench/haproxy.cfg.in): the defaults
    # (1,024 each) answer 503 beyond that, which h2load -c256 -m10 (2,560 streams) goes past.
    limits: { max_connections: 8000, max_requests: 8000 }$upstream_extra
$top_extra
EOF
  "$bin" run -c "$WORKDIR/$target.yaml" >"$WORKDIR/$target.log" 2>&1 &
  local pid=$!
  STARTED_PIDS+=("$pid")
  if ! wait_ready "$port" "$pid" 100 "$scheme"; then
    TARGET_NOTE[$target]="skipped: $target did not start or did not answer 200 on :$port (log: $(tail -n 3 "$WORKDIR/$target.log" | tr '\n' ' '))"
    kill -TERM "$pid" 2>/dev/null || true
    return 1
  fi
  TARGET_PID[$target]=$pid
  TARGET_PORT[$target]=$port
  TARGET_SCHEME[$target]=$scheme
}

# h2_both_ways PORT B1 B2 CFG: HAProxy config CFG binds PORT with `proto h2` and speaks HTTP/2
# (`proto h2`) to servers B1 and B2 instead of the HTTP/1.1 backends.
h2_both_ways() {
  sed -i -e "s|^    bind 127.0.0.1:$1\$|    bind 127.0.0.1:$1 proto h2|" \
    -e "s|^    server b1 127.0.0.1:$BACKEND1_PORT\$|    server b1 127.0.0.1:$2 proto h2|" \
    -e "s|^    server b2 127.0.0.1:$BACKEND2_PORT\$|    server b2 127.0.0.1:$3 proto h2|" "$4"
}

# start_haproxy [VARIANT]: haproxy (http), haproxy-tcp (mode tcp), haproxy-https (ssl crt on the bind).
start_haproxy() {
  local target=${1:-haproxy} port=$HAPROXY_PORT scheme=http
  if ! command -v "$HAPROXY_BIN" >/dev/null; then
    TARGET_NOTE[$target]="skipped: $HAPROXY_BIN not installed"
    return 1
  fi
  [[ $target == haproxy ]] || port=${VARIANT_PORT[$target]}
  fill_template "$SCRIPT_DIR/haproxy.cfg.in" "$port" >"$WORKDIR/$target.cfg"
  case $target in
    haproxy-tcp)
      # L4 like Spillway's tcp listener: connections balanced by count, bytes relayed.
      sed -i -e 's/^    mode http$/    mode tcp/' -e '/option http-keep-alive/d' -e '/option forwardfor/d' -e '/http-request set-header/d' -e '/http-reuse always/d' \
        -e '/timeout http-keep-alive/d' "$WORKDIR/$target.cfg" ;;
    haproxy-2t)
      sed -i 's/^    nbthread 1$/    nbthread 2/' "$WORKDIR/$target.cfg" ;;
    haproxy-h2)
      scheme=h2c
      sed -i "s|^    bind 127.0.0.1:$port\$|    bind 127.0.0.1:$port proto h2|" "$WORKDIR/$target.cfg" ;;
    haproxy-h2h2)
      start_nghttpd_backends || { TARGET_NOTE[$target]="skipped: nghttpd (nghttp2-server) could not be started"; return 1; }
      scheme=h2c
      h2_both_ways "$port" "$NGHTTPD1_PORT" "$NGHTTPD2_PORT" "$WORKDIR/$target.cfg" ;;
    haproxy-grpc)
      start_grpc_backends || { TARGET_NOTE[$target]="skipped: no grpc backends ($GRPC_PYTHON cannot import grpc)"; return 1; }
      scheme=grpc
      h2_both_ways "$port" "$GRPC1_PORT" "$GRPC2_PORT" "$WORKDIR/$target.cfg" ;;
    haproxy-https)
      make_cert || { TARGET_NOTE[$target]="skipped: openssl could not make a certificate"; return 1; }
      scheme=https
      sed -i "s|^    bind 127.0.0.1:$port\$|    bind 127.0.0.1:$port ssl crt $WORKDIR/bench.pem alpn http/1.1|" \
        "$WORKDIR/$target.cfg" ;;
  esac
  # -db: stay in the foreground, so $! is HAProxy itself.
  "$HAPROXY_BIN" -db -f "$WORKDIR/$target.cfg" >"$WORKDIR/$target.log" 2>&1 &
  local pid=$!
  STARTED_PIDS+=("$pid")
  if ! wait_ready "$port" "$pid" 100 "$scheme"; then
    TARGET_NOTE[$target]="skipped: $target did not start (log: $(tail -n 3 "$WORKDIR/$target.log" | tr '\n' ' '))"
    return 1
  fi
  TARGET_PID[$target]=$pid
  TARGET_PORT[$target]=$port
  TARGET_SCHEME[$target]=$scheme
}

start_nginx() {
  if ! command -v "$NGINX_BIN" >/dev/null; then
    TARGET_NOTE[nginx]="skipped: $NGINX_BIN not installed"
    return 1
  fi
  mkdir -p "$WORKDIR/nginx-tmp"
  fill_template "$SCRIPT_DIR/nginx.conf.in" "$NGINX_PORT" >"$WORKDIR/nginx.conf"
  # daemon off (in the config): $! is the master; its worker is found as its child.
  "$NGINX_BIN" -p "$WORKDIR" -e "$WORKDIR/nginx-error.log" -c "$WORKDIR/nginx.conf" \
    >"$WORKDIR/nginx.log" 2>&1 &
  local pid=$!
  STARTED_PIDS+=("$pid")
  if ! wait_ready "$NGINX_PORT" "$pid"; then
    TARGET_NOTE[nginx]="skipped: nginx did not start (log: $(tail -n 3 "$WORKDIR/nginx-error.log" "$WORKDIR/nginx.log" 2>/dev/null | tr '\n' ' '))"
    return 1
  fi
  TARGET_PID[nginx]=$pid
  TARGET_PORT[nginx]=$NGINX_PORT
}

# ----- one measurement -----------------------------------------------------------------------

# run_wrk TARGET CONNS DURATION: sets WRK_LINE to the BENCH line of bench/report.lua. Not meant
# for $(...): wrk must be a child of this shell so that cleanup can stop it.
run_wrk() {
  local target=$1 conns=$2 duration=$3 pid
  local out="$WORKDIR/wrk-$target-$conns.out"
  if [[ ${TARGET_SCHEME[$target]:-} == h2c || ${TARGET_SCHEME[$target]:-} == grpc ]]; then
    run_h2load "$@"
    return
  fi
  "$WRK_BIN" -t"$BENCH_WRK_THREADS" -c"$conns" -d"$duration" --latency -s "$SCRIPT_DIR/report.lua" \
    "${TARGET_SCHEME[$target]:-http}://127.0.0.1:${TARGET_PORT[$target]}$BENCH_PATH" >"$out" 2>&1 &
  pid=$!
  STARTED_PIDS+=("$pid")
  wait "$pid" || true
  WRK_LINE=$(grep '^BENCH ' "$out") || die "wrk against $target failed: $(cat "$out")"
}

# run_h2load TARGET CONNS DURATION: h2load, with the same BENCH line as report.lua's (percentiles
# from its per-request log; errors are failed, errored and timed-out requests).
run_h2load() {
  local target=$1 conns=$2 duration=$3 pid
  local out="$WORKDIR/h2load-$target-$conns.out" reqlog="$WORKDIR/h2load-$target-$conns.log"
  local streams=$BENCH_H2_STREAMS seconds=${3%s}
  # h2load wants at least as many requests in flight as connections, and -D in seconds.
  local url="http://127.0.0.1:${TARGET_PORT[$target]}$BENCH_PATH" call=()
  if [[ ${TARGET_SCHEME[$target]} == grpc ]]; then
    url="http://127.0.0.1:${TARGET_PORT[$target]}/test.Echo/Unary"
    call=(-d "$WORKDIR/grpc.msg" -H 'content-type: application/grpc' -H 'te: trailers')
  fi
  "$H2LOAD_BIN" -c "$conns" -m "$streams" -t "$BENCH_WRK_THREADS" -D "$seconds" --log-file="$reqlog" \
    "${call[@]}" "$url" >"$out" 2>&1 &
  pid=$!
  STARTED_PIDS+=("$pid")
  wait "$pid" || true
  local line
  line=$(grep -E '^requests: ' "$out") || die "h2load against $target failed: $(cat "$out")"
  # requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
  local done failed errored timeout
  read -r done failed errored timeout <<<"$(sed -E 's/.* ([0-9]+) done, ([0-9]+) succeeded, ([0-9]+) failed, ([0-9]+) errored, ([0-9]+) timeout.*/\2 \3 \4 \5/' <<<"$line")"
  local pcts
  pcts=$(cut -f3 "$reqlog" | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "0 0"; exit }
    i50 = int(NR * 0.50); if (i50 < 1) i50 = 1; i99 = int(NR * 0.99); if (i99 < 1) i99 = 1; print v[i50], v[i99] }')
  WRK_LINE="BENCH requests=$done duration_us=$((seconds * 1000000)) p50_us=${pcts% *} p99_us=${pcts#* } status_errors=$failed connect=$errored read=0 write=0 timeout=$timeout"
}

# ----- main ----------------------------------------------------------------------------------

command -v "$WRK_BIN" >/dev/null || die "wrk not installed"
[[ -x $SPILLWAY_TESTD_BIN ]] || die "$SPILLWAY_TESTD_BIN not found: build it first (cmake --build build --target spillway-testd)"
for port in "$BACKEND1_PORT" "$BACKEND2_PORT" "$SPILLWAY_PORT" "$SPILLWAY_ADMIN_PORT" "$HAPROXY_PORT" "$NGINX_PORT" \
  "$NGHTTPD1_PORT" "$NGHTTPD2_PORT" \
  "${VARIANT_PORT[@]}"; do
  port_in_use "$port" && die "port $port is already in use (set BENCH_PORT_BASE to move all ports)"
done

start_backend b1 "$BACKEND1_PORT"
start_backend b2 "$BACKEND2_PORT"
TARGET_PORT[direct]=$BACKEND1_PORT

for target in $BENCH_TARGETS; do
  case $target in
    direct) RUNNING_TARGETS+=(direct) ;;
    spillway | spillway-nometrics | spillway-ratelimit | spillway-tracing | spillway-tcp | spillway-copy-tcp | \
      spillway-https | spillway-before | spillway-before-tcp | spillway-2w | spillway-h2 | spillway-h2h2 | spillway-grpc | \
      haproxy | haproxy-tcp | haproxy-https | \
      haproxy-2t | haproxy-h2 | haproxy-h2h2 | haproxy-grpc | nginx)
      if [[ $target == *-h2 || $target == *-h2h2 || $target == *-grpc ]] && ! command -v "$H2LOAD_BIN" >/dev/null; then
        log "$target skipped: $H2LOAD_BIN not installed (nghttp2-client)"
        continue
      fi
      if "start_${target%%-*}" "$target"; then
        RUNNING_TARGETS+=("$target")
      else
        log "$target ${TARGET_NOTE[$target]}"
      fi
      ;;
    *) die "unknown target '$target' (known: direct spillway spillway-nometrics spillway-ratelimit spillway-tracing spillway-tcp spillway-copy-tcp spillway-https spillway-before spillway-before-tcp spillway-2w spillway-h2 spillway-h2h2 spillway-grpc haproxy haproxy-tcp haproxy-https haproxy-2t haproxy-h2 haproxy-h2h2 haproxy-grpc nginx)" ;;
  esac
done
((${#RUNNING_TARGETS[@]} > 0)) || die "no target could be started"

# ----- idle connections ----------------------------------------------------------------------
# First, while every proxy is fresh: measured after the load rows, HAProxy's and NGINX's pools
# already held what the idle connections need (0.10 and 0.00 KiB each instead of 1.1 and 0.7).

IDLE_RESULTS="$WORKDIR/idle.tsv"
: >"$IDLE_RESULTS"
if ((BENCH_IDLE_CONNECTIONS > 0)); then
  for target in "${RUNNING_TARGETS[@]}"; do
    tls=()
    case $target in
      spillway | spillway-before | haproxy | nginx) ;;
      spillway-https | haproxy-https) tls=(--tls) ;;  # idle TLS connections: OpenSSL's state is the most of it
      *) continue ;;  # one row per proxy, plain http (and TLS)
    esac
    log "idle: $BENCH_IDLE_CONNECTIONS keep-alive connections to $target"
    # --settle 3: past Spillway's park delay (1 s idle, swept every second), so that what is
    # measured is what an idle connection keeps.
    if out=$(python3 "$SCRIPT_DIR/idle_memory.py" --port "${TARGET_PORT[$target]}" --pid "${TARGET_PID[$target]}" \
      --connections "$BENCH_IDLE_CONNECTIONS" --settle 3 --path "$BENCH_PATH" "${tls[@]}" 2>&1); then
      printf '%s\t%s\t%s\n' "$target" "$(sed -E 's/.*per_conn_kib=([0-9.-]+).*/\1/' <<<"$out")" \
        "$(sed -E 's/.*marginal_kib=([0-9.-]+).*/\1/' <<<"$out")" >>"$IDLE_RESULTS"
    else
      TARGET_NOTE[$target]="${TARGET_NOTE[$target]:-}idle connections failed: $out"
    fi
  done
fi

if [[ $BENCH_WARMUP != 0 && $BENCH_WARMUP != 0s ]]; then
  for target in "${RUNNING_TARGETS[@]}"; do
    log "warming up $target ($BENCH_WARMUP)"
    run_wrk "$target" 16 "$BENCH_WARMUP"
  done
fi

RESULTS="$WORKDIR/results.tsv"
: >"$RESULTS"
n=${#RUNNING_TARGETS[@]}
for conns in $BENCH_CONNECTIONS; do
  for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    # Rotate the starting target each round so that none always runs first (or last).
    for ((k = 0; k < n; k++)); do
      target=${RUNNING_TARGETS[(k + round - 1) % n]}
      before=-
      if [[ -n ${TARGET_PID[$target]:-} ]]; then
        read -r before before_sys <<<"$(cpu_ticks "${TARGET_PID[$target]}")"
      fi
      run_wrk "$target" "$conns" "$BENCH_DURATION"
      cpu=-
      cpu_sys=-
      if [[ $before != - ]]; then
        read -r after after_sys <<<"$(cpu_ticks "${TARGET_PID[$target]}")"
        cpu=$((after - before))
        cpu_sys=$((after_sys - before_sys))
      fi
      # line: BENCH requests=.. duration_us=.. p50_us=.. p99_us=.. status_errors=.. connect=.. read=.. write=.. timeout=..
      read -r requests duration p50 p99 status_err c_err r_err w_err t_err \
        <<<"$(sed -E 's/[a-z0-9_]+=//g; s/^BENCH //' <<<"$WRK_LINE")"
      errors=$((status_err + c_err + r_err + w_err + t_err))
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$target" "$conns" "$round" "$requests" "$duration" "$p50" "$p99" "$errors" "$cpu" "$cpu_sys" >>"$RESULTS"
      log "$(printf '%-18s c=%-4s round %s: %s req/s, p50 %s us, p99 %s us, errors %s, cpu ticks %s' \
        "$target" "$conns" "$round" "$((requests * 1000000 / (duration > 0 ? duration : 1)))" "$p50" "$p99" "$errors" "$cpu")"
    done
  done
done

# ----- idle connections under load -------------------------------------------------------------

IDLE_LOAD_RESULTS="$WORKDIR/idle_load.tsv"  # target conns base_requests base_us loaded_requests loaded_us errors first_failed second_ok
: >"$IDLE_LOAD_RESULTS"
if ((BENCH_IDLE_LOAD > 0)) && [[ -n ${TARGET_PID[spillway]:-} ]]; then
  log "idle under load: wrk -c64 through spillway alone, then beside $BENCH_IDLE_LOAD idle connections"
  run_wrk spillway 64 "$BENCH_DURATION"
  base_line=$WRK_LINE
  hold=$((${BENCH_DURATION%s} + 10))
  python3 "$SCRIPT_DIR/idle_memory.py" --port "${TARGET_PORT[spillway]}" --pid "${TARGET_PID[spillway]}" \
    --connections "$BENCH_IDLE_LOAD" --batch 200 --settle 1 --hold "$hold" --path "$BENCH_PATH" \
    >"$WORKDIR/idle-load.out" 2>&1 &
  idle_pid=$!
  STARTED_PIDS+=("$idle_pid")
  for ((i = 0; i < 600; i++)); do
    grep -q '^holding ' "$WORKDIR/idle-load.out" 2>/dev/null && break
    kill -0 "$idle_pid" 2>/dev/null || break
    sleep 0.2
  done
  if grep -q '^holding ' "$WORKDIR/idle-load.out"; then
    run_wrk spillway 64 "$BENCH_DURATION"
    wait "$idle_pid" || true
    read -r b_req b_us _ <<<"$(sed -E 's/BENCH requests=([0-9]+) duration_us=([0-9]+).*/\1 \2 x/' <<<"$base_line")"
    read -r l_req l_us _ <<<"$(sed -E 's/BENCH requests=([0-9]+) duration_us=([0-9]+).*/\1 \2 x/' <<<"$WRK_LINE")"
    read -r s_err c_err r_err w_err t_err <<<"$(sed -E 's/.*status_errors=([0-9]+) connect=([0-9]+) read=([0-9]+) write=([0-9]+) timeout=([0-9]+).*/\1 \2 \3 \4 \5/' <<<"$WRK_LINE")"
    idle_out=$(grep '^IDLE' "$WORKDIR/idle-load.out" || echo "first_failed=? second_ok=?")
    printf 'spillway\t64\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$b_req" "$b_us" "$l_req" "$l_us" \
      "$((s_err + c_err + r_err + w_err + t_err))" "$(sed -E 's/.*first_failed=([0-9?]+).*/\1/' <<<"$idle_out")" \
      "$(sed -E 's/.*second_ok=([0-9?]+).*/\1/' <<<"$idle_out")" >>"$IDLE_LOAD_RESULTS"
  else
    TARGET_NOTE[spillway]="${TARGET_NOTE[spillway]:-}idle under load: the idle connections were not opened: $(tail -n 3 "$WORKDIR/idle-load.out" | tr '\n' ' ')"
    kill "$idle_pid" 2>/dev/null || true
  fi
fi

# ----- counts: system calls and allocations per request -------------------------------------

# Adds uprobes on the allocators unless present (recording them in ADDED_PROBES, removed on exit):
# libc's malloc, calloc and realloc (HAProxy's and NGINX's, and C++ operator new where it goes
# through malloc), and, when Spillway links tcmalloc, tcmalloc's own entry points, which take its
# calls instead of libc (malloc, calloc, realloc, memalign = aligned_alloc, and tc_new = operator
# new and new[]; none calls another). Sets ALLOC_EVENTS to the perf events that count them, empty
# when uprobes cannot be set. Not for $(...): ADDED_PROBES must reach cleanup.
ALLOC_EVENTS=""
add_allocation_probes() {  # LIBRARY GROUP FUNCTION...
  local lib=$1 group=$2 fn
  shift 2
  for fn in "$@"; do
    if ! perf probe -l 2>/dev/null | grep -q "$group:$fn "; then
      perf probe -q -x "$lib" --add "$fn" >/dev/null 2>&1 || continue
      ADDED_PROBES+=" $group:$fn"
    fi
    ALLOC_EVENTS+="${ALLOC_EVENTS:+,}$group:$fn"
  done
}
allocation_events() {
  local libc tcmalloc
  libc=$(ldd "$SPILLWAY_BIN" 2>/dev/null | awk '/libc\.so\.6/ { print $3 }')
  [[ -n $libc ]] || return 0
  add_allocation_probes "$libc" probe_libc malloc calloc realloc
  tcmalloc=$(ldd "$SPILLWAY_BIN" 2>/dev/null | awk '/libtcmalloc_minimal\.so/ { print $3 }')
  if [[ -n $tcmalloc ]]; then
    add_allocation_probes "$tcmalloc" probe_libtcmalloc_minimal malloc calloc realloc memalign tc_new
  fi
}

COUNT_RESULTS="$WORKDIR/counts.tsv"  # target conns requests event count
: >"$COUNT_RESULTS"
if [[ $BENCH_COUNTS != 0 ]]; then
  if ! command -v perf >/dev/null; then
    TARGET_NOTE[counts]="system calls and allocations per request not counted: perf is not installed (scripts/install-deps.sh --bench)"
  elif ! perf stat -e syscalls:sys_enter_read -- true >/dev/null 2>&1; then
    TARGET_NOTE[counts]="system calls and allocations per request not counted: perf cannot read syscall tracepoints (root needed)"
  else
    allocation_events
    [[ -n $ALLOC_EVENTS ]] || TARGET_NOTE[counts]="allocations per request not counted: uprobes on libc could not be set"
    for conns in $BENCH_COUNT_CONNECTIONS; do
      for target in "${RUNNING_TARGETS[@]}"; do
        [[ -n ${TARGET_PID[$target]:-} ]] || continue  # direct: no proxy
        # Warm at this level first, so that the connections and per-request states a new level
        # opens are not read as a cost of every request.
        run_wrk "$target" "$conns" 1s
        pids=$(process_tree "${TARGET_PID[$target]}" | paste -sd, -)
        # System calls and allocations in separate runs: uprobes make every allocation a trap, so a
        # run that counts them serves a fraction of its usual requests, and what a client's end
        # costs (its connections closed, the requests it left cut off) would weigh on the system
        # calls counted per request.
        # context-switches with the system calls: how often the proxy slept in epoll_wait (a proxy
        # that finds few events per wake-up pays for more of them) or was preempted.
        for events in 'syscalls:sys_enter_*,context-switches' ${ALLOC_EVENTS:+"$ALLOC_EVENTS"}; do
          perf stat -x, -e "$events" -p "$pids" -o "$WORKDIR/perf-$target-$conns.csv" &
          perf_pid=$!
          STARTED_PIDS+=("$perf_pid")
          sleep 0.3  # attached before the first request
          run_wrk "$target" "$conns" "$BENCH_COUNT_DURATION"
          kill -INT "$perf_pid" 2>/dev/null || true
          wait "$perf_pid" 2>/dev/null || true
          requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$WRK_LINE")
          # perf -x, lines: count,unit,event,...
          awk -F, -v t="$target" -v c="$conns" -v r="$requests" \
            '$1 ~ /^[0-9]+$/ && $1 > 0 { sub(/^syscalls:sys_enter_/, "", $3); print t "\t" c "\t" r "\t" $3 "\t" $1 }' \
            "$WORKDIR/perf-$target-$conns.csv" >>"$COUNT_RESULTS"
        done
        log "counted $target c=$conns ($requests requests)"
      done
    done
  fi
fi

# ----- rapid reset ----------------------------------------------------------------------------

RAPID_RESULTS="$WORKDIR/rapid_reset.tsv"
: >"$RAPID_RESULTS"
if [[ $BENCH_RAPID_RESET != 0 ]]; then
  for target in "${RUNNING_TARGETS[@]}"; do
    [[ $target == spillway-h2 || $target == haproxy-h2 ]] || continue
    log "rapid reset: $target, ${BENCH_RAPID_RESET}s alone and ${BENCH_RAPID_RESET}s under $BENCH_RAPID_RESET_FLOODERS flooders"
    if out=$(/usr/bin/python3 "$SCRIPT_DIR/rapid_reset.py" --port "${TARGET_PORT[$target]}" --pid "${TARGET_PID[$target]}" \
      --seconds "$BENCH_RAPID_RESET" --flooders "$BENCH_RAPID_RESET_FLOODERS" --path "$BENCH_PATH" 2>&1); then
      printf '%s\t%s\n' "$target" "$(grep '^RAPID_RESET' <<<"$out" | sed 's/^RAPID_RESET //')" >>"$RAPID_RESULTS"
    else
      TARGET_NOTE[$target]="${TARGET_NOTE[$target]:-}rapid reset failed: $out"
    fi
  done
fi

# ----- report --------------------------------------------------------------------------------

notes=""
for target in $BENCH_TARGETS counts; do
  if [[ -n ${TARGET_NOTE[$target]:-} ]]; then
    notes+="- $target: ${TARGET_NOTE[$target]}"$'\n'
  fi
done
spillway_version="not run"
for target in "${RUNNING_TARGETS[@]}"; do
  if [[ $target == spillway* && $target != spillway-before* ]]; then
    spillway_version=$("$SPILLWAY_BIN" version 2>/dev/null | head -n 1 || echo unknown)
    break
  fi
done

RESULTS="$RESULTS" IDLE_RESULTS="$IDLE_RESULTS" IDLE_LOAD_RESULTS="$IDLE_LOAD_RESULTS" IDLE_LOAD="$BENCH_IDLE_LOAD" RAPID_RESULTS="$RAPID_RESULTS" RAPID_SECONDS="$BENCH_RAPID_RESET" RAPID_FLOODERS="$BENCH_RAPID_RESET_FLOODERS" COUNT_RESULTS="$COUNT_RESULTS" COUNT_DURATION="$BENCH_COUNT_DURATION" IDLE_CONNECTIONS="$BENCH_IDLE_CONNECTIONS" NOTES="$notes" CLK_TCK=$(getconf CLK_TCK) \
  DURATION="$BENCH_DURATION" ROUNDS="$BENCH_ROUNDS" WRK_THREADS="$BENCH_WRK_THREADS" BENCH_PATH="$BENCH_PATH" \
  CPUS="$(nproc)" CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
  KERNEL="$(uname -r)" \
  HAPROXY_VERSION="$("$HAPROXY_BIN" -v 2>/dev/null | head -n 1 | awk '{print $3}' || true)" \
  NGINX_VERSION="$("$NGINX_BIN" -v 2>&1 | sed 's|.*nginx/||' || true)" \
  SPILLWAY_VERSION="$spillway_version" \
  python3 - >"$WORKDIR/report.md" <<'EOF'
import datetime
import os
import statistics

rows = {}
order = []
for line in open(os.environ["RESULTS"]):
    target, conns, _round, requests, duration, p50, p99, errors, cpu, cpu_sys = line.rstrip("\n").split("\t")
    key = (target, int(conns))
    if key not in rows:
        rows[key] = {"requests": 0, "duration": 0, "p50": [], "p99": [], "errors": 0, "cpu": None, "sys": None}
        order.append(key)
    r = rows[key]
    r["requests"] += int(requests)
    r["duration"] += int(duration)
    r["p50"].append(int(p50))
    r["p99"].append(int(p99))
    r["errors"] += int(errors)
    if cpu != "-":
        r["cpu"] = (r["cpu"] or 0) + int(cpu)
        r["sys"] = (r["sys"] or 0) + int(cpu_sys)

ticks = int(os.environ["CLK_TCK"])


def rps(r):
    return r["requests"] / (r["duration"] / 1e6) if r["duration"] else 0.0


def cpu_per_100k(r):
    if r["cpu"] is None or r["requests"] == 0:
        return None
    return r["cpu"] / ticks / r["requests"] * 100000


def ms(us):
    return f"{us / 1000:.2f} ms"


# Modes: http (the default targets), tcp (L4, plain HTTP carried) and https (TLS terminated). Each
# row is compared with HAProxy in the same mode.
def mode(target):
    suffix = target.rsplit("-", 1)[-1]
    return suffix if suffix in ("tcp", "https", "h2", "h2h2", "grpc") else "http"


def baseline(target):
    return "haproxy" if mode(target) == "http" else "haproxy-" + mode(target)


mode_rank = {"http": 0, "tcp": 1, "https": 2, "h2": 3, "h2h2": 4, "grpc": 5}
target_rank = {t: i for i, t in enumerate(["direct", "spillway", "spillway-nometrics", "spillway-ratelimit",
                                            "spillway-tracing", "haproxy", "nginx"])}
order.sort(key=lambda k: (mode_rank[mode(k[0])], k[1], target_rank.get(k[0].split("-")[0], 99), k[0]))

out = []
out.append(f"## Spillway benchmark, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")
out.append("")
out.append(
    f"wrk -t{os.environ['WRK_THREADS']} -d{os.environ['DURATION']} --latency, {os.environ['ROUNDS']} round(s), "
    f"GET `{os.environ['BENCH_PATH']}`; backends: 2 × spillway-testd --threads 1; every proxy on 1 thread/worker. "
    f"Machine: {os.environ['CPUS']} CPUs ({os.environ['CPU_MODEL']}), Linux {os.environ['KERNEL']}; "
    f"wrk, proxies and backends share it. "
    f"HAProxy {os.environ['HAPROXY_VERSION'] or '-'}, NGINX {os.environ['NGINX_VERSION'] or '-'}, "
    f"Spillway: {os.environ['SPILLWAY_VERSION']}."
)
out.append("")
out.append("| mode | target | conns | req/s | p50 | p99 | errors | proxy CPU-s / 100k req | kernel share | req/s vs HAProxy | CPU vs HAProxy |")
out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for target, conns in order:
    r = rows[(target, conns)]
    base = rows.get((baseline(target), conns))
    cpu = cpu_per_100k(r)
    rps_ratio = f"{rps(r) / rps(base):.2f}×" if base and rps(base) else "-"
    base_cpu = cpu_per_100k(base) if base else None
    cpu_ratio = f"{cpu / base_cpu:.2f}×" if cpu is not None and base_cpu else "-"
    share = f"{r['sys'] / r['cpu']:.0%}" if r["cpu"] else "-"
    out.append(
        f"| {mode(target)} | {target} | {conns} | {rps(r):,.0f} | {ms(statistics.median(r['p50']))} | "
        f"{ms(statistics.median(r['p99']))} | {r['errors']} | "
        f"{'-' if cpu is None else f'{cpu:.3f}'} | {share} | {rps_ratio} | {cpu_ratio} |"
    )
out.append("")
out.append("- errors: responses with status ≥ 400 plus socket errors (connect, read, write, timeout), as wrk counts them.")
out.append("- proxy CPU: utime+stime of the proxy's processes (Spillway, HAProxy, NGINX master and worker) over each run, "
           "per 100k requests; `direct` has no proxy. kernel share: the part of it that is stime (system calls, "
           "and the TCP work loopback does in the sender's context).")
out.append("- p50/p99: median over rounds of wrk's exact percentiles; req/s: all requests over all run time.")
out.append("- modes: http = L7 proxying; tcp = L4 (`protocol: tcp` / HAProxy `mode tcp`), wrk's keep-alive HTTP "
           "carried as bytes; https = TLS 1.3 terminated at the proxy (ECDSA P-256), plain HTTP to the backends; "
           "h2 = cleartext HTTP/2 (prior knowledge) from h2load with BENCH_H2_STREAMS streams in flight per "
           "connection (p50/p99 from its per-request log), HTTP/1.1 to the backends (HAProxy `bind ... proto h2`); "
           "h2h2 = the same, HTTP/2 to two `nghttpd --no-tls` backends (`protocol: http2` / `proto h2` on both sides); "
           "grpc = h2load's gRPC unary calls (test.Echo/Unary) the same way, HTTP/2 to two Python grpcio servers "
           "(`protocol: http2` / HAProxy `proto h2` on both sides; the Python servers are the ceiling). "
           "Ratios compare with HAProxy in the same mode. spillway-nometrics = `metrics: false` (the cost of counting); spillway-ratelimit = a `client_ip` rate limit on the route that never limits, spillway-tracing = `tracing` at 100% with every span exported (the cost of each feature: see the table below); spillway-2w = `workers: 2`, haproxy-2t = `nbthread 2` (scaling; not in the default list, compared with 1-thread HAProxy); "
           "spillway-copy-tcp = `splice: false` (the copy loop instead of splice(2)).")
features = [(t, c) for t, c in order if t in ("spillway-ratelimit", "spillway-tracing") and ("spillway", c) in rows]
if features:
    out.append("")
    out.append("What a feature costs: each row against the plain `spillway` row at the same connections, same run "
               "(target: within 5% CPU per request):")
    out.append("")
    out.append("| feature | conns | req/s vs spillway | CPU per request vs spillway | p99 |")
    out.append("|---|---:|---:|---:|---:|")
    for target, conns in features:
        r, base = rows[(target, conns)], rows[("spillway", conns)]
        cpu, base_cpu = cpu_per_100k(r), cpu_per_100k(base)
        out.append(f"| {target.split('-', 1)[1]} | {conns} | "
                   f"{rps(r) / rps(base):.3f}× | {'-' if not (cpu and base_cpu) else f'{cpu / base_cpu:.3f}×'} | "
                   f"{ms(statistics.median(r['p99']))} |")
idle = [line.rstrip("\n").split("\t") for line in open(os.environ["IDLE_RESULTS"]) if line.strip()]
if idle:
    bases = {t: (float(p), float(m)) for t, p, m in idle}
    out.append("")
    out.append(f"Memory per idle keep-alive client connection ({os.environ['IDLE_CONNECTIONS']} connections, one "
               "request each, then idle; RSS growth of the proxy's processes; `bench/idle_memory.py`; the -https rows "
               "speak TLS 1.3 and compare with haproxy-https). "
               "*Marginal*: the growth over the second half of the connections, per connection (what one more "
               "costs); *all*: the whole growth divided by all of them (one-off costs included):")
    out.append("")
    out.append("| target | KiB marginal | vs HAProxy | KiB all | vs HAProxy |")
    out.append("|---|---:|---:|---:|---:|")
    for target, per, marginal in idle:
        per, marginal = float(per), float(marginal)
        base = bases.get("haproxy-https" if target.endswith("-https") else "haproxy")  # TLS against TLS
        r_m = f"{marginal / base[1]:.2f}×" if base and base[1] > 0 else "-"
        r_p = f"{per / base[0]:.2f}×" if base and base[0] > 0 else "-"
        out.append(f"| {target} | {marginal:.2f} | {r_m} | {per:.2f} | {r_p} |")
idle_load = [line.rstrip("\n").split("\t") for line in open(os.environ["IDLE_LOAD_RESULTS"]) if line.strip()]
if idle_load:
    out.append("")
    out.append(f"wrk -c64 ({os.environ['DURATION']}) through the same listener alone, then while "
               f"{os.environ['IDLE_LOAD']} idle keep-alive connections are held open (`bench/idle_memory.py --hold`; "
               "each made one request first, and makes a second one after the run):")
    out.append("")
    out.append("| target | req/s alone | req/s beside the idle connections | ratio | wrk errors | idle: first requests failed | idle: second requests served |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for target, conns, b_req, b_us, l_req, l_us, errors, failed, second in idle_load:
        base = int(b_req) * 1e6 / max(int(b_us), 1)
        loaded = int(l_req) * 1e6 / max(int(l_us), 1)
        out.append(f"| {target} | {base:,.0f} | {loaded:,.0f} | {loaded / base:.2f}× | {errors} | {failed} | {second} |")
rapid = []
for line in open(os.environ["RAPID_RESULTS"]):
    target, fields = line.rstrip("\n").split("\t", 1)
    rapid.append((target, {k: int(v) for k, v in (kv.split("=") for kv in fields.split())}))
if rapid:
    out.append("")
    out.append(f"Latency of well-behaved HTTP/2 clients (h2load, 4 connections × 1 stream) alone and while "
               f"{os.environ['RAPID_FLOODERS']} processes flood the proxy with streams reset at once "
               f"(HEADERS + RST_STREAM, CVE-2023-44487), {os.environ['RAPID_SECONDS']} s each (`bench/rapid_reset.py`; "
               "the flooders share the machine's CPUs with everything else):")
    out.append("")
    out.append("| target | p50 alone | p99 alone | p50 flooded | p99 flooded | streams the flood opened | connections it made |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for target, r in rapid:
        out.append(f"| {target} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {ms(r['flood_p50_us'])} | "
                   f"{ms(r['flood_p99_us'])} | {r['flood_streams']:,} | {r['flood_connections']:,} |")
counts = {}  # (target, conns) -> {"requests": n, event: count}
for line in open(os.environ["COUNT_RESULTS"]):
    target, conns, requests, event, count = line.rstrip("\n").split("\t")
    # Each event with the requests of the run that counted it (system calls and allocations are
    # counted in separate runs).
    c = counts.setdefault((target, int(conns)), {"events": {}})
    c["events"][event] = (int(count), int(requests))
if counts:
    keys = sorted(counts, key=lambda k: (mode_rank[mode(k[0])], k[1], target_rank.get(k[0].split("-")[0], 99), k[0]))

    def per_request(c, names):
        return sum(v / r for e, (v, r) in c["events"].items() if e in names and r)

    def is_syscall(e):
        return not e.startswith("probe_") and e != "context-switches"

    def syscalls(c):
        return per_request(c, [e for e in c["events"] if is_syscall(e)])

    def sleeps(c):
        return per_request(c, ["context-switches"])

    def allocations(c):
        return per_request(c, [e for e in c["events"] if e.startswith("probe_")])

    out.append("")
    out.append(f"What each request costs, counted (after 1 s of warm-up at the level, separate wrk runs of "
               f"{os.environ['COUNT_DURATION']} per row for each kind, perf attached to the proxy's processes): system "
               "calls (`syscalls:sys_enter_*` tracepoints) and "
               "heap allocations (uprobes on libc's `malloc`, `calloc`, `realloc`, through which C++ `operator new` "
               "goes, and on tcmalloc's `malloc`, `calloc`, `realloc`, `memalign` and `operator new` for Spillway, "
               "which links it); sleeps are the proxy's context switches (perf's `context-switches`): each `epoll_wait` "
               "that found nothing ready and slept, and each time the proxy was preempted on a CPU it shares. The detail table below gives every system call by name.")
    out.append("")
    out.append("| mode | target | conns | system calls / req | vs HAProxy | sleeps / req | allocations / req | vs HAProxy |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        c, base = counts[k], counts.get((baseline(k[0]), k[1]))
        sc, al = syscalls(c), allocations(c)
        sc_r = f"{sc / syscalls(base):.2f}×" if base and syscalls(base) else "-"
        al_r = f"{al / allocations(base):.2f}×" if base and allocations(base) else "-"
        out.append(f"| {mode(k[0])} | {k[0]} | {k[1]} | {sc:.2f} | {sc_r} | {sleeps(c):.3f} | {al:.2f} | {al_r} |")
    names = sorted({e for c in counts.values() for e in c["events"] if is_syscall(e)})
    out.append("")
    out.append("| system call per request | " + " | ".join(f"{t} c{n}" for t, n in keys) + " |")
    out.append("|---|" + "---:|" * len(keys))
    for name in names:
        out.append(f"| {name} | " + " | ".join(f"{per_request(counts[k], [name]):.3f}" for k in keys) + " |")
notes = os.environ["NOTES"].strip()
if notes:
    out.append(notes)
print("\n".join(out))
EOF

cat "$WORKDIR/report.md"
cp "$WORKDIR/report.md" "$BENCH_OUTPUT"
log "table written to $BENCH_OUTPUT"
