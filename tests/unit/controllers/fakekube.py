"""A scripted stand-in for `operators.core.kube.Kube`, for unit tests of the controller layer.

It keeps objects by collection path, answers list/get/create/patch/delete the way the API server
would for what the controllers send, records every call, and fails on demand: `fail("POST", "/pods",
error, times)` makes the next matching calls raise `error` (an ApiError, or any exception: a reset
connection, a timeout). Watches stay open and silent: tests move state into the informers with
`relist()`, which replays differences as events through the real informer code.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from operators.core.kube import ApiError


@dataclass
class Call:
    method: str
    path: str
    body: Any = None
    content_type: str = ""


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    error: BaseException | Callable[[], BaseException]
    times: int
    after: int = 0  # matching calls to let through first


@dataclass
class FakeKube:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # object path -> object
    calls: list[Call] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    fence: Callable[[], None] | None = None
    limiter: Any = None
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def child(self) -> FakeKube:
        """Kube.child: here the same fake (one store, one record of calls)."""
        return self

    # --- scripting ---------------------------------------------------------------------------------

    def put(self, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object under a namespaced collection path (".../namespaces/ns/pods")."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("resourceVersion", str(next(self._counter)))
        self.objects[f"{collection}/{meta['name']}"] = obj
        return obj

    def fail(self, method: str, pattern: str, error: BaseException | Callable[[], BaseException],
             times: int = 1, after: int = 0) -> None:
        """The next `times` calls matching METHOD and the path regex, after `after` of them, raise `error`."""
        self.faults.append(_Fault(method, re.compile(pattern), error, times, after))

    def writes(self, method: str | None = None, pattern: str = "") -> list[Call]:
        return [c for c in self.calls if c.method != "GET" and (method is None or c.method == method)
                and re.search(pattern, c.path)]

    def _fault(self, method: str, path: str) -> None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.pattern.search(path):
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                error = fault.error() if callable(fault.error) and not isinstance(fault.error, BaseException) \
                    else fault.error
                assert isinstance(error, BaseException)
                raise error

    # --- the Kube surface ----------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, body: Any = None, params: Any = None,
                      content_type: str = "application/json", fenced: bool = True) -> dict[str, Any]:
        if fenced and method != "GET" and self.fence is not None:
            self.fence()
        self.calls.append(Call(method, path, body, content_type))
        await asyncio.sleep(0)
        self._fault(method, path)
        if method == "GET":
            if path not in self.objects:
                raise ApiError(404, {"reason": "NotFound", "message": f"{path} not found"})
            return self.objects[path]
        if method == "POST":
            meta = dict(body.get("metadata") or {})
            if not meta.get("name"):
                meta["name"] = f"{meta.get('generateName', 'obj-')}{uuid.uuid4().hex[:5]}"
            if f"{path}/{meta['name']}" in self.objects:
                raise ApiError(409, {"reason": "AlreadyExists", "message": f"{meta['name']} already exists"})
            return self.put(path, {**body, "metadata": meta})
        if method == "DELETE":
            if path not in self.objects:
                raise ApiError(404, {"reason": "NotFound", "message": f"{path} not found"})
            return self.objects.pop(path)
        if method == "PATCH":
            target = path.removesuffix("/status")
            if target not in self.objects:
                raise ApiError(404, {"reason": "NotFound", "message": f"{path} not found"})
            if path.endswith("/status") and isinstance(body, dict):
                # As the API server: a resourceVersion in the patch is a precondition; a write bumps it.
                guard = (body.get("metadata") or {}).get("resourceVersion")
                if guard is not None and guard != self.objects[target]["metadata"].get("resourceVersion"):
                    raise ApiError(409, {"reason": "Conflict", "message": "the object has been modified"})
                self.objects[target]["metadata"]["resourceVersion"] = str(next(self._counter))
                status = copy.deepcopy(self.objects[target].get("status") or {})
                _merge(status, body.get("status") or {})  # RFC 7386, nested maps too, as the API server
                self.objects[target]["status"] = status
            elif content_type == "application/json-patch+json" and isinstance(body, list):
                # A JSON patch: `test` and `remove` ops on /metadata/finalizers/N (a failed test is a 422).
                current = self.objects[target]
                for op in body:
                    parts = op["path"].strip("/").split("/")
                    node: Any = current
                    for part in parts[:-1]:
                        node = node[int(part)] if isinstance(node, list) else node.get(part)
                        if node is None:
                            raise ApiError(422, {"reason": "Invalid", "message": f"no {op['path']}"})
                    last = int(parts[-1]) if isinstance(node, list) else parts[-1]
                    if op["op"] == "test":
                        value = node[last] if isinstance(node, list) and last < len(node) else \
                            node.get(last) if isinstance(node, dict) else None
                        if value != op["value"]:
                            raise ApiError(422, {"reason": "Invalid", "message": f"test of {op['path']} failed"})
                    elif op["op"] == "remove":
                        del node[last]
                current["metadata"]["resourceVersion"] = str(next(self._counter))
            elif content_type == "application/merge-patch+json" and isinstance(body, dict):
                # A merge patch: a resourceVersion in it is a precondition (409 when it changed), and
                # every applied patch gives the object a new resourceVersion.
                current = self.objects[target]
                guard = (body.get("metadata") or {}).get("resourceVersion")
                if guard is not None and guard != current["metadata"].get("resourceVersion"):
                    raise ApiError(409, {"reason": "Conflict", "message": "the object has been modified"})
                _merge(current, {**body, "metadata": {k: v for k, v in (body.get("metadata") or {}).items()
                                                      if k != "resourceVersion"}})
                current["metadata"]["resourceVersion"] = str(next(self._counter))
            return self.objects[target]
        return {}

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        return await self.request("GET", path)

    async def create(self, path: str, body: Any) -> dict[str, Any]:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Any, *, content_type: str = "application/merge-patch+json") -> Any:
        return await self.request("PATCH", path, body=body, content_type=content_type)

    async def delete(self, path: str, body: Any = None) -> dict[str, Any]:
        return await self.request("DELETE", path, body=body)

    async def list_versioned(self, path: str, *, limit: int = 500, **params: Any) -> tuple[list[dict[str, Any]], str]:
        """A collection across namespaces: /api/v1/pods holds /api/v1/namespaces/*/pods/*."""
        prefix, _, plural = path.rpartition("/")
        items = [obj for key, obj in self.objects.items()
                 if key.startswith(prefix + "/") and key.rsplit("/", 2)[-2] == plural]
        return [dict(o) for o in items], str(next(self._counter))

    async def watch(self, path: str, *, read_timeout: float, **params: Any) -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()
        yield {}  # pragma: no cover

    async def close(self) -> None:
        pass


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


class ControllerWorld:
    """One registered controller under a real ControllerManager on a FakeKube: `objects` are
    (collection path, object) pairs stored first; `observe()` lets the informers catch up (the real
    list-and-replay code); `sync()` runs the controller on `namespace/name`; `events(reason)` are the
    messages of the Events it queued."""

    def __init__(self, controller: str, objects: list[tuple[str, dict[str, Any]]], key: str) -> None:
        from operators.controllers.manager import ControllerManager
        from operators.controllers.registry import default_registry

        self.kube = FakeKube()
        for collection, obj in objects:
            self.kube.put(collection, obj)
        self.manager = ControllerManager(self.kube, elect=False)  # type: ignore[arg-type]
        self.manager.build(default_registry().builders(controller))
        self.controller: Any = self.manager.controllers[controller]
        self.key = key

    async def observe(self) -> None:
        for informer in self.manager.informers:
            await informer.relist()

    async def sync(self) -> float | None:
        result: float | None = await self.controller.sync(self.key)
        return result

    def events(self, reason: str) -> list[str]:
        queue = self.controller.events._queue
        return [e["message"] for e in list(queue._queue) if e["reason"] == reason]
