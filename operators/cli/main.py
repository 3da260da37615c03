"""The `kubeplane` command."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from operators import __version__
from operators.cli import backups, controllers, cronjob, explain, get, metricsapi, rollout, scheduler

# Client-side rate limits per operator when no --kube-api-qps is given (0: none). The controllers are
# as polite as kube-scheduler is by default (50/100; kube-controller-manager's own are 20/30); the
# scheduler and the backup operator are not limited, as before.
DEFAULT_QPS = {"controllers": (50.0, 100), "backup": (0.0, 0), "scheduler": (0.0, 0)}

# One image, one entry point: the operator name picks which handlers Kopf loads.
OPERATORS = {
    "controllers": "operators.controllers.operator",
    "backup": "operators.backup.operator",
    "scheduler": "operators.scheduler.operator",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kubeplane")
def main() -> None:
    """kubeplane: Kubernetes control-plane components as Kopf operators."""


@main.command()
@click.argument("operator", type=click.Choice(sorted(OPERATORS)))
@click.option("--liveness", "liveness", default=None, metavar="URL",
              help="Serve a health endpoint, e.g. http://0.0.0.0:8080/healthz.")
@click.option("--metrics-port", default=9090, show_default=True, type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics on this port (0: off).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Watch only these namespaces (default: the whole cluster; for backup, its own namespace, "
                   "KUBEPLANE_NAMESPACE, the only one whose objects it acts on).")
@click.option("--controllers", "controllers", default="*", show_default=True, metavar="LIST",
              help="controllers only: which to run, kube-controller-manager's syntax (`*`, `name`, `-name`).")
@click.option("--kube-api-qps", type=float, default=None, metavar="QPS",
              help="Client-side limit on API requests per second (0: none). Default: 50 for controllers, "
                   "none for the others.")
@click.option("--kube-api-burst", type=int, default=None, metavar="N",
              help="Requests allowed in a burst above --kube-api-qps. Default: 100 for controllers.")
@click.option("--drop-in", is_flag=True,
              help="controllers only: also drive the built-in kinds (apps/v1 ReplicaSet, ...); turn the "
                   "matching kube-controller-manager controllers off first.")
def run(operator: str, liveness: str | None, metrics_port: int, verbose: bool, namespaces: tuple[str, ...],
        controllers: str, drop_in: bool, kube_api_qps: float | None, kube_api_burst: int | None) -> None:
    """Run one operator until interrupted."""
    import os

    import kopf

    from operators.core import metrics
    from operators.core.kube import BURST_ENV, QPS_ENV

    default_qps, default_burst = DEFAULT_QPS[operator]
    qps = default_qps if kube_api_qps is None else kube_api_qps
    burst = default_burst if kube_api_burst is None else kube_api_burst
    os.environ[QPS_ENV], os.environ[BURST_ENV] = str(qps), str(burst)

    if operator != "controllers" and (drop_in or controllers != "*"):
        raise click.UsageError("--controllers and --drop-in apply to the controllers operator only")
    if operator == "controllers":
        from operators.controllers.registry import default_registry

        try:
            default_registry().select(controllers)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--controllers") from e
    if operator == "backup" and not namespaces:
        # Velero's model: locations, Backups, Restores and Schedules live in the operator's namespace. Watching
        # only that one needs no cluster-wide read of them (its read-all role has list only, docs/backup.md).
        from operators.backup.operator import operator_namespace

        namespaces = (operator_namespace(),)
    kopf.configure(verbose=verbose)
    # --verbose debugs kubeplane and Kopf; boto's and urllib3's debug lines carry request parameters and
    # headers (object keys, signed requests), so they stay at INFO.
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    if metrics_port:
        metrics.serve(metrics_port)
    importlib.import_module(OPERATORS[operator])
    kopf.run(
        # Leader election is our own (a Lease per operator): no Kopf peering objects needed.
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness,
        memo=kopf.Memo(controllers=controllers, drop_in=drop_in, namespaces=list(namespaces)),
    )


for _group in [*backups.GROUPS, *scheduler.GROUPS, *controllers.GROUPS, *rollout.GROUPS, *cronjob.GROUPS,
               *get.GROUPS, *explain.GROUPS, *metricsapi.GROUPS]:
    main.add_command(_group)


if __name__ == "__main__":
    sys.exit(main())
