"""A Job of N completions at parallelism P: kube-controller-manager at its default client limits, with
them lifted, and kubeplane at its stated limits; same cluster, same run.

    python -m bench.job [--completions 1000] [--parallelism 100] [--rounds 1] [--kubeplane-qps 50 ...]

Needs the embedded cluster (`make up`); the contenders are those of bench/contenders.py. Every pod of
the Job exits 0 as soon as it runs (`kwok.kubeplane.dev/exit-code` in the template, no delay), so the
time is the controllers' own work (creating, counting through the job-tracking finalizer, replacing)
plus kube-scheduler and KWOK, which are the same for every contender. Each contender first completes a
one-pod warm-up Job. Measured: from the apply until the Job's Complete condition (from a watch of the
Jobs), the pods ever created (a watch; must be N: a Job that made more pods than completions is a
failure of the run), and the contender's CPU seconds.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

from bench import contenders
from bench.common import ENV, apply, cpu_seconds, create_namespace, print_table, require_cluster, wait_until
from bench.contenders import BATCH, KUBEPLANE_BATCH, drop_namespace, median
from tests.podexit import EXIT_AFTER, EXIT_CODE
from tests.watch import Watch

PLURAL = {BATCH: "/apis/batch/v1", KUBEPLANE_BATCH: "/apis/batch.kubeplane.dev/v1alpha1"}


def manifest(api_version: str, name: str, namespace: str, completions: int, parallelism: int) -> dict[str, Any]:
    return {
        "apiVersion": api_version, "kind": "Job", "metadata": {"name": name, "namespace": namespace},
        "spec": {"completions": completions, "parallelism": parallelism,
                 "template": {"metadata": {"annotations": {EXIT_CODE: "0", EXIT_AFTER: "0s"}},
                              "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                                       "containers": [{"name": "c", "image": "registry.local/bench:1"}]}}},
    }


def complete(jobs: Watch, name: str) -> bool:
    with jobs._lock:
        job = jobs.current.get(name)
    conditions = ((job or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)


def measure(label: str, api_version: str, completions: int, parallelism: int,
            proc: subprocess.Popen[bytes]) -> dict[str, float]:
    namespace = f"bench-job-{uuid.uuid4().hex[:6]}"
    create_namespace(namespace)
    try:
        with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods, \
                Watch(ENV, f"{PLURAL[api_version]}/namespaces/{namespace}/jobs") as jobs:
            apply(manifest(api_version, "warmup", namespace, 1, 1))
            wait_until(lambda: (complete(jobs, "warmup"), "warm-up Job"), 120, f"{label} warm-up")
            print(f"- {label}: {completions} completions at parallelism {parallelism} in {namespace}", flush=True)
            cpu_before = cpu_seconds(proc.pid)
            start = time.monotonic()
            apply(manifest(api_version, "bench", namespace, completions, parallelism))

            def done() -> tuple[bool, str]:
                if proc.poll() is not None:
                    raise RuntimeError(f"{label} exited with {proc.returncode}")
                with pods._lock:
                    made = sum(1 for p in pods.ever_added.values() if p["metadata"]["name"].startswith("bench-"))
                return complete(jobs, "bench"), f"{made} pods created"

            wait_until(done, 1800, label)
            elapsed = time.monotonic() - start
            cpu = cpu_seconds(proc.pid) - cpu_before
            with pods._lock:
                made = sum(1 for p in pods.ever_added.values() if p["metadata"]["name"].startswith("bench-"))
            with jobs._lock:
                status = (jobs.current["bench"].get("status") or {})
        print(f"  Complete after {elapsed:.1f}s, {made} pods, succeeded {status.get('succeeded')}, "
              f"{cpu:.1f} CPU s", flush=True)
        if made != completions or status.get("succeeded") != completions:
            raise RuntimeError(f"{label}: {made} pods created, {status.get('succeeded')} succeeded; "
                               f"wanted {completions}")
        return {"complete": elapsed, "cpu": cpu}
    finally:
        drop_namespace(namespace)


def main() -> None:
    parser = contenders.arguments(__doc__.split("\n")[0])
    parser.add_argument("--completions", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=100)
    args = parser.parse_args()
    require_cluster()
    times, stated = contenders.run(
        lambda label, api, proc: measure(label, api, args.completions, args.parallelism, proc), "job",
        args.rounds, args.kubeplane_qps, args.kubeplane_burst, apis=(BATCH, KUBEPLANE_BATCH))
    names = contenders.labels(stated)
    rows = [("controller", f"to {args.completions} completed", "completions/s", "CPU s")]
    rows += [(names[label], f"{median(times, label, 'complete'):.1f}s",
              f"{args.completions / median(times, label, 'complete'):.0f}", f"{median(times, label, 'cpu'):.1f}")
             for label in times]
    print_table(f"Job: {args.completions} completions, parallelism {args.parallelism} (median of {args.rounds})",
                rows)
    print()
    contenders.print_ratios(times, stated, "complete", "to Complete", ("cpu", "CPU"))


if __name__ == "__main__":
    main()
