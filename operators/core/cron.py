"""Cron schedules exactly as github.com/robfig/cron/v3 (v3.0.1) reads them: the parser behind
kube-controller-manager's CronJob controller and Velero's Schedule, and so behind kubeplane's CronJob
and backup Schedule.

`parse_standard(spec)` is cron.ParseStandard: five fields (minute, hour, day of month, month, day of
week; month and weekday names; `*` and `?`; lists, ranges and steps), the descriptors `@yearly`,
`@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly` and `@every <Go duration>`,
and an optional `TZ=<zone>` or `CRON_TZ=<zone>` prefix; errors carry robfig's texts. `next(after)`
is Schedule.Next: the first firing strictly after `after`, or None when there is none within five
years. Day matching follows robfig's rule: when either day field is `*` (or `?`) both must match,
otherwise either may. Daylight saving time behaves as robfig's arithmetic makes it behave: a time
a spring-forward skips does not fire that day, and a time a fall-back repeats fires twice.

A schedule without a zone is read in UTC (robfig uses the process's local zone, which is UTC for
kube-controller-manager in a container). tests/unit/core/test_cron_oracle.py holds this module to
robfig itself, built from the module Kubernetes 1.34 pins, on thousands of generated schedules,
zones and instants around daylight-saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from operators.core import gotime

STAR_BIT = 1 << 63
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MAX = (1 << 63) - 1


class CronError(ValueError):
    """A schedule robfig's ParseStandard refuses; the message is robfig's."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: tuple[tuple[str, int], ...] = ()


_MINUTES = _Bounds(0, 59)
_HOURS = _Bounds(0, 23)
_DOM = _Bounds(1, 31)
_MONTHS = _Bounds(1, 12, tuple((n, i + 1) for i, n in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))))
_DOW = _Bounds(0, 6, tuple((n, i) for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))))


