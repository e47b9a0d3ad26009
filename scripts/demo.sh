#!/usr/bin/env bash
# Quick start: installs what is missing, builds, starts three demo backends (spillway-testd on
# 127.0.0.1:9001-9003) and runs Spillway with config/spillway.yaml in front of them
# (listener 127.0.0.1:8080, admin API 127.0.0.1:9901). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for i in 1 2 3; do
  build/spillway-testd --listen "127.0.0.1:900$i" --name "demo-$i" >/dev/null &
  pids+=($!)
done
echo
echo "Spillway on http://127.0.0.1:8080  (try: curl -s http://127.0.0.1:8080/)"
echo "Admin API on http://127.0.0.1:9901 (try: curl -s http://127.0.0.1:9901/status)"
echo
build/spillway run -c config/spillway.yaml &
pids+=($!)
wait "${pids[-1]}"
