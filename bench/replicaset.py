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

import subprocess
from typing import Any

from bench import contenders
from bench.common import require_cluster


def manifest(api_version: str, name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": api_version, "kind": "ReplicaSet", "metadata": {"name": name},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "registry.local/bench:1"}]}},
        },
    }


def main() -> None:
    args = contenders.arguments(__doc__.split("\n")[0]).parse_args()
    require_cluster()

    def measure(label: str, api: str, proc: subprocess.Popen[bytes]) -> dict[str, float]:
        return contenders.measure_pods(label, proc, "bench-rs", manifest(api, "warmup", 1),
                                       manifest(api, "bench", args.replicas), args.replicas,
                                       f"0 -> {args.replicas} replicas")
    times, stated = contenders.run(measure, "replicaset", args.rounds, args.kubeplane_qps, args.kubeplane_burst)
    contenders.print_pod_results(f"ReplicaSet 0 -> {args.replicas} (median of {args.rounds})", times, stated,
                                 args.replicas)


if __name__ == "__main__":
    main()
