#!/usr/bin/env python3
"""Writes a pcap workload for `sluice-bench --forward-mode=lb` (replayed by net_pcap with
infinite_rx=1): FLOWS flows from 198.18.0.0/16 clients to VIP:PORT, each opened by one packet
(TCP SYN, or a UDP datagram) and followed by ROUNDS data packets; UDP_SHARE of the flows are
UDP; every frame is SIZE bytes (without FCS). On the first pass 1/(ROUNDS+1) of the packets
open new connections; replays after that hit established entries.

usage: make_lb_workload.py OUT.pcap [--flows N] [--rounds K] [--udp-share F] [--size B]
                          [--vip A] [--port P] [--dst-mac MAC]"""
import argparse
from scapy.all import Ether, IP, TCP, UDP, Raw, wrpcap

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--flows", type=int, default=1024)
ap.add_argument("--rounds", type=int, default=7)
ap.add_argument("--udp-share", type=float, default=0.0)
ap.add_argument("--size", type=int, default=60)
ap.add_argument("--vip", default="198.18.100.10")
ap.add_argument("--port", type=int, default=80)
ap.add_argument("--dst-mac", default="02:00:00:00:00:aa")
a = ap.parse_args()
if not 0.0 <= a.udp_share <= 1.0:
    ap.error("--udp-share must be between 0 and 1")
if a.size < 54 or a.size > 1514:
    ap.error("--size must be between 54 and 1514")
udp_flows = int(round(a.flows * a.udp_share))


def frame(i, first):
    src = "198.18.%d.%d" % (i // 250 % 256, 1 + i % 250)
    l3 = IP(src=src, dst=a.vip)
    if i < udp_flows:
        l4 = UDP(sport=10000 + i % 50000, dport=a.port)
    else:
        l4 = TCP(sport=10000 + i % 50000, dport=a.port, flags="S" if first else "A", seq=1000)
    pkt = Ether(dst=a.dst_mac, src="02:00:00:00:00:01") / l3 / l4
    pad = a.size - len(pkt)
    return pkt / Raw(b"x" * pad) if pad > 0 else pkt


frames = [frame(i, True) for i in range(a.flows)]
data = [frame(i, False) for i in range(a.flows)]
wrpcap(a.out, frames + data * a.rounds, linktype=1)
print(f"{a.flows * (a.rounds + 1)} frames ({udp_flows} UDP flows) -> {a.out}")
