"""Kopf settings every kubeplane operator shares."""

from __future__ import annotations

import logging

import kopf


def configure_common(settings: kopf.OperatorSettings) -> None:
    # Our controllers keep no per-object progress state: they are level-triggered and write only
    # status. Handler log lines stay in logs, not Events; Events are posted explicitly.
    settings.posting.level = logging.WARNING
    # Watches restart every few minutes at most so a silently dropped connection is noticed.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Kopf waits this long for more events of one object before calling handlers; our handlers
    # only enqueue (the work queue coalesces), so a short window just adds reaction latency.
    settings.queueing.batch_window = 0.01
