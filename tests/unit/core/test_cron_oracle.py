"""operators/core/cron.py against robfig/cron/v3 itself (bin/cron-oracle, built from the module
Kubernetes 1.34 pins by `make tools`): the same answer, to the second, for every query.

Queries are generated from a fixed seed: schedules of every shape (lists, ranges, steps, names in any
case, `*` and `?`, descriptors, `@every`, zones, and malformed ones, whose rejection must agree, with
robfig's own message), asked at instants around every daylight-saving change from 2024 to 2027 in
zones with one-hour, half-hour and no changes, and at random instants.
"""

from __future__ import annotations

import random
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from operators.core import cron, gotime

ORACLE = Path(__file__).resolve().parents[3] / "bin" / "cron-oracle"
SEED = 20261202
ZONES = ["UTC", "America/New_York", "Europe/London", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu",
         "America/Sao_Paulo", "Pacific/Chatham", "Asia/Tehran", "America/Santiago", "Australia/Sydney"]


def _transitions(name: str, start: int, end: int) -> list[int]:
    """The instants (Unix seconds) at which the zone's UTC offset changes, found hour by hour."""
    location = cron.zone(name)
    found, previous = [], gotime.offset_at(location, start)
    for unix in range(start, end, 3600):
        offset = gotime.offset_at(location, unix)
        if offset != previous:
            low, high = unix - 3600, unix  # the change lies in (low, high]: bisect to the second
            while high - low > 1:
                middle = (low + high) // 2
                if gotime.offset_at(location, middle) == previous:
                    low = middle
                else:
                    high = middle
            found.append(high)
            previous = offset
    return found


def _field(rng: random.Random, low: int, high: int, names: list[str]) -> str:
    def value() -> str:
        if names and rng.random() < 0.3:
            name = rng.choice(names)
            return rng.choice([name, name.upper(), name.capitalize()])
        return str(rng.randint(low, high))

    def part() -> str:
        kind = rng.random()
        if kind < 0.2:
            return rng.choice(["*", "?"])
        if kind < 0.35:
            return f"*/{rng.randint(1, max(2, high // 2))}"
        if kind < 0.6:
            return value()
        a, b = sorted((rng.randint(low, high), rng.randint(low, high)))
        text = f"{a}-{b}"
        return f"{text}/{rng.randint(1, 5)}" if rng.random() < 0.3 else text

    return ",".join(part() for _ in range(rng.choice([1, 1, 1, 2, 3])))


MALFORMED = ["", " ", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *", "* * * 13 *",
             "* * * * 7", "5-1 * * * *", "*/0 * * * *", "a * * * *", "* * * foo *", "1,,2 * * * *", "1-2-3 * * * *",
             "1/2/3 * * * *", "-1 * * * *", "*/-2 * * * *", "*-5 * * * *", "+5 * * * *", "05 * * * *", "@fortnightly",
             "@every soon", "@every 1x", "@every 1", "@every -5s", "@every 0.5s", "@every 90m", "@daily ", "@Daily",
             "CRON_TZ=Mars/Olympus 0 0 * * *", "TZ=Europe/Berlin @weekly", "TZ=Asia/Kathmandu @every 1h",
             "99999999999999999999 * * * *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 29 2 1", "0 0 29 2 *",
             "1,,,2 * * * *", ", * * * *", "0 0 * * sun-sat", "0 0 * * SAT-sun"]


def _specs(rng: random.Random, count: int) -> list[str]:
    specs = list(MALFORMED)
    descriptors = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]
    months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
    while len(specs) < count:
        roll = rng.random()
        if roll < 0.08:
            body = rng.choice(descriptors)
        elif roll < 0.12:
            body = f"@every {rng.choice(['1s', '45s', '1m30s', '2h', '90m', '1.5h', '36h', '500ms', '7h13m'])}"
        else:
            body = " ".join([_field(rng, 0, 59, []), _field(rng, 0, 23, []), _field(rng, 1, 31, []),
                             _field(rng, 1, 12, months), _field(rng, 0, 6, days)])
        if rng.random() < 0.5:
            body = f"{rng.choice(['TZ', 'CRON_TZ'])}={rng.choice(ZONES)} {body}"
        specs.append(body)
    return specs


def _instants(rng: random.Random) -> list[datetime]:
    start, end = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()), int(datetime(2028, 1, 1, tzinfo=UTC).timestamp())
    instants = []
    for name in ZONES[1:]:
        for change in _transitions(name, start, end):
            for delta in (-86400, -3601, -3600, -1801, -61, -1, 0, 1, 59, 1799, 3599, 3600, 7200):
                instants.append(datetime.fromtimestamp(change + delta, UTC))
    for _ in range(200):
        instants.append(datetime.fromtimestamp(rng.randint(start, end), UTC)
                        + timedelta(microseconds=rng.choice([0, 0, 1, 500_000, 999_999])))
    return instants


def _queries() -> list[tuple[str, datetime]]:
    rng = random.Random(SEED)
    specs, instants = _specs(rng, 1200), _instants(rng)
    queries = [(spec, rng.choice(instants)) for spec in specs for _ in range(3)]
    # Every DST-sensitive instant meets the daily and hourly shapes that DST changes trouble.
    for spec in ("30 2 * * *", "30 1 * * *", "0 2 * * *", "0 * * * *", "*/30 * * * *", "0 0 * * *", "15 3 * * *"):
        for name in ZONES[1:]:
            queries += [(f"TZ={name} {spec}", when) for when in instants[:: max(1, len(instants) // 300)]]
    return queries


def _ask_oracle(queries: list[tuple[str, datetime]]) -> list[str]:
    text = "".join(f"{spec}\t{when.isoformat().replace('+00:00', 'Z')}\n" for spec, when in queries)
    done = subprocess.run([str(ORACLE)], input=text, capture_output=True, text=True, env={"TZ": "UTC"}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _ours(spec: str, when: datetime) -> str:
    try:
        schedule = cron.parse_standard(spec)
    except cron.CronError as e:
        return f"error\t{e}"
    upcoming = schedule.next(when)
    if upcoming is None:
        return "never"
    return upcoming.strftime("%Y-%m-%dT%H:%M:%S") + (f".{upcoming.microsecond:06d}".rstrip("0") if
                                                      upcoming.microsecond else "") + "Z"


def test_the_python_parser_answers_what_robfig_answers() -> None:
    if not ORACLE.exists():
        pytest.fail(f"{ORACLE} is missing: run `make tools` (make test does)")
    queries = _queries()
    answers = _ask_oracle(queries)
    assert len(answers) == len(queries)
    disagreements = []
    for (spec, when), theirs in zip(queries, answers, strict=True):
        ours = _ours(spec, when)
        if ours != theirs:
            disagreements.append(f"{spec!r} after {when.isoformat()}: robfig {theirs!r}, kubeplane {ours!r}")
    assert not disagreements, f"{len(disagreements)} of {len(queries)} differ:\n" + "\n".join(disagreements[:40])
    assert len(queries) > 5000
