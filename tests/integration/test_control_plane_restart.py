"""kube-apiserver and etcd restart in the middle of an operation (reliability issue: "API server restart and
etcd restart: every operator converges within 30 s of the API's return, nothing lost or duplicated").

The controllers operator talks to the API server through the API relay, which holds a kubeplane ReplicaSet's
pod creates after the first two: the scale-up is mid-burst by construction when etcd and kube-apiserver of
the embedded cluster are SIGKILLed. The held creates are then released into the dead API server (they fail
there, never land), and kwokctl starts the two again (it restarts the components whose process is gone).
The operator cannot renew its Lease while the API is gone, so it stops acting and exits, as
kube-controller-manager does; the test restarts it as the kubelet would its container (restartPolicy
Always). From the API's return, the ReplicaSet must have all its replicas within 30 s, restart
included, and the watch, which resumes across the outage, must have seen exactly that many pods ever
created: none lost, none duplicated.

The scheduler and the backup operator get the same outage, each mid-operation by construction (bindings
and the backup's list held at the relay): every pod bound once, the Backup honest (Completed and
verifying, or Failed with a reason), within the same 30 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.faults.apirelay import ApiRelay
from tests.integration.conftest import (
    BIN,
    ENV,
    KUBECONFIG,
    ROOT,
    Operator,
    Supervisor,
    apply,
    kubectl,
    kubectl_json,
    wait_dead,
)
from tests.kubectl import wait_for
from tests.watch import Watch

CLUSTER = os.environ.get("KUBEPLANE_CLUSTER", "kubeplane")
KWOK_HOME = Path(os.environ.get("KWOK_WORKDIR", str(Path.home() / ".kwok"))) / "clusters" / CLUSTER
REPLICAS = 12
CONVERGE = 30.0  # seconds from the API's return


def replicaset(replicas: int) -> dict[str, object]:
    return {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "ReplicaSet", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "registry.local/web:1"}]}}}}


def kill_component(name: str) -> None:
    """SIGKILL one control-plane process; its pid file goes too (kwokctl takes a zombie, which a container
    without an init may keep, for a running component and would not start it again)."""
    pid_file = KWOK_HOME / "pids" / f"{name}.pid"
    pid = int(pid_file.read_text().strip())
    os.kill(pid, signal.SIGKILL)
    wait_dead(pid)
    pid_file.unlink()


def restart_control_plane(while_down: Callable[[], None]) -> float:
    """SIGKILL kube-apiserver and etcd, call `while_down` (e.g. release held requests into the dead server),
    start both again; returns the monotonic time the API answers again."""
    for component in ("kube-apiserver", "etcd"):
        kill_component(component)
    assert not api_ready()
    while_down()
    started = subprocess.run([str(BIN / "kwokctl"), "start", "cluster", "--name", CLUSTER, "--timeout", "2m"],
                             env={**ENV, "PATH": f"{BIN}:{ENV.get('PATH', '')}"}, capture_output=True, text=True,
                             timeout=180)
    assert started.returncode == 0, started.stderr
    wait_for(api_ready, timeout=120, what="the API server back")
    return time.monotonic()


def api_ready() -> bool:
    result = subprocess.run([str(BIN / "kubectl"), "get", "--raw", "/readyz"], env=ENV, capture_output=True,
                            text=True, timeout=10)
    return result.returncode == 0


def test_etcd_and_api_server_restart_mid_scale_up(controllers: Operator, namespace: str) -> None:
    with ApiRelay(KUBECONFIG) as relay, Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
        controllers.stop()
        relayed = Operator("controllers", env={"KUBECONFIG": str(relay.kubeconfig)},
                           log_name="test-controllers-restart")
        creates = relay.hold("POST", f"^/api/v1/namespaces/{namespace}/pods$", after=2)
        try:
            with Supervisor({"controllers": relayed}) as supervisor:
                apply(replicaset(REPLICAS), namespace)
                creates.wait_held(1, timeout=120)  # the burst is under way
                back = restart_control_plane(creates.drain)  # answered by a dead API server: none lands

                def converged() -> bool:
                    rs = kubectl_json("get", "replicasets.apps.kubeplane.dev", "web", "-n", namespace)
                    return (rs.get("status") or {}).get("readyReplicas") == REPLICAS
                wait_for(converged, timeout=CONVERGE + 90, what=f"{REPLICAS} ready replicas after the restart")
                took = time.monotonic() - back
                pods.wait(lambda w: len(w.current) == REPLICAS, timeout=30, what="the watch caught up")
                assert len(pods.ever_added) == REPLICAS, f"{len(pods.ever_added)} pods ever created for {REPLICAS}"
                assert took <= CONVERGE, f"converged {took:.0f}s after the API's return (bound {CONVERGE:.0f}s)"
                failed = [s for s in relay.seen("POST", "/pods$") if s.status is None or s.status >= 500]
                assert failed, "no create was in flight when the API server died: the fault did not land"
                print(f"converged {took:.1f}s after the API's return; operator restarts: {dict(supervisor.restarts)}")
        finally:
            creates.release()
            controllers.start()
            kubectl("delete", "replicasets.apps.kubeplane.dev", "web", "-n", namespace, "--wait=false",
                    check=False)


def test_scheduler_and_backup_operator_converge_after_an_api_restart(controllers: Operator, namespace: str) -> None:
    """The other two operators, each mid-operation when the API dies: the scheduler with bindings in flight
    (held at the relay after the second), the backup operator listing the namespace's ConfigMaps (its list
    held). From the API's return, within 30 s: every pod bound, each bound once (its node never changes in
    the watch); the Backup finished honestly: Completed and verifying, or Failed saying why."""
    pods_total = 8
    for i in range(10):
        apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}},
              namespace)
    controllers.stop()  # it would lose its Lease with the API too, and nobody here restarts it
    with ApiRelay(KUBECONFIG) as relay, Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
        env = {"KUBECONFIG": str(relay.kubeconfig)}
        operators = {name: Operator(name, env=env, log_name=f"test-{name}-api-restart")
                     for name in ("scheduler", "backup")}
        bindings = relay.hold("POST", f"^/api/v1/namespaces/{namespace}/pods/[^/]+/binding$", after=2)
        lists = relay.hold("GET", f"^/api/v1/namespaces/{namespace}/configmaps$")
        backup = f"api-restart-{namespace}"
        try:
            with Supervisor(operators) as supervisor:
                for i in range(pods_total):
                    apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}"}, "spec": {
                        "schedulerName": "kubeplane-scheduler",
                        "containers": [{"name": "c", "image": "registry.local/app:1"}]}}, namespace)
                apply({"apiVersion": "backup.kubeplane.dev/v1alpha1", "kind": "Backup",
                       "metadata": {"name": backup, "namespace": "kubeplane-system"},
                       "spec": {"includedNamespaces": [namespace], "includedResources": ["configmaps"]}})
                bindings.wait_held(1, timeout=120)
                lists.wait_held(1, timeout=120)

                def release() -> None:  # answered by the dead API server, none lands after its return
                    bindings.drain()
                    lists.drain()
                back = restart_control_plane(release)

                def bound() -> bool:
                    current = pods.snapshot()
                    return len(current) == pods_total and all((p.get("spec") or {}).get("nodeName")
                                                              for p in current.values())

                def finished() -> dict[str, Any] | None:
                    status = kubectl_json("get", "backups.backup.kubeplane.dev", backup, "-n",
                                          "kubeplane-system").get("status") or {}
                    return status if status.get("phase") not in (None, "New", "InProgress") else None
                wait_for(bound, timeout=CONVERGE + 90, what=f"{pods_total} pods bound after the restart")
                status = wait_for(finished, timeout=CONVERGE + 90, what="the Backup finished after the restart")
                took = time.monotonic() - back
                nodes: dict[str, set[str]] = {}
                for _, pod in pods.events:
                    if (node := (pod.get("spec") or {}).get("nodeName")):
                        nodes.setdefault(pod["metadata"]["uid"], set()).add(node)
                assert all(len(n) == 1 for n in nodes.values()), f"a pod bound to two nodes: {nodes}"
                if status["phase"] == "Completed":
                    verified = subprocess.run([str(ROOT / ".venv/bin/kubeplane"), "backup", "verify", backup],
                                              env=ENV, capture_output=True, text=True, timeout=120)
                    assert verified.returncode == 0, verified.stderr
                else:
                    assert status["phase"] == "Failed" and status.get("failureReason"), status
                assert took <= CONVERGE, f"converged {took:.0f}s after the API's return (bound {CONVERGE:.0f}s)"
                print(f"converged {took:.1f}s after the API's return; backup {status['phase']} "
                      f"({status.get('failureReason', '')}); operator restarts: {dict(supervisor.restarts)}")
        finally:
            bindings.release()
            lists.release()
            controllers.start()
            kubectl("delete", "backups.backup.kubeplane.dev", backup, "-n", "kubeplane-system", "--wait=false",
                    check=False)
