"""The appliance end to end: client namespace -> sluiced (DPDK net_af_packet ports) -> backend
namespace with three nginx and a socat UDP echo, for DNAT and full-NAT."""

import collections
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import NS_BACKENDS, NS_CLIENT, ROOT, SNAT, VIP, curl, in_ns, udp_echo

BACKENDS = ["198.19.0.1", "198.19.0.2", "198.19.0.3"]
WEIGHTS = {"198.19.0.1": 1, "198.19.0.2": 1, "198.19.0.3": 2}


def apply_web(sluiced, mode, name="web", port=80, backends=None, selection="round-robin"):
    backends = WEIGHTS if backends is None else backends
    args = ["service", "apply", name, "--vip", VIP, "--port", str(port), "--protocol", "tcp",
            "--mode", mode, "--selection", selection]
    if mode == "fullnat":
        args += ["--snat-pool", "snat"]
    for address, weight in backends.items():
        args += ["--backend", f"{address}:8080,weight={weight}"]
    sluiced.ctl(*args)


def apply_dns(sluiced, mode):
    args = ["service", "apply", "echo", "--vip", VIP, "--port", "53", "--protocol", "udp",
            "--mode", mode]
    if mode == "fullnat":
        args += ["--snat-pool", "snat"]
    for address in BACKENDS:
        args += ["--backend", f"{address}:5353"]
    sluiced.ctl(*args)


@pytest.mark.parametrize("mode", ["dnat", "fullnat"])
def test_requests_spread_by_weight_and_udp_echoes(sluiced, backends, mode):
    apply_web(sluiced, mode)
    apply_dns(sluiced, mode)
    seen = collections.Counter()
    failures = []
    for i in range(300):
        r = curl()
        if r.returncode == 0 and r.stdout.startswith("backend "):
            seen[BACKENDS[int(r.stdout.split()[1]) - 1]] += 1
        else:
            failures.append((i, r.returncode, r.stderr))
    assert not failures, f"{len(failures)} of 300 requests failed, first: {failures[:3]}"
    total = sum(WEIGHTS.values())
    for address, weight in WEIGHTS.items():
        share = seen[address] / 300
        expected = weight / total
        assert abs(share - expected) <= 0.10 * expected, (address, dict(seen))

    for payload in ("ping 1\n", "ping 2\n", "ping 3\n"):
        r = udp_echo(payload)
        assert r.returncode == 0 and r.stdout == payload, (r.returncode, r.stdout, r.stderr)

    # Full-NAT: backends see the SNAT address; DNAT: the client's own.
    log = (backends / "nginx1" / "access.log").read_text()
    last = log.strip().splitlines()[-1]
    expected_source = SNAT if mode == "fullnat" else "198.18.0.2"
    assert last.startswith(expected_source + " "), last

    stats = sluiced.ctl("stats", "-o", "json").stdout
    assert "backends" in stats or "services" in stats
    metrics = sluiced.metrics()
    assert 'service="web"' in metrics, metrics[:2000]


@pytest.mark.parametrize("mode", ["dnat", "fullnat"])
def test_draining_backend_finishes_its_download_and_gets_no_new_requests(sluiced, backends, mode):
    apply_web(sluiced, mode, backends={a: 1 for a in BACKENDS})
    download = subprocess.Popen(
        ["ip", "netns", "exec", NS_CLIENT, "curl", "-s", "-o", "/dev/null", "-w",
         "%{size_download}", "--max-time", "30", f"http://{VIP}/big"],
        stdout=subprocess.PIPE, text=True)
    # Find the backend serving it: nginx logs a request when it completes, so look at the
    # open connections in the backend namespace instead.
    serving = None
    for _ in range(50):
        ss = in_ns(NS_BACKENDS, "ss", "-Htn", "state", "established", check=False).stdout
        for address in BACKENDS:
            if f"{address}:8080" in ss:
                serving = address
        if serving:
            break
        time.sleep(0.1)
    if not serving:
        download.kill()
        out, _ = download.communicate()
        pytest.fail(f"the download never reached a backend: curl said {out!r}, "
                    f"exit {download.returncode}; ss: {ss!r}")
    # The connection table shows it (the worker answers between polls).
    conns = sluiced.ctl("conntrack", "list", "--backend", f"{serving}:8080", "-o", "json").stdout
    assert serving in conns and "198.18.0.2" in conns, conns
    sluiced.ctl("backend", "drain", "web", f"{serving}:8080")
    for _ in range(30):
        r = curl()
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() != f"backend {BACKENDS.index(serving) + 1}", "drained backend got a new request"
    out, _ = download.communicate(timeout=40)
    assert download.returncode == 0 and out.strip() == str(16 * 1024 * 1024), (download.returncode, out)


@pytest.mark.parametrize("mode", ["dnat", "fullnat"])
def test_no_backends_resets_new_connections_quickly(sluiced, mode):
    apply_web(sluiced, mode, backends={})
    started = time.time()
    r = curl(timeout=5)
    elapsed = time.time() - started
    assert r.returncode == 7, (r.returncode, r.stderr)  # curl: connection refused (RST)
    assert elapsed < 2, elapsed


