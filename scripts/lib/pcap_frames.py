#!/usr/bin/env python3
"""Prints the number of frames in a classic (libpcap) capture file.

usage: pcap_frames.py FILE.pcap"""
import struct
import sys

with open(sys.argv[1], "rb") as f:
    header = f.read(24)
    if len(header) < 24:
        sys.exit(f"{sys.argv[1]}: not a pcap file (short header)")
    magic = header[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        sys.exit(f"{sys.argv[1]}: not a classic pcap file (pcapng is not supported)")
    frames = 0
    while True:
        record = f.read(16)
        if len(record) < 16:
            break
        _, _, caplen, _ = struct.unpack(endian + "IIII", record)
        f.seek(caplen, 1)
        frames += 1
print(frames)
