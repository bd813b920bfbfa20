#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test (unit, property, EAL-on-vdev and end-to-end tests)"
cargo test --workspace --locked

echo "== release binaries (sluiced, sluicectl, sluice-bench; the e2e tests use the debug sluice-gateway and sluice-proxy that cargo test built)"
cargo build --release --locked --quiet --bins

echo "== sluice-bench smoke run (net_null pair, 2 s)"
target/release/sluice-bench -l 0,1 --no-huge -m 512 --no-shconf --no-pci --log-level=warning \
  --vdev net_null0 --vdev net_null1 -- --forward-mode=io --duration 2 --json >/tmp/sluice-bench-smoke.json
python3 - /tmp/sluice-bench-smoke.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["fwd_mpps"] > 0.1, r
rx, tx = sum(p["rx_packets"] for p in r["ports"]), sum(p["tx_packets"] for p in r["ports"])
assert rx == tx + r["dropped"], (rx, tx, r["dropped"])
print(f"sluice-bench smoke: {r['fwd_mpps']:.2f} Mpps forwarded, {r['dropped']} dropped")
PY

echo "== end to end: namespaces, sluiced on net_af_packet, nginx/socat backends, sluicectl and a Python gRPC client"
python3 -m pytest -q -s tests/e2e
