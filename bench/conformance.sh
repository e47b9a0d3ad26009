#!/usr/bin/env bash
# The conformance corpus (tests/conformance) against Spillway, HAProxy and NGINX, side by side.
# Extra arguments go to run.py (e.g. --failures, --verbose, --case te-). See tests/conformance/README.md.
exec /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/../tests/conformance/run.py" --proxy all "$@"
