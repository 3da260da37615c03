"""Test-session rules shared by every tier."""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # `make test` forbids skips: a tier that silently did not run is a failure, not a pass.
    if os.environ.get("KUBEPLANE_FORBID_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and session.exitstatus == 0:
        print(f"\n{skipped} test(s) skipped, and KUBEPLANE_FORBID_SKIPS=1: failing the run")
        session.exitstatus = 1
