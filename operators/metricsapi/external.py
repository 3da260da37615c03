"""A tiny `external.metrics.k8s.io/v1beta1` server whose values users set, for tests and demos: a scaling
sequence is driven exactly by editing a ConfigMap.

A metric series is one key of a ConfigMap labelled `metrics.kubeplane.dev/external: "true"`: the key is
the metric's name, its value a quantity ("30", "1500m"), and the ConfigMap's other labels are the
series' labels, which an HPA's `metric.selector` matches. The metric of a namespace is the list of its
series; an HPA sums the ones it selects.

    kubectl create configmap queue -n demo --from-literal=queue_depth=30
    kubectl label configmap queue -n demo metrics.kubeplane.dev/external=true queue=jobs

The server speaks HTTPS with a certificate it makes at start and registers itself (`register`): an
APIService `v1beta1.external.metrics.k8s.io` carrying that certificate as its caBundle, pointing at a
Service in kubeplane-system (`ExternalName` when the server runs beside the API server, as on the
embedded cluster; a Service selecting its pod in a cluster). It accepts only clients whose certificate
the cluster's request-header CA (or, without one, its client CA) signed, as the aggregator's proxy
certificate is: the API server has already authenticated and authorized the user (RBAC on
external.metrics.k8s.io) before it proxies a request here.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import ssl
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from operators.core.kube import ApiError, Kube
from operators.core.selectors import SelectorError, parse
from operators.core.timeutil import format_time, now
from operators.metricsapi import custom

logger = logging.getLogger(__name__)

GROUP, VERSION = "external.metrics.k8s.io", "v1beta1"
BASE = f"/apis/{GROUP}/{VERSION}"
DESCRIBE_TTL = 60.0  # seconds a discovered kind/apiVersion of an Object metric's resource is reused
SOURCE_LABEL = "metrics.kubeplane.dev/external"
NAMESPACE, SERVICE = "kubeplane-system", "kubeplane-external-metrics"
APISERVICE = f"{VERSION}.{GROUP}"


def certificate(hostnames: list[str]) -> tuple[bytes, bytes]:
    """A self-signed serving certificate (PEM) and its key (PEM) for `hostnames`, valid a year."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


async def client_ca(kube: Kube) -> str:
    """The CA that signs the aggregator's proxy certificate, from kube-system's
    extension-apiserver-authentication ConfigMap."""
    body = await kube.get("/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication")
    data = body.get("data") or {}
    found = data.get("requestheader-client-ca-file") or data.get("client-ca-file")
    if not found:
        raise RuntimeError("kube-system/extension-apiserver-authentication has no client CA")
    return str(found)


def series(configmaps: Sequence[Mapping[str, Any]], metric: str, selector: str) -> list[dict[str, Any]]:
    """The ExternalMetricValue items of `metric` (case-insensitive) among the ConfigMaps the selector picks."""
    chosen = parse(selector) if selector else None
    items = []
    stamp = format_time(now())
    for cm in sorted(configmaps, key=lambda c: c["metadata"]["name"]):
        labels = {k: v for k, v in (cm["metadata"].get("labels") or {}).items() if k != SOURCE_LABEL}
        if chosen is not None and not chosen.matches(labels):
            continue
        for key, value in sorted((cm.get("data") or {}).items()):
            if key.lower() == metric.lower():
                items.append({"metricName": key, "metricLabels": labels, "timestamp": stamp,
                              "value": str(value).strip()})
    return items


def resource_list() -> dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
            "resources": [{"name": "*", "singularName": "", "namespaced": True,
                           "kind": "ExternalMetricValueList", "verbs": ["get"]}]}


def status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)


def invalid_selectors(request: web.Request, *params: str) -> web.Response | None:
    """A 400 naming the first query parameter that is not a label selector; None when all parse."""
    for param in params:
        try:
            parse(request.query.get(param, ""))
        except SelectorError as e:
            return status(400, "BadRequest", f"invalid {param}: {e}")
    return None


