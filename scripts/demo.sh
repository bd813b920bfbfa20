#!/usr/bin/env bash
# The README's main job: the appliance end to end on this machine, no NIC, no hugepages.
#
#   client namespace --veth--> [ sluiced: DPDK net_af_packet ports ] --veth--> backends namespace
#                                                                           (3 nginx, UDP echo)
#
# Builds the topology, starts the backends and sluiced, programs a TCP and a UDP service with
# sluicectl, shows curl and UDP answers through the VIP and the per-backend counters, then
# drains a backend, and cleans everything up on exit (also on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."

P=${SLUICE_DEMO_PREFIX:-sld}
VIP=198.18.100.10
WORK=$(mktemp -d /tmp/sluice-demo-XXXXXX)
SLUICED_PID=""

cleanup() {
  set +e
  if [ -n "$SLUICED_PID" ]; then
    kill -TERM "$SLUICED_PID" 2>/dev/null && wait "$SLUICED_PID"
    echo "== sluiced exited with $?; its last lines:"
    tail -n 3 "$WORK/sluiced.log"
  fi
  scripts/backends.sh stop "$P" "$WORK/backends"
  scripts/topology.sh down "$P"
  rm -rf "$WORK"
}
trap cleanup EXIT

scripts/setup.sh
cargo build --release --locked --bins
CTL=(target/release/sluicectl --server "unix://$WORK/sluiced.sock")
step() { printf '\n== %s\n' "$*"; }

step "topology: namespaces $P-client, $P-lb, $P-backends"
scripts/topology.sh up "$P"
scripts/backends.sh start "$P" "$WORK/backends"

step "sluiced on net_af_packet ports (config: $WORK/sluiced.toml)"
scripts/appliance-config.sh "$P" "$WORK" > "$WORK/sluiced.toml"
ip netns exec "$P-lb" target/release/sluiced --config "$WORK/sluiced.toml" > "$WORK/sluiced.log" 2>&1 &
SLUICED_PID=$!
for _ in $(seq 100); do
  [ "$(ip netns exec "$P-lb" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9100/readyz)" = 200 ] && break
  kill -0 "$SLUICED_PID" 2>/dev/null || { cat "$WORK/sluiced.log"; exit 1; }
  sleep 0.3
done
sleep 2 # af_packet ports settle

step "program services with sluicectl"
"${CTL[@]}" service apply web --vip "$VIP" --port 80 --protocol tcp --mode dnat \
  --selection round-robin --backend 198.19.0.1:8080 --backend 198.19.0.2:8080 \
  --backend 198.19.0.3:8080,weight=2
"${CTL[@]}" service apply echo --vip "$VIP" --port 53 --protocol udp --mode fullnat \
  --snat-pool snat --backend 198.19.0.1:5353 --backend 198.19.0.2:5353
"${CTL[@]}" service list

step "curl http://$VIP/ from the client namespace (weights 1:1:2)"
for _ in $(seq 8); do
  ip netns exec "$P-client" curl -s --max-time 3 "http://$VIP/"
done

step "UDP echo through the VIP (full-NAT)"
for msg in "hello sluice" "second datagram"; do
  echo "$msg" | ip netns exec "$P-client" socat -t 2 -T 2 - "UDP4:$VIP:53"
done

step "per-backend counters"
"${CTL[@]}" service get web
"${CTL[@]}" stats

step "drain 198.19.0.3: new requests avoid it"
"${CTL[@]}" backend drain web 198.19.0.3:8080
for _ in $(seq 4); do
  ip netns exec "$P-client" curl -s --max-time 3 "http://$VIP/"
done

step "Prometheus metrics (excerpt)"
ip netns exec "$P-lb" curl -s http://127.0.0.1:9100/metrics | grep -E '^sluice_(service|backend)_' | head -n 12
