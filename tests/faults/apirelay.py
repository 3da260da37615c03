"""A fault-injecting relay in front of kube-apiserver, so a fault lands where a test wants it.

    with ApiRelay(upstream_kubeconfig) as relay:      # a thread serving http://127.0.0.1:<port>
        operator = Operator("controllers", env={"KUBECONFIG": str(relay.kubeconfig)})
        gate = relay.hold("POST", r"/pods$", after=10)   # the 11th pod create and all later ones wait
        ...                                              # the test kills the operator while they wait
        gate.release()                                   # held requests go on to the API server
        gate.drain()                                     # ... and have all been answered on return
        relay.fail("PATCH", r"/status$", status=500, times=1)  # the next status write gets a 500
        relay.fail("GET", r"/leases/", status=429, retry_after=1)
        relay.reset("POST", r"/bindings$", times=2)      # connections dropped without an answer
        relay.blackhole("PUT", r"/leases/")              # requests that are never answered
        gate = relay.stall("GET", r"/pods$", query="watch=true")  # open pod watches deliver nothing more

The operator talks plain HTTP to the relay (its kubeconfig has no credentials); the relay forwards
every request to the real API server with the admin credentials of the upstream kubeconfig, and
streams answers back (watches included). Rules are checked in the order they were added; each
matches a method (or "*") and a regex searched in the path (and optionally one in the query string),
skips its first `after`
matching requests and applies to the next `times` ones (None: all). `requests` records every request
(method, path, monotonic time, and what the relay did with it), so invariants such as "no write after
the kill" are counted, not sampled.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

# The Status reason the API server gives with each code a rule may answer.
REASONS = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 410: "Expired", 429: "TooManyRequests",
           503: "ServiceUnavailable"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
              "content-encoding", "host"}


@dataclass
class Gate:
    """Held requests wait until `release()` (callable from any thread); `held` counts those waiting now,
    `total` every request held (for a stall: every chunk of a stream held back), `unanswered` the held
    requests not yet answered (waiting, or released and still on their way to the API server)."""

    held: int = 0
    total: int = 0
    unanswered: int = 0
    _released: bool = False
    _event: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def release(self) -> None:
        self._released = True
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> None:
        if self._event is None:
            self._loop, self._event = asyncio.get_running_loop(), asyncio.Event()
        if self._released:
            return
        await self._event.wait()

    def wait_held(self, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.held < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.held} request(s) held after {timeout}s, wanted {count}")
            time.sleep(0.01)

    def drain(self, timeout: float = 60) -> None:
        """Release and wait until every held request has had its answer (or its failure) from the API
        server: release() alone lets them go on later, on the relay's loop."""
        self.release()
        deadline = time.monotonic() + timeout
        while self.unanswered:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.unanswered} released request(s) still unanswered after {timeout}s")
            time.sleep(0.01)


@dataclass
class Rule:
    method: str
    pattern: re.Pattern[str]
    action: str  # "fail", "hold", "reset", "blackhole", "stall"
    times: int | None = None
    after: int = 0
    status: int = 500
    retry_after: float | None = None
    gate: Gate | None = None
    query: re.Pattern[str] | None = None
    matched: int = 0

    def applies(self, method: str, path: str, query: str = "") -> bool:
        if self.method not in ("*", method) or not self.pattern.search(path):
            return False
        if self.query is not None and not self.query.search(query):
            return False
        self.matched += 1
        if self.matched <= self.after:
            return False
        return self.times is None or self.matched - self.after <= self.times


@dataclass
class Seen:
    method: str
    path: str
    at: float
    action: str  # "forwarded", "fail", "hold", "reset", "blackhole"
    status: int | None = None  # the API server's answer, once a forwarded (or released) request got one


