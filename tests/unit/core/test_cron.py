"""robfig/cron/v3's behaviour as facts kubeplane's users meet (each checked with bin/cron-oracle; the
exhaustive comparison is test_cron_oracle.py)."""

from datetime import UTC, datetime

import pytest

from operators.core import cron


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("* * * * *", "2026-01-01T10:00:30", "2026-01-01T10:01:00"),
    ("0 1 * * *", "2026-12-31T23:00:00", "2027-01-01T01:00:00"),
    ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
    ("0 0 13 * 5", "2026-01-01T00:00:00", "2026-01-02T00:00:00"),  # day 13 OR Friday
    ("0 0 13 * *", "2026-01-01T00:00:00", "2026-01-13T00:00:00"),
    ("0 0 1 * */2", "2026-01-01T00:00:00", "2026-01-03T00:00:00"),  # a stepped weekday restricts: OR
    ("0 0 * * */1", "2026-01-01T00:00:00", "2026-01-02T00:00:00"),  # */1 is still `*`: AND
    ("1,,2 * * * *", "2026-01-01T00:00:00", "2026-01-01T00:01:00"),  # empty list parts are dropped
    ("*-5 * * * *", "2026-01-01T00:00:00", "2026-01-01T00:01:00"),  # `*-5` reads as `*`
    ("@weekly", "2026-01-01T12:00:00", "2026-01-04T00:00:00"),
    ("@every 90m", "2026-01-15T12:00:00.500000", "2026-01-15T13:30:00"),
    ("@every 0.5s", "2026-01-15T12:00:00", "2026-01-15T12:00:01"),  # at least a second
])
def test_next(spec: str, after: str, expected: str) -> None:
    assert cron.parse_standard(spec).next(at(after)) == at(expected)


def test_daylight_saving_as_robfig_counts_it() -> None:
    skipped = cron.parse_standard("TZ=America/New_York 30 2 * * *")  # 02:30 does not exist on 2026-03-08
    assert skipped.next(at("2026-03-07T12:00:00")) == at("2026-03-09T06:30:00")
    repeated = cron.parse_standard("TZ=America/New_York 30 1 * * *")  # 01:30 happens twice on 2026-11-01
    assert repeated.next(at("2026-11-01T04:59:59")) == at("2026-11-01T05:30:00")  # EDT
    assert repeated.next(at("2026-11-01T05:30:00")) == at("2026-11-01T06:30:00")  # and again, EST
    berlin = cron.parse_standard("CRON_TZ=Europe/Berlin 0 3 * * *")
    assert berlin.next(at("2026-07-10T12:00:00")) == at("2026-07-11T01:00:00")


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty spec string"),
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("*/-2 * * * *", "negative number (-2) not allowed: -2"),
    ("a * * * *", 'failed to parse int from a: strconv.Atoi: parsing "a": invalid syntax'),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("@every soon", 'failed to parse duration @every soon: time: invalid duration "soon"'),
    ("TZ=Mars/Olympus 0 0 * * *", "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"),
    ("TZ=UTC", "no schedule after TZ=UTC"),  # robfig panics here
])
def test_errors(spec: str, message: str) -> None:
    with pytest.raises(cron.CronError) as caught:
        cron.parse_standard(spec)
    assert str(caught.value) == message


def test_never_and_naive() -> None:
    assert cron.parse_standard("0 0 31 4 *").next(at("2026-01-01T00:00:00")) is None
    with pytest.raises(ValueError):
        cron.parse_standard("* * * * *").next(datetime(2026, 1, 1))
