"""Numbers formatted for people: byte counts, rates and durations.

Used wherever the project shows a number to a person (the status page, directory listings,
log lines) so that ``60102921`` reads ``60.1 MB`` everywhere. Byte units are decimal (SI:
1 KB = 1000 B), as browsers' download managers and ``ls --si`` show them; three significant
digits. The status page's script formats the same way (``tests/ops/test_status_browser.py``
checks both against one table).
"""

from __future__ import annotations

import math

_BYTE_UNITS = ("KB", "MB", "GB", "TB", "PB", "EB")


def _three_digits(value: float) -> str:
    """``value`` (1 <= value < 1000) with three significant digits."""
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def format_bytes(count: float) -> str:
    """``1234`` -> ``"1.23 KB"``; under 1000, the exact count (``"999 B"``)."""
    if not math.isfinite(count):
        return "-"
    sign = "-" if count < 0 else ""
    value = abs(count)
    if value < 1000:
        return f"{sign}{value:.0f} B"
    for unit in _BYTE_UNITS:
        value /= 1000
        # Rounding to three digits may reach 1000: then the next unit reads better.
        if float(_three_digits(value)) < 1000 or unit == _BYTE_UNITS[-1]:
            return f"{sign}{_three_digits(value)} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def format_rate(bytes_per_second: float) -> str:
    """``1234.5`` -> ``"1.23 KB/s"``."""
    return format_bytes(bytes_per_second) + "/s"


def format_duration(seconds: float) -> str:
    """``0.0000421`` -> ``"42.1 µs"``, ``0.0042`` -> ``"4.20 ms"``, ``12.34`` -> ``"12.3 s"``,
    ``65`` -> ``"1 min 05 s"``, ``7260`` -> ``"2 h 01 min"``, ``90000`` -> ``"1 d 01 h"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    if seconds < 1:
        for unit, scale, upper in (("ms", 1e3, "1.00 s"), ("\u00b5s", 1e6, "1.00 ms")):
            value = seconds * scale
            if value >= 1:
                return (
                    upper
                    if float(_three_digits(value)) >= 1000
                    else f"{_three_digits(value)} {unit}"
                )
        return "0 s" if seconds == 0 else "< 1 \u00b5s"
    if seconds < 60:
        text = _three_digits(seconds)
        return f"{text} s" if float(text) < 60 else "1 min 00 s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole // 60 % 60:02d} min"
    return f"{whole // 86400} d {whole // 3600 % 24:02d} h"


def format_count(count: int) -> str:
    """``1234567`` -> ``"1,234,567"``."""
    return f"{count:,}"
