"""Backend health checks end to end. sluiced probes the backends from the lb namespace's kernel;
the lb namespace's veths carry no addresses, so every probe and every reply crosses the exception
path (tap -> DPDK port -> backends and back). A backend whose nginx is stopped leaves new-flow
selection within interval x fall + timeout and returns after rise successes; the state is
visible in the API (sluicectl) and in /metrics."""

import json
import re
import subprocess
import time

import pytest

from conftest import NS_BACKENDS, PREFIX, ROOT, VIP, curl, in_ns, run

BACKENDS = ["198.19.0.1", "198.19.0.2", "198.19.0.3"]
INTERVAL, TIMEOUT, RISE, FALL = 1.0, 0.5, 2, 2
# Slack over the configured bound for the test's own polling (0.2 s), the checker's start-up
# spread and a loaded 2-core machine.
SLACK = 1.5


def apply(sluiced, tmp_path, name, port, check, protocol="tcp", backend_port=8080):
    backends = "\n".join(f"  - address: {a}\n    port: {backend_port}" for a in BACKENDS)
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(
        f"name: {name}\nvip: {VIP}\nport: {port}\nprotocol: {protocol}\nmode: dnat\n"
        f"selection: round-robin\nbackends:\n{backends}\nhealthCheck:\n{check}")
    sluiced.ctl("service", "apply", "-f", str(manifest))


def health(sluiced, name):
    """{address: (health, message)} of the service's backends, from the API."""
    out = sluiced.ctl("service", "get", name, "-o", "json").stdout
    service = json.loads(out)
    return {b["address"]: (b["status"]["health"], b["status"].get("healthMessage", ""))
            for b in service["backends"]}


def wait_for(sluiced, name, address, wanted, within):
    """Polls until `address` of service `name` has health `wanted`; returns the time taken."""
    start = time.monotonic()
    while True:
        state = health(sluiced, name)
        if state[address][0] == wanted:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            pytest.fail(f"{address} of {name} not {wanted} within {within:.1f} s: {state}\n"
                        f"{sluiced.log_text()[-3000:]}")
        time.sleep(0.2)


def metric_value(metrics, name, service, backend):
    m = re.search(rf'^{name}{{service="{service}",backend="{backend}"}} (\S+)$', metrics, re.M)
    return float(m.group(1)) if m else None


def wait_for_rotation(port, wanted, within=5):
    """Polls until six consecutive requests are answered by exactly the backends `wanted`
    (round-robin over three visits each at least twice)."""
    deadline = time.monotonic() + within
    while True:
        seen = set()
        for _ in range(6):
            r = curl(port=port)
            seen.add(r.stdout.split()[1] if r.returncode == 0 and r.stdout else "error")
        if seen == wanted:
            return
        assert time.monotonic() < deadline, f"answered by {seen}, wanted {wanted}"
        time.sleep(0.2)


