"""What every `kubeplane` subcommand that talks to the cluster shares."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from operators.core.kube import ApiError, Kube

T = TypeVar("T")


def run_with_kube(fn: Callable[[Kube], Awaitable[T]], errors: tuple[type[Exception], ...] = ()) -> T:
    """Run `fn` with a client for the configured cluster; API errors (and `errors`) become a clean
    `error: ...` message and exit status 1, not a traceback."""
    async def main() -> T:
        async with await Kube.connect() as kube:
            return await fn(kube)
    try:
        return asyncio.run(main())
    except ApiError as e:
        raise click.ClickException(e.message) from None
    except errors as e:
        raise click.ClickException(str(e)) from None
