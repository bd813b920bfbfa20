"""sluice-gateway end to end: the seed guide's Gateway, TCPRoute (21818) and UDPRoute (21819)
programmed into a real sluiced by the controller in static mode (--manifests), then reached
from the client namespace with curl and a UDP datagram, as the seed guide does."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import binary, curl, run, udp_echo
from gateway_fakeapi import FakeApi
from gateway_manifests import BACKENDS as BACKEND_ADDRESSES, SEED, endpoint_slice, write_seed

GATEWAY_VIP = "198.18.100.20"
POOL = f"defaultPool={GATEWAY_VIP}/32"


def gateway_binary():
    return os.environ.get("SLUICE_GATEWAY_BIN") or binary("sluice-gateway")


def run_gateway(sluiced, manifests, *extra):
    """One static-mode pass; returns the statuses it printed."""
    proc = subprocess.run(
        [gateway_binary(), "--manifests", str(manifests), "--sluiced", f"unix://{sluiced.socket}",
         "--loxilb-compat", "--pool", POOL, "--snat-pool", "snat", "--once", "--print-status",
         *extra],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"sluice-gateway failed ({proc.returncode}):\n{proc.stderr}"
    return {(s["kind"], s["name"]): s["status"] for s in json.loads(proc.stdout or "[]")}, proc


def gateway_services(sluiced):
    out = sluiced.ctl("service", "list", "-o", "json").stdout
    services = json.loads(out)
    if isinstance(services, dict):
        services = services.get("services", [])
    return {s["name"]: s for s in services
            if s.get("labels", {}).get("sluice.io/managed-by") == "sluice-gateway"}


def condition(conditions, type_):
    return next(c for c in conditions if c["type"] == type_)


@pytest.fixture
def manifests():
    directory = Path(tempfile.mkdtemp(prefix="sluice-gw-e2e-"))
    yield directory
    subprocess.run(["rm", "-rf", str(directory)], check=False)


def test_seed_tcp_and_udp_routes_through_sluiced(sluiced, backends, manifests):
    write_seed(manifests)
    statuses, _ = run_gateway(sluiced, manifests)
    try:
        gw = statuses[("Gateway", "test-gateway")]
        assert gw["addresses"] == [{"type": "IPAddress", "value": GATEWAY_VIP}]
        assert condition(gw["conditions"], "Programmed")["status"] == "True"
        route = statuses[("TCPRoute", "test-tcproute")]["parents"][0]["conditions"]
        assert condition(route, "Accepted")["status"] == "True"
        assert condition(route, "ResolvedRefs")["status"] == "True"

        services = gateway_services(sluiced)
        tcp = services["gw.kube-system.test-gateway.tcp-listener"]
        assert tcp["vip"] == GATEWAY_VIP and tcp["port"] == 21818
        assert tcp["labels"]["sluice.io/route"] == "test-tcproute"
        assert "gw.kube-system.test-gateway.udp-listener" in services

        # The seed guide: curl http://VIP:21818 reaches nginx (full-NAT, as lbmode says).
        seen = set()
        for _ in range(12):
            reply = curl(port=21818, host=GATEWAY_VIP)
            assert reply.returncode == 0, (reply.stderr, sluiced.ctl("service", "get", "gw.kube-system.test-gateway.tcp-listener", "-o", "json").stdout, sluiced.ctl("stats").stdout)
            assert reply.stdout.startswith("backend "), reply.stdout
            seen.add(reply.stdout.strip())
        assert len(seen) >= 2, seen
        # ... and the UDP client gets its datagram echoed.
        echo = udp_echo("hello gateway\n", port=21819, host=GATEWAY_VIP)
        assert echo.stdout == "hello gateway\n", echo.stderr

        # A second pass changes nothing: same services, same resource versions.
        before = {n: s.get("meta") for n, s in gateway_services(sluiced).items()}
        statuses, proc = run_gateway(sluiced, manifests)
        assert "programmed sluiced" not in proc.stderr, proc.stderr
        after = {n: s.get("meta") for n, s in gateway_services(sluiced).items()}
        assert before == after

        # The TCPRoute deleted: its service goes, the UDP one stays and still answers.
        write_seed(manifests, tcp=False)
        run_gateway(sluiced, manifests)
        names = set(gateway_services(sluiced))
        assert names == {"gw.kube-system.test-gateway.udp-listener"}, names
        assert curl(port=21818, host=GATEWAY_VIP, timeout=2).stdout == ""
        assert udp_echo("again\n", port=21819, host=GATEWAY_VIP).stdout == "again\n"
    finally:
        # Everything gone: the controller removes what it owns and nothing else.
        for path in manifests.iterdir():
            path.unlink()
        run_gateway(sluiced, manifests)
    assert gateway_services(sluiced) == {}


def test_invalid_manifest_is_named_and_changes_nothing(sluiced, manifests):
    (manifests / "broken.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: [oops\n")
    proc = subprocess.run(
        [gateway_binary(), "--manifests", str(manifests), "--sluiced", f"unix://{sluiced.socket}",
         "--once"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "broken.yaml" in proc.stderr, proc.stderr


def wait_until(what, check, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def test_cluster_mode_against_a_fake_api_server(sluiced, backends, tmp_path):
    """The controller in cluster mode (kubeconfig) watching a fake API server that serves the
    seed's objects unmodified: statuses are written back, the Services kube-loxilb would
    create are created, and the seed's curl and UDP client work through sluiced."""
    api = FakeApi().start()
    controller = None
    try:
        for name in ("gatewayclass.yaml", "gateway.yaml", "tcpRoute.yaml", "udpRoute.yaml"):
            for doc in yaml.safe_load_all((SEED / name).read_text()):
                if doc and doc["apiVersion"].startswith("gateway.networking.k8s.io/"):
                    api.put(doc)
        for service, port, protocol in (("tcproute-lb-service", 8080, "TCP"),
                                        ("udproute-lb-service", 5353, "UDP")):
            api.put(yaml.safe_load(endpoint_slice(service, port, protocol, BACKEND_ADDRESSES)))
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(api.kubeconfig())
        log = open(tmp_path / "gateway.log", "w")
        controller = subprocess.Popen(
            [gateway_binary(), "--kubeconfig", str(kubeconfig), "--sluiced",
             f"unix://{sluiced.socket}", "--loxilb-compat", "--pool", POOL, "--snat-pool", "snat",
             "--resync", "2"], stdout=log, stderr=subprocess.STDOUT)

        def gateway_status():
            gw = api.get("gateway.networking.k8s.io/v1", "Gateway", "kube-system", "test-gateway")
            status = (gw or {}).get("status") or {}
            programmed = [c for c in status.get("conditions", []) if c["type"] == "Programmed"]
            return status if programmed and programmed[0]["status"] == "True" else None

        status = wait_until("the Gateway's status", gateway_status)
        assert status["addresses"] == [{"type": "IPAddress", "value": GATEWAY_VIP}]
        tcp_listener = next(l for l in status["listeners"] if l["name"] == "tcp-listener")
        assert tcp_listener["attachedRoutes"] == 1
        route = api.get("gateway.networking.k8s.io/v1alpha2", "TCPRoute", "kube-system",
                        "test-tcproute")
        conds = route["status"]["parents"][0]["conditions"]
        assert condition(conds, "Accepted")["status"] == "True"
        assert condition(conds, "Accepted")["observedGeneration"] == 1
        patches = [r for r in api.requests if r["method"] == "PATCH"]
        assert all(r["content_type"] == "application/apply-patch+yaml" for r in patches)
        created = [r for r in patches
                   if r["path"] == "/api/v1/namespaces/kube-system/services/tcproute-lb-service"]
        assert created and created[0]["body"]["spec"]["selector"] == {"app": "tcproute-pod"}

        wait_until("services in sluiced", lambda: len(gateway_services(sluiced)) == 2)
        reply = curl(port=21818, host=GATEWAY_VIP)
        assert reply.stdout.startswith("backend "), (reply.stdout, reply.stderr)
        assert udp_echo("via the API\n", port=21819, host=GATEWAY_VIP).stdout == "via the API\n"

        # Deleted in the cluster -> removed from sluiced.
        api.delete("gateway.networking.k8s.io/v1alpha2", "TCPRoute", "kube-system", "test-tcproute")
        wait_until("the TCP service removed", lambda: set(gateway_services(sluiced)) ==
                   {"gw.kube-system.test-gateway.udp-listener"})
        # ... and the Service created for it (serviceBehaviour: create) is deleted again.
        wait_until("the created Service deleted", lambda: api.get(
            "v1", "Service", "kube-system", "tcproute-lb-service") is None)
        assert any(r["method"] == "DELETE" and r["path"].endswith("/services/tcproute-lb-service")
                   for r in api.requests)
        assert api.get("v1", "Service", "kube-system", "udproute-lb-service") is not None
        api.delete("gateway.networking.k8s.io/v1", "Gateway", "kube-system", "test-gateway")
        wait_until("every service removed", lambda: gateway_services(sluiced) == {})
    finally:
        if controller is not None:
            controller.terminate()
            controller.wait(timeout=10)
        api.stop()


