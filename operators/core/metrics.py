"""Prometheus metrics every operator exposes on /metrics (port 9090 by default).

Names follow client-go's workqueue metrics and kube-controller-manager's, prefixed `kubeplane_`,
with the controller name as a label, so existing dashboards translate.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

QUEUE_DEPTH = Gauge("kubeplane_workqueue_depth", "Keys waiting in a work queue.", ["name"])
QUEUE_ADDS = Counter("kubeplane_workqueue_adds_total", "Keys added to a work queue.", ["name"])
QUEUE_RETRIES = Counter("kubeplane_workqueue_retries_total", "Keys requeued after a failed sync.", ["name"])
SYNC_SECONDS = Histogram(
    "kubeplane_sync_duration_seconds", "Time one sync of one key took.", ["name"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SYNC_ERRORS = Counter("kubeplane_sync_errors_total", "Syncs that ended in an error.", ["name"])
PODS_CREATED = Counter("kubeplane_controller_pods_created_total", "Pods a controller created.", ["controller"])
PODS_DELETED = Counter("kubeplane_controller_pods_deleted_total", "Pods a controller deleted.", ["controller"])


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Serve /metrics from a daemon thread (prometheus_client's own server; it never touches the event loop)."""
    start_http_server(port, addr=address)
