"""A Job's policies (pkg/controller/job, 1.34): podFailurePolicy, what a failed pod means
(pod_failure_policy.go), and successPolicy, when an Indexed Job has succeeded early (success_policy.go).

Rules are tried in order; the first that matches decides:
- `onExitCodes`: a container (of `containerName`, if given; init containers too) terminated with a
  non-zero exit code that is In / NotIn the values (exit code 0 never matches);
- `onPodConditions`: the pod has a condition of that type with that status (default "True").
Actions: FailJob (the Job fails, reason PodFailurePolicy, the failure counted), FailIndex (the pod's
index fails at once, with backoffLimitPerIndex; counted), Ignore (not counted:
neither towards backoffLimit nor in status.failed), Count (counted, as without a policy). No match
counts the failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from operators.controllers.job.indexes import parse_intervals

Obj = Mapping[str, Any]

FAIL_JOB, FAIL_INDEX, IGNORE, COUNT = "FailJob", "FailIndex", "Ignore", "Count"


@dataclass(frozen=True)
class Match:
    action: str  # FailJob, Ignore or Count
    message: str | None = None  # for FailJob: the Job's Failed message


def rules(job: Obj) -> list[Obj]:
    policy = (job.get("spec") or {}).get("podFailurePolicy") or {}
    return list(policy.get("rules") or [])


def _matching_container(rule: Obj, pod: Obj) -> tuple[str, int] | None:
    pattern = rule.get("onExitCodes") or {}
    name = pattern.get("containerName")
    values = set(pattern.get("values") or [])
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            terminated = (container.get("state") or {}).get("terminated")
            if not terminated:
                continue
            code = int(terminated.get("exitCode") or 0)
            if code == 0 or (name and container.get("name") != name):
                continue
            if (pattern.get("operator") == "In") == (code in values):
                return str(container.get("name")), code
    return None


def _matching_condition(rule: Obj, pod: Obj) -> str | None:
    for pattern in rule.get("onPodConditions") or []:
        wanted = pattern.get("status") or "True"
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == pattern.get("type") and condition.get("status") == wanted:
                return str(pattern.get("type"))
    return None


def match(job: Obj, pod: Obj) -> Match:
    """What the policy makes of the failed `pod` (Count when there is no policy or no rule matches)."""
    meta = pod["metadata"]
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    for index, rule in enumerate(rules(job)):
        action = str(rule.get("action"))
        if rule.get("onExitCodes") is not None:
            found = _matching_container(rule, pod)
            if found is None:
                continue
            container, code = found
            message = (f"Container {container} for pod {where} failed with exit code {code} matching "
                       f"{action} rule at index {index}")
        else:
            condition = _matching_condition(rule, pod)
            if condition is None:
                continue
            message = f"Pod {where} has condition {condition} matching {action} rule at index {index}"
        return Match(action, message if action == FAIL_JOB else None)
    return Match(COUNT)


# --- successPolicy (success_policy.go) -------------------------------------------------------------

def success_policy_match(job: Obj, succeeded: set[int], completions: int | None) -> str | None:
    """matchSuccessPolicy: "Matched rules at index I" for the first rule the succeeded indexes meet, or
    None. A rule with succeededIndexes is met when all of them succeeded, or at least succeededCount
    of them; a rule with only succeededCount when that many indexes succeeded. Indexes at or above
    completions are ignored; a rule whose indexes are all out of range never matches."""
    rules_ = ((job.get("spec") or {}).get("successPolicy") or {}).get("rules") or []
    if not rules_ or not succeeded or completions is None:
        return None
    for index, rule in enumerate(rules_):
        count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            required = parse_intervals(str(rule["succeededIndexes"]), completions)
            if not required:
                continue
            contains = len(required & succeeded)
            if contains == len(required) or (count is not None and contains >= int(count)):
                return f"Matched rules at index {index}"
        elif count is not None and len(succeeded) >= int(count):
            return f"Matched rules at index {index}"
    return None
