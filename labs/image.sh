#!/usr/bin/env bash
# Builds the `bgpd-lab:dev` image the containerlab topologies (labs/*.clab.yml) use.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p bgpd -p routectl
target=${CARGO_TARGET_DIR:-target}/release
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$target/bgpd" "$target/routectl" "$context/"
mkdir "$context/configs"
cp labs/configs/node.sh "$context/configs/"
docker build -t bgpd-lab:dev -f labs/Containerfile "$context"
