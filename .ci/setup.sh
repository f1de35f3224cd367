#!/usr/bin/env bash
# Installs what building and testing the fabric needs on Debian 12, as root. Idempotent and quick
# when everything is already there.
set -euo pipefail

packages=(
  # build: etcd-client's build generates its gRPC code with protoc
  build-essential pkg-config protobuf-compiler
  # the datastore and the real BGP peers the tests interoperate with
  etcd-server etcd-client bird2 frr gobgpd exabgp
  # kernel plumbing, firewalls, traffic and the container runtime
  iproute2 iputils-ping nftables iptables iperf3 netcat-openbsd tcpdump
  containerd runc busybox-static procps psmisc curl jq
  # throwaway CA and certificates for the etcd-over-TLS tests
  openssl
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: installing the Rust toolchain with rustup"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# Namespaces left by a test run that was killed outright: ours start with "fab<pid>-"; remove
# those whose process is gone, so a parallel run's namespaces are left alone.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^fab[0-9]+-' || true); do
  pid=${ns#fab}; pid=${pid%%-*}
  kill -0 "$pid" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
done
