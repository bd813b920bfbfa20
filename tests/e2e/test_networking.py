"""Appliance networking end to end: no static ARP anywhere (scripts/appliance-config.sh declares
none), so the client's and the backends' kernels and sluiced all resolve each other by ARP (and
by neighbour discovery over IPv6); the client has only a default route through the appliance.
Pings to the VIP and to the appliance's interface address are answered by the dataplane."""

import re
import time

import pytest

from conftest import NS_BACKENDS, NS_CLIENT, NS_LB, VIP, curl, in_ns

BACKENDS = ["198.19.0.1", "198.19.0.2", "198.19.0.3"]
PORT = 8081  # a VIP port of its own, so the other tests' services are left alone


def metrics_text():
    """The admin endpoint's metrics (with a longer timeout than conftest's: after the 10,000
    services test the page is large)."""
    return in_ns(NS_LB, "curl", "-s", "--max-time", "30", "http://127.0.0.1:9100/metrics",
                 timeout=40).stdout


def metric(metrics, name):
    """The sum of a metric family's samples."""
    return sum(float(m) for m in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", metrics, re.M))


def neighbours(ns):
    return in_ns(ns, "ip", "-4", "neigh", "show").stdout


def test_client_reaches_the_vip_with_dynamic_resolution(sluiced, backends, tmp_path):
    # Forget everything the kernels learned in earlier tests: both sides must ask again.
    in_ns(NS_CLIENT, "ip", "neigh", "flush", "all")
    in_ns(NS_BACKENDS, "ip", "neigh", "flush", "all")
    before = metrics_text()
    args = ["service", "apply", "netweb", "--vip", VIP, "--port", str(PORT), "--protocol", "tcp",
            "--mode", "dnat"]
    for address in BACKENDS:
        args += ["--backend", f"{address}:8080"]
    sluiced.ctl(*args)
    try:
        # The client has a default route only (no route to the backends, no static entry).
        routes = in_ns(NS_CLIENT, "ip", "route", "show").stdout
        assert "default via 198.18.0.1" in routes, routes
        assert "198.19." not in routes, routes
        answered = set()
        for attempt in range(30):
            r = curl(port=PORT)
            assert r.returncode == 0 and r.stdout.startswith("backend "), \
                (attempt, r.returncode, r.stderr)
            answered.add(r.stdout.split()[1])
        assert answered == {"1", "2", "3"}, answered

        # Every side learned the other by ARP: dynamic entries, no PERMANENT ones.
        client_neigh = neighbours(NS_CLIENT)
        assert re.search(r"^198\.18\.0\.1 .* lladdr ([0-9a-f:]+) ", client_neigh, re.M), \
            client_neigh
        assert "PERMANENT" not in client_neigh, client_neigh
        backend_neigh = neighbours(NS_BACKENDS)
        assert re.search(r"^198\.19\.0\.254 .* lladdr ", backend_neigh, re.M), backend_neigh

        # And sluiced resolved the backends itself (requests sent, replies learned).
        after = metrics_text()
        assert metric(after, "sluice_worker_arp_requests_sent_total") >= \
            metric(before, "sluice_worker_arp_requests_sent_total")
        assert metric(after, "sluice_worker_neighbour_replies_total") >= 1, after[-3000:]
        assert metric(after, "sluice_worker_neighbour_queue_drops_total") == \
            metric(before, "sluice_worker_neighbour_queue_drops_total")
        assert metric(after, "sluice_worker_announcements_sent_total") >= 1

        # The learned bindings are listed by the API (Network.ListNeighbours, learned=true).
        import grpc
        from test_appliance import generated_stubs
        generated_stubs(tmp_path)
        from sluice.v1 import network_pb2, network_pb2_grpc
        channel = grpc.insecure_channel(f"unix://{sluiced.socket}",
                                        options=[("grpc.default_authority", "localhost")])
        listed = network_pb2_grpc.NetworkStub(channel).ListNeighbours(
            network_pb2.ListNeighboursRequest()).neighbours
        learned = {(n.port, n.address) for n in listed if n.learned}
        assert ("client", "198.18.0.2") in learned, listed
        assert {("backends", a) for a in BACKENDS} <= learned, listed
        assert not [n for n in listed if not n.learned], "no static neighbours are configured"
    finally:
        sluiced.ctl("service", "delete", "netweb", "--ignore-not-found", check=False)


def test_ping_to_the_vip_and_the_interface_address_answers(sluiced):
    # A VIP exists only while a service uses it.
    sluiced.ctl("service", "apply", "netping", "--vip", VIP, "--port", str(PORT + 1),
                "--protocol", "tcp", "--mode", "dnat", "--backend", "198.19.0.1:8080")
    try:
        for target in (VIP, "198.18.0.1"):
            r = in_ns(NS_CLIENT, "ping", "-c", "3", "-i", "0.2", "-W", "2", target, check=False,
                      timeout=20)
            assert r.returncode == 0, (target, r.stdout, r.stderr)
            assert " 0% packet loss" in r.stdout, r.stdout
        # Not an address of the appliance: no answer.
        r = in_ns(NS_CLIENT, "ping", "-c", "1", "-W", "1", "198.18.0.77", check=False, timeout=10)
        assert r.returncode != 0, r.stdout
    finally:
        sluiced.ctl("service", "delete", "netping", "--ignore-not-found", check=False)


def test_unreachable_backend_drops_after_retries_and_is_counted(sluiced):
    # 198.19.0.9 is on the backend subnet but nobody has it: three ARP requests, then the
    # waiting SYNs are dropped and counted; the client sees a timeout, not a hang of sluiced.
    before = metrics_text()
    sluiced.ctl("service", "apply", "netdead", "--vip", VIP, "--port", str(PORT + 2),
                "--protocol", "tcp", "--mode", "dnat", "--backend", "198.19.0.9:8080")
    try:
        r = curl(port=PORT + 2, timeout=4)
        assert r.returncode != 0
        time.sleep(1)
        after = metrics_text()
        assert metric(after, "sluice_worker_arp_requests_sent_total") >= \
            metric(before, "sluice_worker_arp_requests_sent_total") + 3
        assert metric(after, "sluice_worker_neighbour_queue_drops_total") >= \
            metric(before, "sluice_worker_neighbour_queue_drops_total") + 1
    finally:
        sluiced.ctl("service", "delete", "netdead", "--ignore-not-found", check=False)


VIP6 = "2001:2:0:64::10"
BACKENDS6 = ["2001:2:0:13::1", "2001:2:0:13::2", "2001:2:0:13::3"]


@pytest.mark.parametrize("mode", ["dnat", "fullnat"])
def test_ipv6_client_reaches_an_ipv6_vip_by_neighbour_discovery(sluiced, backends, mode):
    # The IPv6 twin of the test above: no static entries, the kernels and sluiced find each
    # other by neighbour discovery; the client's only IPv6 route is its default route.
    in_ns(NS_CLIENT, "ip", "-6", "neigh", "flush", "all")
    in_ns(NS_BACKENDS, "ip", "-6", "neigh", "flush", "all")
    for i in (1, 2, 3):
        (backends / f"nginx{i}" / "access.log").write_text("")
    args = ["service", "apply", "netweb6", "--vip", VIP6, "--port", str(PORT + 3),
            "--protocol", "tcp", "--mode", mode]
    if mode == "fullnat":
        args += ["--snat-pool", "snat6"]
    for address in BACKENDS6:
        args += ["--backend", f"[{address}]:8080"]
    sluiced.ctl(*args)
    try:
        answered = set()
        for attempt in range(30):
            r = curl(port=PORT + 3, host=f"[{VIP6}]", extra=("-g",))
            assert r.returncode == 0 and r.stdout.startswith("backend "), \
                (attempt, r.returncode, r.stderr)
            answered.add(r.stdout.split()[1])
        assert answered == {"1", "2", "3"}, answered
        # The backends saw the client's own address (DNAT) or the SNAT address (full-NAT).
        # (nginx logs a request as it finishes it: give the last line a moment.)
        for _ in range(20):
            logs = "".join((backends / f"nginx{i}" / "access.log").read_text()
                           for i in (1, 2, 3))
            if len(logs.splitlines()) >= 30:
                break
            time.sleep(0.1)
        seen = "2001:2::2 " if mode == "dnat" else "2001:2:0:13::250 "
        assert seen in logs, logs[-2000:]
        assert len(logs.splitlines()) == 30, logs[-2000:]

        client_neigh = in_ns(NS_CLIENT, "ip", "-6", "neigh", "show").stdout
        assert re.search(r"^2001:2::1 .* lladdr ", client_neigh, re.M), client_neigh
        # The backends answer the client through their default gateway (DNAT), the SNAT
        # address on their own subnet (full-NAT): either way sluiced answered the solicitation.
        backend_neigh = in_ns(NS_BACKENDS, "ip", "-6", "neigh", "show").stdout
        answering = "2001:2:0:13::fe" if mode == "dnat" else "2001:2:0:13::250"
        assert re.search(rf"^{answering} .* lladdr ", backend_neigh, re.M), backend_neigh

        # ICMPv6 echo to the VIP and to the interface address is answered by the dataplane.
        for target in (VIP6, "2001:2::1"):
            r = in_ns(NS_CLIENT, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", target,
                      check=False, timeout=20)
            assert r.returncode == 0, (target, r.stdout, r.stderr)
            assert " 0% packet loss" in r.stdout, r.stdout
    finally:
        sluiced.ctl("service", "delete", "netweb6", "--ignore-not-found", check=False)
