"""Names, durations and schedules: the small calculations around Backups and Schedules.

- scheduled backups are named `<schedule>-YYYYMMDDHHMMSS` (UTC), as Velero's Schedule.TimestampedName;
- label values longer than 63 characters are shortened the way Velero's label.GetValidName does
  (first 57 characters plus 6 hex digits of their sha256);
- `ttl` uses Go's duration syntax (`720h`, `1h30m`, `1.5h`), as a metav1.Duration does;
- `schedule` is a standard 5-field cron expression with the descriptors and `CRON_TZ=` prefix that
  robfig/cron/v3's ParseStandard accepts (what Velero parses schedules with).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from operators.core.timeutil import parse_time

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


# --- Go durations ------------------------------------------------------------------------------

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_MAX_NS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds


class DurationError(ValueError):
    pass


def parse_duration_ns(text: str) -> int:
    """Go's time.ParseDuration, in integer nanoseconds."""
    original = text
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise DurationError(f"invalid duration {original!r}")
    total = Fraction(0)
    position = 0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None or (not match.group(1) and not match.group(2)):
            raise DurationError(f"invalid duration {original!r}: expected a number and a unit (h, m, s, ms, us, ns)")
        whole, frac, unit = match.group(1) or "0", match.group(2) or "", match.group(3)
        value = Fraction(int(whole)) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        total += value * _NS_PER_UNIT[unit]
        position = match.end()
    nanoseconds = int(total)  # Go truncates sub-nanosecond fractions
    if nanoseconds > _MAX_NS:
        raise DurationError(f"invalid duration {original!r}: out of range")
    return sign * nanoseconds


def parse_duration(text: str) -> timedelta:
    """Go's duration syntax (`720h`, `1h30m`, `-1.5s`) as a timedelta (microsecond precision)."""
    nanoseconds = parse_duration_ns(text)
    micro = abs(nanoseconds) // 1000
    return timedelta(microseconds=micro if nanoseconds >= 0 else -micro)


def _fmt_frac(value: int, precision: int) -> tuple[str, int]:
    digits = ""
    printed = False
    for _ in range(precision):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            digits = str(digit) + digits
        value //= 10
    return ("." + digits if printed else ""), value


