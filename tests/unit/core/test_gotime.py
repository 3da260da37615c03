"""Go's time.ParseDuration and Duration.String, as facts (Go's own test cases and error texts)."""

from datetime import timedelta

import pytest

from operators.core.gotime import DurationError, format_duration, parse_duration, parse_duration_ns


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


def test_go_error_texts():
    for text, message in [("", 'time: invalid duration ""'), ("1", 'time: missing unit in duration "1"'),
                          ("1d", 'time: unknown unit "d" in duration "1d"'), (".s", 'time: invalid duration ".s"'),
                          ("9999999999h", 'time: invalid duration "9999999999h"'),
                          ("1\u00e9s", 'time: unknown unit "\\xc3\\xa9s" in duration "1\\xc3\\xa9s"')]:
        with pytest.raises(DurationError) as caught:
            parse_duration(text)
        assert str(caught.value) == message


def test_fractions_are_float64_like_go():
    # Checked against Go 1.26's time.ParseDuration.
    assert parse_duration_ns("1.1h") == 3_960_000_000_000
    assert parse_duration_ns("0.3333333333333333333h") == 1_200_000_000_000
    assert parse_duration_ns("1.0000000000000000001h") == 3_600_000_000_000
    assert parse_duration_ns("3.999999999999s") == 3_999_999_999
    assert parse_duration_ns("0.1ns") == 0
    assert parse_duration_ns("-9223372036854775808ns") == -(1 << 63)
    with pytest.raises(DurationError):
        parse_duration_ns("9223372036854775808ns")