def _go_quote(text: str) -> str:
    """strconv.Quote for the texts robfig's errors show."""
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char < " " or char == "\x7f":
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _atoi(text: str) -> int:
    """strconv.Atoi: an optional sign and decimal digits within int64."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not all("0" <= c <= "9" for c in body):
        raise CronError(f"strconv.Atoi: parsing {_go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(1 << 63) <= value <= _INT64_MAX:
        raise CronError(f"strconv.Atoi: parsing {_go_quote(text)}: value out of range")
    return value


def _must_parse_int(expr: str) -> int:
    try:
        number = _atoi(expr)
    except CronError as e:
        raise CronError(f"failed to parse int from {expr}: {e}") from None
    if number < 0:
        raise CronError(f"negative number ({number}) not allowed: {expr}")
    return number


def _int_or_name(expr: str, bounds: _Bounds) -> int:
    for name, value in bounds.names:
        if expr.lower() == name:
            return value
    return _must_parse_int(expr)


def _bits(low: int, high: int, step: int) -> int:
    return sum(1 << i for i in range(low, high + 1, step))


def _range(expr: str, bounds: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = bounds.low, bounds.high, STAR_BIT
    else:
        start = _int_or_name(low_and_high[0], bounds)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], bounds)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _must_parse_int(range_and_step[1])
        if single:
            end = bounds.high
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < bounds.low:
        raise CronError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise CronError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | extra


def _field(field: str, bounds: _Bounds) -> int:
    bits = 0
    for expr in (part for part in field.split(",") if part):  # strings.FieldsFunc drops empty parts
        bits |= _range(expr, bounds)
    return bits


def _all(bounds: _Bounds) -> int:
    return _bits(bounds.low, bounds.high, 1) | STAR_BIT


@cache
def zone(name: str) -> tzinfo:
    """time.LoadLocation: "" and "UTC" are UTC."""
    if name in ("", "UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise CronError(f"unknown time zone {name}") from e


@dataclass(frozen=True)
class SpecSchedule:
    """cron.SpecSchedule: one bit per allowed value (bit 63 marks a `*` field)."""

    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    location: str = ""  # "": no TZ= prefix (read in UTC)

    def _day_matches(self, when: datetime) -> bool:
        dom_match = bool(1 << when.day & self.dom)
        dow_match = bool(1 << ((when.weekday() + 1) % 7) & self.dow)
        if self.dom & STAR_BIT or self.dow & STAR_BIT:
            return dom_match and dow_match
        return dom_match or dow_match

    def next(self, after: datetime) -> datetime | None:
        """Schedule.Next: the first firing strictly after `after` (in UTC), None within five years."""
        if after.tzinfo is None:
            raise ValueError("next() needs an aware datetime")
        loc = zone(self.location)
        t = (after - _EPOCH) // timedelta(seconds=1) + 1  # the upcoming whole second
        added = False
        when = gotime.wall(loc, t)
        year_limit = when.year + 5
        while True:  # WRAP
            when = gotime.wall(loc, t)
            if when.year > year_limit:
                return None
            wrapped = False
            while not (1 << when.month & self.month):
                if not added:
                    added = True
                    t = gotime.go_date(when.year, when.month, 1, 0, 0, 0, loc)
                    when = gotime.wall(loc, t)
                t = gotime.go_date(when.year, when.month + 1, when.day, when.hour, when.minute, when.second, loc)
                when = gotime.wall(loc, t)
                if when.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(when):
                if not added:
                    added = True
                    t = gotime.go_date(when.year, when.month, when.day, 0, 0, 0, loc)
                    when = gotime.wall(loc, t)
                t = gotime.go_date(when.year, when.month, when.day + 1, when.hour, when.minute, when.second, loc)
                when = gotime.wall(loc, t)
                if when.hour != 0:  # daylight saving moved midnight: back onto it
                    t += (24 - when.hour) * 3600 if when.hour > 12 else -when.hour * 3600
                    when = gotime.wall(loc, t)
                if when.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << when.hour & self.hour):
                if not added:
                    added = True
                    t = gotime.go_date(when.year, when.month, when.day, when.hour, 0, 0, loc)
                t += 3600
                when = gotime.wall(loc, t)
                if when.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << when.minute & self.minute):
                if not added:
                    added = True
                    t -= t % 60  # Truncate(time.Minute): on the absolute time
                t += 60
                when = gotime.wall(loc, t)
                if when.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while when.second != 0:  # the seconds field is always 0 for a standard schedule
                if not added:
                    added = True
                t += 1
                when = gotime.wall(loc, t)
                if when.second == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            return datetime.fromtimestamp(t, UTC)


@dataclass(frozen=True)
class ConstantDelay:
    """cron.ConstantDelaySchedule (`@every`): whole seconds, at least one."""

    delay_ns: int

    def next(self, after: datetime) -> datetime | None:
        if after.tzinfo is None:
            raise ValueError("next() needs an aware datetime")
        nanos = after.microsecond * 1000
        return (after + timedelta(microseconds=(self.delay_ns - nanos) // 1000)).astimezone(UTC)


Schedule = SpecSchedule | ConstantDelay


def _every(duration_ns: int) -> ConstantDelay:
    if duration_ns < 1_000_000_000:
        duration_ns = 1_000_000_000
    return ConstantDelay(duration_ns - duration_ns % 1_000_000_000)


def _descriptor(text: str, location: str) -> Schedule:
    if text in ("@yearly", "@annually"):
        return SpecSchedule(1 << 0, 1 << 0, 1 << 1, 1 << 1, _all(_DOW), location)
    if text == "@monthly":
        return SpecSchedule(1 << 0, 1 << 0, 1 << 1, _all(_MONTHS), _all(_DOW), location)
    if text == "@weekly":
        return SpecSchedule(1 << 0, 1 << 0, _all(_DOM), _all(_MONTHS), 1 << 0, location)
    if text in ("@daily", "@midnight"):
        return SpecSchedule(1 << 0, 1 << 0, _all(_DOM), _all(_MONTHS), _all(_DOW), location)
    if text == "@hourly":
        return SpecSchedule(1 << 0, _all(_HOURS), _all(_DOM), _all(_MONTHS), _all(_DOW), location)
    if text.startswith("@every "):
        try:
            return _every(gotime.parse_duration_ns(text[len("@every "):]))
        except gotime.DurationError as e:
            raise CronError(f"failed to parse duration {text}: {e}") from None
    raise CronError(f"unrecognized descriptor: {text}")


def _go_fields(fields: list[str]) -> str:
    return "[" + " ".join(fields) + "]"


def parse_standard(spec: str) -> Schedule:
    """cron.ParseStandard."""
    if not spec:
        raise CronError("empty spec string")
    location = ""
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        if space < 0:
            # robfig slices past the end here and panics; refuse instead.
            raise CronError(f"no schedule after {spec}")
        name = spec[spec.index("=") + 1:space]
        try:
            zone(name)
        except CronError as e:
            raise CronError(f"provided bad location {name}: {e}") from None
        location = name or "UTC"
        spec = spec[space:].strip()
    if spec.startswith("@"):
        return _descriptor(spec, location)
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {_go_fields(fields)}")
    return SpecSchedule(
        minute=_field(fields[0], _MINUTES), hour=_field(fields[1], _HOURS), dom=_field(fields[2], _DOM),
        month=_field(fields[3], _MONTHS), dow=_field(fields[4], _DOW), location=location,
    )
