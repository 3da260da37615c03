"""Differential: the same CronJobs as batch/v1 (kube-controller-manager's cronjob and job controllers)
and as kubeplane, in two namespaces of the same cluster, compared.

Forbid and Replace (both flavours at the same time: the scenario waits for the next minute once for
both): two CronJobs whose runs never end on their own ("* * * * *") are made due at once (created
suspended, lastScheduleTime set three minutes back, resumed); then the next minute comes while their
runs are active; then Forbid's run is ended. Compared at each step: the Jobs each CronJob ever made
(name shapes, counted from a watch) and has now, status.active, lastScheduleTime and lastSuccessfulTime
being set, and the Events' reasons. Never uids, timestamps or the minute numbers in Job names (the two
sides may straddle a minute boundary).

History limits: the same five finished Jobs handed to a suspended CronJob; which survive, and the
deletions' Events.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration import differential
from tests.integration.conftest import ENV, Operator, kubectl, kubectl_json
from tests.integration.differential import Flavour, Side
from tests.podexit import EXIT_AFTER, EXIT_CODE, end_pod
from tests.watch import Watch

UPSTREAM = Flavour("upstream", "batch/v1", "cronjobs.batch")
KUBEPLANE = Flavour("kubeplane", "batch.kubeplane.dev/v1alpha1", "cronjobs.batch.kubeplane.dev")
FLAVOURS = (UPSTREAM, KUBEPLANE)
JOB_RESOURCE = {"upstream": ("jobs.batch", "batch/v1"), "kubeplane": ("jobs.batch.kubeplane.dev",
                                                                      "batch.kubeplane.dev/v1alpha1")}
MINUTES = re.compile(r"-\d{8,}\b")


def manifest(name: str, policy: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "* * * * *", "suspend": True, "concurrencyPolicy": policy,
                     "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
                         "restartPolicy": "Never", "automountServiceAccountToken": False,
                         "containers": [{"name": "c", "image": "registry.local/work:1"}]}}}}}}


def shape(name: str) -> str:
    return MINUTES.sub("-MINUTES", name)


class Scene:
    def __init__(self, s: Side, jobs: Watch) -> None:
        self.s, self.jobs = s, jobs
        self.job_resource = JOB_RESOURCE[s.flavour.name][0]

    def made(self, cronjob: str) -> list[str]:
        """The Jobs the CronJob ever made (from the watch), oldest first."""
        owned = [o for o in self.jobs.ever_added.values()
                 if any(r.get("name") == cronjob and r.get("controller") for r in o["metadata"].get("ownerReferences")
                        or [])]
        return [o["metadata"]["name"] for o in sorted(owned, key=lambda o: o["metadata"]["creationTimestamp"])]

    def live(self, cronjob: str) -> list[str]:
        return sorted(n for n in self.made(cronjob) if n in self.jobs.snapshot()
                      and not self.jobs.snapshot()[n]["metadata"].get("deletionTimestamp"))

    def active(self, cronjob: str) -> list[str]:
        return sorted(r["name"] for r in self.s.status(cronjob).get("active") or [])

    def facts(self, cronjob: str) -> dict[str, Any]:
        status = self.s.status(cronjob)
        reasons = self.s.event_reasons(cronjob)
        return {
            "made": [shape(n) for n in self.made(cronjob)],
            "live": [shape(n) for n in self.live(cronjob)],
            "active": [shape(n) for n in self.active(cronjob)],
            "active_is_newest": self.active(cronjob) == self.made(cronjob)[-1:],
            "lastScheduleTime": bool(status.get("lastScheduleTime")),
            "lastSuccessfulTime": bool(status.get("lastSuccessfulTime")),
            # How often a reason repeats depends on how many syncs ran: compare which ones were seen.
            "events": sorted(reasons),
        }


def test_forbid_and_replace_across_a_minute(controllers: Operator) -> None:
    def scenario(s: Side) -> None:
        api_version = JOB_RESOURCE[s.flavour.name][1]
        with Watch(ENV, f"/apis/{api_version}/namespaces/{s.namespace}/jobs") as jobs:
            scene = Scene(s, jobs)
            for name, policy in (("forbid", "Forbid"), ("replace", "Replace")):
                s.apply_workload(manifest(name, policy))
            last = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
            for name in ("forbid", "replace"):
                s.kubectl("patch", s.flavour.resource, name, "--subresource=status", "--type=merge", "-p",
                          f'{{"status":{{"lastScheduleTime":"{last.strftime("%Y-%m-%dT%H:%M:%SZ")}"}}}}')
                s.kubectl("patch", s.flavour.resource, name, "--type=merge", "-p", '{"spec":{"suspend":false}}')
            for name in ("forbid", "replace"):
                s.wait(lambda n=name: len(scene.active(n)) == 1, f"{name}'s first run active")
            started = {name: scene.made(name)[0] for name in ("forbid", "replace")}
            s.record("started", forbid=scene.facts("forbid"), replace=scene.facts("replace"))

            # The next minute: Forbid skips it, Replace deletes its run and starts the new one.
            s.wait(lambda: scene.made("replace")[-1] != started["replace"] and scene.active("replace")
                   == scene.made("replace")[-1:] and started["replace"] not in scene.live("replace"),
                   "replace's second run replacing the first", timeout=150)
            s.wait(lambda: "JobAlreadyActive" in s.event_reasons("forbid"), "forbid skipping the minute", timeout=60)
            s.record("next minute", forbid=scene.facts("forbid"), replace=scene.facts("replace"))

            # Forbid's run ends: the minute it skipped is still due, and runs now.
            pods = s.wait(lambda: [n for n, p in s.live_pods().items()
                                   if p["metadata"].get("labels", {}).get("batch.kubernetes.io/job-name")
                                   == started["forbid"]], "forbid's pod")
            end_pod(kubectl, s.namespace, pods[0])
            s.wait(lambda: len(scene.made("forbid")) == 2 and len(scene.active("forbid")) == 1
                   and s.status("forbid").get("lastSuccessfulTime"), "forbid's skipped minute run", timeout=120)
            time.sleep(1)
            s.record("forbid's run ended", forbid=scene.facts("forbid"))

    # The first runs and their record must land within one minute: start early in one.
    second = datetime.now(UTC).second
    if second >= 40:
        time.sleep(61 - second)
    differential.assert_same(differential.run_together(scenario, FLAVOURS))


def test_history_limits(controllers: Operator) -> None:
    """Five finished Jobs (three Complete, two Failed) are handed to a suspended CronJob with history
    limits 1 and 1: the same ones survive on both sides, and the same deletions are told of."""
    def scenario(s: Side) -> None:
        resource, api_version = JOB_RESOURCE[s.flavour.name]
        cronjob = {**manifest("hist", "Allow"), "spec": {**manifest("hist", "Allow")["spec"],
                                                         "successfulJobsHistoryLimit": 1,
                                                         "failedJobsHistoryLimit": 1}}
        s.apply_workload(cronjob)
        uid = s.get("hist")["metadata"]["uid"]
        template = manifest("hist", "Allow")["spec"]["jobTemplate"]["spec"]["template"]
        names = [("hist-a", 0), ("hist-b", 0), ("hist-c", 0), ("hist-x", 1), ("hist-y", 1)]
        for name, code in names:
            pod = {**template, "metadata": {"annotations": {EXIT_CODE: str(code), EXIT_AFTER: "0s"}}}
            s.apply({"apiVersion": api_version, "kind": "Job", "metadata": {"name": name, "labels": {"run": "hist"}},
                     "spec": {"backoffLimit": 0, "template": pod}})

        def finished() -> bool:
            jobs = kubectl_json("get", resource, "-n", s.namespace, "-l", "run=hist")["items"]
            return len(jobs) == 5 and all(any(c["status"] == "True" and c["type"] in ("Complete", "Failed")
                                              for c in (j.get("status") or {}).get("conditions") or [])
                                          for j in jobs)

        s.wait(finished, "five finished Jobs", timeout=120)
        owner = {"apiVersion": s.flavour.api_version, "kind": "CronJob", "name": "hist", "uid": uid,
                 "controller": True}
        for name, _ in names:
            s.kubectl("patch", resource, name, "--type=merge", "-p",
                      json.dumps({"metadata": {"ownerReferences": [owner]}}))

        def left() -> list[str]:
            return sorted(j["metadata"]["name"] for j in
                          kubectl_json("get", resource, "-n", s.namespace, "-l", "run=hist")["items"])

        s.wait(lambda: len(left()) == 2, "the history trimmed", timeout=60)
        s.wait(lambda: len(s.event_messages("hist", "SuccessfulDelete")) == 3, "three deletions told of")
        s.record("trimmed", left=left(), deleted=sorted(s.event_messages("hist", "SuccessfulDelete")))

    differential.assert_same(differential.run(scenario, FLAVOURS))
