"""How the HPA finds its target's scale subresource: by group and kind, as upstream's RESTMapper does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from operators.controllers.hpa.controller import HPAController, ScaleTargetError
from operators.core.kube import ApiError

SERVED = {
    "/apis/apps": {"preferredVersion": {"groupVersion": "apps/v1"}, "versions": [{"groupVersion": "apps/v1"}]},
    "/apis/apps/v1": {"resources": [{"name": "deployments", "kind": "Deployment"},
                                    {"name": "deployments/scale", "kind": "Scale"},
                                    {"name": "controllerrevisions", "kind": "ControllerRevision"}]},
    "/api/v1": {"resources": [{"name": "replicationcontrollers", "kind": "ReplicationController"},
                              {"name": "replicationcontrollers/scale", "kind": "Scale"}]},
}


class Kube:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def get(self, path: str, **_: Any) -> Any:
        self.calls.append(path)
        if path not in SERVED:
            raise ApiError(404, {"message": "the server could not find the requested resource"})
        return SERVED[path]


def controller() -> HPAController:
    hpa = object.__new__(HPAController)  # only discovery is exercised: no informers needed
    hpa.kube = Kube()  # type: ignore[assignment]
    hpa._discovery = {}
    return hpa


def path(ref: dict[str, str]) -> str:
    return asyncio.run(controller()._resource_path("shop", ref))


def test_an_unserved_version_of_a_served_group_finds_the_kind_at_the_preferred_version() -> None:
    # Upstream's HPA e2e tests name their Deployments apps/v1beta2 (long gone): RESTMappings(GroupKind).
    assert path({"apiVersion": "apps/v1beta2", "kind": "Deployment", "name": "web"}) == \
        "/apis/apps/v1/namespaces/shop/deployments/web/scale"
    assert path({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}) == \
        "/apis/apps/v1/namespaces/shop/deployments/web/scale"
    assert path({"apiVersion": "v1", "kind": "ReplicationController", "name": "rc"}) == \
        "/api/v1/namespaces/shop/replicationcontrollers/rc/scale"


def test_a_kind_no_version_serves_or_without_scale_is_refused_with_upstreams_words() -> None:
    with pytest.raises(ScaleTargetError, match=r'no matches for kind "Widget" in group "example\.com"'):
        path({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w"})
    with pytest.raises(ScaleTargetError, match="has no scale subresource"):
        path({"apiVersion": "apps/v1", "kind": "ControllerRevision", "name": "r"})
    assert asyncio.run(controller()._plural("apps/v1beta1", "Deployment")) == "deployments"
