#!/usr/bin/env bash
# Runs berth's whole test suite: unit tests, the shim's root tests, and the e2e suite (a private
# berthd driven by the berth CLI, the real docker CLI and docker-py). Run as root; without root
# the container tests print "skipped: requires root".
#
# The binaries are built with the crash-test failpoints compiled in (`berth-sys/failpoints`,
# inert unless BERTH_FAILPOINT is set), so the crash sweep in tests/e2e can arm them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then ./scripts/deps.sh; fi
features=(--features berth-sys/failpoints)
cargo build --workspace --locked "${features[@]}"
cargo test --workspace --locked "${features[@]}" -- --test-threads=2
