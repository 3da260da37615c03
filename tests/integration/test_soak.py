"""The soak's shortest setting (`make soak` runs it for 10 minutes; tests/soak/__init__.py says what it
does): 60 s of seeded faults while ReplicaSets scale, pods are scheduled, backups and restores run;
then no invariant may be violated, and faults of every family must have landed (a soak whose faults
never landed proves nothing)."""

from __future__ import annotations

import os

from tests.integration.conftest import Operator
from tests.soak.run import run

SECONDS = float(os.environ.get("SOAK_TEST_SECONDS", "60"))
SEED = int(os.environ.get("SOAK_TEST_SEED", "20261204"))


def test_soak_shortest_setting(controllers: Operator) -> None:
    controllers.stop()  # the soak runs its own operators behind its relay
    try:
        report = run(SECONDS, SEED)
    finally:
        controllers.start()
    print("\n".join([*report.notes, *(f"{k}: {v}" for k, v in sorted(report.faults.items())), report.summary()]))
    assert not report.violations, "\n".join(str(v) for v in report.violations)
    families = {fault.split()[0] for fault in report.faults}
    assert {"SIGKILL", "API"} <= families, f"faults that landed: {dict(report.faults)}"
    assert report.operations["backup"] and report.operations["scale"] >= 10, dict(report.operations)
