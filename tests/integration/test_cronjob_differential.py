"""Differential: the same CronJobs as batch/v1 (kube-controller-manager's cronjob and job controllers)
and as kubeplane, side by side in two namespaces of the same cluster, at the same time (the scenario
waits for the next minute once for both), compared.

Scenario: two CronJobs whose runs never end on their own ("* * * * *"), Forbid and Replace, are made
due at once (created suspended, lastScheduleTime set three minutes back, resumed); then the next minute
comes while their runs are active; then Forbid's run is ended. Compared at each step: the Jobs each
CronJob ever made (name shapes, counted from a watch) and has now, status.active, lastScheduleTime and
lastSuccessfulTime being set, and the Events' reasons. Never uids, timestamps or the minute numbers in
Job names (the two sides may straddle a minute boundary).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration import differential
from tests.integration.conftest import ENV, Operator, kubectl
from tests.integration.differential import Flavour, Side
from tests.podexit import end_pod
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
