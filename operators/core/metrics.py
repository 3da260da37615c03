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

# kube-scheduler's metrics (pkg/scheduler/metrics), prefixed kubeplane_scheduler_.
SCHEDULER_ATTEMPTS = Counter(
    "kubeplane_scheduler_attempts_total",
    "Scheduling attempts by result (scheduled, unschedulable, error).", ["result"],
)
SCHEDULER_E2E_SECONDS = Histogram(
    "kubeplane_scheduler_e2e_seconds", "Time from pod creation to a successful binding.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
SCHEDULER_ATTEMPT_SECONDS = Histogram(
    "kubeplane_scheduler_attempt_duration_seconds", "Time one scheduling cycle took (the algorithm only).",
    ["result"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
SCHEDULER_PENDING_PODS = Gauge("kubeplane_scheduler_pending_pods", "Pods waiting in each queue.", ["queue"])
SCHEDULER_BINDING_ERRORS = Counter("kubeplane_scheduler_binding_errors_total", "Bindings the API server refused.")
SCHEDULER_PREEMPTION_VICTIMS = Counter(
    "kubeplane_scheduler_preemption_victims_total", "Pods deleted to make room for higher-priority pods."
)
