"""sluice-proxy end to end, the seed guide's Gateway flow: curl in the client namespace ->
sluiced (DPDK net_af_packet, DNAT of the Gateway address :80 and :443) -> sluice-proxy in the
backends namespace (HTTP and HTTPS listeners, routes by Host, TLS termination) -> the nginx
backends. The proxy is programmed with `sluicectl l7 apply -f` (YAML table)."""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import NS_BACKENDS, NS_CLIENT, Daemon, binary, in_ns, run

# The Gateway address: not the VIP test_appliance.py uses, so both files share one sluiced.
GATEWAY = "198.18.100.20"
PROXY_ADDR = "198.19.0.1"
ADMIN = f"{PROXY_ADDR}:9180"
HTTP_HOST = "test.loxilb.gateway.http"
HTTPS_HOST = "test.loxilb.gateway.https"


def make_cert(directory, cn, days=30):
    """A self-signed certificate (the seed's Opaque secret: server.crt/server.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / "server.crt", directory / "server.key"
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(key), "-out", str(crt), "-days", str(days), "-subj", f"/CN={cn}",
        "-addext", f"subjectAltName=DNS:{HTTPS_HOST}")
    return crt, key


def table_yaml(cert_dir):
    return f"""
listeners:
  - name: kube-system/test-gateway/http-listener
    address: {PROXY_ADDR}
    port: 80
    protocol: HTTP
  - name: kube-system/test-gateway/https-listener
    address: {PROXY_ADDR}
    port: 443
    protocol: HTTPS
    certificateNames: [kube-system/loxilb-ssl]
certificates:
  - name: kube-system/loxilb-ssl
    certFile: {cert_dir}/server.crt
    keyFile: {cert_dir}/server.key
routes:
  - name: kube-system/test-http-route
    listenerNames: [kube-system/test-gateway/http-listener]
    hostnames: [{HTTP_HOST}]
    rules:
      - backends:
          - name: default/http-service:80
            endpoints: ["198.19.0.1:8080", "198.19.0.2:8080"]
  - name: kube-system/test-https-route
    listenerNames: [kube-system/test-gateway/https-listener]
    hostnames: [{HTTPS_HOST}]
    rules:
      - backends:
          - name: default/https-service:80
            endpoints: ["198.19.0.3:8080"]
      - matches: [{{path: {{type: PathPrefix, value: /old}}}}]
        filters:
          - type: RequestRedirect
            requestRedirect: {{path: {{type: ReplacePrefixMatch, value: /new}}, statusCode: 301}}
