"""Fuzzed specs (issue 16): every kubeplane kind's example manifest, mutated at random (seeded) in its spec,
is either refused by the API server at apply time with a message, or accepted; and the workload
controllers, given every accepted workload for real, keep running and keep reconciling.

A mutation replaces one spec field (at any depth) with a value of another type, a negative or huge
number, an empty or very long string, or null, or adds an unknown field. The seed is printed; a failure
names the kind, the path and the value, so it replays.
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.integration.conftest import ROOT, Operator, apply, kubectl, kubectl_json
from tests.kubectl import wait_for

SEED = int(os.environ.get("KUBEPLANE_FUZZ_SEED", "20261204"))
PER_KIND = 20
WORKLOADS = {"ReplicaSet", "Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob"}
ODD_VALUES: list[Any] = ["", "x" * 300, -1, -(2**31), 2**40, 0, True, None, [], {}, "??", 1.5, ["a"], {"a": 1}]


def examples() -> Iterator[dict[str, Any]]:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if doc and str(doc.get("apiVersion", "")).split("/")[0].endswith("kubeplane.dev"):
                yield doc


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into `value` (maps and lists), the containers included."""
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from leaves(inner, (*path, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from leaves(inner, (*path, i))


def mutate(manifest: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str]:
    body = copy.deepcopy(manifest)
    paths = [p for p in leaves(body["spec"]) if p]
    path = rng.choice(paths)
    parent = body["spec"]
    for step in path[:-1]:
        parent = parent[step]
    if rng.random() < 0.15 and isinstance(parent, dict):
        parent["kubeplaneFuzzUnknown"] = 1
        return body, f"spec.{'.'.join(map(str, path[:-1]))}+kubeplaneFuzzUnknown"
    value = rng.choice(ODD_VALUES)
    parent[path[-1]] = value
    return body, f"spec.{'.'.join(map(str, path))}={json.dumps(value)[:40]}"


def test_mutated_specs_are_refused_or_survived(controllers: Operator, namespace: str) -> None:
    rng = random.Random(SEED)
    print(f"fuzz seed {SEED} (KUBEPLANE_FUZZ_SEED)")
    accepted: list[tuple[dict[str, Any], str]] = []
    refused = 0
    silent: list[str] = []
    for example in examples():
        for i in range(PER_KIND):
            body, what = mutate(example, rng)
            body["metadata"] = {"name": f"fuzz-{example['kind'].lower()}-{i}"}
            result = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(body),
                             check=False)
            if result.returncode == 0:
                accepted.append((body, what))
                continue
            refused += 1
            if not result.stderr.strip():
                silent.append(f"{example['kind']} {what}")
    assert not silent, f"refused without a message: {silent}"
    print(f"{refused} refused, {len(accepted)} accepted")
    assert refused > 0 and accepted, "the mutations should produce both outcomes"

    # Every accepted workload for real: the controllers must survive them all.
    start = controllers.log.stat().st_size if controllers.log.exists() else 0
    # (Not the ones with a huge number: a valid replicas of 2^31-1 is a load test, not a fuzz case.)
    made = [b for b, what in accepted if b["kind"] in WORKLOADS and not any(
        str(n) in what for n in (2**40, 2**31 - 1, -(2**31)))]
    for body in made:
        apply(body, namespace, check=False)
    canary = {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "ReplicaSet", "metadata": {"name": "canary"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "fuzz-canary"}},
                       "template": {"metadata": {"labels": {"app": "fuzz-canary"}},
                                    "spec": {"containers": [{"name": "c", "image": "registry.local/canary:1"}]}}}}
    apply(canary, namespace)

    def canary_served() -> bool:
        pods = kubectl_json("-n", namespace, "get", "pods", "-l", "app=fuzz-canary")["items"]
        return len(pods) == 2

    wait_for(canary_served, timeout=90, what="the canary ReplicaSet's 2 pods (the controllers still reconcile)")
    assert controllers.process is not None and controllers.process.poll() is None, \
        f"the controllers operator exited; see {controllers.log}"
    controllers.wait_live()
    with controllers.log.open("rb") as log:
        log.seek(start)
        failures = log.read().decode(errors="replace").count("Traceback")
    print(f"{len(made)} accepted workloads created; {failures} sync failures logged meanwhile (retried)")
    kubectl("-n", namespace, "delete", "all", "--all", "--wait=false", check=False)
