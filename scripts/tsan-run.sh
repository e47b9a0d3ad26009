#!/usr/bin/env bash
# Runs its arguments, with address-space randomisation turned off when ThreadSanitizer needs it:
# GCC 12's TSan runtime cannot place its shadow memory under the randomisation of newer kernels
# (vm.mmap_rnd_bits above 28 fails with "FATAL: ThreadSanitizer: unexpected memory mapping").
# Used for the TSan build (GoogleTest discovery runs the unit test binary) and the TSan test pass.
set -euo pipefail
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
echo 'int main() { return 0; }' >"$probe_dir/probe.cpp"
"${CXX:-c++}" -fsanitize=thread "$probe_dir/probe.cpp" -o "$probe_dir/probe"
if "$probe_dir/probe" >/dev/null 2>&1; then
  "$@"
else
  echo "tsan-run: TSan needs address-space randomisation off here; running under setarch -R" >&2
  setarch "$(uname -m)" -R "$@"
fi
