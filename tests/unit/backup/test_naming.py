from datetime import UTC, datetime, timedelta, timezone

import pytest

from operators.backup import naming
from operators.backup.naming import CronError, CronSchedule, DurationError, format_duration, parse_duration


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else datetime.fromisoformat(text)


# --- names -------------------------------------------------------------------------------------


def test_timestamped_name_is_utc():
    assert naming.timestamped_name("nightly", at("2026-03-04T05:06:07")) == "nightly-20260304050607"
    cet = timezone(timedelta(hours=1))
    assert naming.timestamped_name("nightly", datetime(2026, 1, 1, 0, 30, tzinfo=cet)) == "nightly-20251231233000"


def test_valid_label_value():
    assert naming.valid_label_value("short") == "short"
    assert naming.valid_label_value("x" * 63) == "x" * 63
    long = naming.valid_label_value("x" * 64)
    assert len(long) == 63 and long.startswith("x" * 57) and long != naming.valid_label_value("x" * 65)


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("720h", timedelta(hours=720)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1.5h", timedelta(minutes=90)),
    ("90s", timedelta(seconds=90)),
    ("300ms", timedelta(milliseconds=300)),
    ("2us", timedelta(microseconds=2)),
    ("2\u00b5s", timedelta(microseconds=2)),
    ("1h1m1s1ms", timedelta(hours=1, minutes=1, seconds=1, milliseconds=1)),
    (".5s", timedelta(milliseconds=500)),
    ("5.s", timedelta(seconds=5)),
    ("-1h", timedelta(hours=-1)),
    ("+2m", timedelta(minutes=2)),
    ("0", timedelta(0)),
    ("0s", timedelta(0)),
    ("1500ns", timedelta(microseconds=1)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1d", "h", "1h 30m", "1.h.5", "-", ".s", "30 d", "1e3s", "9999999999h"])
def test_parse_duration_rejects(text):
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize(("value", "text"), [
    (timedelta(hours=720), "720h0m0s"),
    (timedelta(hours=1, minutes=30), "1h30m0s"),
    (timedelta(seconds=90), "1m30s"),
    (timedelta(milliseconds=1500), "1.5s"),
    (timedelta(milliseconds=500), "500ms"),
    (timedelta(microseconds=1500), "1.5ms"),
    (timedelta(0), "0s"),
    (timedelta(minutes=-5), "-5m0s"),
    (7, "7ns"),
])
def test_format_duration_like_go(value, text):
    assert format_duration(value) == text


def test_ttl_default_expiration_and_expiry():
    assert naming.backup_ttl({}) == timedelta(hours=720)
    assert naming.backup_ttl({"ttl": "0s"}) == timedelta(hours=720)
    assert naming.backup_ttl({"ttl": "24h"}) == timedelta(hours=24)
    with pytest.raises(DurationError):
        naming.backup_ttl({"ttl": "-1h"})
    start = at("2026-01-01T00:00:00")
    assert naming.expiration(start, timedelta(hours=24)) == at("2026-01-02T00:00:00")
    status = {"expiration": "2026-01-02T00:00:00Z"}
    assert not naming.is_expired(status, at("2026-01-01T23:59:59"))
    assert naming.is_expired(status, at("2026-01-02T00:00:00"))
    assert not naming.is_expired({}, at("2099-01-01T00:00:00"))
    assert naming.validate_ttl("720h") == [] and naming.validate_ttl(None) == []
    assert naming.validate_ttl(5) and naming.validate_ttl("-5m") and naming.validate_ttl("5 days")


# --- cron: parsing -----------------------------------------------------------------------------


def test_parse_fields():
    cron = CronSchedule.parse("*/15 1-3,22 1,15 jan-mar,DEC mon-fri")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {1, 2, 3, 22}
    assert cron.days_of_month == {1, 15}
    assert cron.months == {1, 2, 3, 12}
    assert cron.days_of_week == {1, 2, 3, 4, 5}
    assert not cron.dom_star and not cron.dow_star
    steps = CronSchedule.parse("5/20 10-20/5 ? * sun")
    assert steps.minutes == {5, 25, 45} and steps.hours == {10, 15, 20} and steps.dom_star
    assert CronSchedule.parse("0 0 * * */1").dow_star
    assert not CronSchedule.parse("0 0 * * */2").dow_star  # a step over `*` is a restriction


@pytest.mark.parametrize("spec", [
    "", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *", "* * * 13 *",
    "* * * * 7", "5-1 * * * *", "*/0 * * * *", "a * * * *", "* * * foo *", "1,,2 * * * *", "1-2-3 * * * *",
    "1/2/3 * * * *", "-1 * * * *", "@fortnightly", "@every soon", "CRON_TZ=Mars/Olympus 0 0 * * *", "TZ=UTC",
])
def test_parse_rejects(spec):
    with pytest.raises(CronError):
        CronSchedule.parse(spec)


def test_validate_schedule():
    assert naming.validate_schedule("0 1 * * *") == []
    assert naming.validate_schedule("0 0 30 2 *") == ["schedule '0 0 30 2 *' never fires"]
    assert naming.validate_schedule("") and naming.validate_schedule(None)
    assert "invalid schedule" in naming.validate_schedule("0 25 * * *")[0]


# --- cron: next firing -------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("* * * * *", "2026-01-01T10:00:00", "2026-01-01T10:01:00"),
    ("* * * * *", "2026-01-01T10:00:30", "2026-01-01T10:01:00"),
    ("* * * * *", "2026-01-01T09:59:59", "2026-01-01T10:00:00"),
    ("*/15 * * * *", "2026-01-01T10:14:00", "2026-01-01T10:15:00"),
    ("0 1 * * *", "2026-01-01T01:00:00", "2026-01-02T01:00:00"),
    ("0 1 * * *", "2026-12-31T23:00:00", "2027-01-01T01:00:00"),
    ("30 2 1 * *", "2026-01-31T00:00:00", "2026-02-01T02:30:00"),
    ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
    ("0 9 * * mon-fri", "2026-01-02T10:00:00", "2026-01-05T09:00:00"),  # Friday -> Monday
    ("0 0 * * 0", "2026-01-01T00:00:00", "2026-01-04T00:00:00"),  # Thursday -> Sunday
    ("0 0 13 * 5", "2026-01-01T00:00:00", "2026-01-02T00:00:00"),  # day 13 OR Friday: Friday 2nd comes first
    ("0 0 13 * *", "2026-01-01T00:00:00", "2026-01-13T00:00:00"),
    ("0 0 1 * */2", "2026-01-01T00:00:00", "2026-01-03T00:00:00"),  # stepped dow restricts: OR with day 1
    ("0 0 1 * *", "2026-01-01T00:00:00", "2026-02-01T00:00:00"),
    ("@daily", "2026-01-01T12:00:00", "2026-01-02T00:00:00"),
    ("@weekly", "2026-01-01T12:00:00", "2026-01-04T00:00:00"),
    ("@monthly", "2026-01-15T12:00:00", "2026-02-01T00:00:00"),
    ("@yearly", "2026-01-15T12:00:00", "2027-01-01T00:00:00"),
    ("@hourly", "2026-01-15T12:00:00", "2026-01-15T13:00:00"),
    ("@every 90m", "2026-01-15T12:00:00.500000", "2026-01-15T13:30:00"),
])
def test_next(spec, after, expected):
    assert CronSchedule.parse(spec).next(at(after)) == at(expected)


