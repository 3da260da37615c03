"""`kubeplane external-metrics serve`: the external metrics API whose values users set (ConfigMaps)."""

from __future__ import annotations

import asyncio
import logging

import click


@click.group("external-metrics")
def external_metrics() -> None:
    """An external.metrics.k8s.io server whose values come from labelled ConfigMaps (tests, demos)."""


@external_metrics.command("serve")
@click.option("--port", default=6444, show_default=True, type=click.IntRange(1, 65535), help="HTTPS port.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--external-name", default=None, metavar="HOST",
              help="Register a Service of type ExternalName pointing at HOST (the server runs outside the "
                   "cluster, beside the API server: `localhost` on the embedded cluster). Without it the "
                   "Service must exist already (the chart's).")
@click.option("--no-register", is_flag=True, help="Do not create the APIService (and Service).")
def serve(port: int, host: str, external_name: str | None, no_register: bool) -> None:
    """Serve external.metrics.k8s.io/v1beta1 and register it as an APIService."""
    from operators.metricsapi.external import serve as run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(port, host, external_name, register_service=not no_register))


GROUPS = [external_metrics]
