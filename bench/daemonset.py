"""A DaemonSet over N nodes, from nothing to a Running pod on each: kube-controller-manager at its default
client limits, with them lifted, and kubeplane at its stated limits; same cluster, same run.

    python -m bench.daemonset [--nodes 200] [--rounds 1] [--kubeplane-qps 50 --kubeplane-burst 100]

Needs the embedded cluster (`make up`). The benchmark adds `--nodes` KWOK nodes (`bench-ds-*`, labelled
so that only they are selected) and removes them at the end. Contenders as in bench.replicaset
(bench/contenders.py): each runs alone; kubeplane's beside a kube-controller-manager at its defaults
for garbage collection. The pods are made unbound (a matchFields term per node) and the cluster's
kube-scheduler binds them, the same for every contender.

Two times per contender: until a pod exists for every node (the controller's own work, counted from a pod
watch) and until every one is Running; and the controller's CPU seconds.
"""

from __future__ import annotations

import subprocess
from typing import Any

from bench import contenders
from bench.common import kubectl, require_cluster, wait_until
from bench.scheduler import apply_chunks, node_yaml

LABEL = "bench-ds"
HOSTNAME = "kubernetes.io/hostname"


def manifest(api_version: str, name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": api_version, "kind": "DaemonSet", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"nodeSelector": selector,
                                       "containers": [{"name": "c", "image": "registry.local/bench:1"}]}}},
    }


def main() -> None:
    parser = contenders.arguments(__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    args = parser.parse_args()
    require_cluster()
    print(f"adding {args.nodes} KWOK nodes", flush=True)
    apply_chunks([node_yaml(f"bench-ds-{i}", {LABEL: "yes"}) for i in range(args.nodes)])
    wait_until(lambda: ((n := kubectl("get", "nodes", "-l", LABEL, "--no-headers").count(" Ready ")) >= args.nodes,
                        f"{n}/{args.nodes} Ready"), 300, "nodes")

    def measure(label: str, api: str, proc: subprocess.Popen[bytes]) -> dict[str, float]:
        # Warm-up: one pod on one node of the cluster's own.
        return contenders.measure_pods(label, proc, "bench-ds", manifest(api, "warmup", {HOSTNAME: "kwok-node-0"}),
                                       manifest(api, "bench", {LABEL: "yes"}), args.nodes,
                                       f"a pod on each of {args.nodes} nodes")
    try:
        times, stated = contenders.run(measure, "daemonset", args.rounds, args.kubeplane_qps, args.kubeplane_burst)
    finally:
        print(f"deleting the {args.nodes} bench nodes", flush=True)
        kubectl("delete", "nodes", "-l", LABEL, "--wait=false")
    contenders.print_pod_results(f"DaemonSet over {args.nodes} nodes (median of {args.rounds})", times, stated,
                                 args.nodes)


if __name__ == "__main__":
    main()
