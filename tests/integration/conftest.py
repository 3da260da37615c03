"""Fixtures for tests against the embedded cluster: a real kube-apiserver, KWOK nodes, MinIO.

- `cluster` (session): reuses `make up`'s cluster when its API answers, else starts one with
  hack/cluster.sh (and leaves it running for the next session: starting is the slow part).
  The operators `make up` started are paused for the session, so the operators under test are
  the only ones acting, and resumed afterwards.
- `controllers` (session): the controllers operator as a subprocess (`kubeplane run controllers`),
  restartable and killable by tests.
- `namespace` (function): a fresh namespace per test, deleted afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.kubectl import Kubectl, wait_for

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".kubeplane"
KUBECONFIG = Path(os.environ.get("KUBEPLANE_TEST_KUBECONFIG", STATE / "kubeconfig"))
BIN = ROOT / "bin"
ENV = {**os.environ, "KUBECONFIG": str(KUBECONFIG), "PATH": f"{BIN}:{ROOT / '.venv/bin'}:{os.environ['PATH']}"}




_kubectl = Kubectl(ENV)
kubectl = _kubectl.run
kubectl_json = _kubectl.json
apply = _kubectl.apply


def _api_answers() -> bool:
    if not KUBECONFIG.exists():
        return False
    return kubectl("get", "--raw", "/readyz", check=False, timeout=10).returncode == 0


@pytest.fixture(scope="session")
def cluster() -> Iterator[Path]:
    if not _api_answers() or kubectl("get", "--raw", "/apis/external.metrics.k8s.io/v1beta1", check=False,
                                     timeout=10).returncode != 0:
        # Also on a cluster started before `up` served the external metrics API: `up` is idempotent.
        subprocess.run([str(ROOT / "hack/cluster.sh"), "up"], check=True, env={**ENV, "OPERATORS": ""})
    os.environ["KUBECONFIG"] = str(KUBECONFIG)  # for in-process clients (operators.core.kube)
    paused = subprocess.run([str(ROOT / "hack/cluster.sh"), "stop-operators"], env=ENV, check=True,
                            capture_output=True, text=True).stdout.split()
    try:
        yield KUBECONFIG
    finally:
        if paused:
            env = {**ENV, "OPERATORS": " ".join(paused)}
            subprocess.run([str(ROOT / "hack/cluster.sh"), "start-operators"], env=env, check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    """One kubeplane operator as a real process, the way `kubeplane run` starts it in production."""

    def __init__(self, name: str, env: dict[str, str] | None = None, args: Sequence[str] = (),
                 log_name: str | None = None) -> None:
        self.name = name
        # Short leases: a test that SIGKILLs an operator restarts it within seconds, not 15 s later.
        self.env = {**ENV, "KUBEPLANE_LEADER_LEASE_SECONDS": "4", **(env or {})}
        self.args = list(args)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = STATE / "logs" / f"{log_name or f'test-{name}'}.log"
        self.metrics_port = _free_port()
        self.health_port = _free_port()

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = [str(ROOT / ".venv/bin/kubeplane"), "run", self.name, *self.args,
                   "--metrics-port", str(self.metrics_port),
                   "--liveness", f"http://127.0.0.1:{self.health_port}/healthz"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        time.sleep(1.0)  # imports and the first watch; handlers only run once indexes are full
        assert self.process.poll() is None, f"operator {self.name} exited at start; see {self.log}"

    def wait_live(self, timeout: float = 30) -> None:
        """Until Kopf's liveness endpoint answers (the operator is up and watching)."""
        def live() -> bool:
            if self.process is None or self.process.poll() is not None:
                return True  # exited: stop waiting, the assertion below says so
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False
        wait_for(live, timeout=timeout, what=f"the {self.name} operator's liveness endpoint")
        assert self.process is not None and self.process.poll() is None, f"{self.name} exited; see {self.log}"

    def kill(self) -> None:
        """SIGKILL: no clean-up, no graceful shutdown, like an OOM kill or a node loss."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_dead(pid: int, timeout: float = 30.0) -> bool:
    """Until process `pid` is gone or a zombie (a container without an init may keep one); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "zombie" in Path(f"/proc/{pid}/status").read_text(errors="replace").lower():
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


class Supervisor:
    """The kubelet's part: an operator process that exits (killed, or it lost its Lease) starts again."""

    def __init__(self, operators: dict[str, Operator]) -> None:
        self.operators = operators
        self.restarts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="supervisor")

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for name, operator in self.operators.items():
                    if operator.process is None or operator.process.poll() is not None:
                        self.restarts[name] += 1
                        try:
                            operator.start()
                        except AssertionError:
                            pass  # exited at once (the API refused it): the next round starts it again
            time.sleep(0.2)

    def kill(self, name: str) -> bool:
        with self._lock:
            operator = self.operators[name]
            alive = operator.process is not None and operator.process.poll() is None
            operator.kill()
            return alive

    def __enter__(self) -> Supervisor:
        with self._lock:
            for operator in self.operators.values():
                operator.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for operator in self.operators.values():
            operator.stop()


@pytest.fixture(scope="session")
def controllers(cluster: Path) -> Iterator[Operator]:
    operator = Operator("controllers")
    operator.start()
    yield operator
    operator.stop()


@pytest.fixture
def namespace(cluster: Path) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    # pods are refused until kube-controller-manager gave it its default ServiceAccount (the admission
    # plugin): a test that breaks the API right away would otherwise wait out the controller's backoff too
    wait_for(lambda: kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             timeout=60, what=f"namespace {name}'s default ServiceAccount")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def minio(cluster: Path) -> dict[str, str]:
    """The embedded MinIO's endpoint and root credentials (from .kubeplane/minio.env)."""
    values = dict(
        line.split("=", 1) for line in (STATE / "minio.env").read_text().splitlines() if "=" in line
    )
    port = os.environ.get("KUBEPLANE_MINIO_PORT", "19000")
    values.setdefault("MINIO_ENDPOINT", f"http://127.0.0.1:{port}")
    return values