def app(kube: Kube) -> web.Application:
    described: dict[str, tuple[float, tuple[str, str]]] = {}  # resource -> (when, (kind, apiVersion))

    async def describe_cached(resource: str) -> tuple[str, str] | None:
        """describe(), remembered for a minute (an HPA asks every sync); a miss is asked again next time,
        so a CRD installed meanwhile is found."""
        hit = described.get(resource)
        if hit is not None and time.monotonic() - hit[0] < DESCRIBE_TTL:
            return hit[1]
        found = await describe(kube, resource)
        if found is not None:
            described[resource] = (time.monotonic(), found)
        return found

    async def discovery(_: web.Request) -> web.Response:
        return web.json_response(resource_list())

    async def values(request: web.Request) -> web.Response:
        namespace, metric = request.match_info["namespace"], request.match_info["metric"]
        selector = request.query.get("labelSelector", "")
        if (invalid := invalid_selectors(request, "labelSelector")) is not None:
            return invalid
        try:
            configmaps = await kube.list_all(f"/api/v1/namespaces/{namespace}/configmaps",
                                             labelSelector=f"{SOURCE_LABEL}=true")
        except ApiError as e:
            return status(e.status, "InternalError", f"reading ConfigMaps: {e}")
        return web.json_response({"kind": "ExternalMetricValueList", "apiVersion": f"{GROUP}/{VERSION}",
                                  "metadata": {}, "items": series(configmaps, metric, selector)})

    async def custom_discovery(_: web.Request) -> web.Response:
        return web.json_response(custom.resource_list())

    async def custom_configmaps(namespace: str) -> list[dict[str, Any]]:
        return await kube.list_all(f"/api/v1/namespaces/{namespace}/configmaps",
                                   labelSelector=f"{custom.SOURCE_LABEL}=true")

    def metric_list(items: list[dict[str, Any]]) -> web.Response:
        return web.json_response({"kind": "MetricValueList", "apiVersion": f"{custom.GROUP}/{custom.VERSION}",
                                  "metadata": {}, "items": items})

    async def custom_pods(request: web.Request) -> web.Response:
        namespace, metric = request.match_info["namespace"], request.match_info["metric"]
        selector, metric_selector = request.query.get("labelSelector", ""), request.query.get("metricLabelSelector", "")
        if (invalid := invalid_selectors(request, "labelSelector", "metricLabelSelector")) is not None:
            return invalid
        try:
            pods = await kube.list_all(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)
            configmaps = await custom_configmaps(namespace)
        except ApiError as e:
            return status(e.status, "InternalError", f"reading pods and ConfigMaps: {e}")
        return metric_list(custom.pod_values(configmaps, pods, metric, metric_selector))

    async def custom_object(request: web.Request) -> web.Response:
        namespace, resource = request.match_info["namespace"], request.match_info["resource"]
        name, metric = request.match_info["name"], request.match_info["metric"]
        metric_selector = request.query.get("metricLabelSelector", "")
        if (invalid := invalid_selectors(request, "metricLabelSelector")) is not None:
            return invalid
        try:
            described = await describe_cached(resource)
            configmaps = await custom_configmaps(namespace)
        except ApiError as e:
            return status(e.status, "InternalError", f"reading ConfigMaps: {e}")
        if described is None:
            return status(404, "NotFound", f"the server could not find the resource {resource!r}")
        items = custom.object_values(configmaps, namespace, resource, name, metric, metric_selector, *described)
        if not items:
            return status(404, "NotFound", f"no metric {metric!r} for {resource} {namespace}/{name}")
        return metric_list(items)

    async def empty_openapi(_: web.Request) -> web.Response:
        return status(404, "NotFound", "no OpenAPI document here")

    application = web.Application()
    application.router.add_get(BASE, discovery)
    application.router.add_get(BASE + "/", discovery)
    application.router.add_get(BASE + "/namespaces/{namespace}/{metric}", values)
    application.router.add_get(custom.BASE, custom_discovery)
    application.router.add_get(custom.BASE + "/", custom_discovery)
    application.router.add_get(custom.BASE + "/namespaces/{namespace}/pods/*/{metric}", custom_pods)
    application.router.add_get(custom.BASE + "/namespaces/{namespace}/{resource}/{name}/{metric}", custom_object)
    application.router.add_get("/openapi/v2", empty_openapi)
    application.router.add_get("/openapi/v3", empty_openapi)
    return application


