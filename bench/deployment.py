"""A Deployment of N replicas rolled from one template to another (RollingUpdate, maxSurge 25%,
maxUnavailable 25%): kube-controller-manager at its default client limits, with them lifted, and
kubeplane at its stated limits and lifted; same cluster, same run.

    python -m bench.deployment [--replicas 500] [--rounds 1] [--kubeplane-qps 50 --kubeplane-burst 100]

Needs the embedded cluster (`make up`). Contenders run as in bench.replicaset: the cluster's own
kube-controller-manager is stopped and the benchmark starts the same binary without leader election,
at its defaults (QPS 20, burst 30) and with them lifted, for an apps/v1 Deployment; kubeplane's
controllers operator (Deployment and ReplicaSet controllers in one process) at `--kube-api-qps/-burst`
(default 50/100) and with no client limit, beside a default kube-controller-manager for everything
else, for an apps.kubeplane.dev Deployment.

Each contender first brings its Deployment to N available replicas (not timed), then the template
changes. Timed, from just before the change: until the Deployment reports the rollout complete (all
N updated and available, observed, Progressing NewReplicaSetAvailable) as a watch of the Deployment
sees it, and until no pod of the old template is left (a pod watch). CPU seconds of the contender's
process during the rollout are printed too.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any

from bench import contenders
from bench.common import ENV, apply, cpu_seconds, create_namespace, kubectl, print_table, require_cluster, wait_until
from bench.contenders import APPS, KUBEPLANE_APPS, drop_namespace, median
from tests.watch import Watch

PLURAL = {APPS: "deployments.apps", KUBEPLANE_APPS: "deployments.apps.kubeplane.dev"}


def manifest(api_version: str, namespace: str, replicas: int, image: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version, "kind": "Deployment", "metadata": {"name": "bench", "namespace": namespace},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": "bench"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": "bench"}},
                         "spec": {"containers": [{"name": "c", "image": image}]}},
        },
    }


def complete(d: dict[str, Any] | None, replicas: int) -> bool:
    if d is None:
        return False
    status = d.get("status") or {}
    progressing = [c for c in status.get("conditions") or [] if c.get("type") == "Progressing"]
    return (status.get("observedGeneration") == d["metadata"].get("generation")
            and all(status.get(k, 0) == replicas for k in ("replicas", "updatedReplicas", "availableReplicas"))
            and bool(progressing) and progressing[0].get("reason") == "NewReplicaSetAvailable")


def measure(label: str, api_version: str, replicas: int, proc: subprocess.Popen[bytes]) -> dict[str, float]:
    namespace = f"bench-deploy-{uuid.uuid4().hex[:6]}"
    create_namespace(namespace)
    group_path = "/apis/apps/v1" if api_version == APPS else "/apis/apps.kubeplane.dev/v1alpha1"
    try:
        with Watch(ENV, f"{group_path}/namespaces/{namespace}/deployments") as deployments, \
                Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
            apply(manifest(api_version, namespace, replicas, "registry.local/bench:1"))

            def ready() -> tuple[bool, str]:
                if proc.poll() is not None:
                    raise RuntimeError(f"{label} exited with {proc.returncode}")
                d = deployments.snapshot().get("bench")
                return complete(d, replicas), f"{((d or {}).get('status') or {}).get('availableReplicas', 0)} available"

            wait_until(ready, 900, f"{label} setup")
            print(f"- {label}: rolling {replicas} replicas in {namespace}", flush=True)

            def old_pods() -> int:
                return sum(1 for p in pods.snapshot().values()
                           if "bench:1" in json.dumps(p["spec"]["containers"]))

            cpu_before = cpu_seconds(proc.pid)
            start = time.monotonic()
            kubectl("patch", PLURAL[api_version], "bench", "-n", namespace, "--type=merge", "-p",
                    json.dumps({"spec": {"template": {"spec": {"containers": [
                        {"name": "c", "image": "registry.local/bench:2"}]}}}}))

            def rolled() -> tuple[bool, str]:
                if proc.poll() is not None:
                    raise RuntimeError(f"{label} exited with {proc.returncode}")
                d = deployments.snapshot().get("bench")
                status = (d or {}).get("status") or {}
                return complete(d, replicas) and status.get("updatedReplicas") == replicas and \
                    old_pods() < replicas, f"{status.get('updatedReplicas', 0)}/{replicas} updated"

            wait_until(rolled, 900, label)
            complete_after = time.monotonic() - start
            wait_until(lambda: ((n := old_pods()) == 0, f"{n} old pods left"), 900, label)
            old_gone_after = time.monotonic() - start
            cpu = cpu_seconds(proc.pid) - cpu_before
        print(f"  rollout complete after {complete_after:.1f}s, old pods gone after {old_gone_after:.1f}s, "
              f"{cpu:.1f} CPU s", flush=True)
        return {"complete": complete_after, "gone": old_gone_after, "cpu": cpu}
    finally:
        drop_namespace(namespace)


def main() -> None:
    args = contenders.arguments(__doc__.split("\n")[0]).parse_args()
    require_cluster()
    times, stated = contenders.run(lambda label, api, proc: measure(label, api, args.replicas, proc), "deployment",
                                   args.rounds, args.kubeplane_qps, args.kubeplane_burst)
    names = contenders.labels(stated)
    rows = [("controller", "rollout complete", "old pods gone", "CPU s")]
    rows += [(names[label], f"{median(times, label, 'complete'):.1f}s", f"{median(times, label, 'gone'):.1f}s",
              f"{median(times, label, 'cpu'):.1f}") for label in times]
    print_table(f"Deployment of {args.replicas}: template A -> B, 25%/25% (median of {args.rounds})", rows)
    print()
    contenders.print_ratios(times, stated, "complete", "rollout complete", ("gone", "old pods gone"))


if __name__ == "__main__":
    main()
