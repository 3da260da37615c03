"""Scale a ReplicaSet from 0 to N replicas: kubeplane's vs kube-controller-manager's, same cluster, same run.

    python -m bench.replicaset [--replicas 500] [--rounds 1]

Needs the embedded cluster with the controllers operator running (`make up`). Each round creates a
fresh namespace, applies the same manifest as apps/v1 and as apps.kubeplane.dev/v1alpha1 (one at a
time, so they do not compete), and measures from `kubectl apply` to every pod Running (KWOK marks
bound pods Running; kube-scheduler binds them). Prints both times and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

from bench.common import apply, kubectl, print_table, require_cluster, wait_until

CONTENDERS = {
    "kube-controller-manager (apps/v1)": "apps/v1",
    "kubeplane (apps.kubeplane.dev/v1alpha1)": "apps.kubeplane.dev/v1alpha1",
}


def manifest(api_version: str, namespace: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": api_version, "kind": "ReplicaSet",
        "metadata": {"name": "bench", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "registry.local/bench:1"}]},
            },
        },
    }


def running(namespace: str) -> int:
    out = kubectl("get", "pods", "-n", namespace, "--field-selector=status.phase=Running", "-o", "name")
    return len(out.split())


def one_run(label: str, api_version: str, replicas: int) -> float:
    namespace = f"bench-rs-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        print(f"- {label}: 0 -> {replicas} replicas in {namespace}", flush=True)
        start = time.monotonic()
        apply(manifest(api_version, namespace, replicas))
        wait_until(
            lambda: ((n := running(namespace)) >= replicas, f"{n}/{replicas} Running"),
            timeout=900, label=label,
        )
        elapsed = time.monotonic() - start  # from before the apply: that is part of the user's wait
        print(f"  {replicas} pods Running after {elapsed:.1f}s", flush=True)
        return elapsed
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    require_cluster()

    times: dict[str, list[float]] = {label: [] for label in CONTENDERS}
    for _ in range(args.rounds):
        for label, api_version in CONTENDERS.items():
            times[label].append(one_run(label, api_version, args.replicas))

    upstream, ours = (statistics.median(times[label]) for label in CONTENDERS)
    rows = [("controller", f"time to {args.replicas} Running (median of {args.rounds})", "pods/s")]
    rows += [(label, f"{statistics.median(t):.1f}s", f"{args.replicas / statistics.median(t):.0f}")
             for label, t in times.items()]
    print_table(f"ReplicaSet scale 0 -> {args.replicas}", rows)
    print(f"\nratio kubeplane / kube-controller-manager time: {ours / upstream:.2f} "
          f"({'faster' if ours < upstream else 'slower'}: {upstream / ours:.2f}x the upstream throughput)")


if __name__ == "__main__":
    main()
