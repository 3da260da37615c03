"""The soak's run: set-up, the seeded loop of operations and faults, convergence, the checks."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.faults.apirelay import ApiRelay, Gate, Rule
from tests.integration.conftest import (
    ENV,
    KUBECONFIG,
    ROOT,
    STATE,
    Operator,
    Supervisor,
    apply,
    kubectl,
    kubectl_json,
    wait_dead,
)
from tests.kubectl import wait_for
from tests.soak import invariants
from tests.watch import Watch

SYSTEM = "kubeplane-system"
BACKUPS = "/apis/backup.kubeplane.dev/v1alpha1/namespaces/kubeplane-system/backups"
RESTORES = "/apis/backup.kubeplane.dev/v1alpha1/namespaces/kubeplane-system/restores"
OPERATORS = ("controllers", "scheduler", "backup")
NODES, NODE_CPU = 3, 2000  # milli-CPU each: room for 24 of the soak's pods
POD_CPU = 250
REPLICASETS, MAX_REPLICAS = 3, 10  # up to 30 pods wanted: more than fit, so some wait for room
CONFIGMAPS = 20
MIN_STEPS = 40  # operations and faults a run takes at least, however long they take
FINAL_REPLICAS = 4  # each ReplicaSet at the end: 12 pods, all of which fit
DONE = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")

# API faults at the relay: (name, method, path regex, action, arguments).
API_FAULTS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("pod create 500", "POST", r"/pods$", "fail", {"status": 500, "times": 2}),
    ("pod create reset", "POST", r"/pods$", "reset", {"times": 1}),
    ("binding reset", "POST", r"/pods/[^/]+/binding$", "reset", {"times": 1}),
    ("binding 500", "POST", r"/pods/[^/]+/binding$", "fail", {"status": 500, "times": 2}),
    ("status write 500", "PATCH", r"/status$", "fail", {"status": 500, "times": 2}),
    ("status write 409", "PUT", r"/status$", "fail", {"status": 409, "times": 1}),
    ("lease renew 500", "PUT", r"/leases/", "fail", {"status": 500, "times": 2}),
    ("list 429", "GET", r"", "fail", {"status": 429, "times": 3, "retry_after": 1}),
    ("restore create reset", "POST", r"/configmaps$", "reset", {"times": 1}),
    ("backup patch 503", "PATCH", r"/(backups|restores)/", "fail", {"status": 503, "times": 1, "retry_after": 1}),
]


@dataclass
class Report:
    seed: int
    seconds: float
    faults: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    violations: list[invariants.Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"soak: {sum(self.faults.values())} faults, {sum(self.operations.values())} operations, "
                f"{len(self.violations)} violations")


def restart_minio() -> bool:
    """SIGKILL the embedded MinIO and start it again, the same command in the same environment (its pid
    file updated, so `make down` still finds it)."""
    pid_file = STATE / "run" / "minio.pid"
    pid = int(pid_file.read_text().strip())
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return False
    argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
    environ = dict(e.decode().split("=", 1) for e in (proc / "environ").read_bytes().split(b"\0") if b"=" in e)
    cwd = os.readlink(proc / "cwd")
    os.killpg(pid, signal.SIGKILL)
    if not wait_dead(pid):
        raise RuntimeError(f"MinIO (pid {pid}) did not exit after SIGKILL")
    with (STATE / "logs" / "minio.log").open("ab") as log:
        log.write(f"=== soak: restarting {' '.join(argv)}\n".encode())
        log.flush()
        started = subprocess.Popen(argv, env=environ, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(f"{started.pid}\n")
    endpoint = dict(line.split("=", 1) for line in (STATE / "minio.env").read_text().splitlines() if "=" in line)
    ready = f"{endpoint.get('MINIO_ENDPOINT', 'http://127.0.0.1:19000')}/minio/health/ready"

    def serving() -> bool:
        return subprocess.run(["curl", "-fsS", "--noproxy", "*", "-m", "2", ready], capture_output=True).returncode == 0
    wait_for(serving, timeout=60, what="MinIO serving again")
    return True


def replicaset(name: str, tag: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name, "soak": tag}
    return {
        "apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "ReplicaSet", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"schedulerName": "kubeplane-scheduler", "nodeSelector": {"kubeplane-soak": tag},
                     "tolerations": [{"key": "kubeplane-soak", "operator": "Equal", "value": tag,
                                      "effect": "NoSchedule"}],
                     "containers": [{"name": "app", "image": "registry.local/soak:1",
                                     "resources": {"requests": {"cpu": f"{POD_CPU}m", "memory": "32Mi"}}}]}}},
    }


@contextmanager
def soak_objects(tag: str) -> Iterator[tuple[str, str, list[str]]]:
    """The soak's namespaces (workloads; ConfigMaps to back up), its tainted KWOK nodes; all deleted after."""
    namespace, data = tag, f"{tag}-data"
    nodes = [f"{tag}-n{i}" for i in range(NODES)]
    kubectl("create", "namespace", namespace)
    kubectl("create", "namespace", data)
    try:
        for node in nodes:
            resources = {"cpu": f"{NODE_CPU}m", "memory": "64Gi", "pods": "110"}
            apply({"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": node, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": node, "kubeplane-soak": tag}},
                "spec": {"taints": [{"key": "kubeplane-soak", "value": tag, "effect": "NoSchedule"}]},
                "status": {"allocatable": resources, "capacity": resources}})
        items = [{"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": f"cm-{i}", "labels": {"app": "soak-data"}},
                  "data": {"index": str(i), "payload": uuid.uuid4().hex * 8}} for i in range(CONFIGMAPS)]
        apply({"apiVersion": "v1", "kind": "List", "items": items}, data)
        yield namespace, data, nodes
    finally:
        kubectl("delete", "namespace", namespace, data, "--wait=false", check=False)
        kubectl("delete", "node", *nodes, "--wait=false", check=False)


