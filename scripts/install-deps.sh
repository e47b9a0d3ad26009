#!/usr/bin/env bash
# Installs what Spillway needs to build and test on Debian 12 (bookworm). Idempotent: it only
# calls apt-get when something is missing. Run as root.
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --bench    also HAProxy and NGINX for bench/
set -euo pipefail

packages=(
  g++ cmake ninja-build ccache pkg-config make
  libboost1.81-dev   # Asio; Debian's default libboost-dev is 1.74, too old for C++20 coroutines on GCC 12
  node-llhttp        # llhttp C sources, compiled into the binary
  libssl-dev libyaml-cpp-dev libfmt-dev
  libgtest-dev libgmock-dev
  python3 curl wrk procps clang-format git
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(haproxy nginx-light)
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
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
