"""Shared pieces of the benchmarks: kubectl against the cluster in $KUBECONFIG, timing, printing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The embedded cluster unless told otherwise, for kubectl and for the in-process clients alike.
os.environ.setdefault("KUBECONFIG", str(ROOT / ".kubeplane/kubeconfig"))
ENV = {
    **os.environ,
    "PATH": f"{ROOT / 'bin'}:{os.environ['PATH']}",
}


def kubectl(*args: str, input: str | None = None) -> str:
    result = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, env=ENV, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def require_cluster() -> None:
    """Stop at once, saying what to run, when there is no cluster to measure on."""
    result = subprocess.run(["kubectl", "get", "--raw", "/readyz"], capture_output=True, text=True, env=ENV,
                            check=False, timeout=30)
    if result.returncode != 0:
        raise SystemExit(f"no cluster answers at KUBECONFIG={ENV['KUBECONFIG']}: start the embedded one with "
                         f"`hack/cluster.sh up` (the make bench-* targets do)\n{result.stderr.strip()}")


def create_namespace(name: str) -> None:
    """A namespace pods can be created in: kube-controller-manager has given it its default ServiceAccount
    (the admission plugin refuses pods before that)."""
    kubectl("create", "namespace", name)

    def ready() -> tuple[bool, str]:
        found = subprocess.run(["kubectl", "get", "serviceaccount", "default", "-n", name], capture_output=True,
                               env=ENV, check=False)
        return found.returncode == 0, "waiting for its default ServiceAccount"
    wait_until(ready, 120, f"namespace {name}")


def apply(obj: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(obj))


def wait_until(done: Callable[[], tuple[bool, str]], timeout: float, label: str) -> float:
    """Poll `done` until it says True; print progress every few seconds; return seconds taken."""
    start = time.monotonic()
    last_print = start
    while True:
        ok, progress = done()
        now = time.monotonic()
        if ok:
            return now - start
        if now - start > timeout:
            raise TimeoutError(f"{label}: not done after {timeout:.0f}s ({progress})")
        if now - last_print >= 5:
            print(f"  ... {label}: {progress} after {now - start:.0f}s", flush=True)
            last_print = now
        time.sleep(0.25)


def cluster_sh(command: str, **env: str) -> str:
    """hack/cluster.sh COMMAND (stop-operators prints the names of those it stopped)."""
    result = subprocess.run([str(ROOT / "hack/cluster.sh"), command], env={**ENV, **env}, check=True,
                            capture_output=True, text=True)
    return result.stdout


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The embedded cluster's control plane, by process name (/proc/PID/comm, 15 characters at most).
CONTROL_PLANE = ("kube-apiserver", "etcd", "kwok-controller", "kube-controller")


class ControlPlaneCpu:
    """CPU time the embedded cluster's control plane (API server, etcd, KWOK, kube-controller-manager)
    and the whole machine spend between `start()` and `stop()`: what a contender costs the cluster
    beside its own process. The bench's own schedulers are not counted (kube-scheduler is not listed)."""

    def __init__(self) -> None:
        self._start: dict[int, float] = {}
        self._machine: tuple[float, float] = (0.0, 0.0)
        self.seconds = 0.0  # control plane CPU seconds over the interval
        self.machine_busy = 0.0  # share of all cores busy over the interval (0..1)

    @staticmethod
    def _pids() -> list[int]:
        pids = []
        for comm in Path("/proc").glob("[0-9]*/comm"):
            try:
                if comm.read_text().strip() in CONTROL_PLANE:
                    pids.append(int(comm.parent.name))
            except OSError:
                continue
        return pids

    @staticmethod
    def _machine_times() -> tuple[float, float]:
        """(busy, total) jiffies of all cores from /proc/stat."""
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]) - idle, sum(fields[:8])

    def start(self) -> None:
        self._start = {pid: cpu_seconds(pid) for pid in self._pids()}
        self._machine = self._machine_times()

    def stop(self) -> None:
        total = 0.0
        for pid, before in self._start.items():
            try:
                total += cpu_seconds(pid) - before
            except OSError:
                continue  # restarted meanwhile: its time is lost, not guessed
        self.seconds = total
        busy, all_ = self._machine_times()
        self.machine_busy = (busy - self._machine[0]) / max(all_ - self._machine[1], 1.0)


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


class PeakRss:
    """The peak resident memory of a process and its descendants (e.g. Velero's plugin processes) over a
    span: each process's high-water mark (VmHWM) is reset at the start (`clear_refs` 5) and the marks
    summed at the end, so nothing between two samples is missed."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        for member in process_tree(pid):
            try:
                Path(f"/proc/{member}/clear_refs").write_text("5")
            except OSError:
                pass

    def mib(self) -> float:
        total = 0
        for member in process_tree(self.pid):
            try:
                status = Path(f"/proc/{member}/status").read_text()
            except OSError:
                continue
            total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
        return total / 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def process(command: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` (output appended to `log`) for the block; terminate it after (kill after 30 s)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def print_table(title: str, rows: Sequence[tuple[str, ...]]) -> None:
    print(f"\n{title}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