def run(seconds: float, seed: int, say: Callable[[str], None] = print) -> Report:
    rng = random.Random(seed)
    report = Report(seed=seed, seconds=seconds)
    tag = f"soak-{uuid.uuid4().hex[:6]}"
    say(f"soak: seed {seed}, {seconds:.0f}s of faults, objects named {tag}-*")
    desired: dict[str, list[int]] = {f"rs-{i}": [] for i in range(REPLICASETS)}
    backups: list[str] = []
    restores: dict[str, str] = {}  # restore -> target namespace
    rules: list[tuple[str, Rule]] = []
    stalls: list[Gate] = []
    with soak_objects(tag) as (namespace, data, nodes), \
            Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods, \
            Watch(ENV, BACKUPS) as backup_watch, Watch(ENV, RESTORES) as restore_watch, \
            ApiRelay(KUBECONFIG) as relay:
        env = {"KUBECONFIG": str(relay.kubeconfig), "KUBEPLANE_GC_SECONDS": "2", "KUBEPLANE_SYNC_SECONDS": "5"}
        operators = {name: Operator(name, env=env, log_name=f"soak-{name}") for name in OPERATORS}
        with Supervisor(operators) as supervisor:
            for name in desired:
                replicas = rng.randint(0, MAX_REPLICAS)
                desired[name].append(replicas)
                apply(replicaset(name, tag, replicas), namespace)
                report.operations["scale"] += 1

            def scale() -> None:
                name = rng.choice(sorted(desired))
                replicas = rng.randint(0, MAX_REPLICAS)
                kubectl("patch", "replicasets.apps.kubeplane.dev", name, "-n", namespace, "--type=merge",
                        "-p", json.dumps({"spec": {"replicas": replicas}}))
                desired[name].append(replicas)
                report.operations["scale"] += 1

            def phase(watch: Watch, name: str) -> str | None:
                obj = watch.snapshot().get(name) or {}
                return (obj.get("status") or {}).get("phase")

            def backup() -> None:
                if sum(phase(backup_watch, b) not in DONE for b in backups) >= 2:
                    return scale()
                name = f"{tag}-b{len(backups)}"
                apply({"apiVersion": "backup.kubeplane.dev/v1alpha1", "kind": "Backup",
                       "metadata": {"name": name, "namespace": SYSTEM},
                       "spec": {"includedNamespaces": [data], "includedResources": ["configmaps"],
                                "labelSelector": {"matchLabels": {"app": "soak-data"}}}})
                backups.append(name)
                report.operations["backup"] += 1

            def restore() -> None:
                complete = [b for b in backups if phase(backup_watch, b) == "Completed"]
                if not complete or sum(phase(restore_watch, r) not in DONE for r in restores) >= 2:
                    return scale()
                name = f"{tag}-r{len(restores)}"
                target = f"{tag}-r{len(restores)}"
                apply({"apiVersion": "backup.kubeplane.dev/v1alpha1", "kind": "Restore",
                       "metadata": {"name": name, "namespace": SYSTEM},
                       "spec": {"backupName": rng.choice(complete), "namespaceMapping": {data: target}}})
                restores[name] = target
                report.operations["restore"] += 1

            def kill() -> None:
                name = rng.choice(OPERATORS)
                if supervisor.kill(name):
                    report.faults[f"SIGKILL {name}"] += 1

            def api_fault(chosen: tuple[str, str, str, str, dict[str, Any]] | None = None) -> None:
                label, method, pattern, action, kw = chosen or rng.choice(API_FAULTS)
                rule = relay.fail(method, pattern, **kw) if action == "fail" else relay.reset(method, pattern, **kw)
                rules.append((label, rule))

            def stall() -> None:  # pod watches deliver nothing for a while: every cache of pods falls behind
                gate = relay.stall("GET", r"/pods$", query="watch=true")
                seconds = rng.uniform(2, 6)
                threading.Timer(seconds, gate.release).start()
                stalls.append(gate)

            def minio() -> None:
                if restart_minio():
                    report.faults["MinIO restart"] += 1

            operations = [(scale, 4), (backup, 2), (restore, 2)]
            faults = [(kill, 3), (api_fault, 4), (stall, 2), (minio, 1)]
            # One fault of each family first (a pod create refused: the scales below make pods), then drawn.
            # Steps, not seconds, decide when a fault comes, and a run takes at least MIN_STEPS of them: the
            # seed fixes the sequence of choices, however fast or busy the machine is.
            opening: list[Callable[[], None]] = [kill, lambda: api_fault(API_FAULTS[0]), stall, minio]
            deadline = time.monotonic() + seconds
            step, next_fault = 0, rng.randint(2, 6)
            last_progress = time.monotonic()
            while time.monotonic() < deadline or step < MIN_STEPS:
                step += 1
                if step >= next_fault:
                    if opening:
                        opening.pop(0)()
                    else:
                        rng.choices([f for f, _ in faults], weights=[w for _, w in faults])[0]()
                    next_fault = step + rng.randint(2, 6)
                else:
                    rng.choices([o for o, _ in operations], weights=[w for _, w in operations])[0]()
                time.sleep(rng.uniform(0.3, 1.5))
                if time.monotonic() - last_progress >= 30 and (deadline - time.monotonic() > 5 or step < MIN_STEPS):
                    last_progress = time.monotonic()
                    left = max(0.0, deadline - time.monotonic())
                    say(f"soak: step {step}, {left:.0f}s left; faults {dict(report.faults)}; "
                        f"operations {dict(report.operations)}")

            # Faults stop; rules that never matched a request did not land and are not counted.
            relay.clear()
            for label, rule in rules:
                if rule.matched - rule.after >= 1:
                    report.faults[f"API {label}"] += 1
            report.faults["API pod watches stalled"] += sum(1 for gate in stalls if gate.total)
            for name in desired:
                kubectl("patch", "replicasets.apps.kubeplane.dev", name, "-n", namespace, "--type=merge",
                        "-p", json.dumps({"spec": {"replicas": FINAL_REPLICAS}}))
                desired[name].append(FINAL_REPLICAS)
                report.operations["scale"] += 1
            say("soak: faults stopped; waiting for everything to converge")
            converge(report, namespace, desired, backup_watch, restore_watch, backups, restores)
            report.notes.append(f"operator restarts: {dict(supervisor.restarts)}")
            check(report, pods, backup_watch, restore_watch, desired, nodes, data, backups, restores)
            cleanup(backups, restores)  # while the backup operator runs: its finalizer deletes the files
    return report


