"""Numbers for people (``twisted_stream._format``). The tables here are also checked
against the status page's script in Chromium (``tests/ops/test_status_browser.py``), so the
page and the server format alike."""

from __future__ import annotations

import pytest

from twisted_stream._format import format_bytes, format_count, format_duration, format_rate

BYTES = [
    (0, "0 B"),
    (1, "1 B"),
    (999, "999 B"),
    (1000, "1.00 KB"),
    (1234, "1.23 KB"),
    (12_345, "12.3 KB"),
    (123_456, "123 KB"),
    (999_499, "999 KB"),
    (999_999, "1.00 MB"),
    (60_102_921, "60.1 MB"),
    (4 * 1024**3, "4.29 GB"),
    (1.5e12, "1.50 TB"),
    (-2048, "-2.05 KB"),
    (12.6, "13 B"),
]
DURATIONS = [
    (0, "0 s"),
    (0.0000004, "< 1 \u00b5s"),
    (0.0000421, "42.1 \u00b5s"),
    (0.0009996, "1.00 ms"),
    (0.0004, "400 \u00b5s"),
    (0.0042, "4.20 ms"),
    (0.1234, "123 ms"),
    (0.9996, "1.00 s"),
    (1.234, "1.23 s"),
    (12.34, "12.3 s"),
    (59.96, "1 min 00 s"),
    (65, "1 min 05 s"),
    (3599, "59 min 59 s"),
    (7260, "2 h 01 min"),
    (90_000, "1 d 01 h"),
    (-1, "-"),
]


@pytest.mark.parametrize(("value", "text"), BYTES)
def test_bytes(value: float, text: str) -> None:
    """Byte counts: exact below 1000, then three significant digits of decimal units, never
    a rounded "1000 KB"."""
    assert format_bytes(value) == text


def test_rate_and_count() -> None:
    """A rate is bytes per second; a count has thousands separators; a non-finite value is
    a dash, not ``nan``."""
    assert format_rate(60_102_921) == "60.1 MB/s"
    assert format_rate(0) == "0 B/s"
    assert format_count(60_102_921) == "60,102,921"
    assert format_bytes(float("nan")) == "-"


@pytest.mark.parametrize(("seconds", "text"), DURATIONS)
def test_durations(seconds: float, text: str) -> None:
    """Durations: microseconds below a millisecond, milliseconds below a second, seconds
    below a minute, then minutes and seconds, hours and minutes, days and hours."""
    assert format_duration(seconds) == text
