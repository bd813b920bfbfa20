#!/usr/bin/env bash
# Prints a sluiced configuration for the namespace topology of scripts/topology.sh: two
# net_af_packet ports ("client", "backends"), the appliance's addresses on them (their subnets
# are connected routes; the client and the backends are found by ARP and neighbour discovery,
# no static neighbours), and an SNAT pool per address family on the backend subnet. Each port
# has an exception path to the lb namespace's kernel: taps "sl-client" and "sl-backends" with
# the ports' MACs and addresses (SSH, health checks and other host traffic use them).
#
#   scripts/appliance-config.sh PREFIX WORKDIR [ADMIN_LISTEN]
#
# State, API socket and logs live in WORKDIR.
set -euo pipefail
P=${1:?prefix}
WORK=${2:?workdir}
ADMIN=${3:-127.0.0.1:9100}
eval "$("$(dirname "$0")/topology.sh" macs "$P")"

cat <<TOML
[eal]
lcores = "0,1"
memory_mb = 512
no_huge = true
no_shconf = true
no_pci = true
log_level = "notice"

[[ports]]
name = "client"
device = "net_af_packet0,iface=$LB_CLIENT_IFACE"
host_tap = "sl-client"

[[ports]]
name = "backends"
device = "net_af_packet1,iface=$LB_BACKENDS_IFACE"
host_tap = "sl-backends"

[dataplane]
conn_capacity = 65536
service_counter_slots = 16384
backend_counter_slots = 131072

[state]
dir = "$WORK/state"

[api]
unix_socket = "$WORK/sluiced.sock"
tcp = ""

[admin]
listen = "$ADMIN"

[[interfaces]]
port = "client"
addresses = ["198.18.0.1/24", "2001:2::1/64"]

[[interfaces]]
port = "backends"
addresses = ["198.19.0.254/24", "2001:2:0:13::fe/64"]
TOML
cat <<TOML

[[snat_pools]]
name = "snat"
addresses = ["198.19.0.250"]

[[snat_pools]]
name = "snat6"
addresses = ["2001:2:0:13::250"]
TOML
