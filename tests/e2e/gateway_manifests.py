"""Manifests for the sluice-gateway end-to-end tests: the seed guide's Gateway API objects
(unchanged, loxilb labels and annotations included) plus the EndpointSlices a cluster's
endpoint controller would have made for the Services kube-loxilb creates, pointing at the
real backends of scripts/backends.sh."""

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "controlplane/gateway/tests/seed"
BACKENDS = ["198.19.0.1", "198.19.0.2", "198.19.0.3"]


def endpoint_slice(service, port, protocol, addresses, namespace="kube-system"):
    endpoints = "".join(
        f"- addresses: [\"{a}\"]\n  conditions: {{ready: true}}\n" for a in addresses)
    return (f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
            f"  name: {service}-1\n  namespace: {namespace}\n  labels:\n"
            f"    kubernetes.io/service-name: {service}\naddressType: IPv4\n"
            f"ports:\n- port: {port}\n  protocol: {protocol}\nendpoints:\n{endpoints}")


def write_seed(directory, tcp=True, udp=True):
    """The seed's GatewayClass, Gateway, TCPRoute and UDPRoute files as they are, and slices
    for nginx (8080) and the UDP echo (5353) on the three backends."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("gatewayclass.yaml", "gateway.yaml"):
        shutil.copy(SEED / name, directory / name)
    for enabled, name, service, port, protocol in (
            (tcp, "tcpRoute.yaml", "tcproute-lb-service", 8080, "TCP"),
            (udp, "udpRoute.yaml", "udproute-lb-service", 5353, "UDP")):
        route, slice_file = directory / name, directory / f"{service}-slice.yaml"
        if enabled:
            shutil.copy(SEED / name, route)
            slice_file.write_text(endpoint_slice(service, port, protocol, BACKENDS))
        else:
            for path in (route, slice_file):
                if path.exists():
                    os.unlink(path)
