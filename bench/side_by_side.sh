#!/usr/bin/env bash
# What a feature costs, measured side by side: two Spillway processes, one plain and one with the
# feature, share one CPU and are loaded at the same time, each by its own wrk, so that whatever the
# machine does to one (a noisy neighbour, a slower clock) it does to the other. Each round prints
# both processes' CPU time per request; the result is the median ratio over the rounds.
#
#   bench/side_by_side.sh [VARIANT...]     VARIANT: ratelimit tracing tracing-unsampled tracing-nocollector
#                                          nometrics plain before haproxy (default: ratelimit tracing)
#
# `before` is the plain configuration run by SIDE_BASELINE_BIN (another build, e.g. the previous
# commit's), so a code change is measured the same way: "before: 1.02x" = the change saved 2%.
# `haproxy` is HAProxy with bench/haproxy.cfg.in (one thread): "haproxy: 0.80x" = HAProxy spends
# 0.8 of Spillway's CPU per request.
#
# SIDE_CLIENT=h2 loads both with h2load instead (cleartext HTTP/2 with prior knowledge,
# SIDE_CONNECTIONS connections with SIDE_H2_STREAMS streams in flight each; HAProxy binds `proto h2`);
# the backends stay HTTP/1.1. SIDE_CLIENT=grpc makes h2load's calls gRPC unary calls (bench/run.sh's
# grpc rows) to two Python grpcio servers over HTTP/2 (`protocol: http2` / HAProxy `proto h2` on
# both sides); both proxies share the servers, which are the ceiling, so the calls per second of a
# round say little and the CPU per call is the figure. SIDE_BACKEND=nghttpd (with SIDE_CLIENT=h2)
# puts two `nghttpd --no-tls` (nghttp2-server) behind both proxies instead: HTTP/2 both ways, GET /
# answered from a 13-byte index.html.
#
# SIDE_MODE=tcp runs both as L4 relays (Spillway `protocol: tcp`, HAProxy `mode tcp`) and
# SIDE_MODE=https terminates TLS 1.3 (ECDSA P-256, keep-alive) at both; wrk then speaks HTTP/1.1
# through them as before. Default: http.
#
# Sequential rounds (bench/run.sh) see the plain row's req/s move by 30% between rounds on a shared
# machine; side by side, `plain` against `plain` reads 1.00 ± 0.01. Every process started here is
# stopped on exit, by PID.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD_DIR=${BUILD_DIR:-$SCRIPT_DIR/../build}
SPILLWAY_BIN=${SPILLWAY_BIN:-$BUILD_DIR/spillway}
SPILLWAY_TESTD_BIN=${SPILLWAY_TESTD_BIN:-$BUILD_DIR/spillway-testd}
SIDE_BASELINE_BIN=${SIDE_BASELINE_BIN:-}
ROUNDS=${SIDE_ROUNDS:-7}
DURATION=${SIDE_DURATION:-5}
CONNECTIONS=${SIDE_CONNECTIONS:-64}
PORT_BASE=${SIDE_PORT_BASE:-23100}  # below the ephemeral range (32768-60999): never taken by a client socket
PROXY_CPU=${SIDE_PROXY_CPU:-1}      # both proxies here; wrk and the backends on the others
LOAD_CPUS=${SIDE_LOAD_CPUS:-0}
CLIENT=${SIDE_CLIENT:-wrk}          # wrk (HTTP/1.1) or h2 (h2load, HTTP/2)
H2_STREAMS=${SIDE_H2_STREAMS:-10}
GRPC_PYTHON=${GRPC_PYTHON:-/usr/bin/python3}  # with python3-grpcio, for SIDE_CLIENT=grpc
BACKEND=${SIDE_BACKEND:-testd}      # testd (HTTP/1.1) or nghttpd (HTTP/2; SIDE_CLIENT=h2)
MODE=${SIDE_MODE:-http}             # http, tcp (L4) or https (TLS terminated)

VARIANTS=("$@")
((${#VARIANTS[@]})) || VARIANTS=(ratelimit tracing)

WORKDIR=$(mktemp -d /tmp/spillway-side.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORKDIR"
}
trap cleanup EXIT

die() { echo "side_by_side: $*" >&2; exit 1; }
[[ -x $SPILLWAY_BIN && -x $SPILLWAY_TESTD_BIN ]] || die "build first: $SPILLWAY_BIN, $SPILLWAY_TESTD_BIN"
case $CLIENT in
  wrk) command -v wrk >/dev/null || die "wrk is not installed" ;;
  h2 | grpc) command -v h2load >/dev/null || die "h2load is not installed (nghttp2-client)" ;;
  *) die "SIDE_CLIENT is wrk, h2 or grpc, not '$CLIENT'" ;;
