"""Fixtures for the end-to-end tests: the namespace topology of DESIGN.md, real nginx and socat
backends, and sluiced on net_af_packet ports, driven by sluicectl and by an independent Python
gRPC client. Everything runs as root on this machine; all traffic stays in the namespaces the
fixtures create, which they remove again."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIX = os.environ.get("SLUICE_E2E_PREFIX", "sle")
NS_CLIENT, NS_LB, NS_BACKENDS = f"{PREFIX}-client", f"{PREFIX}-lb", f"{PREFIX}-backends"
VIP = "198.18.100.10"
SNAT = "198.19.0.250"  # the pool scripts/appliance-config.sh declares


def binary(name):
    override = os.environ.get("SLUICE_BIN_DIR")
    if override:
        return str(Path(override) / name)
    for profile in ("release", "debug"):
        path = ROOT / "target" / profile / name
        if path.exists():
            return str(path)
    pytest.fail(f"{name} is not built: run cargo build --release --bins")


def run(*cmd, check=True, timeout=30, **kw):
    return subprocess.run(cmd, check=check, timeout=timeout, capture_output=True, text=True, **kw)


def in_ns(ns, *cmd, **kw):
    return run("ip", "netns", "exec", ns, *cmd, **kw)


@pytest.fixture(scope="session")
def topology():
    out = run(str(ROOT / "scripts/topology.sh"), "up", PREFIX).stdout
    env = dict(line.split("=", 1) for line in out.split())
    yield env
    run(str(ROOT / "scripts/topology.sh"), "down", PREFIX, check=False)


@pytest.fixture(scope="session")
def backends(topology):
    rundir = tempfile.mkdtemp(prefix="sluice-e2e-backends-")
    run(str(ROOT / "scripts/backends.sh"), "start", PREFIX, rundir, timeout=60)
    yield Path(rundir)
    run(str(ROOT / "scripts/backends.sh"), "stop", PREFIX, rundir, check=False)
    shutil.rmtree(rundir, ignore_errors=True)


class Daemon:
    """A background process with a log file and a gRPC API socket that sluicectl can reach
    (`self.proc`, `self.log`, `self.log_path`, `self.socket` are set by the subclass)."""

    stop_timeout = 30

    def stop(self):
        """SIGTERM; returns the exit code."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        self.log.close()
        return code

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ctl(self, *args, check=True):
        """Runs sluicectl against this daemon; returns the completed process."""
        proc = run(binary("sluicectl"), "--server", f"unix://{self.socket}", *args, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"sluicectl {' '.join(args)} failed ({proc.returncode}):\n"
                        f"{proc.stdout}\n{proc.stderr}")
        return proc



class Sluiced(Daemon):
    """A sluiced process in the lb namespace, with its config, state dir and API socket."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.socket = self.workdir / "sluiced.sock"
        self.state = self.workdir / "state"
        self.log_path = self.workdir / "sluiced.log"
        self.config = self.workdir / "sluiced.toml"
        self.config.write_text(run(str(ROOT / "scripts/appliance-config.sh"), PREFIX,
                                   str(self.workdir)).stdout)
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", NS_LB, binary("sluiced"), "--config", str(self.config)],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"sluiced exited with {self.proc.returncode}:\n{self.log_text()}")
            ready = in_ns(NS_LB, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          "--max-time", "1", "http://127.0.0.1:9100/readyz", check=False)
            if ready.stdout.strip() == "200":
                # af_packet ports need a moment before the first frames flow.
                time.sleep(2)
                return
            time.sleep(0.3)
        pytest.fail(f"sluiced not ready in 60 s:\n{self.log_text()}")

    def metrics(self):
        return in_ns(NS_LB, "curl", "-s", "--max-time", "2", "http://127.0.0.1:9100/metrics").stdout


# The running sluiced, for the failure report below.
RUNNING = {}


@pytest.fixture(scope="session")
def sluiced(topology, backends):
    workdir = tempfile.mkdtemp(prefix="sluice-e2e-")
    daemon = Sluiced(workdir)
    daemon.start()
    RUNNING["sluiced"] = daemon
    yield daemon
    RUNNING.pop("sluiced", None)
    code = daemon.stop()
    log = daemon.log_text()
    shutil.rmtree(workdir, ignore_errors=True)
    assert code == 0, f"sluiced exited with {code}:\n{log}"
    assert "mempool in use after shutdown: 0" in log, log[-3000:]


def curl(path="/", port=80, timeout=3, host=VIP, extra=()):
    return in_ns(NS_CLIENT, "curl", "-s", "--max-time", str(timeout), *extra,
                 f"http://{host}:{port}{path}", check=False, timeout=timeout + 5)


def udp_echo(payload, port=53, host=VIP):
    return in_ns(NS_CLIENT, "socat", "-t", "2", "-T", "2", "-", f"UDP4:{host}:{port}",
                 input=payload, check=False, timeout=10)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used sluiced reports what the appliance saw: the tail of its log, its
    drop and neighbour counters and every namespace's neighbour table (the daemon's workdir is
    gone by the time anyone reads a CI log)."""
    outcome = yield
    report = outcome.get_result()
    daemon = RUNNING.get("sluiced")
    if not report.failed or daemon is None or "sluiced" not in item.fixturenames:
        return
    report.sections.append(("sluiced log (last 60 lines)",
                            "\n".join(daemon.log_text().splitlines()[-60:])))
    metrics = in_ns(NS_LB, "curl", "-s", "--max-time", "10", "http://127.0.0.1:9100/metrics",
                    check=False, timeout=15).stdout
    report.sections.append(("sluiced worker and drop counters (non-zero)", "\n".join(
        line for line in metrics.splitlines()
        if line.startswith(("sluice_worker_", "sluice_drops_total", "sluice_snapshot"))
        and not line.endswith(" 0"))))
    for ns in (NS_CLIENT, NS_LB, NS_BACKENDS):
        report.sections.append((f"ip neigh in {ns}",
                                in_ns(ns, "ip", "neigh", "show", check=False).stdout))
