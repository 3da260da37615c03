"""No second leader (reliability issue, H3): a leader stopped past its Lease (SIGSTOP: a paused VM, a
stalled node) writes nothing once it wakes up, though its caches and queue hold work, because every
write passes the Lease's fence; it then notices the loss and exits. Its requests go through the fault
relay, which records every one, so "nothing" is counted, not sampled."""

from __future__ import annotations

import os
import signal
import time

from tests.faults.apirelay import ApiRelay
from tests.integration.conftest import ENV, KUBECONFIG, Operator, apply, kubectl, wait_for
from tests.watch import Watch

LEASE = "/apis/coordination.k8s.io/v1/namespaces/kubeplane-system/leases/kubeplane-controllers"


def replicaset(replicas: int) -> dict:
    return {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "ReplicaSet", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "registry.local/web:1"}]}}}}


def holder() -> str:
    return kubectl("get", "lease", "kubeplane-controllers", "-n", "kubeplane-system",
                   "-o", "jsonpath={.spec.holderIdentity}", check=False).stdout


def test_a_stopped_leader_writes_nothing_when_it_wakes(controllers: Operator, namespace: str) -> None:
    pods_path = f"/api/v1/namespaces/{namespace}/pods"
    controllers.stop()  # the session's operator releases the Lease
    with ApiRelay(KUBECONFIG) as relay, Watch(ENV, pods_path) as pods:
        old = Operator("controllers", env={"KUBECONFIG": str(relay.kubeconfig)}, log_name="test-controllers-old")
        new = Operator("controllers", log_name="test-controllers-new")
        try:
            old.start()
            apply(replicaset(2), namespace)
            wait_for(lambda: len(pods.current) == 2, what="the first leader creates two pods")
            first = holder()
            new.start()  # a standby
            assert old.process is not None
            # The old leader's pod watch delivers nothing more: when it wakes it will see the scale-up
            # below (its ReplicaSet watch flows) but not the pods the new leader creates for it, so it
            # has work to do: three creates, which its fence must refuse.
            pod_watch = relay.stall("GET", r"^/api/v1/pods$", query="watch=true")
            os.killpg(old.process.pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
            kubectl("scale", "replicasets.apps.kubeplane.dev", "web", "-n", namespace, "--replicas=5")
            wait_for(lambda: holder() not in ("", first), timeout=60, what="the standby taking the Lease")
            wait_for(lambda: len(pods.current) == 5, what="the new leader scales up")
            woke_at = time.monotonic()
            os.killpg(old.process.pid, signal.SIGCONT)
            wait_for(lambda: old.process is not None and old.process.poll() is not None, timeout=60,
                     what="the old leader exiting after it noticed the loss")
            writes = [s for s in relay.seen(since=woke_at) if s.method != "GET"]
            assert not writes, f"the old leader wrote after waking: {writes}"
            pod_watch.release()
            assert relay.seen("GET", LEASE, since=woke_at), "it did look at its Lease"
            assert woke_at - stopped_at > 4  # stopped past the 4 s test Lease
            assert len(pods.ever_added) == 5, "no pod created twice"
        finally:
            if old.process is not None and old.process.poll() is None:
                os.killpg(old.process.pid, signal.SIGCONT)
            old.kill()
            new.stop()
            controllers.start()
