"""`kubeplane rollout`: kubectl's rollout verbs for kubeplane's Deployment, DaemonSet and StatefulSet.

`kubectl rollout` knows only the built-in kinds, so these follow it for `apps.kubeplane.dev`:
same verbs, same messages and exit codes (k8s.io/kubectl pkg/cmd/rollout and
pkg/polymorphichelpers: rollout_status.go, history.go, rollback.go, objectpauser.go,
objectrestarter.go). Also installed as `kubectl-kubeplane`, so `kubectl kubeplane rollout ...` works.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from operators.cli.common import run_with_kube
from operators.controllers.common import history as revisions
from operators.controllers.daemonset import logic as ds_logic
from operators.controllers.deployment import logic
from operators.core.apis import CONTROLLER_REVISIONS, DAEMONSETS, DEPLOYMENTS, REPLICASETS, STATEFULSETS, Resource
from operators.core.kube import JSON_PATCH, Kube
from operators.core.owners import controller_uid
from operators.core.timeutil import format_time, now

T = TypeVar("T")
QUALIFIED = f"deployment.{DEPLOYMENTS.group}"
DS_QUALIFIED = f"daemonset.{DAEMONSETS.group}"
DEPLOYMENT_NAMES = ("deployment", "deployments", "deploy", "kpdeploy", "deployment.apps.kubeplane.dev",
                    "deployments.apps.kubeplane.dev")
DAEMONSET_NAMES = ("daemonset", "daemonsets", "ds", "kpds", "daemonset.apps.kubeplane.dev",
                   "daemonsets.apps.kubeplane.dev")
STS_QUALIFIED = f"statefulset.{STATEFULSETS.group}"
STATEFULSET_NAMES = ("statefulset", "statefulsets", "sts", "kpsts", "statefulset.apps.kubeplane.dev",
                     "statefulsets.apps.kubeplane.dev")
# The kinds whose history is ControllerRevisions: (resource, the name kubectl prints).
REVISIONED: dict[str, tuple[Resource, str]] = {"daemonset": (DAEMONSETS, DS_QUALIFIED),
                                               "statefulset": (STATEFULSETS, STS_QUALIFIED)}
SKIPPED_ANNOTATIONS = logic.NOT_COPIED
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _run(fn: Callable[[Kube], Awaitable[T]]) -> T:
    return run_with_kube(fn)


def _target(target: str) -> tuple[str, str]:
    """("deployment", "daemonset" or "statefulset", NAME) from KIND/NAME."""
    kind, _, name = target.partition("/")
    if name and kind in DEPLOYMENT_NAMES:
        return "deployment", name
    if name and kind in DAEMONSET_NAMES:
        return "daemonset", name
    if name and kind in STATEFULSET_NAMES:
        return "statefulset", name
    raise click.BadParameter(f"{target!r}: expected deployment/NAME, daemonset/NAME or statefulset/NAME",
                             param_hint="RESOURCE")


def _name(target: str) -> str:
    """A Deployment's name, for the verbs only Deployments have (pause, resume), as kubectl's objectpauser."""
    kind, name = _target(target)
    if kind != "deployment":
        resource = REVISIONED[kind][0]
        raise click.ClickException(f"{resource.plural}.{resource.group}/{name} pausing is not supported")
    return name


async def _owned_sets(kube: Kube, d: dict[str, Any]) -> list[dict[str, Any]]:
    namespace = d["metadata"]["namespace"]
    sets = await kube.list_all(REPLICASETS.path(namespace))
    return [rs for rs in sets if controller_uid(rs) == d["metadata"]["uid"]]


def _revision(rs: dict[str, Any]) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(logic.REVISION) or 0)
    except ValueError:
        return 0


namespace_option = click.option("-n", "--namespace", default="default", show_default=True)


@click.group()
def rollout() -> None:
    """Manage the rollout of a kubeplane Deployment, DaemonSet or StatefulSet (as `kubectl rollout`)."""


def ds_status_message(ds: dict[str, Any]) -> tuple[str, bool]:
    """DaemonSetStatusViewer: (message, done); only RollingUpdate has a rollout to follow."""
    name = json.dumps(ds["metadata"]["name"])
    strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    if strategy != "RollingUpdate":
        raise click.ClickException("rollout status is only available for RollingUpdate strategy type")
    status = ds.get("status") or {}
    if int(ds["metadata"].get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return "Waiting for daemon set spec update to be observed...", False
    desired, updated, available = (int(status.get(k) or 0) for k in
                                   ("desiredNumberScheduled", "updatedNumberScheduled", "numberAvailable"))
    if updated < desired:
        return (f"Waiting for daemon set {name} rollout to finish: {updated} out of {desired} new pods have been "
                "updated..."), False
    if available < desired:
        return (f"Waiting for daemon set {name} rollout to finish: {available} of {desired} updated pods are "
                "available..."), False
    return f"daemon set {name} successfully rolled out", True


def sts_status_message(sts: dict[str, Any]) -> tuple[str, bool]:
    """StatefulSetStatusViewer: (message, done). A RollingUpdate without rollingUpdate counts as partition 0,
    as apps/v1 defaults it."""
    spec = sts.get("spec") or {}
    strategy = spec.get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        raise click.ClickException("rollout status is only available for RollingUpdate strategy type")
    status = sts.get("status") or {}
    observed = int(status.get("observedGeneration") or 0)
    if observed == 0 or int(sts["metadata"].get("generation") or 0) > observed:
        return "Waiting for statefulset spec update to be observed...", False
    replicas = int(spec.get("replicas", 1))
    ready, updated = int(status.get("readyReplicas") or 0), int(status.get("updatedReplicas") or 0)
    if ready < replicas:
        return f"Waiting for {replicas - ready} pods to be ready...", False
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    if updated < replicas - partition:
        return (f"Waiting for partitioned roll out to finish: {updated} out of {replicas - partition} new pods "
                "have been updated..."), False
    return f"partitioned roll out complete: {updated} new pods have been updated...", True


async def _ds_revisions(kube: Kube, ds: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The DaemonSet's (or StatefulSet's) ControllerRevisions by number."""
    found = await kube.list_all(CONTROLLER_REVISIONS.path(ds["metadata"]["namespace"]))
    return {revisions.revision_number(r): r for r in found if controller_uid(r) == ds["metadata"]["uid"]}