OWN_CLASS = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sluice}
spec: {controllerName: sluice.io/gateway}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: split, namespace: web}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: tcp, protocol: TCP, port: 21820}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: half, namespace: web}
spec:
  parentRefs: [{name: split}]
  rules:
  - backendRefs:
    - {name: nginx, port: 80, weight: 1}
    - {name: not-there, port: 80, weight: 1}
---
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: web}
spec:
  ports: [{port: 80, targetPort: 8080, protocol: TCP}]
"""


def test_invalid_backend_refuses_its_share_of_connections(sluiced, backends, manifests):
    """Weights 1:1 with one backendRef invalid: about half of the new connections fail (the
    spec's "rejected in proportion to weight"), the other half reach nginx."""
    (manifests / "split.yaml").write_text(OWN_CLASS)
    (manifests / "slice.yaml").write_text(
        endpoint_slice("nginx", 8080, "TCP", BACKEND_ADDRESSES, namespace="web"))
    statuses, _ = run_gateway(sluiced, manifests)
    try:
        conds = statuses[("TCPRoute", "half")]["parents"][0]["conditions"]
        assert condition(conds, "ResolvedRefs")["reason"] == "BackendNotFound"
        ok = failed = 0
        for _ in range(40):
            reply = curl(port=21820, host=GATEWAY_VIP, timeout=1)
            if reply.returncode == 0 and reply.stdout.startswith("backend "):
                ok += 1
            else:
                # Refused at once by a reset (curl: "couldn't connect", exit 7), not timed out.
                assert reply.returncode == 7, (reply.returncode, reply.stderr)
                failed += 1
        print(f"weights 1:1 with one invalid backendRef: {ok} answered, {failed} refused")
        # Binomial(40, 0.5): outside 8..32 has a probability below 1e-4.
        assert 8 <= failed <= 32, (ok, failed)
    finally:
        for path in manifests.iterdir():
            path.unlink()
        run_gateway(sluiced, manifests)
    assert gateway_services(sluiced) == {}


PROXY_ADDRESS = "198.19.0.60"
HTTP_EXTRA = """apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: routes-from-kube-system, namespace: default}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: kube-system}]
  to: [{group: "", kind: Service}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: http-service-1
  namespace: default
  labels: {kubernetes.io/service-name: http-service}
addressType: IPv4
ports:
- {name: tcpport80, port: 8080, protocol: TCP}
endpoints:
- addresses: ["198.19.0.1"]
- addresses: ["198.19.0.2"]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: sluice-proxy-1
  namespace: sluice
  labels: {kubernetes.io/service-name: sluice-proxy}
addressType: IPv4
endpoints:
- addresses: ["%s"]
""" % PROXY_ADDRESS


@pytest.fixture
def proxy(backends, tmp_path):
    """sluice-proxy in the backends namespace on an extra address, its API on a socket."""
    from conftest import NS_BACKENDS, PREFIX, in_ns
    proxy_bin = os.environ.get("SLUICE_PROXY_BIN") or binary("sluice-proxy")
    in_ns(NS_BACKENDS, "ip", "addr", "add", f"{PROXY_ADDRESS}/24", "dev", f"{PREFIX}bk0")
    socket = tmp_path / "proxy.sock"
    log = open(tmp_path / "proxy.log", "w")
    proc = subprocess.Popen(["ip", "netns", "exec", NS_BACKENDS, proxy_bin, "--api-socket",
                             str(socket), "--state-dir", str(tmp_path / "proxy-state")],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until("the proxy's API socket", socket.exists, timeout=20)
        yield socket
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        in_ns(NS_BACKENDS, "ip", "addr", "del", f"{PROXY_ADDRESS}/24", "dev", f"{PREFIX}bk0",
              check=False)


def test_seed_http_route_through_sluiced_and_sluice_proxy(sluiced, proxy, manifests):
    """The seed's HTTPRoute (host test.loxilb.gateway.http, backend http-service in another
    namespace, allowed by a ReferenceGrant): client -> VIP:80 on sluiced -> sluice-proxy ->
    nginx, routed by Host header."""
    write_seed(manifests, tcp=False, udp=False)
    shutil.copy(SEED / "httpRoute.yaml", manifests / "httpRoute.yaml")
    (manifests / "extra.yaml").write_text(HTTP_EXTRA)
    extra = ("--proxy-service", "sluice/sluice-proxy", "--proxy-api", f"unix://{proxy}")
    statuses, proc = run_gateway(sluiced, manifests, *extra)
    try:
        route = statuses[("HTTPRoute", "test-http-route")]["parents"][0]["conditions"]
        assert condition(route, "Accepted")["status"] == "True", route
        assert condition(route, "ResolvedRefs")["status"] == "True", route
        http = next(l for l in statuses[("Gateway", "test-gateway")]["listeners"]
                    if l["name"] == "http-listener")
        assert condition(http["conditions"], "Programmed")["status"] == "True", http
        assert "gw.kube-system.test-gateway.http-80" in gateway_services(sluiced)

        def answered():
            reply = curl(port=80, host=GATEWAY_VIP,
                         extra=("-H", "Host: test.loxilb.gateway.http"))
            return reply.stdout if reply.stdout.startswith("backend ") else None
        body = wait_until("an answer through the proxy", answered, timeout=20)
        assert body.strip() in ("backend 1", "backend 2"), body
        # Another host matches no route: the proxy answers 404 itself.
        other = curl(port=80, host=GATEWAY_VIP, extra=("-H", "Host: nope.example",
                                                      "-o", "/dev/null", "-w", "%{http_code}"))
        assert other.stdout == "404", other.stdout
    finally:
        for path in manifests.iterdir():
            path.unlink()
        run_gateway(sluiced, manifests, *extra)
    assert gateway_services(sluiced) == {}