esac
case $BACKEND in
  testd) ;;
  nghttpd)
    [[ $CLIENT == h2 ]] || die "SIDE_BACKEND=nghttpd is measured with SIDE_CLIENT=h2"
    command -v nghttpd >/dev/null || die "nghttpd is not installed (nghttp2-server)" ;;
  *) die "SIDE_BACKEND is testd or nghttpd, not '$BACKEND'" ;;
esac
# HTTP/2 to the backends: `protocol: http2` and HAProxy's `proto h2` on its servers.
H2_BACKENDS=false
[[ $CLIENT == grpc || $BACKEND == nghttpd ]] && H2_BACKENDS=true
case $MODE in
  http) ;;
  tcp | https) [[ $CLIENT == wrk ]] || die "SIDE_MODE=$MODE is measured with wrk (SIDE_CLIENT=wrk)" ;;
  *) die "SIDE_MODE is http, tcp or https, not '$MODE'" ;;
esac
SCHEME=http
if [[ $MODE == https ]]; then
  SCHEME=https
  # A throwaway certificate, EC P-256 like bench/run.sh's; HAProxy wants certificate and key in one file.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.test \
    -keyout "$WORKDIR/bench.key" -out "$WORKDIR/bench.crt" >/dev/null 2>&1 || die "openssl could not make a certificate"
  cat "$WORKDIR/bench.crt" "$WORKDIR/bench.key" >"$WORKDIR/bench.pem"
fi

B1=$((PORT_BASE + 1))
B2=$((PORT_BASE + 2))
mkdir -p "$WORKDIR/www"
echo 'hello, h2 h2' >"$WORKDIR/www/index.html"
for b in $B1 $B2; do
  if [[ $BACKEND == nghttpd ]]; then
    taskset -c "$LOAD_CPUS" nghttpd --no-tls -d "$WORKDIR/www" "$b" >"$WORKDIR/n$b.out" 2>&1 &
  elif [[ $CLIENT == grpc ]]; then
    taskset -c "$LOAD_CPUS" "$GRPC_PYTHON" "$SCRIPT_DIR/../tests/integration/grpc_backend.py" --port "$b" --name "g$b" \
      >"$WORKDIR/g$b.out" 2>&1 &
  else
    taskset -c "$LOAD_CPUS" "$SPILLWAY_TESTD_BIN" --listen "127.0.0.1:$b" --name "b$b" --threads 1 >"$WORKDIR/b$b.out" 2>&1 &
  fi
  PIDS+=($!)
done
# What every gRPC call sends: an uncompressed 5-byte message. A proxy answers a call that finds
# no server with a gRPC error in an HTTP 200, so the servers must be up before the first round.
printf '\x00\x00\x00\x00\x05hello' >"$WORKDIR/grpc.msg"
if [[ $CLIENT == grpc ]]; then
  for b in $B1 $B2; do
    for _ in $(seq 100); do
      grep -q '^listening ' "$WORKDIR/g$b.out" 2>/dev/null && break
      sleep 0.1
    done
    grep -q '^listening ' "$WORKDIR/g$b.out" || die "the gRPC server on :$b did not start: $(tail -n 3 "$WORKDIR/g$b.out")"
  done
fi

# feature NAME: sets route_extra, top_extra and metrics for a feature variant; false for other names.
feature() {
  case $1 in
    nometrics) metrics=false ;;
    ratelimit)
      route_extra="rate_limit: bench"
      top_extra="rate_limits: [ { name: bench, key: client_ip, rate: 1000000000/s, burst: 1000000 } ]" ;;
    tracing) top_extra="tracing: { sample: 100%, otlp: \"http://127.0.0.1:$B2/upload\" }" ;;  # b2 reads and answers 200
    # The parts of tracing's cost: propagation only (nothing sampled), and spans built but never
    # sent (the collector's port is closed: each batch fails to connect and is dropped).
    tracing-unsampled) top_extra="tracing: { sample: 0%, otlp: \"http://127.0.0.1:$B2/upload\" }" ;;
    tracing-nocollector) top_extra="tracing: { sample: 100%, otlp: \"http://127.0.0.1:$((PORT_BASE + 9))/upload\" }" ;;
    *) return 1 ;;
  esac
}

