"""Invariants counted from watches, not sampled: `Watch` records every event of a collection.

    with Watch(kubectl_env, "/api/v1/namespaces/ns/pods") as pods:
        ...                                  # do things
        pods.wait(lambda w: len(w.current) == 3, what="three pods")
    assert len(pods.ever_added) == 3         # every pod ever created, even one deleted a moment later

A thread runs `kubectl get --raw <path>?watch=true` and decodes its stream of events. When the server
ends the watch, it resumes from the last resourceVersion, so nothing is missed for the test's
duration. `ever_added` holds every object ever seen (by uid), `current` the live ones (by name),
`log` every (type, name, uid) in order, `events` every (type, object) in order (to replay states).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from tests.kubectl import BIN


class Watch:
    def __init__(self, env: Mapping[str, str], path: str) -> None:
        self.env = dict(env)
        self.path = path
        self.ever_added: dict[str, dict[str, Any]] = {}  # uid -> first version seen
        self.current: dict[str, dict[str, Any]] = {}  # name -> latest version
        self.log: list[tuple[str, str, str]] = []  # (type, name, uid)
        self.events: list[tuple[str, dict[str, Any]]] = []  # (type, object as of that event)
        self._version = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch {path}")

    def __enter__(self) -> Watch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(30):
            raise AssertionError(f"watch of {self.path} did not start")

    def stop(self) -> None:
        self._stop.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            query = "watch=true&allowWatchBookmarks=true&timeoutSeconds=600"
            if self._version:
                query += f"&resourceVersion={self._version}"
            separator = "&" if "?" in self.path else "?"
            self._process = subprocess.Popen(
                [str(BIN / "kubectl"), "get", "--raw", f"{self.path}{separator}{query}"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env,
            )
            assert self._process.stdout is not None
            self._started.set()
            for line in self._process.stdout:
                if line.strip():
                    self._apply(json.loads(line))
            self._process.wait()
            if not self._stop.is_set():
                time.sleep(0.2)

    def _apply(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        meta = obj.get("metadata") or {}
        if meta.get("resourceVersion"):
            self._version = meta["resourceVersion"]
        if kind in ("BOOKMARK", "ERROR"):
            if kind == "ERROR" and obj.get("code") == 410:
                self._version = ""  # compacted: start over (ADDED for what exists; ever_added keeps the rest)
            return
        name, uid = meta.get("name", ""), meta.get("uid", "")
        with self._lock:
            self.log.append((str(kind), name, uid))
            self.events.append((str(kind), obj))
            if kind == "DELETED":
                self.current.pop(name, None)
            else:
                self.current[name] = obj
                self.ever_added.setdefault(uid, obj)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.current)

    def wait(self, predicate: Callable[[Watch], Any], timeout: float = 90, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                result = predicate(self)
            if result:
                return result
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what or 'the watch'} on {self.path}")