def test_next_in_a_time_zone_across_daylight_saving():
    cron = CronSchedule.parse("CRON_TZ=Europe/Berlin 0 3 * * *")
    assert cron.next(at("2026-01-10T12:00:00")) == at("2026-01-11T02:00:00")  # CET, UTC+1
    assert cron.next(at("2026-07-10T12:00:00")) == at("2026-07-11T01:00:00")  # CEST, UTC+2
    gap = CronSchedule.parse("TZ=Europe/Berlin 30 2 * * *")  # 02:30 does not exist on 2026-03-29
    assert gap.next(at("2026-03-28T12:00:00")) == at("2026-03-30T00:30:00")
    repeated = CronSchedule.parse("TZ=Europe/Berlin 30 2 * * *")  # 02:30 happens twice on 2026-10-25: once
    assert repeated.next(at("2026-10-24T12:00:00")) == at("2026-10-25T00:30:00")
    assert repeated.next(at("2026-10-25T00:30:00")) == at("2026-10-26T01:30:00")


def test_next_never_and_naive_datetimes():
    assert CronSchedule.parse("0 0 31 4 *").next(at("2026-01-01T00:00:00")) is None
    with pytest.raises(ValueError):
        CronSchedule.parse("* * * * *").next(datetime(2026, 1, 1))


# --- schedules -----------------------------------------------------------------------------------


def test_due_after_last_backup_or_creation_or_skip():
    cron = CronSchedule.parse("0 * * * *")
    created = at("2026-01-01T10:30:00")
    assert naming.is_due(cron, at("2026-01-01T10:59:00"), created=created) == (False, at("2026-01-01T11:00:00"))
    assert naming.is_due(cron, at("2026-01-01T11:00:00"), created=created)[0] is False  # strictly after
    assert naming.is_due(cron, at("2026-01-01T11:00:01"), created=created)[0] is True
    # Missed runs are not caught up: one backup, then the next hour.
    assert naming.is_due(cron, at("2026-01-01T15:20:00"), created=created,
                         last_backup=at("2026-01-01T15:10:00")) == (False, at("2026-01-01T16:00:00"))
    # skipImmediately records a skipped firing; the next run is computed from it.
    assert naming.next_run_time(cron, created=created, last_backup=at("2026-01-01T11:00:00"),
                                last_skipped=at("2026-01-01T13:00:00")) == at("2026-01-01T14:00:00")


def test_backup_in_flight_and_most_recent_completed():
    def backup(name: str, phase: str | None, start: str | None = None) -> dict:
        status = {} if phase is None else {"phase": phase}
        if start:
            status["startTimestamp"] = start
        return {"metadata": {"name": name}, "status": status}

    assert naming.backup_in_flight([backup("a", "Completed"), backup("b", None)])
    assert naming.backup_in_flight([backup("a", "InProgress")])
    assert not naming.backup_in_flight([backup("a", "Completed"), backup("b", "Failed")])
    backups = [backup("old", "Completed", "2026-01-01T00:00:00Z"), backup("new", "Completed", "2026-01-03T00:00:00Z"),
               backup("newest", "PartiallyFailed", "2026-01-04T00:00:00Z"), backup("x", "InProgress")]
    assert naming.most_recent_completed(backups)["metadata"]["name"] == "new"  # type: ignore[index]
    assert naming.most_recent_completed([backup("x", "Failed")]) is None