# start VARIANT PORT: a Spillway with the bench's configuration plus the variant's feature (and
# SIDE_BOTH's, a feature both sides get: SIDE_BOTH=tracing ... before compares two builds with
# tracing on), its PID in STARTED (and in PIDS, to be stopped on exit).
start() {
  local variant=$1 port=$2 route_extra="" top_extra="" metrics=true bin=$SPILLWAY_BIN upstream_extra=""
  $H2_BACKENDS && upstream_extra="    protocol: http2"
  if [[ -n ${SIDE_BOTH:-} && $variant != haproxy ]]; then
    feature "$SIDE_BOTH" || die "SIDE_BOTH: unknown feature '$SIDE_BOTH'"
  fi
  case $variant in
    plain) ;;
    before)
      [[ -x $SIDE_BASELINE_BIN ]] || die "variant 'before' needs SIDE_BASELINE_BIN (another spillway binary)"
      bin=$SIDE_BASELINE_BIN ;;
    haproxy)
      command -v haproxy >/dev/null || die "haproxy is not installed"
      sed -e "s|@PROXY_PORT@|$port|g" -e "s|@BACKEND1_PORT@|$B1|g" -e "s|@BACKEND2_PORT@|$B2|g" \
        "$SCRIPT_DIR/haproxy.cfg.in" >"$WORKDIR/haproxy-$port.cfg"
      [[ $CLIENT != wrk ]] && sed -i "s|^    bind 127.0.0.1:$port\$|    bind 127.0.0.1:$port proto h2|" "$WORKDIR/haproxy-$port.cfg"
      $H2_BACKENDS && sed -i -e "s|^    server \(b[12] 127.0.0.1:[0-9]*\)\$|    server \1 proto h2|" "$WORKDIR/haproxy-$port.cfg"
      # the same edits as bench/run.sh's haproxy-tcp and haproxy-https targets
      [[ $MODE == tcp ]] && sed -i -e 's/^    mode http$/    mode tcp/' -e '/option http-keep-alive/d' -e '/option forwardfor/d' -e '/http-request set-header/d' \
        -e '/http-reuse always/d' -e '/timeout http-keep-alive/d' "$WORKDIR/haproxy-$port.cfg"
      [[ $MODE == https ]] && sed -i "s|^    bind 127.0.0.1:$port\$|    bind 127.0.0.1:$port ssl crt $WORKDIR/bench.pem alpn http/1.1|" \
        "$WORKDIR/haproxy-$port.cfg"
      taskset -c "$PROXY_CPU" haproxy -db -f "$WORKDIR/haproxy-$port.cfg" >"$WORKDIR/haproxy-$port.log" 2>&1 &
      STARTED=$!
      PIDS+=("$STARTED")
      return ;;
    *) feature "$variant" || die "unknown variant '$variant' (known: plain before haproxy nometrics ratelimit tracing tracing-unsampled tracing-nocollector)" ;;
  esac
  local listener="protocol: http
    routes:
      - upstream: testd
        $route_extra"
  case $MODE in
    tcp) listener="protocol: tcp
    upstream: testd" ;;
    https) listener="$listener
    tls: { cert: $WORKDIR/bench.crt, key: $WORKDIR/bench.key }" ;;
  esac
  cat >"$WORKDIR/$variant-$port.yaml" <<EOF
workers: 1
metrics: $metrics
admin:
  listen: 127.0.0.1:$((port + 1))
listeners:
  - name: bench
    listen: 127.0.0.1:$port
    $listener
upstreams:
  - name: testd
    balance: least_request
    backends:
      - address: 127.0.0.1:$B1
      - address: 127.0.0.1:$B2
    health_check: false
    limits: { max_connections: 8000, max_requests: 8000 }  # HAProxy's maxconn (the defaults answer 503 past 1,024)
$upstream_extra
$top_extra
EOF
  taskset -c "$PROXY_CPU" "$bin" run -c "$WORKDIR/$variant-$port.yaml" >"$WORKDIR/$variant-$port.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}

# load PORT OUT: one round's load on PORT (in the background; its PID in LOADER); `requests OUT`
# prints how many requests were answered.
load() {
  if [[ $CLIENT == h2 ]]; then
    taskset -c "$LOAD_CPUS" h2load -c"$CONNECTIONS" -m"$H2_STREAMS" -D"$DURATION" "http://127.0.0.1:$1/" >"$2" 2>&1 &
  elif [[ $CLIENT == grpc ]]; then
    taskset -c "$LOAD_CPUS" h2load -c"$CONNECTIONS" -m"$H2_STREAMS" -D"$DURATION" -d "$WORKDIR/grpc.msg" \
      -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$1/test.Echo/Unary" >"$2" 2>&1 &
  else
    taskset -c "$LOAD_CPUS" wrk --latency -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$SCHEME://127.0.0.1:$1/" >"$2" &
  fi
  LOADER=$!
}
requests() {
  if [[ $CLIENT != wrk ]]; then
    awk '/^requests:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^succeeded/) print $i }' "$1"
  else
    awk '/requests in/{print $1}' "$1"
  fi
}

