"""The contenders of a controller benchmark, run one after another on the embedded cluster.

kube-controller-manager at its default client limits (QPS 20, burst 30), at kubeplane's stated limits
(equal limits: the fair race) and with them lifted, and kubeplane's controllers operator at its stated
limits and with no limit. The cluster's own
kube-controller-manager is stopped for the run (the benchmark starts the same binary with the same
flags, every controller on, without leader election) and its operators paused; both come back at the
end. kubeplane runs beside a kube-controller-manager at its defaults, for garbage collection and
namespaces. `measure(label, api_version, proc)` measures one contender and returns its figures.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.common import (
    ENV,
    ROOT,
    apply,
    cluster_sh,
    cpu_seconds,
    create_namespace,
    free_port,
    kubectl,
    print_table,
    process,
    wait_until,
)
from tests.watch import Watch

KCM_DEFAULT = "kube-controller-manager (QPS 20, burst 30)"
KCM_LIFTED = "kube-controller-manager (limits lifted)"
KCM_EQUAL = "kube-controller-manager (kubeplane's limits)"
KUBEPLANE = "kubeplane"
KUBEPLANE_LIFTED = "kubeplane (limits lifted)"
APPS, KUBEPLANE_APPS = "apps/v1", "apps.kubeplane.dev/v1alpha1"
BATCH, KUBEPLANE_BATCH = "batch/v1", "batch.kubeplane.dev/v1alpha1"

Measure = Callable[[str, str, subprocess.Popen[bytes]], dict[str, float]]
Times = dict[str, list[dict[str, float]]]


def cluster_kcm() -> tuple[int, list[str]]:
    """The cluster's kube-controller-manager: its pid and command line (kwokctl's pid file)."""
    name = os.environ.get("KUBEPLANE_CLUSTER", "kubeplane")
    pid_file = Path(os.environ.get("KWOK_WORKDIR", Path.home() / ".kwok")) / "clusters" / name / "pids" / \
        "kube-controller-manager.pid"
    pid = int(pid_file.read_text().strip())
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    return pid, [a.decode() for a in argv]


def stop_process(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] if Path(f"/proc/{pid}").exists() \
            else "X"
        if state == "Z":
            return
        time.sleep(0.2)


def kcm_command(argv: list[str], qps: float | None, burst: int | None = None) -> list[str]:
    kept = [a for a in argv if not a.startswith(("--kube-api-qps", "--kube-api-burst", "--leader-elect"))]
    kept.append("--leader-elect=false")
    if qps is not None:
        kept += [f"--kube-api-qps={qps:g}", f"--kube-api-burst={burst if burst is not None else int(qps)}"]
    return kept


def drop_namespace(namespace: str) -> None:
    """Force-delete a bench namespace's pods and wait until the namespace is gone."""
    kubectl("delete", "pods", "--all", "-n", namespace, "--grace-period=0", "--force", "--wait=false")
    kubectl("delete", "namespace", namespace, "--wait=false")
    wait_until(lambda: (namespace not in kubectl("get", "namespaces", "-o", "name"), "deleting"), 600, namespace)


def arguments(description: str) -> argparse.ArgumentParser:
    """The options every controller benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--replicas", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--kubeplane-qps", type=float, default=None,
                        help="kubeplane's --kube-api-qps (default: the operator's default, 50)")
    parser.add_argument("--kubeplane-burst", type=int, default=None,
                        help="kubeplane's --kube-api-burst (default: the operator's default, 100)")
    return parser


def run(measure: Measure, name: str, rounds: int, qps: float | None, burst: int | None,
        apis: tuple[str, str] = (APPS, KUBEPLANE_APPS)) -> tuple[Times, str]:
    """Every contender `rounds` times; returns the figures by label and kubeplane's stated limits.
    `apis`: the apiVersion of the upstream kind and of kubeplane's."""
    upstream_api, kubeplane_api = apis
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    print(f"logs in {workdir}", flush=True)
    kcm_pid, kcm_argv = cluster_kcm()
    paused = cluster_sh("stop-operators").split()
    print(f"stopping the cluster's kube-controller-manager (pid {kcm_pid}); paused operators: {paused}", flush=True)
    stop_process(kcm_pid)
    ours = [str(ROOT / ".venv/bin/kubeplane"), "run", "controllers", f"--metrics-port={free_port()}"]
    if qps is not None:
        ours.append(f"--kube-api-qps={qps}")
    if burst is not None:
        ours.append(f"--kube-api-burst={burst}")
    lifted = [a for a in ours if not a.startswith("--kube-api-")] + ["--kube-api-qps=0"]
    times: Times = {KCM_DEFAULT: [], KCM_EQUAL: [], KCM_LIFTED: [], KUBEPLANE: [], KUBEPLANE_LIFTED: []}
    env = {**ENV, "KUBEPLANE_LEADER_ELECT": "false", "PYTHONUNBUFFERED": "1"}
    try:
        for _ in range(rounds):
            with process(kcm_command(kcm_argv, None), workdir / "kcm-default.log", ENV) as kcm:
                times[KCM_DEFAULT].append(measure(KCM_DEFAULT, upstream_api, kcm))
                with process(ours, workdir / "kubeplane.log", env) as kubeplane:
                    times[KUBEPLANE].append(measure(KUBEPLANE, kubeplane_api, kubeplane))
                with process(lifted, workdir / "kubeplane-lifted.log", env) as kubeplane:
                    times[KUBEPLANE_LIFTED].append(measure(KUBEPLANE_LIFTED, kubeplane_api, kubeplane))
            with process(kcm_command(kcm_argv, qps or 50, burst or 100), workdir / "kcm-equal.log", ENV) as kcm:
                times[KCM_EQUAL].append(measure(KCM_EQUAL, upstream_api, kcm))
            with process(kcm_command(kcm_argv, 100000), workdir / "kcm-lifted.log", ENV) as kcm:
                times[KCM_LIFTED].append(measure(KCM_LIFTED, upstream_api, kcm))
    finally:
        print("starting the cluster's kube-controller-manager and operators again", flush=True)
        cluster_sh("up", OPERATORS="")
        if paused:
            cluster_sh("start-operators", OPERATORS=" ".join(paused))
    return times, f"QPS {qps or 50:g}, burst {burst or 100}"


