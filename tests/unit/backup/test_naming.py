from datetime import UTC, datetime, timedelta, timezone

import pytest

from operators.backup import naming
from operators.core import cron
from operators.core.gotime import DurationError


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


def test_validate_schedule():
    assert naming.validate_schedule("0 1 * * *") == []
    assert naming.validate_schedule("0 0 30 2 *") == ["schedule '0 0 30 2 *' never fires"]
    assert naming.validate_schedule("") and naming.validate_schedule(None)
    assert naming.validate_schedule("0 25 * * *") == [
        "invalid schedule '0 25 * * *': end of range (25) above maximum (23): 25"]


# --- schedules -----------------------------------------------------------------------------------


def test_due_after_last_backup_or_creation_or_skip():
    schedule = cron.parse_standard("0 * * * *")
    created = at("2026-01-01T10:30:00")
    assert naming.is_due(schedule, at("2026-01-01T10:59:00"), created=created) == (False, at("2026-01-01T11:00:00"))
    assert naming.is_due(schedule, at("2026-01-01T11:00:00"), created=created)[0] is False  # strictly after
    assert naming.is_due(schedule, at("2026-01-01T11:00:01"), created=created)[0] is True
    # Missed runs are not caught up: one backup, then the next hour.
    assert naming.is_due(schedule, at("2026-01-01T15:20:00"), created=created,
                         last_backup=at("2026-01-01T15:10:00")) == (False, at("2026-01-01T16:00:00"))
    # skipImmediately records a skipped firing; the next run is computed from it.
    assert naming.next_run_time(schedule, created=created, last_backup=at("2026-01-01T11:00:00"),
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
