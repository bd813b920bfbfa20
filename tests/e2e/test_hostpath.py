"""The exception path end to end: sluiced gives the lb namespace's kernel a tap per DPDK port
(scripts/appliance-config.sh: sl-client, sl-backends) with the port's MAC and interface
addresses. A TCP service of the host kernel (socat, standing in for SSH) on the appliance's own
address answers a client through the DPDK port, both ways, bytes intact; the kernel resolves the
client by ARP through the same path."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import NS_BACKENDS, NS_CLIENT, NS_LB, in_ns

HOST_CLIENT_SIDE = "198.18.0.1"
HOST_BACKEND_SIDE = "198.19.0.254"
BANNER = "SSH-2.0-sluice-host-test"


def metric_sum(metrics, name):
    return sum(float(v) for v in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", metrics, re.M))


@pytest.fixture
def host_server(tmp_path):
    """A banner-then-echo TCP server (like an SSH daemon's greeting) in the lb namespace's
    kernel, on port 2222 of every host address."""
    script = tmp_path / "banner-echo.sh"
    script.write_text(f"#!/bin/sh\nprintf '{BANNER}\\r\\n'\nexec cat\n")
    script.chmod(0o755)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", NS_LB, "socat", "TCP4-LISTEN:2222,reuseaddr,fork",
         f"EXEC:{script}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 5
    while "2222" not in in_ns(NS_LB, "ss", "-ltn").stdout:
        assert time.time() < deadline, "socat did not listen"
        time.sleep(0.1)
    yield
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=5)


def test_taps_carry_the_ports_mac_and_addresses(sluiced, topology):
    for tap, port_iface, address in (("sl-client", topology["LB_CLIENT_IFACE"], "198.18.0.1/24"),
                                     ("sl-backends", topology["LB_BACKENDS_IFACE"],
                                      "198.19.0.254/24")):
        link = in_ns(NS_LB, "ip", "-o", "addr", "show", "dev", tap).stdout
        assert f"inet {address} " in link, link
        tap_mac = in_ns(NS_LB, "cat", f"/sys/class/net/{tap}/address").stdout.strip()
        port_mac = in_ns(NS_LB, "cat", f"/sys/class/net/{port_iface}/address").stdout.strip()
        assert tap_mac == port_mac, (tap, tap_mac, port_mac)
        state = in_ns(NS_LB, "cat", f"/sys/class/net/{tap}/operstate").stdout.strip()
        assert state in ("up", "unknown"), state
        # The veth DPDK owns has no kernel address: the tap is the kernel's only way out.
        veth = in_ns(NS_LB, "ip", "-o", "-4", "addr", "show", "dev", port_iface).stdout
        assert veth.strip() == "", veth


def test_client_talks_to_a_host_tcp_service_through_the_dpdk_port(sluiced, topology,
                                                                 host_server):
    before = sluiced.metrics()
    in_ns(NS_LB, "ip", "neigh", "flush", "dev", "sl-client")
    payload = os.urandom(96 * 1024).hex()  # 192 KiB of text: many segments each way
    r = in_ns(NS_CLIENT, "socat", "-t", "3", "-T", "10", "-",
              f"TCP4:{HOST_CLIENT_SIDE}:2222,connect-timeout=5",
              input=payload, check=False, timeout=30)
    assert r.returncode == 0, (r.returncode, r.stderr)
    # (Text mode turns the banner's CRLF into a newline.)
    banner, _, echoed = r.stdout.partition("\n")
    assert banner == BANNER, r.stdout[:200]
    assert echoed == payload, (len(echoed), len(payload))

    # The kernel learned the client's MAC by ARP through the tap (its request went out of the
    # DPDK port, the client's reply came back through the exception path).
    client_mac = topology["CLIENT_MAC"]
    neigh = in_ns(NS_LB, "ip", "neigh", "show", "dev", "sl-client").stdout
    assert re.search(rf"^198\.18\.0\.2 lladdr {re.escape(client_mac)} ", neigh, re.M), \
        (neigh, client_mac)

    after = sluiced.metrics()
    to_host = metric_sum(after, "sluice_worker_to_host_packets_total") - \
        metric_sum(before, "sluice_worker_to_host_packets_total")
    from_host = metric_sum(after, "sluice_worker_from_host_packets_total") - \
        metric_sum(before, "sluice_worker_from_host_packets_total")
    # 192 KiB each way in at most ~1500-byte segments, plus handshake, ACKs and ARP.
    assert to_host >= 130 and from_host >= 130, (to_host, from_host)
    stats = json.loads(sluiced.ctl("stats", "-o", "json").stdout)
    assert sum(w["toHostPackets"] for w in stats["workers"]) >= to_host, stats["workers"]
    assert sum(w["fromHostPackets"] for w in stats["workers"]) >= from_host, stats["workers"]
    drops = re.findall(r'^sluice_drops_total\{reason="(no_host_path|host_path_full)"\} (\S+)$',
                       after, re.M)
    assert all(float(v) == 0 for _, v in drops), drops


def test_backends_reach_the_host_on_the_backend_side_address(sluiced, host_server):
    r = in_ns(NS_BACKENDS, "socat", "-t", "2", "-T", "5", "-",
              f"TCP4:{HOST_BACKEND_SIDE}:2222,connect-timeout=5",
              input="hello from a backend\n", check=False, timeout=20)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout == f"{BANNER}\nhello from a backend\n", r.stdout


def test_host_traffic_leaves_no_connection_state(sluiced, host_server):
    # The exception path bypasses the connection table: nothing to age out, nothing counted as
    # a load-balanced connection.
    r = in_ns(NS_CLIENT, "socat", "-t", "2", "-T", "5", "-",
              f"TCP4:{HOST_CLIENT_SIDE}:2222,connect-timeout=5",
              input="x\n", check=False, timeout=20)
    assert r.returncode == 0, r.stderr
    listed = json.loads(sluiced.ctl("conntrack", "list", "-o", "json").stdout)
    # (Compared field by field: other tests' connections may have a client port like 52222.)
    host = [c for c in listed.get("connections", [])
            if c.get("vip") == HOST_CLIENT_SIDE or 2222 in (c.get("vipPort"), c.get("backendPort"))]
    assert host == [], host
