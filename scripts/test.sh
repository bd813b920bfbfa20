#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test (unit, property, EAL-on-vdev and end-to-end tests)"
cargo test --workspace --locked

echo "== fuzz targets: built with stable Rust (no coverage instrumentation), every committed seed input replayed once"
# A campaign needs nightly and cargo-fuzz (see the README); this keeps the targets compiling
# and every input a campaign once found interesting (fuzz/seeds) passing.
cargo build --release --locked --quiet --manifest-path fuzz/Cargo.toml --bins
for target in parse pipeline; do
  log=/tmp/sluice-fuzz-$target.log
  if ! fuzz/target/release/$target -runs=0 -artifact_prefix=/tmp/sluice-fuzz- \
    fuzz/seeds/$target >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $target failed on a seed input" >&2
    exit 1
  fi
  grep -E '^(INFO: seed corpus|Done)' "$log"
done

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

echo "== sluice-bench lb fed by its built-in generator (ring pair, 25% UDP): IPv4 DNAT with 5% new connections 3 s, IPv6 full-NAT behind VLAN 10 with 2% 2 s"
target/release/sluice-bench -l 0,1 --no-huge -m 512 --no-shconf --no-pci --log-level=warning -- \
  --forward-mode=lb --lb-generate --lb-flows 256 --lb-new-share 0.05 --lb-udp-share 0.25 \
  --lb-timeout-ms 500 --duration 3 --json >/tmp/sluice-bench-lb.json
target/release/sluice-bench -l 0,1 --no-huge -m 512 --no-shconf --no-pci --log-level=warning -- \
  --forward-mode=lb --lb-generate --lb-flows 256 --lb-new-share 0.02 --lb-udp-share 0.25 \
  --lb-vip 2001:2:0:100::10 --lb-vlan 10 --lb-nat fullnat --txpkts 88 \
  --lb-timeout-ms 500 --duration 2 --json >/tmp/sluice-bench-lb6.json
python3 - /tmp/sluice-bench-lb.json /tmp/sluice-bench-lb6.json <<'PY'
import json, sys
for name, path in zip(["IPv4 DNAT", "IPv6 full-NAT, VLAN 10"], sys.argv[1:]):
    r = json.load(open(path))
    g, port, lb = r["generator"], r["ports"][0], r["cores"][0]["lb"]
    assert g["sent"] > 10000, g
    # Every frame the generator made was sent and reached the worker (the run drains the ring).
    assert g["unsent"] == 0 and port["rx_packets"] == g["sent"], (g, port)
    # The 256 established flows opened once and every fresh connection once (an established
    # flow idle past the 500 ms timeout on a stalled machine would be opened again, at most
    # once each).
    assert g["fresh_connections"] > 0, g
    opened = 256 + g["fresh_connections"]
    assert opened <= lb["new_connections"] <= opened + 256, (g, lb)
    # Nothing dropped but what the generator did not take back in time (a 500 ms timeout keeps
    # the fresh connections well under the table's 2^20, and 2% in full-NAT under the SNAT
    # pool's 4 x 64,512 ports, even when the expiry sweep lags a second).
    assert set(lb["drops"]) <= {"tx_full"}, lb["drops"]
    assert 0.0 < lb["busy_share"] <= 1.0, lb
    assert 1.0 <= lb["packets_per_busy_poll"] <= 32.0, lb
    print(f"sluice-bench lb, {name}: {r['fwd_mpps']:.2f} Mpps (worker busy {lb['busy_share']:.0%}, "
          f"{lb['packets_per_busy_poll']:.1f} packets per busy poll), "
          f"{lb['new_connections']} connections ({lb['connections_per_second']:.0f}/s), generator sent {g['sent']}")
PY

echo "== end to end: namespaces, sluiced on net_af_packet, nginx/socat backends, sluicectl and a Python gRPC client"
python3 -m pytest -q -s tests/e2e