def format_duration(value: timedelta | int) -> str:
    """Go's Duration.String(): `720h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`."""
    ns = value if isinstance(value, int) else (value // timedelta(microseconds=1)) * 1000
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        if u == 0:
            return "0s"
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            frac, whole = _fmt_frac(u, 3)
            return f"{sign}{whole}{frac}\u00b5s"
        frac, whole = _fmt_frac(u, 6)
        return f"{sign}{whole}{frac}ms"
    frac, seconds = _fmt_frac(u, 9)
    out = f"{seconds % 60}{frac}s"
    minutes = seconds // 60
    if minutes > 0:
        out = f"{minutes % 60}m" + out
        hours = minutes // 60
        if hours > 0:
            out = f"{hours}h" + out
    return sign + out


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
        return [str(e)]
    return []


def expiration(start: datetime, ttl: timedelta) -> datetime:
    return start + ttl


def is_expired(status: Mapping[str, Any] | None, now: datetime) -> bool:
    """Whether a Backup's status.expiration has passed (a backup without one never expires)."""
    expires = parse_time((status or {}).get("expiration"))
    return expires is not None and expires <= now


# --- cron --------------------------------------------------------------------------------------


class CronError(ValueError):
    pass


_MONTHS = {name: i + 1 for i, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_DAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


@dataclass(frozen=True)
class _Bounds:
    name: str
    low: int
    high: int
    names: Mapping[str, int] | None = None


_MINUTE = _Bounds("minute", 0, 59)
_HOUR = _Bounds("hour", 0, 23)
_DOM = _Bounds("day of month", 1, 31)
_MONTH = _Bounds("month", 1, 12, _MONTHS)
_DOW = _Bounds("day of week", 0, 6, _DAYS)

# Descriptors as 5-field expressions (robfig's @weekly is Sunday midnight, day of month any).
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_SEARCH_YEARS = 5  # like robfig: no match within five years means never


def _parse_value(text: str, bounds: _Bounds, expr: str) -> int:
    if bounds.names is not None and text.lower() in bounds.names:
        return bounds.names[text.lower()]
    if not text.isascii() or not text.isdigit():
        raise CronError(f"{bounds.name}: {text!r} in {expr!r} is not a number" + (
            " or a name" if bounds.names else ""))
    return int(text)


def _parse_field(field: str, bounds: _Bounds) -> tuple[frozenset[int], bool]:
    """The values a field allows, and whether it was a bare `*`/`?` (which matters for days)."""
    values: set[int] = set()
    star = False
    parts = field.split(",")
    if any(not part for part in parts):
        raise CronError(f"{bounds.name}: empty list element in {field!r}")
    for expr in parts:
        range_and_step = expr.split("/")
        if len(range_and_step) > 2:
            raise CronError(f"{bounds.name}: too many slashes in {expr!r}")
        low_high = range_and_step[0].split("-")
        single = len(low_high) == 1
        extra_star = False
        if range_and_step[0] in ("*", "?"):
            start, end, extra_star = bounds.low, bounds.high, True
        elif len(low_high) > 2 or "" in low_high:
            raise CronError(f"{bounds.name}: malformed range {expr!r}")
        else:
            start = _parse_value(low_high[0], bounds, expr)
            end = start if single else _parse_value(low_high[1], bounds, expr)
        step = 1
        if len(range_and_step) == 2:
            step_text = range_and_step[1]
            if not step_text.isascii() or not step_text.isdigit():
                raise CronError(f"{bounds.name}: step {step_text!r} in {expr!r} is not a number")
            step = int(step_text)
            if single:
                end = bounds.high  # `N/step` means N through the maximum
            if step > 1:
                extra_star = False
        if start < bounds.low:
            raise CronError(f"{bounds.name}: {start} is below the minimum {bounds.low} in {expr!r}")
        if end > bounds.high:
            raise CronError(f"{bounds.name}: {end} is above the maximum {bounds.high} in {expr!r}")
        if start > end:
            raise CronError(f"{bounds.name}: range {expr!r} runs backwards")
        if step == 0:
            raise CronError(f"{bounds.name}: step must be positive in {expr!r}")
        values.update(range(start, end + 1, step))
        star = star or extra_star
    return frozenset(values), star


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule. `next(after)` is the first firing strictly after `after` (UTC result)."""

    spec: str
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days_of_month: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    days_of_week: frozenset[int] = frozenset()
    dom_star: bool = False
    dow_star: bool = False
    timezone: str = "UTC"
    every: timedelta | None = None  # `@every <duration>`

    @classmethod
    def parse(cls, spec: str) -> CronSchedule:
        text = spec.strip()
        if not text:
            raise CronError("the schedule is empty: expected a cron expression such as '0 1 * * *'")
        timezone = "UTC"
        if text.startswith(("TZ=", "CRON_TZ=")):
            head, _, rest = text.partition(" ")
            timezone = head.split("=", 1)[1]
            if not rest.strip():
                raise CronError(f"no schedule after {head!r}")
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError) as e:
                raise CronError(f"unknown time zone {timezone!r}") from e
            text = rest.strip()
        if text.startswith("@every "):
            try:
                every = parse_duration(text[len("@every "):].strip())
            except DurationError as e:
                raise CronError(f"@every: {e}") from e
            every = max(every, timedelta(seconds=1))
            every -= timedelta(microseconds=every.microseconds)  # whole seconds, as robfig
            return cls(spec=spec, timezone=timezone, every=every)
        if text.startswith("@"):
            if text not in _DESCRIPTORS:
                raise CronError(f"unknown descriptor {text!r}")
            text = _DESCRIPTORS[text]
        fields = text.split()
        if len(fields) != 5:
            raise CronError(f"expected 5 fields (minute hour day-of-month month day-of-week), found {len(fields)}")
        minutes, _ = _parse_field(fields[0], _MINUTE)
        hours, _ = _parse_field(fields[1], _HOUR)
        doms, dom_star = _parse_field(fields[2], _DOM)
        months, _ = _parse_field(fields[3], _MONTH)
        dows, dow_star = _parse_field(fields[4], _DOW)
        return cls(spec=spec, minutes=minutes, hours=hours, days_of_month=doms, months=months,
                   days_of_week=dows, dom_star=dom_star, dow_star=dow_star, timezone=timezone)

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = (day.weekday() + 1) % 7 in self.days_of_week  # cron counts Sunday as 0
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next(self, after: datetime) -> datetime | None:
        """The first firing strictly after `after`, in UTC; None if none within five years.

        Wall-clock times skipped by a daylight-saving jump never fire; repeated ones fire once.
        """
        if after.tzinfo is None:
            raise ValueError("next() needs an aware datetime")
        if self.every is not None:
            return (after - timedelta(microseconds=after.microsecond) + self.every).astimezone(UTC)
        zone = ZoneInfo(self.timezone)
        day = after.astimezone(zone).date()
        limit = day.replace(year=day.year + _SEARCH_YEARS, day=min(day.day, 28))
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        while day <= limit:
            if self._day_matches(day):
                for hour in hours:
                    for minute in minutes:
                        wall = datetime(day.year, day.month, day.day, hour, minute)
                        candidate = wall.replace(tzinfo=zone)
                        utc = candidate.astimezone(UTC)
                        if utc.astimezone(zone).replace(tzinfo=None) != wall:
                            continue  # does not exist on this day (DST gap)
                        if utc > after:
                            return utc
            day += timedelta(days=1)
        return None


def validate_schedule(spec: Any) -> list[str]:
    if not isinstance(spec, str) or not spec.strip():
        return ["schedule must be a non-empty cron expression such as '0 1 * * *'"]
    try:
        cron = CronSchedule.parse(spec)
    except CronError as e:
        return [f"invalid schedule {spec!r}: {e}"]
    if cron.next(datetime(2000, 1, 1, tzinfo=UTC)) is None:
        return [f"schedule {spec!r} never fires"]
    return []


def next_run_time(
    cron: CronSchedule,
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
    return cron.next(since)


def is_due(
    cron: CronSchedule,
    now: datetime,
    *,
    created: datetime,
    last_backup: datetime | None = None,
    last_skipped: datetime | None = None,
) -> tuple[bool, datetime | None]:
    """(due, next run): due once `now` is past the next run time. Missed runs are not caught up."""
    upcoming = next_run_time(cron, created=created, last_backup=last_backup, last_skipped=last_skipped)
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