def status_message(d: dict[str, Any]) -> tuple[str, bool]:
    """DeploymentStatusViewer: (message, done); raises ClickException past the deadline."""
    name = d["metadata"]["name"]
    status = d.get("status") or {}
    if int(d["metadata"].get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return "Waiting for deployment spec update to be observed...", False
    progressing = logic.find_condition(status, logic.PROGRESSING)
    if progressing is not None and progressing.get("reason") == logic.TIMED_OUT:
        raise click.ClickException(f"deployment {json.dumps(name)} exceeded its progress deadline")
    replicas = logic.replicas_of(d)
    updated, total, available = (int(status.get(k) or 0) for k in ("updatedReplicas", "replicas", "availableReplicas"))
    if updated < replicas:
        return (f"Waiting for deployment {json.dumps(name)} rollout to finish: {updated} out of {replicas} new "
                "replicas have been updated..."), False
    if total > updated:
        return (f"Waiting for deployment {json.dumps(name)} rollout to finish: {total - updated} old replicas are "
                "pending termination..."), False
    if available < updated:
        return (f"Waiting for deployment {json.dumps(name)} rollout to finish: {available} of {updated} updated "
                "replicas are available..."), False
    return f"deployment {json.dumps(name)} successfully rolled out", True


@rollout.command()
@click.argument("resource")
@namespace_option
@click.option("-w", "--watch", default=True, show_default=True, type=bool, help="Watch until the rollout ends.")
@click.option("--timeout", default=0.0, type=float, metavar="SECONDS", help="Give up after this long (0: never).")
def status(resource: str, namespace: str, watch: bool, timeout: float) -> None:
    """Show the status of the rollout; with --watch, until it ends."""
    kind, name = _target(resource)
    resource_of, message_of = {"deployment": (DEPLOYMENTS, status_message),
                               "daemonset": (DAEMONSETS, ds_status_message),
                               "statefulset": (STATEFULSETS, sts_status_message)}[kind]

    async def follow(kube: Kube) -> None:
        deadline = time.monotonic() + timeout if timeout > 0 else None
        last = ""
        while True:
            d = await kube.get(resource_of.path(namespace, name))
            message, done = message_of(d)
            if message != last:
                click.echo(message)
                last = message
            if done or not watch:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise click.ClickException("timed out waiting for the condition")
            await asyncio.sleep(1.0)
    _run(follow)


@rollout.command()
@click.argument("resource")
@namespace_option
@click.option("--revision", default=0, type=int, help="Show the pod template of this revision.")
def history(resource: str, namespace: str, revision: int) -> None:
    """Revisions and their change causes, oldest first."""
    kind, name = _target(resource)
    qualified = QUALIFIED if kind == "deployment" else REVISIONED[kind][1]

    async def show(kube: Kube) -> None:
        if kind == "deployment":
            d = await kube.get(DEPLOYMENTS.path(namespace, name))
            sets = {_revision(rs): rs for rs in await _owned_sets(kube, d) if _revision(rs) > 0}
            templates = {n: rs["spec"]["template"] for n, rs in sets.items()}
        else:
            d = await kube.get(REVISIONED[kind][0].path(namespace, name))
            sets = await _ds_revisions(kube, d)
            templates = {n: revisions.template_of(r) for n, r in sets.items()}
        if revision:
            if revision not in sets:
                raise click.ClickException(f"unable to find the specified revision {revision}")
            template = templates[revision]
            click.echo(f"{qualified}/{name} with revision #{revision}")
            click.echo("Pod Template:")
            click.echo(json.dumps(template, indent=2))
            return
        click.echo(f"{qualified}/{name} ")
        click.echo("REVISION  CHANGE-CAUSE")
        for number in sorted(sets):
            cause = (sets[number]["metadata"].get("annotations") or {}).get(CHANGE_CAUSE) or "<none>"
            click.echo(f"{number:<10}{cause}")
        click.echo()
    _run(show)


@rollout.command()
@click.argument("resource")
@namespace_option
@click.option("--to-revision", default=0, type=int, help="The revision to roll back to (0: the previous one).")
def undo(resource: str, namespace: str, to_revision: int) -> None:
    """Roll back to a previous revision: its template (and annotations) go back into the Deployment."""
    kind, name = _target(resource)
    if kind in REVISIONED:
        click.echo(_run(lambda kube: _undo_revisioned(kube, kind, namespace, name, to_revision)))
        return

    async def roll_back(kube: Kube) -> str:
        d = await kube.get(DEPLOYMENTS.path(namespace, name))
        if logic.paused(d):
            raise click.ClickException(
                f"you cannot rollback a paused deployment; resume it first with 'kubeplane rollout resume "
                f"deployment/{name}' and try again")
        sets = {_revision(rs): rs for rs in await _owned_sets(kube, d) if _revision(rs) > 0}
        if to_revision:
            target = sets.get(to_revision)
            if target is None:
                raise click.ClickException(f"unable to find specified revision {to_revision} in history")
        else:
            if len(sets) < 2:
                raise click.ClickException("no rollout history found for deployment \"" + name + "\"")
            target = sets[sorted(sets)[-2]]
        number = _revision(target)
        if logic.equal_ignore_hash(target["spec"]["template"], d["spec"]["template"]):
            return f"{QUALIFIED}/{name} skipped rollback (current template already matches revision {number})"
        template = json.loads(json.dumps(target["spec"]["template"]))
        labels = (template.get("metadata") or {}).get("labels") or {}
        labels.pop(logic.HASH_LABEL, None)
        current = d["metadata"].get("annotations") or {}
        annotations = {k: v for k, v in current.items() if k in SKIPPED_ANNOTATIONS}
        annotations.update({k: v for k, v in (target["metadata"].get("annotations") or {}).items()
                            if k not in SKIPPED_ANNOTATIONS})
        patch = [
            {"op": "test", "path": "/metadata/uid", "value": d["metadata"]["uid"]},
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "add", "path": "/metadata/annotations", "value": annotations},
        ]
        await kube.patch(DEPLOYMENTS.path(namespace, name), patch, content_type=JSON_PATCH)
        return f"{QUALIFIED}/{name} rolled back"
    click.echo(_run(roll_back))


