"""Kubernetes timestamps (RFC 3339; second precision, or micro for MicroTime) to and from aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_time(value: datetime) -> str:
    """Second precision, "Z"; years before 1000 keep four digits (strftime's %Y would not)."""
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def now() -> datetime:
    return datetime.now(UTC)


def format_micro_time(value: datetime) -> str:
    """metav1.MicroTime (Lease acquireTime/renewTime, Event eventTime): microsecond precision."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
