"""`kubeplane get jobs|cronjobs`: kubeplane's batch kinds with `kubectl get`'s own columns.

A CRD's printer columns each show one field, so `kubectl get kpjob` cannot compute what `kubectl get
jobs` prints (STATUS from the conditions, COMPLETIONS as "succeeded/completions", DURATION); nor can
`kubectl get kpcj` count status.active. This command prints those columns as kubectl's table printer
computes them (k8s.io/kubernetes pkg/printers/internalversion/printers.go, printJob and printCronJob,
Kubernetes 1.34; durations as apimachinery's duration.HumanDuration), `-o wide` included. As a kubectl
plugin: `kubectl kubeplane get jobs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from operators.cli.common import run_with_kube
from operators.core.apis import CRONJOBS, JOBS, Resource
from operators.core.kube import Kube
from operators.core.selectors import label_selector_string
from operators.core.timeutil import parse_time

Obj = dict[str, Any]


def human_duration(seconds: float) -> str:
    """duration.HumanDuration: the precision kubectl's AGE and DURATION columns print."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if rest == 0 else f"{hours // 24 // 365}y{rest}d"
    return f"{hours // 24 // 365}y"


def since(timestamp: Any, now: datetime) -> str:
    """translateTimestampSince: "<unknown>" for no time."""
    when = parse_time(timestamp)
    return "<unknown>" if when is None else human_duration((now - when).total_seconds())


def _true(obj: Obj, type_: str) -> bool:
    """hasJobCondition: the condition is there with status True."""
    return any(c.get("type") == type_ and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def _containers(pod_spec: Obj) -> list[str]:
    containers = pod_spec.get("containers") or []
    return [",".join(str(c.get("name", "")) for c in containers), ",".join(str(c.get("image", "")) for c in containers)]


def _selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector: "<none>" for none, "<none>" too for an empty one."""
    text = label_selector_string(selector) if selector is not None else ""
    return text or "<none>"


def job_row(job: Obj, now: datetime, wide: bool = False) -> list[str]:
    """printJob's cells: NAME, STATUS, COMPLETIONS, DURATION, AGE (+ CONTAINERS, IMAGES, SELECTOR)."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = "" if start is None else human_duration(((end or now) - start).total_seconds())
    if _true(job, "Complete"):
        state = "Complete"
    elif _true(job, "Failed"):
        state = "Failed"
    elif job["metadata"].get("deletionTimestamp"):
        state = "Terminating"
    elif _true(job, "Suspended"):
        state = "Suspended"
    elif _true(job, "FailureTarget"):
        state = "FailureTarget"
    elif _true(job, "SuccessCriteriaMet"):
        state = "SuccessCriteriaMet"
    else:
        state = "Running"
    row = [job["metadata"]["name"], state, completions, duration, since(job["metadata"].get("creationTimestamp"), now)]
    if wide:
        row += [*_containers((spec.get("template") or {}).get("spec") or {}), _selector(spec.get("selector"))]
    return row


def cronjob_row(cronjob: Obj, now: datetime, wide: bool = False) -> list[str]:
    """printCronJob's cells: NAME, SCHEDULE, TIMEZONE, SUSPEND, ACTIVE, LAST SCHEDULE, AGE (+ wide)."""
    spec, status = cronjob.get("spec") or {}, cronjob.get("status") or {}
    suspend = spec.get("suspend")
    last = status.get("lastScheduleTime")
    row = [cronjob["metadata"]["name"], str(spec.get("schedule", "")),
           str(spec["timeZone"]) if spec.get("timeZone") is not None else "<none>",
           "<unset>" if suspend is None else ("True" if suspend else "False"),
           str(len(status.get("active") or [])), "<none>" if last is None else since(last, now),
           since(cronjob["metadata"].get("creationTimestamp"), now)]
    if wide:
        job_spec = ((spec.get("jobTemplate") or {}).get("spec") or {})
        row += [*_containers((job_spec.get("template") or {}).get("spec") or {}), _selector(job_spec.get("selector"))]
    return row


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """kubectl's tab writer (minimum width 10, padding 3, the last column unpadded)."""
    lines = [list(headers), *[list(r) for r in rows]]
    widths = [max(max(len(line[i]) for line in lines) + 3, 10) for i in range(len(headers) - 1)]
    return "\n".join("".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)) + line[-1]
                     for line in lines)


KINDS: dict[str, tuple[Resource, Sequence[str], Sequence[str], Callable[[Obj, datetime, bool], list[str]]]] = {
    "jobs": (JOBS, ("NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"), ("CONTAINERS", "IMAGES", "SELECTOR"),
             job_row),
    "cronjobs": (CRONJOBS, ("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"),
                 ("CONTAINERS", "IMAGES", "SELECTOR"), cronjob_row),
}
ALIASES = {name: kind for kind, names in {
    "jobs": ("job", "jobs", "kpjob", "jobs.batch.kubeplane.dev", "job.batch.kubeplane.dev"),
    "cronjobs": ("cronjob", "cronjobs", "cj", "kpcj", "cronjobs.batch.kubeplane.dev", "cronjob.batch.kubeplane.dev"),
}.items() for name in names}


@click.command("get")
@click.argument("kind", type=click.Choice(sorted(ALIASES)), metavar="jobs|cronjobs")
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces (adds NAMESPACE).")
@click.option("-l", "--selector", default="", help="Label selector, as kubectl's.")
@click.option("-o", "--output", type=click.Choice(["wide"]), default=None, help="wide: containers, images, selector.")
def get(kind: str, names: tuple[str, ...], namespace: str, all_namespaces: bool, selector: str,
        output: str | None) -> None:
    """List kubeplane Jobs or CronJobs with `kubectl get jobs|cronjobs`'s columns."""
    resource, headers, extra, row = KINDS[ALIASES[kind]]

    async def fetch(kube: Kube) -> list[Obj]:
        if names:
            return [await kube.get(resource.path(namespace, name)) for name in names]
        path = resource.path(None if all_namespaces else namespace)
        items: list[Obj] = await (kube.list_all(path, labelSelector=selector) if selector else kube.list_all(path))
        return items

    items = run_with_kube(fetch)
    if not items:
        where = "" if all_namespaces else f" in {namespace} namespace"
        click.echo(f"No resources found{where}.", err=True)
        return
    now = datetime.now(UTC)
    wide = output == "wide"
    if not names:
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    rows = [row(o, now, wide) for o in items]
    columns = [*headers, *(extra if wide else ())]
    if all_namespaces and not names:
        columns = ["NAMESPACE", *columns]
        rows = [[o["metadata"].get("namespace", ""), *r] for o, r in zip(items, rows, strict=True)]
    click.echo(table(columns, rows))


GROUPS = [get]