async def _undo_revisioned(kube: Kube, kind: str, namespace: str, name: str, to_revision: int) -> str:
    """DaemonSetRollbacker / StatefulSetRollbacker: the revision's template back into the object (the
    controller then reuses that revision, so pods already on it are not restarted)."""
    resource, qualified = REVISIONED[kind]
    ds = await kube.get(resource.path(namespace, name))
    found = await _ds_revisions(kube, ds)
    if to_revision:
        target = found.get(to_revision)
        if target is None:
            raise click.ClickException(f"unable to find specified revision {to_revision} in history")
    else:
        if len(found) < 2:
            raise click.ClickException("no last revision to roll back to")
        target = found[sorted(found)[-2]]
    number = revisions.revision_number(target)
    template = revisions.template_of(target)
    if revisions.canonical(template) == revisions.canonical(ds_logic.spec(ds).get("template") or {}):
        return f"{qualified}/{name} skipped rollback (current template already matches revision {number})"
    patch = [{"op": "test", "path": "/metadata/uid", "value": ds["metadata"]["uid"]},
             {"op": "replace", "path": "/spec/template", "value": template}]
    await kube.patch(resource.path(namespace, name), patch, content_type=JSON_PATCH)
    return f"{qualified}/{name} rolled back"


def _set_paused(resource: str, namespace: str, paused: bool) -> None:
    name = _name(resource)

    async def flip(kube: Kube) -> str:
        d = await kube.get(DEPLOYMENTS.path(namespace, name))
        if logic.paused(d) == paused:
            if paused:
                return f"{QUALIFIED}/{name} already paused"
            raise click.ClickException(f"{DEPLOYMENTS.plural}.{DEPLOYMENTS.group} \"{name}\" is not paused")
        await kube.patch(DEPLOYMENTS.path(namespace, name), {"spec": {"paused": paused}})
        return f"{QUALIFIED}/{name} {'paused' if paused else 'resumed'}"
    click.echo(_run(flip))


