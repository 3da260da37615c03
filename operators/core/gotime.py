"""Go's time semantics where kubeplane must agree with Go programs to the nanosecond.

- `parse_duration_ns`: time.ParseDuration (`720h`, `1h30m`, `1.5h`, `-2m3.5s`), with Go's error texts;
- `format_duration`: time.Duration.String();
- `go_date`: time.Date, normalising out-of-range fields (the 31st of February is the 3rd of March) and
  choosing, for a wall time that a daylight-saving change skips or repeats, the instant Go chooses;
- `offset_at`: a location's UTC offset at an instant.

Instants are integers: seconds since the Unix epoch plus nanoseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_LIMIT = 1 << 63


class DurationError(ValueError):
    pass


def quote(text: str) -> str:
    """time.quote: double quotes; non-ASCII and control bytes as \\xNN, `"` and `\\` escaped."""
    out = ['"']
    for char in text:
        if char >= "\x80" or char < " ":
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
        else:
            if char in ('"', "\\"):
                out.append("\\")
            out.append(char)
    out.append('"')
    return "".join(out)


def _leading_int(text: str) -> tuple[int, str]:
    value, i = 0, 0
    while i < len(text) and "0" <= text[i] <= "9":
        if value > _LIMIT // 10:
            raise OverflowError
        value = value * 10 + ord(text[i]) - 48
        if value > _LIMIT:
            raise OverflowError
        i += 1
    return value, text[i:]


def _leading_fraction(text: str) -> tuple[int, float, str]:
    value, scale, i, overflow = 0, 1.0, 0, False
    while i < len(text) and "0" <= text[i] <= "9":
        if not overflow:
            if value > (_LIMIT - 1) // 10:
                overflow = True
            else:
                candidate = value * 10 + ord(text[i]) - 48
                if candidate > _LIMIT:
                    overflow = True
                else:
                    value = candidate
                    scale *= 10
        i += 1
    return value, scale, text[i:]


def parse_duration_ns(text: str) -> int:
    """time.ParseDuration, in integer nanoseconds."""
    original, rest, negative = text, text, False
    invalid = DurationError(f"time: invalid duration {quote(original)}")
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        if not (rest[0] == "." or "0" <= rest[0] <= "9"):
            raise invalid
        before = len(rest)
        try:
            whole, rest = _leading_int(rest)
        except OverflowError:
            raise invalid from None
        pre = before != len(rest)
        fraction, scale, post = 0, 1.0, False
        if rest[:1] == ".":
            rest = rest[1:]
            before = len(rest)
            fraction, scale, rest = _leading_fraction(rest)
            post = before != len(rest)
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(rest) and not (rest[i] == "." or "0" <= rest[i] <= "9"):
            i += 1
        if i == 0:
            raise DurationError(f"time: missing unit in duration {quote(original)}")
        unit_name, rest = rest[:i], rest[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise DurationError(f"time: unknown unit {quote(unit_name)} in duration {quote(original)}")
        if whole > _LIMIT // unit:
            raise invalid
        whole *= unit
        if fraction > 0:
            whole += int(float(fraction) * (float(unit) / scale))  # float64, as Go computes it
            if whole > _LIMIT:
                raise invalid
        total += whole
        if total > _LIMIT:
            raise invalid
    if negative:
        return -total
    if total > _LIMIT - 1:
        raise invalid
    return total


def parse_duration(text: str) -> timedelta:
    """time.ParseDuration as a timedelta (truncated to microseconds)."""
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
    """time.Duration.String(): `720h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`."""
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


# --- instants and wall clocks ------------------------------------------------------------------

_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()


def offset_at(location: tzinfo, unix: int) -> int:
    """The location's UTC offset in seconds at the instant `unix`."""
    moment = datetime.fromtimestamp(unix, UTC).astimezone(location)
    offset = moment.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def wall(location: tzinfo, unix: int) -> datetime:
    """The wall clock (naive) of the instant `unix` in `location`."""
    return datetime.fromtimestamp(unix, UTC).astimezone(location).replace(tzinfo=None)


def go_date(year: int, month: int, day: int, hour: int, minute: int, second: int, location: tzinfo) -> int:
    """time.Date(...).Unix(): fields out of range are carried over (month 13 is next January, day 0 the
    last day of the previous month), and the wall time is mapped to an instant the way Go maps it:
    the offset in force at the wall time read as UTC, corrected once if the resulting instant falls
    outside that offset's period. (For a time that a daylight-saving change skips or repeats, this
    is Go's choice, which is not Python's fold=0.)"""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    days = datetime(year, month, 1).toordinal() - _EPOCH_ORDINAL + (day - 1)
    unix = days * 86400 + hour * 3600 + minute * 60 + second
    offset = offset_at(location, unix)
    if offset != 0:
        utc = unix - offset
        actual = offset_at(location, utc)
        if actual != offset:
            offset = actual
        unix -= offset
    return unix
