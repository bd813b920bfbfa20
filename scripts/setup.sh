#!/usr/bin/env bash
# Installs everything Sluice needs on Debian 12 (idempotent): DPDK 22.11 with its PMD plugins
# and dpdk-testpmd, libclang for bindgen, network tools for the namespace tests, and the Rust
# components the checks use.
set -euo pipefail

APT_PACKAGES=(
  dpdk dpdk-dev libclang-dev clang pkg-config build-essential
  iproute2 iputils-ping ethtool socat curl nginx-light python3 python3-pip python3-scapy
  openssl wrk
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The python3 first on PATH may not be Debian's (pyenv): give it what the scripts and the
# end-to-end tests use (scapy for pcap workloads; pytest; grpcio and grpcio-tools for the
# independent API client generated from proto/ at test time) from PyPI when it lacks them.
PY_MODULES=(scapy:scapy pytest:pytest grpc:grpcio grpc_tools:grpcio-tools yaml:pyyaml)
py_missing=()
for m in "${PY_MODULES[@]}"; do
  python3 -c "import ${m%%:*}" 2>/dev/null || py_missing+=("${m##*:}")
done
if ((${#py_missing[@]})); then
  echo "setup: pip installing ${py_missing[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${py_missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt 2>/dev/null || true

pkg-config --modversion libdpdk >/dev/null
echo "setup: DPDK $(pkg-config --modversion libdpdk), $(cargo --version)"