@rollout.command()
@click.argument("resource")
@namespace_option
def pause(resource: str, namespace: str) -> None:
    """Pause the Deployment: template changes wait until it is resumed."""
    _set_paused(resource, namespace, True)


@rollout.command()
@click.argument("resource")
@namespace_option
def resume(resource: str, namespace: str) -> None:
    """Resume a paused Deployment."""
    _set_paused(resource, namespace, False)


@rollout.command()
@click.argument("resource")
@namespace_option
def restart(resource: str, namespace: str) -> None:
    """Roll every pod: a new restartedAt annotation in the template."""
    kind, name = _target(resource)
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: format_time(now())}}}}}
    if kind in REVISIONED:
        resource_of, qualified = REVISIONED[kind]

        async def stamp_ds(kube: Kube) -> str:
            await kube.patch(resource_of.path(namespace, name), patch)
            return f"{qualified}/{name} restarted"
        click.echo(_run(stamp_ds))
        return

    async def stamp(kube: Kube) -> str:
        d = await kube.get(DEPLOYMENTS.path(namespace, name))
        if logic.paused(d):
            raise click.ClickException(f"deployments.{DEPLOYMENTS.group} \"{name}\" can't restart paused "
                                       "deployment (run rollout resume first)")
        await kube.patch(DEPLOYMENTS.path(namespace, name), patch)
        return f"{QUALIFIED}/{name} restarted"
    click.echo(_run(stamp))


GROUPS = [rollout]
