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

Also measured in the same run (unless `--only upstream`): the API server's own binding throughput, the
physical limit of any scheduler here: `--pods` pending pods bound by a bare client (64 concurrent
`pods/binding` POSTs round-robin over the nodes, no decisions), and kubeplane's share of it.
`--profile FILE` samples the running kubeplane-scheduler with py-spy (collapsed stacks in FILE) and prints
where its CPU went: by function (own time) and by area (inclusive).

Reported: pods/s over the burst (first to last binding), p50/p99 from the scheduler's start to each
pod's binding, the time to the first binding (process start, cache sync), and the CPU time the
scheduler process used per pod (start-up included). On a small machine the API server, etcd and
KWOK share the CPU with the scheduler; the CPU column shows what the scheduler itself costs, the
control-plane column what the API server, etcd, KWOK and kube-controller-manager spent meanwhile (per
pod: what the scheduler's requests and watches cost the cluster), and the last column how busy all
cores were (near 100 %: the machine, not the scheduler, is the limit). The Scheduled events each
scheduler posted are counted (once their number stops growing): every scheduler should post one per
pod, so equal work is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
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
from typing import Any

from bench.common import (
    ENV,
    ROOT,
    ControlPlaneCpu,
    cluster_sh,
    cpu_seconds,
    create_namespace,
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

    def _note(self, pods: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for pod in pods:
            name = (pod.get("metadata") or {}).get("name")
            if name and (pod.get("spec") or {}).get("nodeName") and name not in self.bound:
                self.bound[name] = now


RAW = "bare client, no decisions"


async def bind_all(namespace: str, pods: int, nodes: list[str], concurrency: int = 64) -> list[float]:
    """Bind every pod of `namespace` round-robin over `nodes`, `concurrency` POSTs at a time; the monotonic
    time each binding was answered."""
    async with await Kube.connect(pool_size=concurrency) as kube:
        gate = asyncio.Semaphore(concurrency)
        done: list[float] = []

        async def bind(i: int) -> None:
            body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": f"p-{i}"},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": nodes[i % len(nodes)]}}
            async with gate:
                await kube.create(f"/api/v1/namespaces/{namespace}/pods/p-{i}/binding", body)
            done.append(time.monotonic())
        await asyncio.gather(*(bind(i) for i in range(pods)))
        return done


def scheduled_events(namespace: str, pods: int) -> int:
    """How many Scheduled events the scheduler posted in `namespace`, once their count stops growing
    (events trail their bindings): equal work, since every scheduler should post one per pod."""
    def count() -> int:
        names = kubectl("get", "events", "-n", namespace, "--field-selector", "reason=Scheduled", "-o", "name")
        return len(names.split())

    seen, stable_since = count(), time.monotonic()
    while seen < pods and time.monotonic() - stable_since < 5:
        time.sleep(1)
        now = count()
        if now != seen:
            seen, stable_since = now, time.monotonic()
    return seen


def raw_binding_run(pods: int, nodes: list[str]) -> dict[str, float]:
    """The API server's binding throughput on this machine: pending pods bound by a bare client."""
    namespace = f"bench-sched-{uuid.uuid4().hex[:6]}"
    create_namespace(namespace)
    try:
        print(f"- {RAW}: creating {pods} pods in {namespace}, then binding them all", flush=True)
        apply_chunks([pod_yaml(f"p-{i}", "bench-nobody") for i in range(pods)], namespace)
        start = time.monotonic()
        cluster_cpu = ControlPlaneCpu()
        cluster_cpu.start()
        times = sorted(t - start for t in asyncio.run(bind_all(namespace, pods, nodes)))
        cluster_cpu.stop()
        burst = max(times[-1] - times[0], 1e-3)
        print(f"  all {pods} bound in {times[-1]:.1f}s ({(pods - 1) / burst:.0f} pods/s)", flush=True)
        return {"first": times[0], "last": times[-1], "pods_per_second": (pods - 1) / burst,
                "p50": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1], "cpu_ms_per_pod": 0.0,
                "cluster_ms_per_pod": 1000 * cluster_cpu.seconds / pods, "machine_busy": cluster_cpu.machine_busy}
    finally:
        delete_namespace(namespace)


def delete_namespace(namespace: str) -> None:
    print(f"  deleting {namespace} and waiting until it is gone", flush=True)
    # Force: graceful deletion would wait for KWOK to confirm each pod, minutes for thousands.
    kubectl("delete", "pods", "--all", "-n", namespace, "--grace-period=0", "--force", "--wait=false")
    kubectl("delete", "namespace", namespace, "--wait=false")
    wait_until(lambda: (namespace not in kubectl("get", "namespaces", "-o", "name"), "deleting"), 600, namespace)


@contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy samples process `pid` (without pausing it) while the block runs; collapsed stacks go to `out`."""
    if out is None:
        yield
        return
    spy = subprocess.Popen([str(ROOT / ".venv/bin/py-spy"), "record", "--pid", str(pid), "--format", "raw",
                            "--rate", "200", "--nonblocking", "--output", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()


AREAS = [  # (area, a path fragment of its frames), the first match from the innermost frame outwards
    ("plugins: filters and scores", "operators/scheduler/plugins/"),
    ("framework: cycle, filter pass, score table", "operators/scheduler/framework.py"),
    ("snapshot and cache (NodeInfo, assume)", "operators/scheduler/snapshot.py"),
    ("snapshot and cache (NodeInfo, assume)", "operators/scheduler/cache.py"),
    ("resources (quantities, requests)", "operators/scheduler/resources.py"),
    ("queue", "operators/scheduler/queue.py"),
    ("informers (watch events, views)", "operators/core/informer.py"),
    ("informers (watch events, views)", "operators/scheduler/informers.py"),
    ("operator loop (binding, status, events)", "operators/scheduler/operator.py"),
    ("API client (HTTP, JSON)", "operators/core/kube.py"),
    ("API client (HTTP, JSON)", "aiohttp/"),
    ("JSON", "json/"),
    ("asyncio event loop", "asyncio/"),
]


def print_profile(path: Path) -> None:
    """Own time by function and inclusive time by area, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    area: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        # the innermost kubeplane/library area the sample is in, counted once
        where = next((name for frame in reversed(frames) for name, part in AREAS if part in frame), "other")
        area[where] = area.get(where, 0) + count
    if not total:
        print("profile: no samples")
        return
    rows = [("area (innermost match)", "share of samples")]
    rows += [(name, f"{100 * n / total:.1f}%") for name, n in sorted(area.items(), key=lambda kv: -kv[1])]
    print_table(f"kubeplane-scheduler CPU by area ({total} samples, py-spy)", rows)
    rows = [("function (own time)", "share")]
    rows += [(name[:110], f"{100 * n / total:.1f}%") for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:25]]
    print_table("kubeplane-scheduler CPU by function, top 25", rows)


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


def one_run(label: str, nodes: int, pods: int, workdir: Path, profile: Path | None = None) -> dict[str, float]:
    scheduler_name = SCHEDULER_NAMES[label]
    namespace = f"bench-sched-{uuid.uuid4().hex[:6]}"
    create_namespace(namespace)
    try:
        with BindWatch(namespace) as watch:
            print(f"- {label}: creating {pods} pods for schedulerName {scheduler_name} in {namespace}", flush=True)
            apply_chunks([pod_yaml(f"p-{i}", scheduler_name) for i in range(pods)], namespace)
            if watch.bound:
                raise RuntimeError(f"{len(watch.bound)} pods were bound before their scheduler started")
            print(f"  starting {label}", flush=True)
            start = time.monotonic()
            cluster_cpu = ControlPlaneCpu()
            cluster_cpu.start()
            with scheduler_process(label, scheduler_name, workdir) as process, \
                    profiled(process.pid, profile if label == OURS else None):
                def done() -> tuple[bool, str]:
                    if process.poll() is not None:
                        raise RuntimeError(f"{label} exited with {process.returncode}; see {workdir}")
                    return (n := len(watch.bound)) >= pods, f"{n}/{pods} bound"

                wait_until(done, 900, label)
                cpu = cpu_seconds(process.pid)
                cluster_cpu.stop()
                events = scheduled_events(namespace, pods)
            times = sorted(t - start for t in watch.bound.values())
        burst = max(times[-1] - times[0], 1e-3)
        result = {
            "first": times[0], "last": times[-1], "pods_per_second": (pods - 1) / burst,
            "p50": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1],
            "cpu_ms_per_pod": 1000 * cpu / pods, "cluster_ms_per_pod": 1000 * cluster_cpu.seconds / pods,
            "machine_busy": cluster_cpu.machine_busy, "events": events,
        }
        print(f"  all {pods} bound {times[-1]:.1f}s after the start ({result['pods_per_second']:.0f} pods/s)",
              flush=True)
        return result
    finally:
        delete_namespace(namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--only", choices=["ours", "upstream"],
                        help="run one side only (while working on it; prints no ratio)")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="sample kubeplane-scheduler with py-spy; collapsed stacks to FILE, summary printed")
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
        results = {label: one_run(label, args.nodes, args.pods, workdir, args.profile) for label in labels}
        if args.only != "upstream":
            results[RAW] = raw_binding_run(args.pods, nodes)
    finally:
        print(f"deleting the {args.nodes} bench nodes", flush=True)
        kubectl("delete", "nodes", "-l", LABEL, "--wait=false")
        wait_until(lambda: (not (n := kubectl("get", "nodes", "-l", LABEL, "-o", "name").split()), f"{len(n)} left"),
                   600, "bench nodes")
        if paused:
            cluster_sh("start-operators", OPERATORS=" ".join(paused))
    rows = [("scheduler", "pods/s", "p50 / p99 to bound (s)", "first / last bound (s)", "CPU ms per pod",
             "control plane CPU ms per pod", "machine busy", "Scheduled events")]
    rows += [(label, f"{r['pods_per_second']:.0f}", f"{r['p50']:.1f} / {r['p99']:.1f}",
              f"{r['first']:.1f} / {r['last']:.1f}", f"{r['cpu_ms_per_pod']:.1f}" if label != RAW else "-",
              f"{r['cluster_ms_per_pod']:.1f}", f"{100 * r['machine_busy']:.0f}%",
              str(r["events"]) if label != RAW else "-")
             for label, r in results.items()]
    print_table(f"Scheduling a burst of {args.pods} pods over {args.nodes} nodes (times from scheduler start)", rows)
    ours = results[OURS]["pods_per_second"] if OURS in results else 0.0
    print()
    if RAW in results:
        print(f"kubeplane's share of the API server's binding throughput: {ours / results[RAW]['pods_per_second']:.2f}")
    if args.profile is not None and OURS in results:
        print_profile(args.profile)
    if args.only:
        return
    for label in (UPSTREAM, UNLIMITED):
        print(f"throughput ratio kubeplane / {label}: {ours / results[label]['pods_per_second']:.2f}")


if __name__ == "__main__":
    main()