async def describe(kube: Kube, resource: str) -> tuple[str, str] | None:
    """The kind and apiVersion of `resource` (`deployments.apps`, `pods`), by discovery of its group's preferred
    version; None when no API serves it."""
    plural, _, group = resource.partition(".")
    try:
        if group:
            preferred = ((await kube.get(f"/apis/{group}")).get("preferredVersion") or {}).get("groupVersion")
            if not preferred:
                return None
            found = await kube.get(f"/apis/{preferred}")
        else:
            preferred, found = "v1", await kube.get("/api/v1")
    except ApiError as e:
        if e.not_found:
            return None
        raise
    kind = next((r.get("kind") for r in found.get("resources") or [] if r.get("name") == plural), None)
    return (str(kind), str(preferred)) if kind else None


async def register(kube: Kube, ca_bundle: bytes, port: int, external_name: str | None) -> None:
    """The Service and the APIService that route external.metrics.k8s.io here (created or updated)."""
    labels = {"app.kubernetes.io/name": "kubeplane", "app.kubernetes.io/component": "external-metrics"}
    service: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": labels},
        "spec": {"type": "ExternalName", "externalName": external_name,
                 "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
    }
    if external_name is not None:
        await _apply(kube, f"/api/v1/namespaces/{NAMESPACE}/services/{SERVICE}", service)
    apiservice: dict[str, Any] = {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": APISERVICE, "labels": labels},
        "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 100, "versionPriority": 100,
                 "service": {"namespace": NAMESPACE, "name": SERVICE, "port": port},
                 "caBundle": base64.b64encode(ca_bundle).decode()},
    }
    await _apply(kube, f"/apis/apiregistration.k8s.io/v1/apiservices/{APISERVICE}", apiservice)
    # The custom metrics API (custom.py), served by the same process.
    apiservice = {**apiservice, "metadata": {"name": custom.APISERVICE, "labels": labels},
                  "spec": {**apiservice["spec"], "group": custom.GROUP, "version": custom.VERSION}}
    await _apply(kube, f"/apis/apiregistration.k8s.io/v1/apiservices/{custom.APISERVICE}", apiservice)


async def _apply(kube: Kube, path: str, body: dict[str, Any]) -> None:
    await kube.request("PATCH", path, body=body, params={"fieldManager": "kubeplane-external-metrics", "force": "true"},
                       content_type="application/apply-patch+yaml")


async def serve(port: int, host: str, external_name: str | None, register_service: bool = True,
                keypair: tuple[str, str] | None = None) -> None:
    """Serve until cancelled: make the certificate (or load `keypair`: certificate and key files),
    register, listen."""
    kube = await Kube.connect()
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if keypair is not None:
            context.load_cert_chain(*keypair)  # once, before serving: nothing else waits on the loop yet
            cert = await asyncio.to_thread(Path(keypair[0]).read_bytes)
        else:
            cert, key = certificate([f"{SERVICE}.{NAMESPACE}.svc", f"{SERVICE}.{NAMESPACE}.svc.cluster.local",
                                     "localhost"])
            with tempfile.TemporaryDirectory(prefix="kubeplane-external-metrics-") as tmp:
                cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
                cert_file.write_bytes(cert)
                key_file.touch(mode=0o600)
                key_file.write_bytes(key)
                context.load_cert_chain(cert_file, key_file)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=await client_ca(kube))
        runner = web.AppRunner(app(kube), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=context)
        await site.start()
        logger.info("external metrics API on https://%s:%d%s", host, port, BASE)
        if register_service:
            await register(kube, cert, port, external_name)
            logger.info("registered APIServices %s and %s -> %s/%s:%d", APISERVICE, custom.APISERVICE, NAMESPACE,
                        SERVICE, port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
    finally:
        await kube.close()
