#!/usr/bin/env bash
# The README's main job. Until the appliance daemon lands, the demo is the fast path's
# harness: sluice-bench forwarding between two DPDK net_null ports (no NIC, no hugepages),
# printing testpmd-style statistics every second, then its final report.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked --bin sluice-bench

EAL=(-l 0,1 --no-huge -m 512 --no-shconf --no-pci --log-level=warning --vdev net_null0 --vdev net_null1)
echo "== sluice-bench --forward-mode=io over a net_null pair (5 s)"
target/release/sluice-bench "${EAL[@]}" -- --forward-mode=io --stats-period 1 --duration 5
echo "== sluice-bench --forward-mode=macswap, JSON report (3 s)"
target/release/sluice-bench "${EAL[@]}" -- --forward-mode=macswap --duration 3 --json
