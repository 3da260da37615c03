"""Differential: the same Job manifests as batch/v1 (kube-controller-manager) and as kubeplane, on the
same cluster with the same pods that end when told (tests/podexit.py), compared.

Compared: the counters (succeeded, failed, active, terminating), completedIndexes, conditions (type,
status, reason, message), the Events' reasons with counts, how many pods were ever created (from a
watch), pod name shapes, the label and annotation keys of the pods, the env the pods get, and whether
a finalizer is left. Never uids or timestamps.
"""

from __future__ import annotations

from typing import Any

from tests.integration import differential
from tests.integration.conftest import Operator
from tests.integration.differential import Flavour, Side, normalise
from tests.podexit import EXIT_AFTER, EXIT_CODE

UPSTREAM = Flavour("upstream", "batch/v1", "jobs.batch")
KUBEPLANE = Flavour("kubeplane", "batch.kubeplane.dev/v1alpha1", "jobs.batch.kubeplane.dev")
FLAVOURS = (UPSTREAM, KUBEPLANE)


def manifest(*, exit_code: int | None = 0, after: str = "1s", **spec: Any) -> dict[str, Any]:
    annotations = {} if exit_code is None else {EXIT_CODE: str(exit_code), EXIT_AFTER: after}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "work"},
            "spec": {"template": {"metadata": {"annotations": annotations},
                                  "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                                           "containers": [{"name": "c", "image": "registry.local/work:1"}]}},
                     **spec}}


def finished(s: Side, timeout: float = 150) -> dict[str, Any]:
    def done() -> Any:
        status = s.status("work")
        return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                   for c in status.get("conditions") or []) and status
    # The final condition can come a moment before the last counters: settle on uncounted being empty.
    s.wait(done, "the Job finished", timeout=timeout)
    return dict(s.wait(lambda: (st := s.status("work")) and not any(
        (st.get("uncountedTerminatedPods") or {}).values()) and st, "nothing uncounted"))


def facts(s: Side) -> dict[str, Any]:
    status = s.status("work")
    pods = list(s.pods.ever_added.values())
    reasons = s.event_reasons("work")
    return {
        "counts": {k: int(status.get(k) or 0) for k in ("succeeded", "failed", "active", "terminating")},
        "completedIndexes": status.get("completedIndexes") or "",
        "failedIndexes": status.get("failedIndexes"),
        "conditions": s.conditions("work"),
        # SuccessfulCreate can be aggregated differently; what was created is counted from the watch.
        "events": dict(sorted((r, n) for r, n in reasons.items() if r not in ("SuccessfulCreate",
                                                                              "SuccessfulDelete"))),
        "created": s.created_count(),
        "created_events": min(reasons.get("SuccessfulCreate", 0), 1),
        "names": sorted({normalise(p["metadata"]["name"], s.namespace) for p in pods}),
        "label_keys": sorted({k for p in pods for k in (p["metadata"].get("labels") or {})}),
        "annotation_keys": sorted({k for p in pods for k in (p["metadata"].get("annotations") or {})}),
        "env": sorted({e["name"] for p in pods for c in p["spec"]["containers"] for e in c.get("env") or []}),
        "finalizers_left": sorted({f for p in s.live_pods().values() for f in p["metadata"].get("finalizers") or []}),
    }


def test_parallel_completion(controllers: Operator) -> None:
    def scenario(s: Side) -> None:
        s.apply_workload(manifest(completions=6, parallelism=3))
        finished(s)
        s.record("complete", **facts(s))

    differential.assert_same(differential.run(scenario, FLAVOURS))


def test_backoff_limit_exceeded(controllers: Operator) -> None:
    def scenario(s: Side) -> None:
        s.apply_workload(manifest(exit_code=2, after="0s", backoffLimit=1))
        finished(s)
        s.record("failed", **facts(s))

    differential.assert_same(differential.run(scenario, FLAVOURS))


def test_indexed_completion(controllers: Operator) -> None:
    def scenario(s: Side) -> None:
        s.apply_workload(manifest(completions=4, parallelism=2, completionMode="Indexed"))
        finished(s)
        s.record("complete", **facts(s))

    differential.assert_same(differential.run(scenario, FLAVOURS))


def test_active_deadline(controllers: Operator) -> None:
    def scenario(s: Side) -> None:
        s.apply_workload(manifest(exit_code=None, completions=2, parallelism=2, activeDeadlineSeconds=3))
        finished(s)
        s.wait(lambda: not s.active_pods(), "the active pods gone")
        s.record("deadline", **facts(s))

    differential.assert_same(differential.run(scenario, FLAVOURS))


def test_created_suspended_then_resumed(controllers: Operator) -> None:
    def scenario(s: Side) -> None:
        s.apply_workload(manifest(completions=2, parallelism=2, suspend=True))
        s.wait(lambda: ("Suspended", "True") in {(c[0], c[1]) for c in s.conditions("work")}, "Suspended")
        s.record("suspended", conditions=s.conditions("work"), created=s.created_count(),
                 start=bool(s.status("work").get("startTime")))
        s.kubectl("patch", s.flavour.resource, "work", "--type=merge", "-p", '{"spec":{"suspend":false}}')
        finished(s)
        s.record("resumed", **facts(s))

    differential.assert_same(differential.run(scenario, FLAVOURS))



def test_pod_failure_policy_fail_job_on_exit_code_42(controllers: Operator) -> None:
    rules = [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
             {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]

    def scenario(s: Side) -> None:
        s.apply_workload(manifest(exit_code=None, completions=3, parallelism=3, podFailurePolicy={"rules": rules}))
        s.wait(lambda: len(s.active_pods()) == 3, "three pods running")
        first, second, _ = sorted(s.active_pods())
        s.kubectl("annotate", "pod", first, f"{EXIT_CODE}=3")  # ignored: replaced, not counted
        s.wait(lambda: s.created_count() == 4, "the ignored pod replaced")
        s.record("ignored", counts={k: int(s.status("work").get(k) or 0) for k in ("failed", "active")},
                 conditions=s.conditions("work"))
        s.kubectl("annotate", "pod", second, f"{EXIT_CODE}=42")  # fails the Job
        finished(s)
        s.wait(lambda: not s.active_pods(), "the active pods gone")
        s.record("failed", **facts(s))

    differential.assert_same(differential.run(scenario, FLAVOURS))


def test_one_index_failing_under_backoff_limit_per_index(controllers: Operator) -> None:
    """Index 1 always exits 1, the others 0; backoffLimitPerIndex 1: index 1 is retried once (after its
    own backoff, its count carried on by annotation), then fails alone; the Job fails with FailedIndexes."""
    def scenario(s: Side) -> None:
        s.apply_workload(manifest(exit_code=None, completions=3, parallelism=3, completionMode="Indexed",
                                  backoffLimitPerIndex=1))
        ended: set[str] = set()

        def drive() -> Any:
            for name, pod in s.active_pods().items():
                if pod["status"].get("phase") == "Running" and name not in ended:
                    index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                    s.kubectl("annotate", "pod", name, f"{EXIT_CODE}={1 if index == '1' else 0}")
                    ended.add(name)
            status = s.status("work")
            return any(c.get("type") == "Failed" and c.get("status") == "True"
                       for c in status.get("conditions") or [])

        s.wait(drive, "the Job failed", timeout=150)
        finished(s)
        counts = sorted((p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"],
                         p["metadata"]["annotations"].get("batch.kubernetes.io/job-index-failure-count"))
                        for p in s.pods.ever_added.values())
        s.record("failed", **facts(s), index_failure_counts=counts)

    differential.assert_same(differential.run(scenario, FLAVOURS))