median() { sort -g | awk '{v[NR] = $1} END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# p99 OUT: wrk's 99th percentile latency in ms (empty for h2load, which reports no percentiles).
p99() {
  awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    print v * (u == "us" ? 0.001 : u == "s" ? 1000 : 1) }' "$1"
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime of every thread, in clock ticks
sticks() { awk '{print $15}' "/proc/$1/stat"; }       # stime alone: the kernel's share

wait_ready() {
  for _ in $(seq 100); do
    local how=() path=/
    [[ $CLIENT != wrk ]] && how=(--http2-prior-knowledge)
    [[ $CLIENT == grpc ]] && how+=(-X POST -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @"$WORKDIR/grpc.msg") &&
      path=/test.Echo/Unary
    curl -fsk "${how[@]}" -o /dev/null "$SCHEME://127.0.0.1:$1$path" && return 0
    sleep 0.1
  done
  die "nothing answers on :$1: $(tail -n 3 "$WORKDIR"/*-"$1".log 2>/dev/null | tr '\n' ' ')"
}

hz=$(getconf CLK_TCK)
echo "side by side on CPU $PROXY_CPU ($MODE, $CLIENT -c$CONNECTIONS each, ${DURATION}s x $ROUNDS rounds): CPU per request, variant vs plain"
for variant in "${VARIANTS[@]}"; do
  plain_port=$((PORT_BASE + 10))
  variant_port=$((PORT_BASE + 20))
  start plain $plain_port
  pa=$STARTED
  start "$variant" $variant_port
  pb=$STARTED
  wait_ready $plain_port
  wait_ready $variant_port
  ratios=()
  p99_ratios=()
  for round in $(seq "$ROUNDS"); do
    a0=$(ticks "$pa")
    b0=$(ticks "$pb")
    as0=$(sticks "$pa")
    bs0=$(sticks "$pb")
    load $plain_port "$WORKDIR/wa"
    wa=$LOADER
    load $variant_port "$WORKDIR/wb"
    wb=$LOADER
    wait "$wa" "$wb"
    a1=$(ticks "$pa")
    b1=$(ticks "$pb")
    as1=$(sticks "$pa")
    bs1=$(sticks "$pb")
    na=$(requests "$WORKDIR/wa")
    nb=$(requests "$WORKDIR/wb")
    [[ -n $na && -n $nb && $na != 0 && $nb != 0 ]] || die "a load run answered nothing: $(cat "$WORKDIR/wa" "$WORKDIR/wb")"
    line=$(awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v sa=$((as1 - as0)) -v sb=$((bs1 - bs0)) -v na="$na" -v nb="$nb" \
      -v hz="$hz" 'BEGIN { ua = a * 1e6 / hz / na; ub = b * 1e6 / hz / nb;
        printf "%.2f %.2f %.4f %.0f%% %.0f%%", ua, ub, ub / ua, a ? 100 * sa / a : 0, b ? 100 * sb / b : 0 }')
    read -r ua ub ratio ka kb <<<"$line"
    ratios+=("$ratio")
    latency=""
    la=$(p99 "$WORKDIR/wa")
    lb=$(p99 "$WORKDIR/wb")
    if [[ -n $la && -n $lb ]]; then
      p99_ratios+=("$(awk -v a="$la" -v b="$lb" 'BEGIN { printf "%.4f", b / a }')")
      latency=", p99 $la / $lb ms"
    fi
    printf '  %-9s round %d: plain %s us/req (%s req, kernel %s), %s %s us/req (%s req, kernel %s): %s%s\n' \
      "$variant" "$round" "$ua" "$na" "$ka" "$variant" "$ub" "$nb" "$kb" "$ratio" "$latency"
  done
  median=$(printf '%s\n' "${ratios[@]}" | median)
  printf '%s: CPU per request %.3fx plain (median of %d rounds)\n' "$variant" "$median" "$ROUNDS"
  if ((${#p99_ratios[@]})); then
    median=$(printf '%s\n' "${p99_ratios[@]}" | median)
    printf '%s: p99 latency %.3fx plain (median of %d rounds)\n' "$variant" "$median" "$ROUNDS"
  fi
  kill -TERM "$pa" "$pb"
  wait "$pa" "$pb" 2>/dev/null || true
done
