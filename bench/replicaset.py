"""A ReplicaSet from 0 to N replicas: kube-controller-manager at its default client limits, with them
lifted, and kubeplane at its stated limits; same cluster, same run.

    python -m bench.replicaset [--replicas 500] [--rounds 1] [--kubeplane-qps 50 --kubeplane-burst 100]

Needs the embedded cluster (`make up`). Every contender runs alone, as a process the benchmark starts:

- the cluster's own kube-controller-manager is stopped for the run; the benchmark starts the same binary
  with the same flags (every controller, so garbage collection and namespaces work as usual), without
  leader election, once at its default client limits (QPS 20, burst 30) and once with them lifted
  (QPS and burst 100000), and measures an apps/v1 ReplicaSet;
- kubeplane's controllers operator (the cluster's is paused) with `--kube-api-qps/--kube-api-burst`
  as given (default: its own defaults, 50/100), and again with no client limit (`--kube-api-qps=0`),
  beside a kube-controller-manager at default limits for everything else, measures an
  apps.kubeplane.dev ReplicaSet.

Ratios: kubeplane at its limits against kube-controller-manager at its defaults, and both lifted.

Each contender first scales a warm-up set to 1 (its caches are synced and its connection open), then
the measured set is applied. Two times per run: until N pods exist (the controller's own work, counted
from a pod watch) and until N are Running (adding kube-scheduler, whose limits are the same for all,
and KWOK). Afterwards the cluster's kube-controller-manager and operators are started again.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import (
    ENV,
    ROOT,
    apply,
    cluster_sh,
    cpu_seconds,
    free_port,
    kubectl,
    print_table,
    process,
    require_cluster,
    wait_until,
)
from tests.watch import Watch

KCM_DEFAULT = "kube-controller-manager (QPS 20, burst 30)"
KCM_LIFTED = "kube-controller-manager (limits lifted)"
KUBEPLANE = "kubeplane"
KUBEPLANE_LIFTED = "kubeplane (limits lifted)"
APPS, KUBEPLANE_APPS = "apps/v1", "apps.kubeplane.dev/v1alpha1"


def manifest(api_version: str, name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": api_version, "kind": "ReplicaSet", "metadata": {"name": name},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "registry.local/bench:1"}]}},
        },
    }


def cluster_kcm() -> tuple[int, list[str]]:
    """The cluster's kube-controller-manager: its pid and command line (kwokctl's pid file)."""
    import os

    name = os.environ.get("KUBEPLANE_CLUSTER", "kubeplane")
    pid_file = Path(os.environ.get("KWOK_WORKDIR", Path.home() / ".kwok")) / "clusters" / name / "pids" / \
        "kube-controller-manager.pid"
    pid = int(pid_file.read_text().strip())
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    return pid, [a.decode() for a in argv]


def stop_process(pid: int) -> None:
    import os

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


def kcm_command(argv: list[str], qps: int | None) -> list[str]:
    kept = [a for a in argv if not a.startswith(("--kube-api-qps", "--kube-api-burst", "--leader-elect"))]
    kept.append("--leader-elect=false")
    if qps is not None:
        kept += [f"--kube-api-qps={qps}", f"--kube-api-burst={qps}"]
    return kept


def measure(label: str, api_version: str, replicas: int, proc: subprocess.Popen[bytes]) -> dict[str, float]:
    namespace = f"bench-rs-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
            # Warm-up: the contender has synced its caches and acts.
            apply({**manifest(api_version, "warmup", 1), "metadata": {"name": "warmup", "namespace": namespace}})
            wait_until(lambda: (len(pods.ever_added) >= 1, "warm-up pod"), 120, f"{label} warm-up")
            print(f"- {label}: 0 -> {replicas} replicas in {namespace}", flush=True)
            cpu_before = cpu_seconds(proc.pid)
            start = time.monotonic()
            apply({**manifest(api_version, "bench", replicas), "metadata": {"name": "bench", "namespace": namespace}})

            def count(phase: str | None) -> int:
                with pods._lock:
                    if phase is None:
                        return sum(1 for p in pods.ever_added.values() if p["metadata"]["name"].startswith("bench-"))
                    return sum(1 for n, p in pods.current.items()
                               if n.startswith("bench-") and (p.get("status") or {}).get("phase") == phase)

            def created() -> tuple[bool, str]:
                if proc.poll() is not None:
                    raise RuntimeError(f"{label} exited with {proc.returncode}")
                return (n := count(None)) >= replicas, f"{n}/{replicas} created"

            wait_until(created, 900, label)
            created_after = time.monotonic() - start  # from before the apply: part of the user's wait
            wait_until(lambda: ((n := count("Running")) >= replicas, f"{n}/{replicas} Running"), 900, label)
            running_after = time.monotonic() - start
            cpu = cpu_seconds(proc.pid) - cpu_before
            extra = count(None) - replicas
        print(f"  {replicas} pods created after {created_after:.1f}s, Running after {running_after:.1f}s, "
              f"{cpu:.1f} CPU s", flush=True)
        if extra:
            raise RuntimeError(f"{label} created {extra} pods too many")
        return {"created": created_after, "running": running_after, "cpu": cpu}
    finally:
        kubectl("delete", "pods", "--all", "-n", namespace, "--grace-period=0", "--force", "--wait=false")
        kubectl("delete", "namespace", namespace, "--wait=false")
        wait_until(lambda: (namespace not in kubectl("get", "namespaces", "-o", "name"), "deleting"), 600, namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--kubeplane-qps", type=float, default=None,
                        help="kubeplane's --kube-api-qps (default: the operator's default, 50)")
    parser.add_argument("--kubeplane-burst", type=int, default=None,
                        help="kubeplane's --kube-api-burst (default: the operator's default, 100)")
    args = parser.parse_args()
    require_cluster()
    workdir = Path(tempfile.mkdtemp(prefix="bench-replicaset-"))
    print(f"logs in {workdir}", flush=True)
    kcm_pid, kcm_argv = cluster_kcm()
    paused = cluster_sh("stop-operators").split()
    print(f"stopping the cluster's kube-controller-manager (pid {kcm_pid}); paused operators: {paused}", flush=True)
    stop_process(kcm_pid)
    ours = [str(ROOT / ".venv/bin/kubeplane"), "run", "controllers", f"--metrics-port={free_port()}"]
    if args.kubeplane_qps is not None:
        ours.append(f"--kube-api-qps={args.kubeplane_qps}")
    if args.kubeplane_burst is not None:
        ours.append(f"--kube-api-burst={args.kubeplane_burst}")
    lifted = [a for a in ours if not a.startswith("--kube-api-")] + ["--kube-api-qps=0"]
    times: dict[str, list[dict[str, float]]] = {KCM_DEFAULT: [], KCM_LIFTED: [], KUBEPLANE: [], KUBEPLANE_LIFTED: []}
    env = {**ENV, "KUBEPLANE_LEADER_ELECT": "false", "PYTHONUNBUFFERED": "1"}
    try:
        for _ in range(args.rounds):
            with process(kcm_command(kcm_argv, None), workdir / "kcm-default.log", ENV) as kcm:
                times[KCM_DEFAULT].append(measure(KCM_DEFAULT, APPS, args.replicas, kcm))
                # kube-controller-manager at its defaults keeps collecting garbage and namespaces.
                with process(ours, workdir / "kubeplane.log", env) as kubeplane:
                    times[KUBEPLANE].append(measure(KUBEPLANE, KUBEPLANE_APPS, args.replicas, kubeplane))
                with process(lifted, workdir / "kubeplane-lifted.log", env) as kubeplane:
                    times[KUBEPLANE_LIFTED].append(measure(KUBEPLANE_LIFTED, KUBEPLANE_APPS, args.replicas, kubeplane))
            with process(kcm_command(kcm_argv, 100000), workdir / "kcm-lifted.log", ENV) as kcm:
                times[KCM_LIFTED].append(measure(KCM_LIFTED, APPS, args.replicas, kcm))
    finally:
        print("starting the cluster's kube-controller-manager and operators again", flush=True)
        cluster_sh("up", OPERATORS="")
        if paused:
            cluster_sh("start-operators", OPERATORS=" ".join(paused))

    def median(label: str, key: str) -> float:
        return statistics.median(r[key] for r in times[label])

    qps = f"QPS {args.kubeplane_qps or 50:g}, burst {args.kubeplane_burst or 100}"
    labels = {KCM_DEFAULT: KCM_DEFAULT, KCM_LIFTED: KCM_LIFTED, KUBEPLANE: f"kubeplane ({qps})",
              KUBEPLANE_LIFTED: KUBEPLANE_LIFTED}
    rows = [("controller", f"to {args.replicas} created", f"to {args.replicas} Running", "created/s", "CPU s")]
    rows += [(labels[label], f"{median(label, 'created'):.1f}s", f"{median(label, 'running'):.1f}s",
              f"{args.replicas / median(label, 'created'):.0f}", f"{median(label, 'cpu'):.1f}") for label in times]
    print_table(f"ReplicaSet 0 -> {args.replicas} (median of {args.rounds})", rows)
    print()
    for ours_label, upstream in ((KUBEPLANE, KCM_DEFAULT), (KUBEPLANE_LIFTED, KCM_LIFTED)):
        ratio = median(ours_label, "created") / median(upstream, "created")
        print(f"time ratio {labels[ours_label]} / {upstream}: {ratio:.2f} (pods created; "
              f"{'faster' if ratio < 1 else 'slower'}), to Running: "
              f"{median(ours_label, 'running') / median(upstream, 'running'):.2f}")


if __name__ == "__main__":
    main()