"""


class Proxy(Daemon):
    """sluice-proxy in the backends namespace, API on a Unix socket in its work dir."""

    stop_timeout = 20

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.socket = self.workdir / "proxy.sock"
        self.log_path = self.workdir / "proxy.log"
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", NS_BACKENDS, binary("sluice-proxy"),
             "--api-socket", str(self.socket), "--state-dir", str(self.workdir / "state"),
             "--admin-listen", ADMIN],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"sluice-proxy exited with {self.proc.returncode}:\n{self.log_text()}")
            r = in_ns(NS_BACKENDS, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                      "--max-time", "1", f"http://{ADMIN}/readyz", check=False)
            if r.stdout.strip() == "200":
                return
            time.sleep(0.2)
        pytest.fail(f"sluice-proxy not ready in 20 s:\n{self.log_text()}")

    def metrics(self):
        return in_ns(NS_BACKENDS, "curl", "-s", "--max-time", "2", f"http://{ADMIN}/metrics").stdout


@pytest.fixture(scope="module")
def gateway(sluiced, backends):
    """sluiced DNATs the Gateway address :80/:443 to the proxy; the proxy has the seed table."""
    for name, port in (("gw-http", 80), ("gw-https", 443)):
        sluiced.ctl("service", "apply", name, "--vip", GATEWAY, "--port", str(port),
                    "--protocol", "tcp", "--mode", "dnat", "--backend", f"{PROXY_ADDR}:{port}")
    workdir = Path(tempfile.mkdtemp(prefix="sluice-e2e-proxy-"))
    # nginx-style unprivileged readers are not involved: the proxy runs as root.
    make_cert(workdir / "certs", "sluice-seed")
    (workdir / "table.yaml").write_text(table_yaml(workdir / "certs"))
    proxy = Proxy(workdir)
    proxy.start()
    out = proxy.ctl("l7", "apply", "-f", str(workdir / "table.yaml")).stdout
    assert "route table applied: version 1" in out, out
    yield proxy
    code = proxy.stop()
    log = proxy.log_text()
    for name in ("gw-http", "gw-https"):
        sluiced.ctl("service", "delete", name, "--ignore-not-found", check=False)
    shutil.rmtree(workdir, ignore_errors=True)
    assert code == 0, log[-3000:]


def client_curl(*args, timeout=5):
    return in_ns(NS_CLIENT, "curl", "-s", "--max-time", str(timeout), *args, check=False,
                 timeout=timeout + 5)


def https(path="/", *extra):
    return client_curl("--insecure", "--resolve", f"{HTTPS_HOST}:443:{GATEWAY}", *extra,
                       f"https://{HTTPS_HOST}{path}")


def test_seed_http_and_https_routes_reach_nginx_through_sluiced(gateway):
    seen = set()
    for _ in range(20):
        r = client_curl("-H", f"Host: {HTTP_HOST}", f"http://{GATEWAY}/")
        assert r.returncode == 0, (r.returncode, r.stderr, gateway.log_text()[-2000:])
        assert r.stdout in ("backend 1\n", "backend 2\n"), r.stdout
        seen.add(r.stdout)
    # Both endpoints of http-service serve (round-robin over pooled connections).
    assert seen == {"backend 1\n", "backend 2\n"}, seen

    r = https()
    assert r.returncode == 0 and r.stdout == "backend 3\n", (r.returncode, r.stdout, r.stderr)
    # The seed's exact command: Host header and --insecure to port 443 of the address.
    r = client_curl("--insecure", "-H", f"Host: {HTTPS_HOST}", f"https://{GATEWAY}:443/")
    assert r.returncode == 0 and r.stdout == "backend 3\n", (r.returncode, r.stdout, r.stderr)


def test_unknown_hosts_get_404_and_redirects_answer_locally(gateway):
    r = client_curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: unknown.example",
                    f"http://{GATEWAY}/")
    assert r.stdout == "404", (r.stdout, r.stderr)
    # The HTTPS route is not attached to the HTTP listener.
    r = client_curl("-o", "/dev/null", "-w", "%{http_code}", "-H", f"Host: {HTTPS_HOST}",
                    f"http://{GATEWAY}/")
    assert r.stdout == "404", r.stdout
    r = https("/old/page?x=1", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert r.stdout == f"301 https://{HTTPS_HOST}/new/page?x=1", r.stdout


def test_http2_over_tls_with_alpn(gateway):
    r = https("/", "--http2", "-w", "%{http_version}")
    assert r.returncode == 0 and r.stdout == "backend 3\n2", (r.returncode, r.stdout, r.stderr)
    r = https("/", "--http1.1", "-w", "%{http_version}")
    assert r.stdout == "backend 3\n1.1", r.stdout


def subject(verbose_stderr):
    for line in verbose_stderr.splitlines():
        if "subject:" in line:
            return line.split("subject:", 1)[1].strip()
    return None


def test_certificate_rotated_through_the_api_is_served_on_the_next_handshake(gateway):
    r = https("/", "-v")
    assert subject(r.stderr) == "CN=sluice-seed", r.stderr
    rotated = gateway.workdir / "rotated"
    make_cert(rotated, "sluice-rotated")
    (gateway.workdir / "rotated.yaml").write_text(table_yaml(rotated))
    out = gateway.ctl("l7", "apply", "-f", str(gateway.workdir / "rotated.yaml")).stdout
    assert "version 2" in out, out
    r = https("/", "-v")
    assert r.returncode == 0 and r.stdout == "backend 3\n", (r.returncode, r.stderr)
    assert subject(r.stderr) == "CN=sluice-rotated", r.stderr
    # TLS 1.1 is refused; 1.2 and 1.3 work.
    r = https("/", "--tlsv1.1", "--tls-max", "1.1")
    assert r.returncode != 0
    for version in ("1.2", "1.3"):
        r = https("/", f"--tlsv{version}", "--tls-max", version)
        assert r.returncode == 0 and r.stdout == "backend 3\n", (version, r.returncode, r.stderr)


def test_table_survives_a_restart_and_metrics_count_requests(gateway):
    for _ in range(3):
        client_curl("-H", f"Host: {HTTP_HOST}", f"http://{GATEWAY}/")
    metrics = gateway.metrics()
    assert 'sluice_proxy_requests_total{route="kube-system/test-http-route",code="200"}' in metrics
    assert 'sluice_proxy_requests_total{route="",code="404"}' in metrics
    assert 'sluice_proxy_request_duration_seconds_bucket{route="kube-system/test-https-route"' in metrics

    got = gateway.ctl("l7", "get").stdout
    assert "kube-system/test-http-route" in got and "PathPrefix /" in got, got
    assert gateway.stop() == 0, gateway.log_text()[-2000:]
    gateway.start()
    # Served from the persisted table, without applying again.
    r = client_curl("-H", f"Host: {HTTP_HOST}", f"http://{GATEWAY}/")
    assert r.stdout in ("backend 1\n", "backend 2\n"), (r.returncode, r.stderr)
    r = https("/", "-v")
    assert r.stdout == "backend 3\n" and subject(r.stderr) in ("CN=sluice-seed", "CN=sluice-rotated")
    version = gateway.ctl("l7", "get", "-o", "json").stdout
    assert '"version": ' in version, version


def test_invalid_table_is_refused_naming_the_field(gateway, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"""
listeners:
  - {{name: l, address: {PROXY_ADDR}, port: 80, protocol: HTTP}}
routes:
  - name: r
    listenerNames: [l]
    rules:
      - matches: [{{path: {{type: RegularExpression, value: "/(unclosed"}}}}]
""")
    r = gateway.ctl("l7", "apply", "-f", str(bad), check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "table.routes[0].rules[0].matches[0].path.value" in r.stderr, r.stderr
    # Nothing changed: the seed routes still answer.
    r = client_curl("-H", f"Host: {HTTP_HOST}", f"http://{GATEWAY}/")
    assert r.stdout in ("backend 1\n", "backend 2\n"), r.stdout