def converge(report: Report, namespace: str, desired: dict[str, list[int]], backup_watch: Watch,
             restore_watch: Watch, backups: list[str], restores: dict[str, str]) -> None:
    def replicasets_settled() -> bool:
        for name, history in desired.items():
            status = kubectl_json("get", "replicasets.apps.kubeplane.dev", name, "-n", namespace).get("status") or {}
            if status.get("readyReplicas", 0) != history[-1] or status.get("replicas", 0) != history[-1]:
                return False
        return True

    def finished() -> bool:
        return all(((b.snapshot().get(n) or {}).get("status") or {}).get("phase") in DONE
                   for b, names in ((backup_watch, backups), (restore_watch, list(restores))) for n in names)
    for what, predicate in (("every ReplicaSet at its replicas, all ready", replicasets_settled),
                            ("every Backup and Restore finished", finished)):
        try:
            wait_for(predicate, timeout=180, interval=1, what=what)
        except AssertionError as error:
            report.violations.append(invariants.Violation("did not converge", str(error)))


def check(report: Report, pods: Watch, backup_watch: Watch, restore_watch: Watch, desired: dict[str, list[int]],
          nodes: list[str], data: str, backups: list[str], restores: dict[str, str]) -> None:
    allowed = {name: invariants.creations_allowed(history) for name, history in desired.items()}
    report.violations += invariants.pod_violations(list(pods.events), allowed, dict.fromkeys(nodes, NODE_CPU))
    # Only the soak's own Backups and Restores: other ones in the namespace (other tests', synced ones) are
    # not what this run did.
    backup_events = [(e, o) for e, o in list(backup_watch.events) if o.get("metadata", {}).get("name") in backups]
    restore_events = [(e, o) for e, o in list(restore_watch.events) if o.get("metadata", {}).get("name") in restores]
    report.violations += invariants.phase_violations("Backup", backup_events)
    report.violations += invariants.phase_violations("Restore", restore_events)
    report.notes.append(f"pods ever created: {len(pods.ever_added)} (allowed by the scale requests: "
                        f"{sum(allowed.values())})")
    outcomes = Counter(((backup_watch.snapshot().get(b) or {}).get("status") or {}).get("phase") for b in backups)
    report.notes.append(f"backups: {dict(outcomes)}")
    expected = {cm["metadata"]["name"]: cm.get("data") for cm in
                kubectl_json("get", "configmaps", "-n", data, "-l", "app=soak-data")["items"]}
    for name in invariants.ever_completed(backup_events):
        verified = subprocess.run([str(ROOT / ".venv/bin/kubeplane"), "backup", "verify", name], env=ENV,
                                  capture_output=True, text=True, timeout=180)
        if verified.returncode != 0:
            report.violations.append(invariants.Violation(
                "Completed backup does not verify", f"{name}: {verified.stderr.strip() or verified.stdout.strip()}"))
    outcomes = Counter(((restore_watch.snapshot().get(r) or {}).get("status") or {}).get("phase") for r in restores)
    report.notes.append(f"restores: {dict(outcomes)}")
    for name in invariants.ever_completed(restore_events):
        target = restores[name]
        found = {cm["metadata"]["name"]: cm.get("data") for cm in
                 kubectl_json("get", "configmaps", "-n", target, "-l", "app=soak-data")["items"]}
        missing = sorted(set(expected) - set(found))
        different = sorted(n for n in expected if n in found and found[n] != expected[n])
        if missing or different:
            report.violations.append(invariants.Violation(
                "Completed restore with items missing",
                f"{name} into {target}: missing {missing[:5]} ({len(missing)}), different {different[:5]}"))


def cleanup(backups: list[str], restores: dict[str, str]) -> None:
    if restores:
        kubectl("delete", "restores.backup.kubeplane.dev", "-n", SYSTEM, *restores, "--wait=false", check=False)
        kubectl("delete", "namespace", *restores.values(), "--wait=false", check=False)
    if backups:  # their files go too (the finalizer), so the bucket does not grow run after run
        kubectl("delete", "backups.backup.kubeplane.dev", "-n", SYSTEM, *backups, "--timeout=90s", check=False,
                timeout=120)
