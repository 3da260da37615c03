"""The workload controllers operator: importing this module registers every controller with Kopf.

Run it with `kubeplane run controllers`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from operators.controllers import informers  # noqa: F401 - registers the shared pod index
from operators.controllers.replicaset import controller as replicaset  # noqa: F401 - registers handlers
from operators.core.settings import configure_common


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    configure_common(settings)
    logging.getLogger("operators").setLevel(logging.INFO)
    # Our event handlers only enqueue: a success line per pod event is noise, failures still show.
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
