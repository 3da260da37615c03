"""`kubeplane controllers ...`: what the controllers operator can run."""

from __future__ import annotations

import click


@click.group("controllers")
def controllers() -> None:
    """The workload controllers kubeplane provides."""


@controllers.command("list")
def list_controllers() -> None:
    """Each controller, its kubeplane kind, and the built-in kind it drives in drop-in mode."""
    from operators.controllers.registry import default_registry

    for registration in default_registry():
        own = f"{registration.resource.kind}.{registration.resource.group}" if registration.resource else "-"
        builtin = (f"{registration.builtin.kind}.{registration.builtin.group or 'core'}/{registration.builtin.version}"
                   if registration.builtin else "-")
        click.echo(f"{registration.name}\t{own}\t{builtin}\t{','.join(registration.replaces) or '-'}")


@controllers.command("replaced")
@click.option("--controllers", "selection", default="*", show_default=True, metavar="LIST")
def replaced(selection: str) -> None:
    """The kube-controller-manager controllers drop-in mode replaces, comma-separated (for
    `--controllers=*,-NAME,...`)."""
    from operators.controllers.registry import default_registry

    click.echo(",".join(default_registry().replaced(selection)))


GROUPS = [controllers]