class ApiRelay:
    def __init__(self, upstream_kubeconfig: Path) -> None:
        config = yaml.safe_load(upstream_kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.upstream = cluster["server"].rstrip("/")
        self._dir = tempfile.TemporaryDirectory(prefix="apirelay-")
        directory = Path(self._dir.name)
        self._ssl = ssl.create_default_context()
        if cluster.get("certificate-authority-data"):
            self._ssl.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        if user.get("client-certificate-data"):
            (directory / "cert.pem").write_bytes(base64.b64decode(user["client-certificate-data"]))
            (directory / "key.pem").write_bytes(base64.b64decode(user["client-key-data"]))
            self._ssl.load_cert_chain(directory / "cert.pem", directory / "key.pem")
        self._token = user.get("token")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.kubeconfig = directory / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "relay",
            "clusters": [{"name": "relay", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "relay", "user": {}}],
            "contexts": [{"name": "relay", "context": {"cluster": "relay", "user": "relay"}}],
        }))
        self.rules: list[Rule] = []
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True, name="apirelay")

    # --- rules (callable from the test's thread) ---------------------------------------------------

    def _add(self, method: str, pattern: str, action: str, query: str | None = None, **kw: Any) -> Rule:
        rule = Rule(method, re.compile(pattern), action, query=re.compile(query) if query else None, **kw)
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail(self, method: str, pattern: str, *, status: int = 500, times: int | None = 1, after: int = 0,
             retry_after: float | None = None, query: str | None = None) -> Rule:
        return self._add(method, pattern, "fail", query=query, status=status, times=times, after=after,
                         retry_after=retry_after)

    def hold(self, method: str, pattern: str, *, times: int | None = None, after: int = 0,
             query: str | None = None) -> Gate:
        """Hold matching requests (`query`: a regex the query string must also match, e.g. "watch=true")."""
        gate = Gate()
        self._add(method, pattern, "hold", query=query, times=times, after=after, gate=gate)
        return gate

    def reset(self, method: str, pattern: str, *, times: int | None = 1, after: int = 0) -> Rule:
        return self._add(method, pattern, "reset", times=times, after=after)

    def blackhole(self, method: str, pattern: str, *, times: int | None = None, after: int = 0) -> Rule:
        return self._add(method, pattern, "blackhole", times=times, after=after)

    def stall(self, method: str, pattern: str, *, query: str | None = None) -> Gate:
        """Matching responses being streamed (watches already open, and later ones) deliver nothing
        more until the gate is released: the client's cache silently falls behind."""
        gate = Gate()
        self._add(method, pattern, "stall", query=query, times=None, gate=gate)
        return gate

    def clear(self) -> None:
        """Drop every rule and release every gate."""
        with self._lock:
            for rule in self.rules:
                if rule.gate is not None:
                    rule.gate.release()
            self.rules.clear()

    def seen(self, method: str | None = None, pattern: str = "", since: float = 0.0) -> list[Seen]:
        with self._lock:
            return [s for s in self.requests if (method is None or s.method == method)
                    and re.search(pattern, s.path) and s.at >= since]

    # --- serving -----------------------------------------------------------------------------------

    def __enter__(self) -> ApiRelay:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the API relay did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        self._dir.cleanup()

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        connector = aiohttp.TCPConnector(ssl=self._ssl, limit=0)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                              timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
        await self._session.close()

    def _match(self, method: str, path: str, query: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.action != "stall" and rule.applies(method, path, query):
                    return rule
        return None

    def _stalls(self, method: str, path: str, query: str) -> list[Gate]:
        with self._lock:
            return [rule.gate for rule in self.rules if rule.action == "stall" and rule.gate is not None
                    and not rule.gate._released and rule.applies(method, path, query)]

    def _note(self, method: str, path: str, action: str) -> Seen:
        seen = Seen(method, path, time.monotonic(), action)
        with self._lock:
            self.requests.append(seen)
        return seen

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        rule = self._match(method, path, request.query_string)
        seen = self._note(method, path, rule.action if rule is not None else "forwarded")
        if rule is not None:
            if rule.action == "fail":
                headers = {"Retry-After": str(int(rule.retry_after))} if rule.retry_after is not None else {}
                body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": rule.status,
                        "reason": REASONS.get(rule.status, "InternalError" if rule.status >= 500 else "BadRequest"),
                        "message": f"injected by the test relay: {rule.status}"}
                return web.json_response(body, status=rule.status, headers=headers)
            if rule.action == "reset":
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
            if rule.action == "blackhole":
                await asyncio.Event().wait()
            if rule.action == "hold" and rule.gate is not None:
                gate = rule.gate
                gate.held += 1
                gate.total += 1
                gate.unanswered += 1
                try:
                    try:
                        await gate.wait()
                    finally:
                        gate.held -= 1
                    return await self._forward(request, seen)
                finally:
                    gate.unanswered -= 1
        return await self._forward(request, seen)

    async def _forward(self, request: web.Request, seen: Seen) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in HOP_BY_HOP and k.lower() != "authorization"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body = await request.read()
        async with self._session.request(request.method, f"{self.upstream}{request.path_qs}", headers=headers,
                                         data=body or None) as upstream:
            seen.status = upstream.status
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP})
            if upstream.headers.get("Content-Encoding"):
                response.headers["Content-Encoding"] = upstream.headers["Content-Encoding"]
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    for gate in self._stalls(request.method, request.path, request.query_string):
                        gate.total += 1  # a chunk held back: the stall landed
                        await gate.wait()
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientConnectionResetError):
                pass  # the client went away (a killed operator's watch): nothing to answer
            return response
