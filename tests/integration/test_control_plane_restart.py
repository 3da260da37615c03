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
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.faults.apirelay import ApiRelay
from tests.integration.conftest import BIN, ENV, KUBECONFIG, Operator, apply, kubectl, kubectl_json, wait_for
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
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and \
            "zombie" not in Path(f"/proc/{pid}/status").read_text(errors="replace").lower():
        time.sleep(0.1)
    pid_file.unlink()


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
        supervising = threading.Event()
        restarts: list[float] = []

        def supervise() -> None:  # the kubelet's part: a container that exits is started again
            while supervising.is_set():
                if relayed.process is not None and relayed.process.poll() is not None:
                    restarts.append(time.monotonic())
                    relayed.start()
                time.sleep(0.2)
        supervisor = threading.Thread(target=supervise, daemon=True)
        try:
            relayed.start()
            supervising.set()
            supervisor.start()
            apply(replicaset(REPLICAS), namespace)
            creates.wait_held(1, timeout=120)  # the burst is under way
            for component in ("kube-apiserver", "etcd"):
                kill_component(component)
            assert not api_ready()
            creates.release()  # into a dead API server: they fail, none lands
            started = subprocess.run([str(BIN / "kwokctl"), "start", "cluster", "--name", CLUSTER, "--timeout", "2m"],
                                     env={**ENV, "PATH": f"{BIN}:{ENV.get('PATH', '')}"}, capture_output=True,
                                     text=True, timeout=180)
            assert started.returncode == 0, started.stderr
            wait_for(api_ready, timeout=120, what="the API server back")
            back = time.monotonic()

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
            print(f"converged {took:.1f}s after the API's return; operator restarts: {len(restarts)}")
        finally:
            supervising.clear()
            creates.release()
            relayed.stop()
            controllers.start()
            kubectl("delete", "replicasets.apps.kubeplane.dev", "web", "-n", namespace, "--wait=false",
                    check=False)
