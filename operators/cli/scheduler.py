"""`kubeplane scheduler explain`: why a pod goes where it goes, or why it stays pending.

The decision is recomputed with the scheduler's own code (operators/scheduler) from the cluster's
current state, so it shows each node's filter verdict (which plugin rejected it, and why) and each
feasible node's per-plugin scores. With `--dry-run -f pod.yaml` it answers for a pod that does not
exist yet: "where would this land, and why".
"""

from __future__ import annotations

import json
from typing import Any

import click
import yaml

from operators.cli.backups import _run, _table
from operators.core.kube import Kube
from operators.scheduler.framework import default_profile, schedule_one
from operators.scheduler.snapshot import Snapshot


async def _snapshot(kube: Kube, leave_out_uid: str | None) -> Snapshot:
    """The cluster as the scheduler sees it, without the pod being explained (a bound pod is
    explained as if it were pending again, so its own usage must not count)."""
    nodes = await kube.list_all("/api/v1/nodes")
    pods = [p for p in await kube.list_all("/api/v1/pods") if p["metadata"].get("uid") != leave_out_uid]
    namespaces = await kube.list_all("/api/v1/namespaces")
    return Snapshot.build(nodes, pods, namespaces=namespaces)


def explain_pod(pod: dict[str, Any], snapshot: Snapshot) -> dict[str, Any]:
    pending = {**pod, "spec": {**pod.get("spec", {}), "nodeName": None}, "status": {}}
    return schedule_one(pending, snapshot, default_profile()).explain()


def render(explained: dict[str, Any]) -> str:
    lines = [f"Pod {explained['pod']}: {explained['result']}"
             + (f" -> {explained['node']}" if explained.get("node") else "")]
    if explained.get("message"):
        lines.append(f"  {explained['message']}")
    lines.append(f"  nodes: {explained['allNodes']} in all, {explained['evaluatedNodes']} evaluated, "
                 f"{explained['feasibleNodes']} feasible")
    plugins = sorted({p for n in explained["nodes"].values() for p in (n.get("scores") or {})})
    rows = [["NODE", "VERDICT", "REJECTED BY", "REASON", "TOTAL", *plugins]]
    order = sorted(explained["nodes"].items(), key=lambda kv: (-(kv[1].get("total") or -1), kv[0]))
    for name, node in order:
        scores = node.get("scores") or {}
        rows.append([
            name, node["outcome"], node.get("plugin", "") if node["outcome"] == "Rejected" else "",
            "; ".join(node.get("reasons") or []) if node["outcome"] == "Rejected" else "",
            str(node.get("total", "")), *[str(scores[p]["weighted"]) if p in scores else "" for p in plugins],
        ])
    lines.append(_table(rows))
    return "\n".join(lines)


@click.group("scheduler")
def scheduler_group() -> None:
    """The kubeplane scheduler's decisions, explained."""


@scheduler_group.command("explain")
@click.argument("pod", required=False)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--dry-run", is_flag=True, help="Explain a pod manifest that is not created yet (with -f).")
@click.option("-f", "--filename", type=click.File("r"), help="Pod manifest (YAML or JSON) for --dry-run.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def explain(pod: str | None, namespace: str, dry_run: bool, filename: Any, output: str) -> None:
    """Each node's filter verdict and each feasible node's scores, for POD (or -f FILE --dry-run)."""
    if dry_run != bool(filename) or bool(pod) == dry_run:
        raise click.UsageError("give a POD name, or --dry-run -f FILE")
    manifest = yaml.safe_load(filename) if filename else None

    async def go(kube: Kube) -> dict[str, Any]:
        target = manifest or await kube.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")
        target.setdefault("metadata", {}).setdefault("namespace", namespace)
        return explain_pod(target, await _snapshot(kube, target["metadata"].get("uid")))
    explained = _run(go)
    click.echo(json.dumps(explained, indent=2) if output == "json" else render(explained))


GROUPS = [scheduler_group]
