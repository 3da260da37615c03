"""kubeplane-scheduler vs kube-scheduler: a burst of pending pods, same cluster, same run.

    python -m bench.scheduler [--nodes 200] [--pods 2000]

Needs the embedded cluster with the scheduler operator running (`make up`). The benchmark adds
`--nodes` KWOK nodes (`bench-sched-*`, labelled `bench-pool=closed`), then for each scheduler:
creates `--pods` pods that select `bench-pool=open` (so they wait, unschedulable), and opens the
pool by relabelling every bench node. From that instant, both schedulers face the same burst (an
unschedulable pod is retried on a node update, by kube-scheduler and by ours). It measures the time
until every pod is bound, pods/s, and p50/p99 of pool-opening -> PodScheduled.

kube-scheduler runs with its default client limits (QPS 50, burst 100) unless the cluster was
created with KUBEPLANE_NO_QPS_LIMITS=1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from bench.common import kubectl, print_table, wait_until

SCHEDULERS = {"kube-scheduler": "default-scheduler", "kubeplane-scheduler": "kubeplane-scheduler"}
LABEL = "bench-pool"


def node_yaml(name: str) -> str:
    return f"""---
apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations: {{kwok.x-k8s.io/node: fake}}
  labels: {{type: kwok, kubernetes.io/hostname: {name}, kubernetes.io/os: linux, {LABEL}: closed}}
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


def bound_times(namespace: str) -> list[datetime]:
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    times = []
    for pod in pods:
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition["type"] == "PodScheduled" and condition["status"] == "True":
                times.append(datetime.fromisoformat(condition["lastTransitionTime"].replace("Z", "+00:00")))
    return times


def set_pool(nodes: list[str], value: str) -> None:
    kubectl("label", "nodes", *nodes, f"{LABEL}={value}", "--overwrite")


def one_run(label: str, scheduler: str, nodes: list[str], pods: int) -> dict[str, float]:
    namespace = f"bench-sched-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        print(f"- {label}: creating {pods} pending pods in {namespace}", flush=True)
        apply_chunks([pod_yaml(f"p-{i}", scheduler) for i in range(pods)], namespace)
        time.sleep(2)  # let the scheduler try and park them as unschedulable
        opened = datetime.now(UTC)
        start = time.monotonic()
        set_pool(nodes, "open")
        wait_until(lambda: ((n := len(bound_times(namespace))) >= pods, f"{n}/{pods} bound"), 900, label)
        elapsed = time.monotonic() - start
        latencies = sorted((t - opened).total_seconds() for t in bound_times(namespace))
        result = {
            "seconds": elapsed, "pods_per_second": pods / elapsed,
            "p50": statistics.median(latencies), "p99": latencies[int(len(latencies) * 0.99) - 1],
        }
        print(f"  all {pods} bound in {elapsed:.1f}s", flush=True)
        return result
    finally:
        set_pool(nodes, "closed")
        kubectl("delete", "namespace", namespace, "--wait=false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--pods", type=int, default=2000)
    args = parser.parse_args()
    nodes = [f"bench-sched-{i}" for i in range(args.nodes)]
    print(f"adding {args.nodes} KWOK nodes", flush=True)
    apply_chunks([node_yaml(n) for n in nodes])
    wait_until(lambda: ((n := kubectl("get", "nodes", "-l", f"{LABEL}", "--no-headers").count(" Ready ")) >= args.nodes,
                        f"{n}/{args.nodes} Ready"), 300, "nodes")
    try:
        results = {label: one_run(label, name, nodes, args.pods) for label, name in SCHEDULERS.items()}
    finally:
        kubectl("delete", "nodes", "-l", LABEL, "--wait=false")
    upstream, ours = results["kube-scheduler"], results["kubeplane-scheduler"]
    rows = [("scheduler", "pods/s", "p50 / p99 to bound (s)")]
    rows += [(label, f"{r['pods_per_second']:.0f}", f"{r['p50']:.1f} / {r['p99']:.1f}") for label, r in results.items()]
    print_table(f"Scheduling a burst of {args.pods} pods over {args.nodes} nodes", rows)
    print(f"\nthroughput ratio kubeplane / kube-scheduler: {ours['pods_per_second'] / upstream['pods_per_second']:.2f}")


if __name__ == "__main__":
    main()