@pytest.mark.parametrize("mode", ["dnat", "fullnat"])
def test_restart_restores_services_from_state(sluiced, mode):
    apply_web(sluiced, mode)
    code = sluiced.stop()
    assert code == 0, sluiced.log_text()[-3000:]
    assert "mempool in use after shutdown: 0" in sluiced.log_text()
    sluiced.start()
    listed = sluiced.ctl("service", "list", "-o", "json").stdout
    assert '"web"' in listed, listed
    r = curl()
    assert r.returncode == 0 and r.stdout.startswith("backend "), (r.returncode, r.stderr)


def test_an_independent_python_grpc_client_programs_a_service(sluiced, tmp_path):
    generated_stubs(tmp_path)
    import grpc
    from sluice.v1 import common_pb2, services_pb2, services_pb2_grpc

    # The default :authority for a Unix socket target is its path, which HTTP/2 servers may
    # refuse as an authority; name the host the way grpcurl and tonic clients do.
    channel = grpc.insecure_channel(f"unix://{sluiced.socket}",
                                    options=[("grpc.default_authority", "localhost")])
    stub = services_pb2_grpc.ServicesStub(channel)
    request = services_pb2.ApplyServiceRequest()
    svc = request.service
    svc.name = "web-py"
    svc.vip = VIP
    svc.port = 81
    svc.protocol = common_pb2.PROTOCOL_TCP
    svc.mode = services_pb2.NAT_MODE_DNAT
    svc.selection = services_pb2.SELECTION_MAGLEV
    for address in BACKENDS:
        b = svc.backends.add()
        b.address = address
        b.port = 8080
        b.weight = 1
    reply = stub.ApplyService(request, timeout=10)
    assert reply.service.name == "web-py"
    r = curl(port=81)
    assert r.returncode == 0 and r.stdout.startswith("backend "), (r.returncode, r.stderr)

    # Validation errors name the field and change nothing.
    bad = services_pb2.ApplyServiceRequest()
    bad.CopyFrom(request)
    bad.service.backends[0].port = 0
    with pytest.raises(grpc.RpcError) as err:
        stub.ApplyService(bad, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "port" in err.value.details()


def generated_stubs(tmp_path):
    """Python stubs generated from proto/ by grpcio-tools (not our Rust client)."""
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
                    f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}",
                    *[str(p) for p in sorted((ROOT / "proto/sluice/v1").glob("*.proto"))]],
                   check=True)
    sys.path.insert(0, str(tmp_path))


def test_publishing_10000_services_keeps_traffic_flowing(sluiced, tmp_path):
    """A benchmark, not a timed test: prints how long 10,000 services x 8 backends take to
    program through the API, and checks requests to an existing service keep succeeding
    meanwhile."""
    import threading

    generated_stubs(tmp_path)
    import grpc
    from sluice.v1 import common_pb2, services_pb2, services_pb2_grpc

    apply_web(sluiced, "dnat")
    channel = grpc.insecure_channel(f"unix://{sluiced.socket}",
                                    options=[("grpc.default_authority", "localhost"),
                                             ("grpc.max_send_message_length", 64 << 20),
                                             ("grpc.max_receive_message_length", 64 << 20)])
    stub = services_pb2_grpc.ServicesStub(channel)

    results = collections.Counter()
    stop = threading.Event()

    def load():
        while not stop.is_set():
            r = curl(timeout=2)
            results["ok" if r.returncode == 0 and r.stdout.startswith("backend ") else "failed"] += 1

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        elapsed = publish_bulk(stub, common_pb2, services_pb2)
    finally:
        stop.set()
        loader.join()
    print(f"\nBENCH publish 10000 services x 8 backends: {elapsed:.2f} s "
          f"({results['ok']} requests ok, {results['failed']} failed meanwhile)")
    assert results["ok"] > 0 and results["failed"] == 0, dict(results)
    listed = stub.ListServices(services_pb2.ListServicesRequest(), timeout=60)
    assert len(listed.services) >= 10000


def publish_bulk(stub, common_pb2, services_pb2, count=10000, batch_size=1000):
    """Applies `count` services of 8 backends in ApplyServices batches; returns seconds."""
    started = time.time()
    for batch in range(count // batch_size):
        request = services_pb2.ApplyServicesRequest()
        for i in range(batch * batch_size, (batch + 1) * batch_size):
            svc = request.requests.add().service
            svc.name = f"bulk-{i}"
            svc.vip = f"198.18.{200 + i // 60000}.{(i // 250) % 250 + 1}"
            svc.port = 1000 + i % 250
            svc.protocol = common_pb2.PROTOCOL_TCP
            svc.mode = services_pb2.NAT_MODE_DNAT
            svc.selection = services_pb2.SELECTION_MAGLEV
            for b in range(8):
                backend = svc.backends.add()
                backend.address = f"198.19.{1 + i // 250 % 250}.{1 + b}"
                backend.port = 8080
        stub.ApplyServices(request, timeout=120)
    return time.time() - started
