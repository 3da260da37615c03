"""Names, durations and schedules: the small calculations around Backups and Schedules.

- scheduled backups are named `<schedule>-YYYYMMDDHHMMSS` (UTC), as Velero's Schedule.TimestampedName;
- label values longer than 63 characters are shortened the way Velero's label.GetValidName does
  (first 57 characters plus 6 hex digits of their sha256);
- `ttl` uses Go's duration syntax (`720h`, `1h30m`, `1.5h`), as a metav1.Duration does;
- `schedule` is a standard 5-field cron expression with the descriptors and `CRON_TZ=` prefix that
  robfig/cron/v3's ParseStandard accepts (what Velero parses schedules with): operators/core/cron.py,
  the one cron implementation, shared with the CronJob.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from operators.core import cron
from operators.core.gotime import DurationError, format_duration, parse_duration, parse_duration_ns
from operators.core.timeutil import parse_time

__all__ = ["DurationError", "format_duration", "parse_duration", "parse_duration_ns"]

GROUP = "backup.kubeplane.dev"
BACKUP_NAME_LABEL = f"{GROUP}/backup-name"
RESTORE_NAME_LABEL = f"{GROUP}/restore-name"
SCHEDULE_NAME_LABEL = f"{GROUP}/schedule-name"

DEFAULT_TTL = timedelta(hours=720)
MAX_LABEL_VALUE = 63  # DNS-1035 label length, the limit on label values
_TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"


# --- names -------------------------------------------------------------------------------------


def timestamped_name(schedule_name: str, when: datetime) -> str:
    """The name of the backup a schedule starts at `when`."""
    return f"{schedule_name}-{when.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)}"


def valid_label_value(value: str) -> str:
    """`value` if it fits in a label value, else its first 57 characters and a 6-digit hash."""
    if len(value) <= MAX_LABEL_VALUE:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()
    return value[: MAX_LABEL_VALUE - 6] + digest[:6]


# --- Go durations: operators/core/gotime.py (time.ParseDuration, Duration.String) ----------------


def backup_ttl(spec: Mapping[str, Any]) -> timedelta:
    """A Backup's ttl; unset or zero means the default (720h), as in Velero."""
    raw = spec.get("ttl")
    if not raw:
        return DEFAULT_TTL
    ttl = parse_duration(str(raw))
    if ttl < timedelta(0):
        raise DurationError(f"ttl {raw!r} is negative")
    return ttl if ttl > timedelta(0) else DEFAULT_TTL


def validate_ttl(raw: Any) -> list[str]:
    if raw is None or raw == "":
        return []
    if not isinstance(raw, str):
        return [f"ttl must be a duration string such as '720h', not {raw!r}"]
    try:
        if parse_duration(raw) < timedelta(0):
            return [f"ttl {raw!r} is negative"]
    except DurationError as e:
        return [f"ttl {raw!r} is not a valid duration such as '720h' or '1h30m' ({e})"]
    return []


def expiration(start: datetime, ttl: timedelta) -> datetime:
    return start + ttl


def is_expired(status: Mapping[str, Any] | None, now: datetime) -> bool:
    """Whether a Backup's status.expiration has passed (a backup without one never expires)."""
    expires = parse_time((status or {}).get("expiration"))
    return expires is not None and expires <= now


# --- cron: operators/core/cron.py (robfig/cron/v3's ParseStandard and Next) ----------------------


def validate_schedule(spec: Any) -> list[str]:
    if not isinstance(spec, str) or not spec.strip():
        return ["schedule must be a non-empty cron expression such as '0 1 * * *'"]
    try:
        schedule = cron.parse_standard(spec)
    except cron.CronError as e:
        return [f"invalid schedule {spec!r}: {e}"]
    if schedule.next(datetime(2000, 1, 1, tzinfo=UTC)) is None:
        return [f"schedule {spec!r} never fires"]
    return []


def next_run_time(
    schedule: cron.Schedule,
    *,
    created: datetime,
    last_backup: datetime | None = None,
    last_skipped: datetime | None = None,
) -> datetime | None:
    """When a schedule fires next: after its last backup (or its creation), or after the last
    skipped firing when that is later (Velero's getNextRunTime)."""
    since = last_backup or created
    if last_skipped is not None and last_skipped > since:
        since = last_skipped
    return schedule.next(since)


def is_due(
    schedule: cron.Schedule,
    now: datetime,
    *,
    created: datetime,
    last_backup: datetime | None = None,
    last_skipped: datetime | None = None,
) -> tuple[bool, datetime | None]:
    """(due, next run): due once `now` is past the next run time. Missed runs are not caught up."""
    upcoming = next_run_time(schedule, created=created, last_backup=last_backup, last_skipped=last_skipped)
    return (upcoming is not None and now > upcoming), upcoming


IN_FLIGHT_PHASES = frozenset({"", "New", "InProgress"})


def backup_in_flight(backups: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any of a schedule's backups is still New or InProgress (no second one starts then)."""
    return any(str((b.get("status") or {}).get("phase") or "") in IN_FLIGHT_PHASES for b in backups)


def most_recent_completed(backups: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The Completed backup with the latest start time (what a Restore with scheduleName uses)."""
    floor = datetime.min.replace(tzinfo=UTC)
    best: Mapping[str, Any] | None = None
    best_start = floor
    for backup in backups:
        status = backup.get("status") or {}
        if status.get("phase") != "Completed":
            continue
        start = parse_time(status.get("startTimestamp")) or floor
        if best is None or start > best_start:
            best, best_start = backup, start
    return best
