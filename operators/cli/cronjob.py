"""`kubeplane cronjob trigger`: start a run of a kubeplane CronJob now.

What `kubectl create job NAME --from=cronjob/CRONJOB` does for batch/v1 (k8s.io/kubectl
pkg/cmd/create/create_job.go, createJobFromCronJob), for `batch.kubeplane.dev`: a kubeplane Job with the
jobTemplate's labels, annotations and spec, the annotation `cronjob.kubernetes.io/instantiate: manual`,
and the CronJob as its controller (without blockOwnerDeletion, as kubectl). The CronJob controller
does not list a manual run in status.active; it reports it as UnexpectedJob while it runs, and its
history limits count it once it has finished, as upstream's do.
"""

from __future__ import annotations

import copy
import json
import secrets
from typing import Any

import click

from operators.cli.common import run_with_kube
from operators.core.apis import CRONJOBS, JOBS
from operators.core.kube import ApiError, Kube

INSTANTIATE = "cronjob.kubernetes.io/instantiate"
NAMES = ("cronjob", "cronjobs", "cj", "kpcj", "cronjob.batch.kubeplane.dev", "cronjobs.batch.kubeplane.dev")


def job_from_cronjob(cronjob: dict[str, Any], name: str) -> dict[str, Any]:
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    meta = template.get("metadata") or {}
    annotations = {INSTANTIATE: "manual", **(meta.get("annotations") or {})}
    body: dict[str, Any] = {
        "apiVersion": JOBS.api_version, "kind": JOBS.kind,
        "metadata": {
            "name": name, "namespace": cronjob["metadata"]["namespace"], "annotations": annotations,
            "ownerReferences": [{"apiVersion": CRONJOBS.api_version, "kind": CRONJOBS.kind,
                                 "name": cronjob["metadata"]["name"], "uid": cronjob["metadata"]["uid"],
                                 "controller": True}],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
    if meta.get("labels"):
        body["metadata"]["labels"] = dict(meta["labels"])
    return body


def default_name(cronjob: str) -> str:
    """`<cronjob>-manual-<5 random characters>`, the CronJob's name cut so the whole fits 63."""
    suffix = f"-manual-{secrets.token_hex(3)[:5]}"
    return cronjob[:63 - len(suffix)] + suffix


@click.group()
def cronjob() -> None:
    """Work with kubeplane CronJobs (batch.kubeplane.dev)."""


@cronjob.command()
@click.argument("target")
@click.option("--job-name", default=None, metavar="NAME", help="Name of the Job (default: <cronjob>-manual-<random>).")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-o", "--output", type=click.Choice(["name", "json"]), default=None, help="Print the Job created.")
def trigger(target: str, job_name: str | None, namespace: str, output: str | None) -> None:
    """Start a run of CronJob TARGET (NAME or cronjob/NAME) now, as `kubectl create job --from=cronjob/NAME`."""
    kind, _, name = target.rpartition("/")
    if kind and kind not in NAMES:
        raise click.BadParameter(f"{target!r}: expected NAME or cronjob/NAME", param_hint="TARGET")

    async def start(kube: Kube) -> dict[str, Any]:
        try:
            found = await kube.get(CRONJOBS.path(namespace, name))
        except ApiError as e:
            if e.not_found:
                raise click.ClickException(f'cronjobs.{CRONJOBS.group} "{name}" not found') from None
            raise
        body = job_from_cronjob(found, job_name or default_name(name))
        try:
            created: dict[str, Any] = await kube.create(JOBS.path(namespace), body)
        except ApiError as e:
            raise click.ClickException(e.message or str(e)) from None
        return created

    job = run_with_kube(start)
    if output == "json":
        click.echo(json.dumps(job, indent=2))
    elif output == "name":
        click.echo(f"job.{JOBS.group}/{job['metadata']['name']}")
    else:
        click.echo(f"job.{JOBS.group}/{job['metadata']['name']} created")


GROUPS = [cronjob]
