#!/usr/bin/env bash
# Builds the container image (Dockerfile) with Debian's podman and checks it from outside: the image
# runs `spillway version`, holds no compiler, runs as uid/gid 10001, serves with a read-only root
# filesystem (/ready, /live and a request through to a backend), and `podman stop` (SIGTERM) drains
# it to exit code 0. Not part of scripts/test.sh: the first run takes several minutes (debootstrap,
# then the image build compiles Spillway in its build stage). Run as root:
#   scripts/container-check.sh
# Installs podman, runc and debootstrap when missing. Without a `debian:bookworm` image it makes one
# with `debootstrap --variant=minbase bookworm` and `podman import` (no registry needed); the build
# runs with --pull=never. SPILLWAY_IMAGE names the image (default spillway); DEBIAN_MIRROR the
# mirror for debootstrap (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."
image=${SPILLWAY_IMAGE:-spillway}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=docker.io/library/debian:bookworm  # what `FROM debian:bookworm` resolves to
podman_opts=(--runtime runc)
run_opts=("${podman_opts[@]}" --network host --ulimit nofile=20000:20000 --ulimit nproc=32768:32768)

step() { printf '== %s\n' "$*"; }
fail() {
  printf 'container-check: FAIL: %b\n' "$*" >&2
  exit 1
}

if [[ $(id -u) -ne 0 ]]; then
  echo "container-check: run as root (rootful podman)" >&2
  exit 1
fi

missing=()
for p in podman runc debootstrap curl python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d /var/tmp/spillway-container-check.XXXXXX)
container=spillway-check-$$
backend_pid=
cleanup() {
  podman rm -f "$container" >/dev/null 2>&1 || true
  if [[ -n $backend_pid ]]; then kill "$backend_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if ! podman image exists "$base"; then
  step "making $base with debootstrap --variant=minbase bookworm (a few minutes)"
  root="$work/rootfs"
  nice -n 10 debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    fail "debootstrap failed, see the end of its log:\n$(tail -n 20 "$work/debootstrap.log")"
  # The sources of Debian's own image: updates and security fixes too.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root/etc/resolv.conf" "$root/etc/hostname"
  tar -C "$root" --numeric-owner -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$base" >/dev/null
  rm -rf "$root"
fi

step "podman build -t $image (compiles Spillway in the build stage)"
start=$(date +%s)
nice -n 10 podman build "${podman_opts[@]}" --pull=never --network host -t "$image" . >"$work/build.log" 2>&1 ||
  fail "podman build failed, see the end of its log:\n$(tail -n 30 "$work/build.log")"
echo "   built in $(($(date +%s) - start)) s; $(podman image inspect --format '{{.Size}}' "$image") bytes"

step "spillway version"
version=$(podman run --rm "${run_opts[@]}" "$image" version) || fail "spillway version failed"
grep -q '^spillway ' <<<"$version" || fail "unexpected version output: $version"
echo "$version" | sed 's/^/   /'

step "no compiler in the image"
podman run --rm "${run_opts[@]}" --entrypoint /bin/sh "$image" -c '
  found=0
  for c in g++ gcc cc c++ cpp clang clang++ ld as make cmake; do
    if command -v "$c" >/dev/null 2>&1; then echo "   found $c: $(command -v "$c")"; found=1; fi
  done
  for f in /usr/lib/gcc/*/*/cc1 /usr/lib/gcc/*/*/cc1plus /usr/include/stdio.h; do
    if [ -e "$f" ]; then echo "   found $f"; found=1; fi
  done
  exit $found' || fail "the runtime image holds a compiler or headers"

step "runs as uid and gid 10001"
ids=$(podman run --rm "${run_opts[@]}" --entrypoint /usr/bin/id "$image" -u)/$(podman run --rm "${run_opts[@]}" --entrypoint /usr/bin/id "$image" -g)
[[ $ids == 10001/10001 ]] || fail "image user is $ids, expected 10001/10001"

step "the default config is in the image and valid"
podman run --rm "${run_opts[@]}" "$image" validate -c /etc/spillway/spillway.yaml | sed 's/^/   /' ||
  fail "validate /etc/spillway/spillway.yaml failed"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin=$(free_port)
backend=$(free_port)
mkdir -p "$work/etc" "$work/www"
echo "hello from the backend" >"$work/www/index.html"
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$backend" >"$work/backend.log" 2>&1 &
backend_pid=$!
cat >"$work/etc/spillway.yaml" <<CONFIG
workers: 2
drain_delay: 1s
drain_timeout: 5s
admin: { listen: 127.0.0.1:$admin }
listeners:
  - { name: public, listen: 127.0.0.1:$port, routes: [ { upstream: app } ] }
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:$backend } ]
    health_check: { http: { path: /, expect_status: [200] }, interval: 1s }
CONFIG
# The container's user (10001) reads the mounted config.
chmod 755 "$work" "$work/etc"
chmod 644 "$work/etc/spillway.yaml"

step "podman run (read-only root filesystem; listener 127.0.0.1:$port, admin 127.0.0.1:$admin)"
podman run -d --name "$container" "${run_opts[@]}" --read-only -v "$work/etc:/etc/spillway:ro" "$image" >/dev/null
ready=
for _ in $(seq 100); do
  if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/ready") == 200 ]]; then
    ready=1
    break
  fi
  [[ $(podman inspect --format '{{.State.Running}}' "$container") == true ]] || break
  sleep 0.2
done
[[ -n $ready ]] || fail "/ready did not answer 200 within 20 s; logs:\n$(podman logs "$container" 2>&1 | tail -n 20)"
echo "   GET /ready: 200"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/live") == 200 ]] || fail "GET /live is not 200"
echo "   GET /live: 200"
body=$(curl -fsS "http://127.0.0.1:$port/") || fail "a request through the listener failed"
[[ $body == "hello from the backend" ]] || fail "unexpected answer through the listener: $body"
echo "   GET / through the listener: 200 from the backend"
pid=$(podman inspect --format '{{.State.Pid}}' "$container")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[[ $uid == 10001 ]] || fail "the process runs as uid $uid"
echo "   process $pid runs as uid $uid"

step "podman stop (SIGTERM): drain_delay 1s, then the drain, exit 0"
start=$(date +%s.%N)
podman stop -t 30 "$container" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$container")
took=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $start))")
podman logs "$container" 2>&1 | tail -n 4 | sed 's/^/   log: /'
[[ $code == 0 ]] || fail "exit code $code after podman stop"
echo "   exit code 0 after $took s"
echo "container-check: OK ($image)"
