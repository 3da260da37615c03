"""A StatefulSet from 0 to N replicas: kube-controller-manager at its default client limits, with them
lifted, and kubeplane at its stated limits; same cluster, same run.

    python -m bench.statefulset [--replicas 200] [--policy Parallel|OrderedReady] [--claims]
                                [--rounds 1] [--kubeplane-qps 50 --kubeplane-burst 100]

Parallel (the default) measures the controller's throughput; OrderedReady its latency per pod (each pod
is made only once the one before is Running and Ready: the scheduler and KWOK are in every step).
--claims gives every pod a claim from a volumeClaimTemplate (kwok's volume stages bind it).

Needs the embedded cluster (`make up`). Every contender runs alone, as a process the benchmark starts:

- the cluster's own kube-controller-manager is stopped for the run; the benchmark starts the same binary
  with the same flags (every controller, so garbage collection and namespaces work as usual), without
  leader election, once at its default client limits (QPS 20, burst 30) and once with them lifted
  (QPS and burst 100000), and measures an apps/v1 StatefulSet;
- kubeplane's controllers operator (the cluster's is paused) with `--kube-api-qps/--kube-api-burst`
  as given (default: its own defaults, 50/100), and again with no client limit (`--kube-api-qps=0`),
  beside a kube-controller-manager at default limits for everything else, measures an
  apps.kubeplane.dev StatefulSet.

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


def manifest(api_version: str, name: str, replicas: int, policy: str, claims: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": api_version, "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {
            "replicas": replicas, "serviceName": name, "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "registry.local/bench:1"}]}},
        },
    }
    if claims:
        body["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
    return body


def main() -> None:
    parser = contenders.arguments(__doc__.split("\n")[0])
    parser.set_defaults(replicas=200)
    parser.add_argument("--policy", choices=("Parallel", "OrderedReady"), default="Parallel")
    parser.add_argument("--claims", action="store_true", help="a claim per pod (volumeClaimTemplates)")
    args = parser.parse_args()
    require_cluster()
    shape = f"{args.policy}{', claims' if args.claims else ''}"

    def measure(label: str, api: str, proc: subprocess.Popen[bytes]) -> dict[str, float]:
        return contenders.measure_pods(label, proc, "bench-sts", manifest(api, "warmup", 1, args.policy, False),
                                       manifest(api, "bench", args.replicas, args.policy, args.claims),
                                       args.replicas, f"0 -> {args.replicas} replicas ({shape})")
    times, stated = contenders.run(measure, "statefulset", args.rounds, args.kubeplane_qps, args.kubeplane_burst)
    contenders.print_pod_results(f"StatefulSet 0 -> {args.replicas}, {shape} (median of {args.rounds})", times,
                                 stated, args.replicas)


if __name__ == "__main__":
    main()
