#!/usr/bin/env bash
# Installs what Spillway needs to build and test on Debian 12 (bookworm). Idempotent: it only
# calls apt-get when something is missing. Run as root.
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --bench    also HAProxy and valgrind for bench/
set -euo pipefail

packages=(
  g++ cmake ninja-build ccache pkg-config make
  libboost1.81-dev   # Asio; Debian's default libboost-dev is 1.74, too old for C++20 coroutines on GCC 12
  node-llhttp        # llhttp C sources, compiled into the binary
  libssl-dev libyaml-cpp-dev libfmt-dev
  libnghttp2-dev     # HTTP/2 framing, HPACK and flow control for the h2 front end
  libgoogle-perftools-dev  # tcmalloc_minimal, the Release binary's allocator (see CMakeLists.txt)
  nghttp2-client nghttp2-server python3-h2  # h2load, nghttp, nghttpd and a raw HTTP/2 client for the HTTP/2 tests
  python3-grpcio      # real gRPC clients and servers for the gRPC tests
  libgtest-dev libgmock-dev
  python3 curl wrk procps clang-format git
  python3-yaml        # tests/integration/test_kubernetes.py reads deploy/kubernetes/*.yaml
  openssl             # tests make a throwaway CA and certificates
  python3-websockets  # a real WebSocket client and server for the Upgrade tunnel tests
  redis-server redis-tools  # a real TCP protocol behind a tcp listener (redis-benchmark drives it)
  nginx-light         # an outside TLS backend for TLS origination tests (and bench/)
  chromium            # headless browser test of the admin dashboard
  clang libclang-rt-14-dev  # libFuzzer and the sanitizer runtimes for clang (scripts/fuzz.sh, tests/fuzz)
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(haproxy valgrind)  # valgrind: bench/instructions.sh counts instructions per request
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: run as root (or install these packages yourself)" >&2
    exit 1
  fi
  apt-get update -qq
  # Packages such as redis-server and nginx start a system service when installed; tests start
  # their own instances on ephemeral ports, so keep apt from starting (and leaving) any service.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    own_policy=1
  fi
  status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
  if ((own_policy)); then rm -f "$policy"; fi
  if ((status)); then exit "$status"; fi
fi
