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
@click.option("--no-register", is_flag=True, help="Do not create the APIService (and Service): the chart's "
              "APIService, which trusts the CA of --tls-cert-file, routes here.")
@click.option("--tls-cert-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serving certificate (PEM). Without it, a self-signed one is made at start and registered.")
@click.option("--tls-private-key-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Key of --tls-cert-file (PEM).")
def serve(port: int, host: str, external_name: str | None, no_register: bool,
          tls_cert_file: str | None, tls_private_key_file: str | None) -> None:
    """Serve external.metrics.k8s.io/v1beta1 and register it as an APIService."""
    from operators.metricsapi.external import serve as run

    if (tls_cert_file is None) != (tls_private_key_file is None):
        raise click.UsageError("--tls-cert-file and --tls-private-key-file go together")
    if tls_cert_file is not None and not no_register:
        raise click.UsageError("with --tls-cert-file, register the APIService with that certificate's CA "
                               "yourself (the chart does) and pass --no-register")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keypair = (tls_cert_file, tls_private_key_file) if tls_cert_file and tls_private_key_file else None
    asyncio.run(run(port, host, external_name, register_service=not no_register, keypair=keypair))


GROUPS = [external_metrics]