def median(times: Times, label: str, key: str) -> float:
    return statistics.median(r[key] for r in times[label])


def labels(stated: str) -> dict[str, str]:
    return {KCM_DEFAULT: KCM_DEFAULT, KCM_EQUAL: f"kube-controller-manager ({stated})", KCM_LIFTED: KCM_LIFTED,
            KUBEPLANE: f"kubeplane ({stated})", KUBEPLANE_LIFTED: KUBEPLANE_LIFTED}


def print_ratios(times: Times, stated: str, key: str, what: str, second: tuple[str, str]) -> None:
    """kubeplane / kube-controller-manager at each side's defaults, at equal limits, and both lifted."""
    names = labels(stated)
    for ours, upstream in ((KUBEPLANE, KCM_DEFAULT), (KUBEPLANE, KCM_EQUAL), (KUBEPLANE_LIFTED, KCM_LIFTED)):
        ratio = median(times, ours, key) / median(times, upstream, key)
        other = median(times, ours, second[0]) / median(times, upstream, second[0])
        print(f"time ratio {names[ours]} / {names[upstream]}: {ratio:.2f} ({what}; "
              f"{'faster' if ratio < 1 else 'slower'}), {second[1]}: {other:.2f}")


def measure_pods(label: str, proc: subprocess.Popen[bytes], prefix: str, warmup: Mapping[str, Any],
                 workload: Mapping[str, Any], expected: int, what: str) -> dict[str, float]:
    """One contender's run of a pod-making workload, in a namespace of its own: `warmup` (named warmup)
    is applied and its first pod awaited (the contender has synced and acts), then `workload` (named
    bench); from a pod watch, the seconds until `expected` pods named bench-* exist and until they are
    Running, and the contender's CPU seconds meanwhile. More pods than expected is an error."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    create_namespace(namespace)
    try:
        with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
            apply({**warmup, "metadata": {"name": "warmup", "namespace": namespace}})
            wait_until(lambda: (len(pods.ever_added) >= 1, "warm-up pod"), 120, f"{label} warm-up")
            print(f"- {label}: {what} in {namespace}", flush=True)
            cpu_before = cpu_seconds(proc.pid)
            start = time.monotonic()
            apply({**workload, "metadata": {"name": "bench", "namespace": namespace}})

            def count(phase: str | None) -> int:
                with pods._lock:
                    if phase is None:
                        return sum(1 for p in pods.ever_added.values() if p["metadata"]["name"].startswith("bench-"))
                    return sum(1 for n, p in pods.current.items()
                               if n.startswith("bench-") and (p.get("status") or {}).get("phase") == phase)

            def created() -> tuple[bool, str]:
                if proc.poll() is not None:
                    raise RuntimeError(f"{label} exited with {proc.returncode}")
                return (n := count(None)) >= expected, f"{n}/{expected} created"

            wait_until(created, 900, label)
            created_after = time.monotonic() - start  # from before the apply: part of the user's wait
            wait_until(lambda: ((n := count("Running")) >= expected, f"{n}/{expected} Running"), 900, label)
            running_after = time.monotonic() - start
            cpu = cpu_seconds(proc.pid) - cpu_before
            extra = count(None) - expected
        print(f"  {expected} pods created after {created_after:.1f}s, Running after {running_after:.1f}s, "
              f"{cpu:.1f} CPU s", flush=True)
        if extra:
            raise RuntimeError(f"{label} created {extra} pods too many")
        return {"created": created_after, "running": running_after, "cpu": cpu}
    finally:
        drop_namespace(namespace)


def print_pod_results(title: str, times: Times, stated: str, expected: int) -> None:
    """The table of a pod-making benchmark (measure_pods' figures), then the ratios."""
    names = labels(stated)
    rows = [("controller", f"to {expected} created", f"to {expected} Running", "created/s", "CPU s")]
    rows += [(names[label], f"{median(times, label, 'created'):.1f}s", f"{median(times, label, 'running'):.1f}s",
              f"{expected / median(times, label, 'created'):.1f}", f"{median(times, label, 'cpu'):.1f}")
             for label in times]
    print_table(title, rows)
    print()
    print_ratios(times, stated, "created", "pods created", ("running", "to Running"))
