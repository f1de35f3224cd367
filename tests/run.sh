#!/usr/bin/env bash
# The test command: installs what is needed, then checks format and lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# --no-fail-fast: one failing test binary must not hide the results of the others.
cargo test --workspace --locked --no-fail-fast
