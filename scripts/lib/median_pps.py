#!/usr/bin/env python3
"""Reads testpmd-shaped periodic statistics (from dpdk-testpmd or sluice-bench) on stdin and
prints the median, over the periods after the warm-up ones, of the Rx-pps summed over ports.

usage: median_pps.py PORTS [WARMUP_PERIODS]"""
import re
import statistics
import sys

ports = int(sys.argv[1])
warmup = int(sys.argv[2]) if len(sys.argv) > 2 else 2
values = [int(m.group(1)) for m in re.finditer(r"Rx-pps:\s+(\d+)", sys.stdin.read())]
periods = [sum(values[i:i + ports]) for i in range(0, len(values) - ports + 1, ports)]
steady = periods[warmup:] or periods
if not steady:
    print("0")
    sys.exit(1)
print(int(statistics.median(steady)))
