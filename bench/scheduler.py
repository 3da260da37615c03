"""kubeplane-scheduler vs kube-scheduler: a burst of pending pods, same cluster, same run.

    python -m bench.scheduler [--nodes 200] [--pods 2000]

Needs the embedded cluster (`make up`). The benchmark adds `--nodes` KWOK nodes (`bench-sched-*`),
then for each scheduler in turn:

1. creates `--pods` pods in a fresh namespace, for a schedulerName nobody serves yet (so they all
   wait; nothing is bound before the start);
2. starts that scheduler as a process of its own (the clock starts), and watches the namespace,
   noting when each pod is seen bound;
3. once every pod is bound, stops the scheduler, deletes the namespace and waits until it is gone
   (so its deletion does not load the next run).

Starting the scheduler is the burst: every scheduler sees all the pods at once, and none has to be
woken by a cluster event. Three schedulers, same binaries as the cluster's:
- kube-scheduler with its default client limits (QPS 50, burst 100);
- kube-scheduler with its client limits lifted (QPS and burst 100000);
- kubeplane-scheduler (`kubeplane run scheduler`; it has no client-side rate limiter).
Leader election is off for all three: each is the only scheduler of its name. The cluster's own
kubeplane operators (`make up` runs them) are paused for the run and started again afterwards:
they are neither scheduler, and on a small machine their pod watches take CPU both would need.

Reported: pods/s over the burst (first to last binding), p50/p99 from the scheduler's start to each
pod's binding, the time to the first binding (process start, cache sync), and the CPU time the
scheduler process used per pod (start-up included). On a small machine the API server, etcd and
KWOK share the CPU with the scheduler; the CPU column shows what the scheduler itself costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from bench.common import (
    ENV,
    ROOT,
    cluster_sh,
    cpu_seconds,
    free_port,
    kubectl,
    print_table,
    process,
    require_cluster,
    wait_until,
)
from operators.core.kube import Kube

UPSTREAM = "kube-scheduler"
UNLIMITED = "kube-scheduler, limits lifted"
OURS = "kubeplane-scheduler"
SCHEDULER_NAMES = {UPSTREAM: "bench-kube-scheduler", UNLIMITED: "bench-kube-scheduler-unlimited",
                   OURS: "bench-kubeplane-scheduler"}
LABEL = "bench-pool"


def node_yaml(name: str, labels: dict[str, str] | None = None) -> str:
    """A KWOK node (32 CPU, 256Gi) with the usual labels, and `labels` (default: the bench pool's)."""
    extra = ", ".join(f"{k}: {json.dumps(v)}" for k, v in (labels if labels is not None else {LABEL: "open"}).items())
    return f"""---
apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations: {{kwok.x-k8s.io/node: fake}}
  labels: {{type: kwok, kubernetes.io/hostname: {name}, kubernetes.io/os: linux, {extra}}}
spec: {{}}
status:
  allocatable: {{cpu: "32", memory: 256Gi, pods: "110"}}
  capacity: {{cpu: "32", memory: 256Gi, pods: "110"}}
"""


def pod_yaml(name: str, scheduler: str) -> str:
    return f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: bench}}}}
spec:
  schedulerName: {scheduler}
  nodeSelector: {{{LABEL}: open}}
  containers: [{{name: c, image: registry.local/bench:1, resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}}}]
