"""`kubeplane explain daemonset/NAME`: each node, whether the DaemonSet runs a pod there, and why not.

The decision is the controller's own (`daemonset.logic.decide`, NodeShouldRunDaemonPod); the reasons are
worded as the scheduler's filter plugins word them (NodeName, NodeAffinity, TaintToleration: the three
checks NodeShouldRunDaemonPod makes), with what did not match.
"""

from __future__ import annotations

import json
from typing import Any

import click

from operators.cli.backups import _run, _table
from operators.cli.rollout import DAEMONSET_NAMES
from operators.controllers.daemonset import logic
from operators.core.apis import DAEMONSETS, NODES, PODS
from operators.core.kube import Kube
from operators.core.owners import controller_uid
from operators.scheduler.plugins import node_affinity, node_name, taint_toleration


def reason(decision: logic.Decision, node: dict[str, Any], ds: dict[str, Any]) -> str:
    """Why no new pod goes to `node`, in the scheduler's words, with the detail that decided it."""
    pod_spec = logic.template_spec(ds)
    if decision.excluded == logic.NODE_NAME:
        return f"{node_name.ERR_REASON} ({pod_spec.get('nodeName')})"
    if decision.excluded == logic.NODE_SELECTOR:
        labels = node["metadata"].get("labels") or {}
        missing = [f"{k}={v}" for k, v in sorted((pod_spec.get("nodeSelector") or {}).items()) if labels.get(k) != v]
        return f"{node_affinity.ERR_REASON_POD} (nodeSelector {', '.join(missing)})"
    if decision.excluded == logic.NODE_AFFINITY:
        return f"{node_affinity.ERR_REASON_POD} (required node affinity)"
    if decision.excluded == logic.TAINTS and decision.taint is not None:
        t = decision.taint
        taint = f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
        stays = "; a pod already there may stay (not NoExecute)" if decision.stay else ""
        return f"{taint_toleration.ERR_REASON_UNTOLERATED} ({taint}){stays}"
    return ""


def explain_daemonset(ds: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> dict[str, Any]:
    uid = ds["metadata"]["uid"]
    owned = [p for p in pods if controller_uid(p) == uid and not p["metadata"].get("deletionTimestamp")]
    placed = logic.by_node(owned)
    entries: dict[str, Any] = {}
    decisions: dict[str, logic.Decision] = {}
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        decision = decisions[name] = logic.decide(node, ds)
        entries[name] = {"shouldRun": decision.run, "mayStay": decision.stay,
                         "pods": sorted(p["metadata"]["name"] for p in placed.get(name, [])),
                         "excludedBy": decision.excluded, "reason": reason(decision, node, ds)}
    return {"daemonSet": f"{ds['metadata']['namespace']}/{ds['metadata']['name']}", "nodes": entries,
            "excludedNodes": logic.excluded_nodes(decisions)}


def render(explained: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in explained["excludedNodes"].items() if v) or "none"
    lines = [f"DaemonSet {explained['daemonSet']}: {len(explained['nodes'])} nodes, excluded: {counts}"]
    rows = [["NODE", "RUNS", "POD", "REASON"]]
    for name, node in explained["nodes"].items():
        rows.append([name, "yes" if node["shouldRun"] else "no", ",".join(node["pods"]) or "-", node["reason"]])
    lines.append(_table(rows))
    return "\n".join(lines)


@click.command("explain")
@click.argument("resource")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def explain(resource: str, namespace: str, output: str) -> None:
    """For daemonset/NAME: each node, whether it runs the daemon pod, and why not."""
    kind, _, name = resource.partition("/")
    if not name or kind not in DAEMONSET_NAMES:
        raise click.BadParameter(f"{resource!r}: expected daemonset/NAME", param_hint="RESOURCE")

    async def go(kube: Kube) -> dict[str, Any]:
        ds = await kube.get(DAEMONSETS.path(namespace, name))
        nodes = await kube.list_all(NODES.path())
        pods = await kube.list_all(PODS.path(namespace))
        return explain_daemonset(ds, nodes, pods)
    explained = _run(go)
    click.echo(json.dumps(explained, indent=2) if output == "json" else render(explained))


GROUPS = [explain]
