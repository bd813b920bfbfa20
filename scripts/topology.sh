#!/usr/bin/env bash
# The test and demo topology of DESIGN.md, in network namespaces:
#
#   PREFIX-client  cl0 198.18.0.2/24, default via 198.18.0.1
#                      2001:2::2/64, default via 2001:2::1
#        | veth
#   PREFIX-lb      lb0 (DPDK port "client", appliance address 198.18.0.1, 2001:2::1)
#                  lb1 (DPDK port "backends", appliance address 198.19.0.254, 2001:2:0:13::fe)
#        | veth
#   PREFIX-backends bk0 198.19.0.1-3/24, default via 198.19.0.254
#                      2001:2:0:13::1-3/64, default via 2001:2:0:13::fe
#
# The lb namespace's veths carry no kernel addresses: sluiced owns them through net_af_packet.
# Offloads are off on every veth so the kernel computes real checksums (DPDK sees what a NIC
# would). All addresses are in 198.18.0.0/15 (RFC 2544) and 2001:2::/48 (RFC 5180), the IPv6
# ones without duplicate address detection (usable at once).
#
#   scripts/topology.sh up [PREFIX]     create (replacing an old one of the same prefix)
#   scripts/topology.sh down [PREFIX]   remove
#   scripts/topology.sh macs [PREFIX]   print CLIENT_MAC= and BACKENDS_MAC= lines
set -euo pipefail

ACTION=${1:-}
P=${2:-sl}
C=$P-client L=$P-lb B=$P-backends
# Interface names: at most 15 characters.
CL=${P}cl0 LB0=${P}lb0 LB1=${P}lb1 BK=${P}bk0

down() {
  for ns in "$C" "$L" "$B"; do
    ip netns del "$ns" 2>/dev/null || true
  done
}

quiet_offloads() { # ns iface
  ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
}

up() {
  down
  for ns in "$C" "$L" "$B"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  ip link add "$CL" netns "$C" type veth peer name "$LB0" netns "$L"
  ip link add "$BK" netns "$B" type veth peer name "$LB1" netns "$L"
  for pair in "$C:$CL" "$L:$LB0" "$L:$LB1" "$B:$BK"; do
    ns=${pair%%:*} ifc=${pair##*:}
    ip -n "$ns" link set "$ifc" up
    quiet_offloads "$ns" "$ifc"
  done
  ip -n "$C" addr add 198.18.0.2/24 dev "$CL"
  ip -n "$C" route add default via 198.18.0.1
  ip -n "$C" addr add 2001:2::2/64 dev "$CL" nodad
  ip -n "$C" -6 route add default via 2001:2::1
  for i in 1 2 3; do
    ip -n "$B" addr add "198.19.0.$i/24" dev "$BK"
    ip -n "$B" addr add "2001:2:0:13::$i/64" dev "$BK" nodad
  done
  ip -n "$B" route add default via 198.19.0.254
  ip -n "$B" -6 route add default via 2001:2:0:13::fe
}

macs() {
  echo "CLIENT_MAC=$(ip netns exec "$C" cat /sys/class/net/$CL/address)"
  echo "BACKENDS_MAC=$(ip netns exec "$B" cat /sys/class/net/$BK/address)"
  echo "LB_CLIENT_IFACE=$LB0"
  echo "LB_BACKENDS_IFACE=$LB1"
}

case "$ACTION" in
  up) up; macs ;;
  down) down ;;
  macs) macs ;;
  *) echo "usage: $0 up|down|macs [PREFIX]" >&2; exit 2 ;;
esac