"""


def apply_chunks(docs: list[str], namespace: str | None = None, chunk: int = 200) -> None:
    args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
    groups = ["".join(docs[i:i + chunk]) for i in range(0, len(docs), chunk)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda text: kubectl(*args, input=text), groups))


class BindWatch:
    """Watches one namespace's pods in a thread; notes the monotonic time each pod is first seen bound."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.bound: dict[str, float] = {}
        self._ready = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)

    def __enter__(self) -> BindWatch:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the bind watch did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True

    async def _watch(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        async with await Kube.connect() as kube:
            items, version = await kube.list_versioned(path)
            self._note(items)
            self._ready.set()
            while not self._stop:
                async for event in kube.watch(path, read_timeout=90, resourceVersion=version, timeoutSeconds=60):
                    obj = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    self._note([obj])
                    if self._stop:
                        return

    def _note(self, pods: list[dict]) -> None:
        now = time.monotonic()
        for pod in pods:
            name = (pod.get("metadata") or {}).get("name")
            if name and (pod.get("spec") or {}).get("nodeName") and name not in self.bound:
                self.bound[name] = now


@contextmanager
def scheduler_process(label: str, scheduler_name: str, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run one scheduler, serving only `scheduler_name`, until the block ends; its log goes to workdir."""
    log_path = workdir / f"{scheduler_name}.log"
    if label == OURS:
        command = [str(ROOT / ".venv/bin/kubeplane"), "run", "scheduler", f"--metrics-port={free_port()}"]
        env = {**ENV, "KUBEPLANE_SCHEDULER_NAME": scheduler_name, "KUBEPLANE_LEADER_ELECT": "false",
               "PYTHONUNBUFFERED": "1"}
    else:
        limits = "qps: 50, burst: 100" if label == UPSTREAM else "qps: 100000, burst: 100000"
        config = workdir / f"{scheduler_name}.yaml"
        config.write_text(f"""apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {{kubeconfig: "{ENV['KUBECONFIG']}", {limits}}}
leaderElection: {{leaderElect: false}}
profiles: [{{schedulerName: {scheduler_name}}}]
""")
        command = [str(ROOT / "bin/kube-scheduler"), f"--config={config}", "--bind-address=127.0.0.1",
                   f"--secure-port={free_port()}"]
        env = ENV
    with process(command, log_path, env) as proc:
        yield proc


def one_run(label: str, nodes: int, pods: int, workdir: Path) -> dict[str, float]:
    scheduler_name = SCHEDULER_NAMES[label]
    namespace = f"bench-sched-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        with BindWatch(namespace) as watch:
            print(f"- {label}: creating {pods} pods for schedulerName {scheduler_name} in {namespace}", flush=True)
            apply_chunks([pod_yaml(f"p-{i}", scheduler_name) for i in range(pods)], namespace)
            if watch.bound:
                raise RuntimeError(f"{len(watch.bound)} pods were bound before their scheduler started")
            print(f"  starting {label}", flush=True)
            start = time.monotonic()
            with scheduler_process(label, scheduler_name, workdir) as process:
                def done() -> tuple[bool, str]:
                    if process.poll() is not None:
                        raise RuntimeError(f"{label} exited with {process.returncode}; see {workdir}")
                    return (n := len(watch.bound)) >= pods, f"{n}/{pods} bound"

                wait_until(done, 900, label)
                cpu = cpu_seconds(process.pid)
            times = sorted(t - start for t in watch.bound.values())
        burst = max(times[-1] - times[0], 1e-3)
        result = {
            "first": times[0], "last": times[-1], "pods_per_second": (pods - 1) / burst,
            "p50": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1],
            "cpu_ms_per_pod": 1000 * cpu / pods,
        }
        print(f"  all {pods} bound {times[-1]:.1f}s after the start ({result['pods_per_second']:.0f} pods/s)",
              flush=True)
        return result
    finally:
        print(f"  deleting {namespace} and waiting until it is gone", flush=True)
        # Force: graceful deletion would wait for KWOK to confirm each pod, minutes for thousands.
        kubectl("delete", "pods", "--all", "-n", namespace, "--grace-period=0", "--force", "--wait=false")
        kubectl("delete", "namespace", namespace, "--wait=false")
        wait_until(lambda: (namespace not in kubectl("get", "namespaces", "-o", "name"), "deleting"), 600, namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--only", choices=["ours", "upstream"],
                        help="run one side only (while working on it; prints no ratio)")
    args = parser.parse_args()
    require_cluster()
    labels = [label for label in SCHEDULER_NAMES if args.only is None or (label == OURS) == (args.only == "ours")]
    nodes = [f"bench-sched-{i}" for i in range(args.nodes)]
    print(f"adding {args.nodes} KWOK nodes", flush=True)
    apply_chunks([node_yaml(n) for n in nodes])
    wait_until(lambda: ((n := kubectl("get", "nodes", "-l", f"{LABEL}", "--no-headers").count(" Ready ")) >= args.nodes,
                        f"{n}/{args.nodes} Ready"), 300, "nodes")
    workdir = Path(tempfile.mkdtemp(prefix="bench-scheduler-"))
    print(f"scheduler logs in {workdir}", flush=True)
    paused = cluster_sh("stop-operators").split()
    if paused:
        print(f"paused the cluster's kubeplane operators for the run: {' '.join(paused)}", flush=True)
    try:
        results = {label: one_run(label, args.nodes, args.pods, workdir) for label in labels}
    finally:
        print(f"deleting the {args.nodes} bench nodes", flush=True)
        kubectl("delete", "nodes", "-l", LABEL, "--wait=false")
        wait_until(lambda: (not (n := kubectl("get", "nodes", "-l", LABEL, "-o", "name").split()), f"{len(n)} left"),
                   600, "bench nodes")
        if paused:
            cluster_sh("start-operators", OPERATORS=" ".join(paused))
    rows = [("scheduler", "pods/s", "p50 / p99 to bound (s)", "first / last bound (s)", "CPU ms per pod")]
    rows += [(label, f"{r['pods_per_second']:.0f}", f"{r['p50']:.1f} / {r['p99']:.1f}",
              f"{r['first']:.1f} / {r['last']:.1f}", f"{r['cpu_ms_per_pod']:.1f}") for label, r in results.items()]
    print_table(f"Scheduling a burst of {args.pods} pods over {args.nodes} nodes (times from scheduler start)", rows)
    if args.only:
        return
    ours = results[OURS]["pods_per_second"]
    print()
    for label in (UPSTREAM, UNLIMITED):
        print(f"throughput ratio kubeplane / {label}: {ours / results[label]['pods_per_second']:.2f}")


if __name__ == "__main__":
    main()
