"""A thin async Kubernetes client: JSON in, JSON out, no generated models.

kubernetes_asyncio does the hard parts (kubeconfig and in-cluster auth, TLS, token refresh) and
its ApiClient's REST layer does the HTTP on aiohttp. We skip its model (de)serialisation: the
controllers work on plain dicts, the same shapes Kopf hands to handlers, and decoding thousands
of pods into generated classes costs more than the rest of a sync.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import orjson
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from operators.core import ratelimit
from operators.core.ratelimit import TokenBucket

QPS_ENV, BURST_ENV = "KUBEPLANE_KUBE_API_QPS", "KUBEPLANE_KUBE_API_BURST"

logger = logging.getLogger(__name__)

# As client-go's rest.Request: a request is tried again, up to 10 times, when the API server answers 429
# or 5xx with a Retry-After header (after that many seconds; API Priority and Fairness and a server
# shutting down answer so), and a GET when the connection broke without an answer (after a second).
MAX_RETRIES = 10
CONNECTION_RETRY_WAIT = 1.0

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class NotLeading(Exception):
    """A write refused because this process may no longer hold its Lease (see `Kube.fence`)."""


CORE_PREFIX = "/api/v1/"
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def decode(data: bytes | str, path: str) -> Any:
    """JSON from the API server at `path`. The core group's objects (/api/v1: pods, nodes, events, ...)
    are Go structs whose integers fit 64 bits, and orjson decodes them with a third of the standard
    library's CPU (every pod event reaches the scheduler). Anything else may carry free-form JSON (a
    custom resource's preserved fields, a backup's objects), where orjson would turn an integer beyond
    64 bits into a float: the standard library keeps it exact."""
    if path.startswith(CORE_PREFIX):
        return orjson.loads(data)
    return json.loads(data)


def encode(body: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, UTF-8, and <, >, &, U+2028, U+2029 escaped (they
    only occur inside strings). The API server keeps some fields byte for byte as they were sent (a
    ControllerRevision's data, compared as bytes on every update) and writes them back this way when it
    re-encodes an object for a patch; sent otherwise, such a field could never be patched again."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)
    return text.encode()


class ApiError(Exception):
    """A non-2xx answer from the API server, with its Status reason and message."""

    def __init__(self, status: int, body: Mapping[str, Any] | None, text: str = "") -> None:
        self.status = status
        self.body: Mapping[str, Any] = body or {}
        self.reason: str = str(self.body.get("reason", ""))
        self.message: str = str(self.body.get("message", text))
        super().__init__(f"{status} {self.reason}: {self.message}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def expired(self) -> bool:
        """410: a list's continue token (or a watch's resourceVersion) is older than etcd keeps."""
        return self.status == 410

    @property
    def already_exists(self) -> bool:
        """409 because the name is taken (a create), not a resourceVersion conflict (an update)."""
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def invalid(self) -> bool:
        """422: the object (or a patch's precondition, such as a uid or a JSON patch test) was refused."""
        return self.status == 422

    def has_cause(self, cause_type: str) -> bool:
        """Whether the Status lists this cause (e.g. NamespaceTerminating) in details.causes."""
        causes = (self.body.get("details") or {}).get("causes") or []
        return any(c.get("reason") == cause_type for c in causes)  # StatusCause.Type is "reason" in JSON


async def load_config() -> k8s_client.Configuration:
    """Kubeconfig when KUBECONFIG or ~/.kube/config exists, else the in-cluster service account."""
    configuration = k8s_client.Configuration()
    default_kubeconfig = os.path.expanduser("~/.kube/config")  # noqa: ASYNC240 - once, at start-up
    if os.environ.get("KUBECONFIG") or os.path.exists(default_kubeconfig):  # noqa: ASYNC240
        # Passed explicitly: the library reads $KUBECONFIG once, at import time.
        path = os.environ.get("KUBECONFIG") or default_kubeconfig
        await k8s_config.load_kube_config(config_file=path, client_configuration=configuration)
    else:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def _limiter_from_env() -> TokenBucket | None:
    qps, burst = os.environ.get(QPS_ENV), os.environ.get(BURST_ENV)
    return ratelimit.from_settings(float(qps) if qps else None, int(burst) if burst else None)


class Kube:
    """Raw REST calls against the API server. Create with `await Kube.connect()`; close when done."""

    def __init__(self, api: k8s_client.ApiClient) -> None:
        self._api = api
        rest = api.rest_client
        # Our own session on the ApiClient's connector (TLS context, client certificates, pool).
        # Its session trusts the environment, which makes aiohttp read ~/.netrc and the proxy
        # variables in a worker thread on *every* request: two thread hops per request, a tenth
        # of the scheduler's CPU at a hundred bindings a second. We decide the proxy once here,
        # the way client-go does (HTTPS_PROXY / NO_PROXY), and never use netrc.
        self._session = aiohttp.ClientSession(connector=rest.pool_manager.connector, connector_owner=False,
                                              read_bufsize=2**21)
        host = str(api.configuration.host or "")
        self._extra: dict[str, Any] = {"proxy": api.configuration.proxy or _env_proxy(host)}
        if rest.server_hostname:
            self._extra["server_hostname"] = rest.server_hostname
        # client-go's token bucket (`--kube-api-qps`, `--kube-api-burst`): None sends at once.
        # The Lease's requests are not limited (kube-controller-manager gives leader election a
        # client of its own, so a busy controller never starves its renewals).
        self.limiter: TokenBucket | None = None
        # Called before every write (anything but GET); raises NotLeading when this process must not
        # act any more. Leader election installs it, so a leader that lost its Lease (a stall past
        # the renew deadline, a hung connection) writes nothing, whatever work is still in flight.
        self.fence: Callable[[], None] | None = None

    @classmethod
    async def connect(cls, *, pool_size: int = 64) -> Kube:
        """A client for the configured cluster, rate-limited as KUBEPLANE_KUBE_API_QPS and
        KUBEPLANE_KUBE_API_BURST say (`kubeplane run --kube-api-qps/--kube-api-burst` set them)."""
        configuration = await load_config()
        # aiohttp's connector caps concurrent requests; bulk pod creation needs more than the default.
        configuration.connection_pool_maxsize = pool_size
        kube = cls(k8s_client.ApiClient(configuration))
        kube.limiter = _limiter_from_env()
        return kube

    def child(self) -> Kube:
        """A client of its own on the same connection: its own rate limiter at the same settings, and
        every write still fenced by this client's fence (read at each write, so a fence installed
        later holds too). kube-controller-manager gives each controller such a client
        (`ClientBuilder.ClientOrDie(name)`): one controller's writes never spend another's budget."""
        clone = copy.copy(self)
        clone.limiter = _limiter_from_env()

        def fence() -> None:
            if self.fence is not None:
                self.fence()

        clone.fence = fence
        return clone

    async def close(self) -> None:
        await self._session.close()
        await self._api.close()

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        headers.update(self._api.default_headers)
        # The ApiClient fills in bearer tokens (refreshing exec/OIDC credentials when needed).
        await self._api.update_params_for_auth(headers, [], ["BearerToken"])
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
        content_type: str = "application/json",
        fenced: bool = True,
    ) -> JSON:
        """Send one request; return the decoded JSON answer or raise ApiError. Writes pass the
        fence first (`fenced=False` only for the Lease itself)."""
        configuration = self._api.configuration
        url = f"{configuration.host}{path}"
        if params:
            url += "?" + urlencode(params)
        data = encode(body) if body is not None else None
        attempt = 0
        while True:
            # Every attempt passes the fence and the rate limiter again: a retry may come after the Lease.
            if fenced and method != "GET" and self.fence is not None:
                self.fence()
            if fenced and self.limiter is not None:
                await self.limiter.acquire()
                if method != "GET" and self.fence is not None:
                    self.fence()  # the wait may have outlasted the Lease
            headers = await self._headers(content_type)
            try:
                response = await self._session.request(method, url, headers=headers, data=data, **self._extra)
            except aiohttp.ClientConnectionError as e:
                if method != "GET" or attempt >= MAX_RETRIES or isinstance(e, aiohttp.ClientSSLError):
                    raise
                attempt += 1
                logger.debug("GET %s: %s; retry %d in %.0fs", path, e, attempt, CONNECTION_RETRY_WAIT)
                await asyncio.sleep(CONNECTION_RETRY_WAIT)
                continue
            async with response:
                answer = await response.read()  # not `data`: that is the request body, sent again on a retry
                if response.status < 400:
                    return cast(JSON, decode(answer, path)) if answer.strip() else {}
                text = answer.decode(errors="replace")
                wait = retry_after(response.status, response.headers.get("Retry-After"))
                if wait is None or attempt >= MAX_RETRIES:
                    raise _api_error(response.status, text)
            attempt += 1
            logger.debug("%s %s: %d, Retry-After %ds; retry %d", method, path, response.status, wait, attempt)
            await asyncio.sleep(wait)

    async def watch(self, path: str, *, read_timeout: float, **params: str | int) -> AsyncIterator[JSON]:
        """The events of one watch request (`?watch=true`), decoded, until the server ends it.

        Lines are split here rather than with readline(): one event can be larger than aiohttp's
        line limit (a pod with big annotations)."""
        if self.limiter is not None:
            await self.limiter.acquire()
        url = f"{self._api.configuration.host}{path}?" + urlencode({**params, "watch": "true"})
        # No total timeout: a watch lasts as long as the server's timeoutSeconds; a stalled
        # connection is noticed by the read timeout instead.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
        response = await self._session.request("GET", url, headers=await self._headers(), timeout=timeout,
                                               **self._extra)
        async with response:
            if response.status >= 400:
                raise _api_error(response.status, await response.text())
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield cast(JSON, decode(line, path))
            if buffer.strip():
                yield cast(JSON, decode(buffer, path))

    async def get(self, path: str, **params: str | int) -> JSON:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, body: Mapping[str, Any]) -> JSON:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Any, *, content_type: str = MERGE_PATCH) -> JSON:
        return await self.request("PATCH", path, body=body, content_type=content_type)

    async def delete(self, path: str, body: Mapping[str, Any] | None = None) -> JSON:
        return await self.request("DELETE", path, body=body)

    async def list_all(self, path: str, *, limit: int = 500, **params: str | int) -> list[JSON]:
        """Every item of a collection, following `continue` tokens page by page."""
        items, _ = await self.list_versioned(path, limit=limit, **params)
        return items

    async def list_versioned(self, path: str, *, limit: int = 500, **params: str | int) -> tuple[list[JSON], str]:
        """Every item of a collection and the resourceVersion to watch it from."""
        items: list[JSON] = []
        token = ""
        while True:
            query: dict[str, str | int] = {"limit": limit, **params}
            if token:
                query["continue"] = token
            page = await self.get(path, **query)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                # Every page of a paginated list is served at the first page's resourceVersion.
                return items, str(meta.get("resourceVersion") or "")


def retry_after(status: int, header: str | None) -> int | None:
    """Seconds to wait before trying again, or None when this answer is final: as client-go, only a 429
    or a 5xx carrying a Retry-After of whole seconds is retried."""
    if header is None or not (status == 429 or status >= 500):
        return None
    try:
        seconds = int(header.strip())
    except ValueError:
        return None
    return max(seconds, 0)


def _api_error(status: int, text: str) -> ApiError:
    """The error for a failed answer, with the API server's Status object when the body is one."""
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = None
    return ApiError(status, decoded if isinstance(decoded, dict) else None, text)


def _env_proxy(host: str) -> str | None:
    """The proxy HTTPS_PROXY/HTTP_PROXY name for the API server, unless NO_PROXY exempts it."""
    url = urlsplit(host)
    proxy = getproxies().get(url.scheme or "https")
    if not proxy or not url.hostname or proxy_bypass(url.hostname):
        return None
    return proxy


def resource_path(
    group: str, version: str, plural: str, namespace: str | None = None, name: str | None = None
) -> str:
    """The REST path of a collection or object: /api/v1/... for the core group, /apis/... otherwise."""
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name:
        path += f"/{name}"
    return path