def start_nginx(rundir, n):
    """Starts nginx N again (scripts/backends.sh's config) and records its pid for cleanup."""
    conf = rundir / f"nginx{n}" / "nginx.conf"
    proc = subprocess.Popen(["ip", "netns", "exec", NS_BACKENDS, "nginx", "-c", str(conf), "-p",
                             str(rundir / f"nginx{n}")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (rundir / f"nginx{n}.pid").write_text(f"{proc.pid}\n")
    return proc


def test_stopped_backend_leaves_within_fall_time_and_returns_after_rise(
        sluiced, backends, tmp_path):
    port = 8082
    apply(sluiced, tmp_path, "hc-web", port,
          f"  type: http\n  interval: {int(INTERVAL * 1000)}ms\n  timeout: {int(TIMEOUT * 1000)}ms\n"
          f"  rise: {RISE}\n  fall: {FALL}\n  httpPath: /\n  httpExpectedStatus: 200\n")
    try:
        for address in BACKENDS:
            wait_for(sluiced, "hc-web", address, "up", 15)

        run(str(ROOT / "scripts/backends.sh"), "stop-one", "2", PREFIX, str(backends))
        took = wait_for(sluiced, "hc-web", "198.19.0.2", "down",
                        INTERVAL * FALL + TIMEOUT + SLACK)
        print(f"DOWN after {took:.2f} s (bound {INTERVAL * FALL + TIMEOUT:.1f} s)")
        state = health(sluiced, "hc-web")
        assert "connection refused" in state["198.19.0.2"][1], state
        assert state["198.19.0.1"][0] == "up" and state["198.19.0.3"][0] == "up", state

        # New connections avoid it once the republished snapshot is live (a compile of the
        # whole state after the transition: longer when other tests left many services).
        wait_for_rotation(port, {"1", "3"})
        seen = set()
        for _ in range(30):
            r = curl(port=port)
            assert r.returncode == 0 and r.stdout.startswith("backend "), (r.returncode, r.stderr)
            seen.add(r.stdout.split()[1])
        assert seen == {"1", "3"}, seen
        listed = json.loads(sluiced.ctl("service", "get", "hc-web", "-o", "json").stdout)
        assert listed["status"]["eligibleBackends"] == 2, listed["status"]

        metrics = sluiced.metrics()
        assert metric_value(metrics, "sluice_backend_health", "hc-web", "198.19.0.2:8080") == 2
        assert metric_value(metrics, "sluice_backend_health", "hc-web", "198.19.0.1:8080") == 1
        assert metric_value(metrics, "sluice_backend_health_check_failures_total", "hc-web",
                            "198.19.0.2:8080") >= FALL

        # GetStats (sluicectl stats) carries it too.
        stats = json.loads(sluiced.ctl("stats", "-o", "json").stdout)
        web = next(s for s in stats["services"] if s["name"] == "hc-web")
        by_address = {b["address"]: b for b in web["backends"]}
        assert by_address["198.19.0.2"]["health"] == "down", by_address
        assert "connection refused" in by_address["198.19.0.2"]["healthMessage"], by_address
        assert by_address["198.19.0.1"]["health"] == "up", by_address

        start_nginx(backends, 2)
        took = wait_for(sluiced, "hc-web", "198.19.0.2", "up", INTERVAL * RISE + TIMEOUT + SLACK)
        print(f"UP after {took:.2f} s (bound {INTERVAL * RISE + TIMEOUT:.1f} s)")
        wait_for_rotation(port, {"1", "2", "3"})
        seen = set()
        for _ in range(30):
            r = curl(port=port)
            assert r.returncode == 0, (r.returncode, r.stderr)
            seen.add(r.stdout.split()[1])
        assert seen == {"1", "2", "3"}, seen
    finally:
        sluiced.ctl("service", "delete", "hc-web", check=False)
        # Leave all three running for the other tests.
        if not (backends / "nginx2.pid").exists():
            start_nginx(backends, 2)


def test_tcp_udp_and_ping_checks_pass_through_the_exception_path(sluiced, backends, tmp_path):
    apply(sluiced, tmp_path, "hc-tcp", 8083, "  type: tcp\n  interval: 1s\n  rise: 1\n")
    apply(sluiced, tmp_path, "hc-udp", 5354,
          "  type: udp\n  interval: 1s\n  rise: 1\n  udpRequest: health\n  udpResponse: health\n",
          protocol="udp", backend_port=5353)
    apply(sluiced, tmp_path, "hc-ping", 8084, "  type: ping\n  interval: 1s\n  rise: 1\n")
    try:
        for name in ("hc-tcp", "hc-udp", "hc-ping"):
            for address in BACKENDS:
                wait_for(sluiced, name, address, "up", 10)
        # The probes' replies came in through the taps.
        metrics = sluiced.metrics()
        to_host = sum(float(v) for v in
                      re.findall(r"^sluice_worker_to_host_packets_total\{[^}]*\} (\S+)$",
                                 metrics, re.M))
        assert to_host > 0, metrics[-2000:]
    finally:
        for name in ("hc-tcp", "hc-udp", "hc-ping"):
            sluiced.ctl("service", "delete", name, check=False)


def test_all_backends_down_refuses_new_connections_at_once(sluiced, backends, tmp_path):
    # Checks a port nobody listens on: every backend goes DOWN, the service has none left.
    apply(sluiced, tmp_path, "hc-dead", 8085,
          "  type: tcp\n  port: 9\n  interval: 1s\n  timeout: 500ms\n  fall: 1\n")
    try:
        for address in BACKENDS:
            wait_for(sluiced, "hc-dead", address, "down", 10)
        # The republished snapshot follows the last transition (a compile of the whole state:
        # longer when other tests left many services behind).
        deadline = time.monotonic() + 5
        while curl(port=8085, timeout=3).returncode != 7:
            assert time.monotonic() < deadline, "still connecting 5 s after all went DOWN"
            time.sleep(0.2)
        start = time.monotonic()
        r = curl(port=8085, timeout=3)
        # A reset from the dataplane (curl: "Connection refused", exit 7), not a timeout.
        assert r.returncode == 7, (r.returncode, r.stderr)
        assert time.monotonic() - start < 2
        # Removing the check makes them eligible again (UNKNOWN).
        apply_plain = tmp_path / "hc-dead-plain.yaml"
        backends_yaml = "\n".join(f"  - address: {a}\n    port: 8080" for a in BACKENDS)
        apply_plain.write_text(f"name: hc-dead\nvip: {VIP}\nport: 8085\nprotocol: tcp\n"
                               f"mode: dnat\nbackends:\n{backends_yaml}\n")
        sluiced.ctl("service", "apply", "-f", str(apply_plain))
        deadline = time.monotonic() + 5
        while True:
            r = curl(port=8085)
            if r.returncode == 0:
                break
            assert time.monotonic() < deadline, (r.returncode, r.stderr)
            time.sleep(0.3)
        assert r.stdout.startswith("backend "), r.stdout
        assert all(h == "unknown" for h, _ in health(sluiced, "hc-dead").values())
    finally:
        sluiced.ctl("service", "delete", "hc-dead", check=False)
