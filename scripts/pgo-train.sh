#!/usr/bin/env bash
# The training load for profile-guided optimisation (scripts/build.sh runs it): an instrumented
# Spillway (SPILLWAY_PGO=generate) in front of two instrumented spillway-testd backends serves a
# few seconds each of HTTP/1.1 keep-alive (wrk), HTTP/2 with many streams per connection (h2load,
# cleartext), TLS 1.3 (wrk over https) and an L4 listener, then exits cleanly, which is when the
# counts are written (to the SPILLWAY_PGO_DIR the build was configured with). Everything runs on
# 127.0.0.1; every process started here is stopped by PID.
#
#   scripts/pgo-train.sh BUILD_DIR       BUILD_DIR holds the instrumented spillway and spillway-testd
#
# SPILLWAY_PGO_SECONDS: seconds per load (default 2).
set -euo pipefail
build=$1
seconds=${SPILLWAY_PGO_SECONDS:-2}
work=$(mktemp -d /tmp/spillway-pgo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
die() {
  echo "pgo-train: $*" >&2
  exit 1
}
[[ -x $build/spillway && -x $build/spillway-testd ]] || die "no spillway and spillway-testd in $build"
command -v wrk >/dev/null || die "wrk is not installed"
command -v h2load >/dev/null || die "h2load is not installed (nghttp2-client)"
command -v curl >/dev/null || die "curl is not installed"

# Eight ports in a row below the ephemeral range (32768-60999), none answering a moment ago.
answers() { (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
base=0
for _ in $(seq 50); do
  try=$((20000 + RANDOM % 12000))
  for i in $(seq 0 7); do
    answers $((try + i)) && continue 2
  done
  base=$try
  break
done
((base)) || die "found no free ports"
http=$base https=$((base + 1)) tcp=$((base + 2)) admin=$((base + 3)) b1=$((base + 4)) b2=$((base + 5))

for b in $b1 $b2; do
  "$build/spillway-testd" --listen "127.0.0.1:$b" --name "b$b" --threads 1 >"$work/b$b.log" 2>&1 &
  pids+=($!)
done
tls=""
if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=pgo.test \
  -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1; then
  tls="
  - name: https
    listen: 127.0.0.1:$https
    routes: [ { upstream: testd } ]
    tls: { cert: $work/cert.pem, key: $work/key.pem }"
fi
cat >"$work/spillway.yaml" <<EOF
workers: 1
admin:
  listen: 127.0.0.1:$admin
listeners:
  - name: http
    listen: 127.0.0.1:$http
    routes: [ { upstream: testd } ]
  - name: tcp
    listen: 127.0.0.1:$tcp
    protocol: tcp
    upstream: testd$tls
upstreams:
  - name: testd
    backends: [ { address: 127.0.0.1:$b1 }, { address: 127.0.0.1:$b2 } ]
EOF
"$build/spillway" run -c "$work/spillway.yaml" >"$work/spillway.log" 2>&1 &
proxy=$!
pids+=("$proxy")
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$http/" && break
  kill -0 "$proxy" 2>/dev/null || die "spillway exited: $(tail -n 3 "$work/spillway.log")"
  sleep 0.1
done
curl -fs -o /dev/null "http://127.0.0.1:$http/" || die "spillway does not answer: $(tail -n 3 "$work/spillway.log")"

wrk -t1 -c64 -d"${seconds}s" "http://127.0.0.1:$http/" >/dev/null
h2load -c16 -m10 -D"$seconds" "http://127.0.0.1:$http/" >/dev/null
wrk -t1 -c64 -d"${seconds}s" "http://127.0.0.1:$tcp/" >/dev/null
[[ -n $tls ]] && wrk -t1 -c64 -d"${seconds}s" "https://127.0.0.1:$https/" >/dev/null
curl -fs -o /dev/null "http://127.0.0.1:$admin/metrics"

# A clean exit writes the counts.
kill -TERM "$proxy"
status=0
wait "$proxy" || status=$?
((status == 0)) || die "spillway exited with $status: $(tail -n 3 "$work/spillway.log")"
echo "pgo-train: trained ($seconds s each of HTTP/1.1, HTTP/2, L4${tls:+, TLS})"
