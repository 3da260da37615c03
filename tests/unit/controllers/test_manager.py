"""The controller manager and registry: a second controller, defined only here, runs next to the
ReplicaSet with no change to the runtime (one client, one informer per resource, one Lease and
identity); no worker runs before every cache has listed and the process leads; losing the Lease
cancels the work at once; and once the Lease is not renewed in time, no write leaves the process."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s_client

from operators.controllers import caches
from operators.controllers.common.loop import Controller
from operators.controllers.manager import ControllerManager
from operators.controllers.registry import Registration, Registry, default_registry
from operators.core import apis, leader
from operators.core.apis import PODS, Resource
from operators.core.kube import Kube, NotLeading
from operators.core.leader import LeaderElector, LeaseTiming
from tests.unit.controllers.fakekube import FakeKube

CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", builtin=True)


class ConfigMapCounter(Controller):
    """A trivial controller: counts the ConfigMaps of each namespace it is told about, and also
    reads the shared pod informer (to prove informers are shared)."""

    name = "configmap-counter"
    workers = 1
    resync_seconds = None

    def __init__(self, manager: ControllerManager, resource: Resource, name: str, *, builtin: bool) -> None:
        super().__init__(name)
        self.configmaps = manager.informers.informer(resource)
        self.pods = manager.informers.informer(PODS)
        self.configmaps.add_handler(lambda kind, obj, old: self.queue.add(obj["metadata"]["namespace"]))
        self.counted: Counter[str] = Counter()

    def keys(self) -> list[str]:
        return []

    async def sync(self, key: str) -> float | None:
        self.counted[key] = len(self.configmaps.by_index(caches.NAMESPACE, key))
        return None


def registry_with_a_second_controller() -> Registry:
    registry = default_registry()
    registry.register(Registration("configmap-counter", ConfigMapCounter, CONFIGMAPS))
    return registry


def world() -> tuple[FakeKube, ControllerManager]:
    kube = FakeKube()
    kube.put(apis.REPLICASETS.path("ns"), {
        "metadata": {"name": "web", "namespace": "ns", "uid": "rs-uid", "generation": 1},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}}})
    kube.put(CONFIGMAPS.path("ns"), {"metadata": {"name": "a", "namespace": "ns"}})
    kube.put(CONFIGMAPS.path("ns"), {"metadata": {"name": "b", "namespace": "ns"}})
    manager = ControllerManager(kube, elect=False)  # type: ignore[arg-type]
    manager.build(registry_with_a_second_controller().builders("replicaset,configmap-counter"))
    return kube, manager


async def until(predicate: Any, what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_a_second_controller_runs_beside_the_replicaset_without_runtime_changes() -> None:
    kube, manager = world()
    assert set(manager.controllers) == {"replicaset", "configmap-counter"}
    informers = {i.name for i in manager.informers}
    assert informers == {"replicasets.apps.kubeplane.dev", "pods", "configmaps"}  # pods once, shared
    manager.start()
    try:
        counter = manager.controllers["configmap-counter"]
        assert isinstance(counter, ConfigMapCounter)
        await until(lambda: counter.counted["ns"] == 2, "the ConfigMaps counted")
        await until(lambda: len(kube.writes("POST", r"/pods$")) == 2, "the ReplicaSet's pods created")
        assert counter.pods is manager.controllers["replicaset"].pods  # type: ignore[attr-defined]
    finally:
        await manager.stop()


async def test_no_worker_before_every_cache_has_listed() -> None:
    kube, manager = world()
    listed = asyncio.Event()
    original = kube.list_versioned

    async def slow_pods(path: str, **kwargs: Any) -> Any:
        if path == PODS.path():
            await listed.wait()
        return await original(path, **kwargs)

    kube.list_versioned = slow_pods  # type: ignore[method-assign]
    manager.start()
    try:
        await asyncio.sleep(0.2)
        assert not manager.acting or not manager.informers.synced
        assert kube.writes() == [], "nothing written while the pod cache is not listed"
        listed.set()
        await until(lambda: len(kube.writes("POST", r"/pods$")) == 2, "the pods created once synced")
    finally:
        await manager.stop()


async def test_nothing_runs_before_leading_and_a_lost_lease_cancels_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    kube, manager = world()
    exits: list[bool] = []
    monkeypatch.setattr(leader, "exit_process", lambda: exits.append(True))
    monkeypatch.setattr(leader, "campaign", lambda elector: [])  # leadership is set by hand below
    elector = LeaderElector(kube, "kubeplane-system", "kubeplane-controllers",  # type: ignore[arg-type]
                            on_lost=manager._lost, timing=LeaseTiming(15, 10, 2))
    manager.elector = elector
    manager.start()
    try:
        await until(lambda: manager.informers.synced, "caches synced")
        await asyncio.sleep(0.1)
        assert kube.writes("POST", r"/pods$") == [], "a standby creates nothing"
        elector.leading.set()
        elector._last_renew = time.monotonic()
        await until(lambda: len(kube.writes("POST", r"/pods$")) == 2, "the leader acts")
        assert manager.acting
        manager._lost()  # what the elector calls when renewals fail past the deadline
        await asyncio.sleep(0)
        await until(lambda: not manager.acting, "the acting task cancelled")
        assert exits == [True]
    finally:
        await manager.stop()


def test_one_candidate_identity_per_process() -> None:
    assert leader.identity() == leader.identity()


async def test_the_fence_refuses_writes_once_renewal_is_overdue() -> None:
    configuration = k8s_client.Configuration()
    configuration.host = "https://127.0.0.1:1"  # never reached: the fence refuses first
    kube = Kube(k8s_client.ApiClient(configuration))
    try:
        elector = LeaderElector(kube, "ns", "lease", on_lost=lambda: None, timing=LeaseTiming(15, 10, 2))
        leader.install_fence(kube, elector)
        with pytest.raises(NotLeading):  # not leading at all
            await kube.patch("/api/v1/namespaces/ns/pods/p", {})
        elector.leading.set()
        elector._last_renew = time.monotonic() - 11  # the last renewal is older than the renew deadline
        assert not elector.holds()
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            with pytest.raises(NotLeading):
                await kube.request(method, "/api/v1/namespaces/ns/pods/p", body={})
        elector._last_renew = time.monotonic()
        assert elector.holds()
    finally:
        await kube.close()


def test_registry_selects_like_kube_controller_managers_flag() -> None:
    registry = registry_with_a_second_controller()
    names = lambda spec: [r.name for r in registry.select(spec)]  # noqa: E731
    assert names("*") == ["replicaset", "replicationcontroller", "deployment", "daemonset", "statefulset", "job",
                          "cronjob", "horizontal-pod-autoscaler", "configmap-counter"]
    assert names("*,-replicaset") == ["replicationcontroller", "deployment", "daemonset", "statefulset", "job",
                                      "cronjob", "horizontal-pod-autoscaler", "configmap-counter"]
    assert names("configmap-counter") == ["configmap-counter"]
    with pytest.raises(ValueError, match="unknown controller"):
        registry.select("deployments")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Registration("replicaset", ConfigMapCounter, CONFIGMAPS))
    # Drop-in mode adds the built-in flavour of each controller that has one.
    assert len(registry.builders("replicaset")) == 1
    assert len(registry.builders("replicaset", drop_in=True)) == 2
    assert registry.replaced("*") == ["replicaset-controller", "replicationcontroller-controller",
                                      "deployment-controller", "daemonset-controller", "statefulset-controller",
                                      "job-controller", "cronjob-controller", "horizontal-pod-autoscaler-controller"]


async def test_serves_reads_discovery() -> None:
    from operators.controllers.manager import ControllerManager
    from operators.core.apis import JOBS, PODS
    from tests.unit.controllers.fakekube import FakeKube

    kube = FakeKube()
    kube.objects["/apis/batch.kubeplane.dev/v1alpha1"] = {"resources": [{"name": "jobs"}, {"name": "jobs/status"}]}
    kube.objects["/api/v1"] = {"resources": [{"name": "pods"}]}
    manager = ControllerManager(kube, elect=False)  # type: ignore[arg-type]
    assert await manager.serves(JOBS) and await manager.serves(PODS)
    del kube.objects["/apis/batch.kubeplane.dev/v1alpha1"]
    assert not await manager.serves(JOBS), "a group not served (404) is not served"


def test_a_registration_without_its_crd_keeps_its_drop_in_kind() -> None:
    from operators.controllers.registry import default_registry

    replicaset = default_registry().entries["replicaset"]
    assert len(replicaset.builders(True, own=False)) == 1
    assert replicaset.builders(False, own=False) == []
