#!/usr/bin/env bash
# Runs berth's whole test suite: unit tests, the shim's root tests, and the e2e suite (a private
# berthd driven by the berth CLI, the real docker CLI and docker-py). Run as root; without root
# the container tests print "skipped: requires root".
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then ./scripts/deps.sh; fi
cargo build --workspace --locked
cargo test --workspace --locked -- --test-threads=2
