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
import time
import uuid
from typing import Any

from bench import contenders
from bench.common import ENV, apply, cpu_seconds, kubectl, print_table, require_cluster, wait_until
from bench.contenders import drop_namespace, median
from tests.watch import Watch


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


def measure(label: str, api_version: str, replicas: int, policy: str, claims: bool,
            proc: subprocess.Popen[bytes]) -> dict[str, float]:
    namespace = f"bench-sts-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
            # Warm-up: the contender has synced its caches and acts.
            apply({**manifest(api_version, "warmup", 1, policy, False), "metadata": {"name": "warmup",
                                                                                  "namespace": namespace}})
            wait_until(lambda: (len(pods.ever_added) >= 1, "warm-up pod"), 120, f"{label} warm-up")
            print(f"- {label}: 0 -> {replicas} replicas ({policy}{', claims' if claims else ''}) in {namespace}",
                  flush=True)
            cpu_before = cpu_seconds(proc.pid)
            start = time.monotonic()
            apply({**manifest(api_version, "bench", replicas, policy, claims),
                   "metadata": {"name": "bench", "namespace": namespace}})

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
        drop_namespace(namespace)


def main() -> None:
    parser = contenders.arguments(__doc__.split("\n")[0])
    parser.set_defaults(replicas=200)
    parser.add_argument("--policy", choices=("Parallel", "OrderedReady"), default="Parallel")
    parser.add_argument("--claims", action="store_true", help="a claim per pod (volumeClaimTemplates)")
    args = parser.parse_args()
    require_cluster()
    times, stated = contenders.run(
        lambda label, api, proc: measure(label, api, args.replicas, args.policy, args.claims, proc), "statefulset",
        args.rounds, args.kubeplane_qps, args.kubeplane_burst)
    names = contenders.labels(stated)
    rows = [("controller", f"to {args.replicas} created", f"to {args.replicas} Running", "created/s", "CPU s")]
    rows += [(names[label], f"{median(times, label, 'created'):.1f}s", f"{median(times, label, 'running'):.1f}s",
              f"{args.replicas / median(times, label, 'created'):.1f}", f"{median(times, label, 'cpu'):.1f}")
             for label in times]
    print_table(f"StatefulSet 0 -> {args.replicas}, {args.policy}{', claims' if args.claims else ''} "
                f"(median of {args.rounds})", rows)
    print()
    contenders.print_ratios(times, stated, "created", "pods created", ("running", "to Running"))


if __name__ == "__main__":
    main()
