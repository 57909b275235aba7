"""Validators and conditional requests (RFC 9110 §8.8, §13).

Pure functions, no I/O: an ETag derived from file metadata, HTTP-date parsing and
formatting, entity-tag lists, and the evaluation of ``If-Match``, ``If-Unmodified-Since``,
``If-None-Match``, ``If-Modified-Since`` and ``If-Range`` in the order of RFC 9110 §13.2.2.

Header values are ``str`` (decode header bytes as ISO-8859-1 so every byte maps to one
character). Nothing here raises on bad input: an invalid date is ignored, a malformed
entity-tag list ends at the first malformed member (the members before it still count, as
in Go's ``http.ServeContent``).
"""

from __future__ import annotations

import calendar
import datetime
import enum
import re
import time
from dataclasses import dataclass
from typing import NamedTuple

# --- entity tags ------------------------------------------------------------------------


class ETag(NamedTuple):
    """An entity tag: its opaque value (without quotes) and whether it is weak."""

    opaque: str
    weak: bool = False

    def __str__(self) -> str:
        """The header form, ``"opaque"`` or ``W/"opaque"``."""
        return f'{"W/" if self.weak else ""}"{self.opaque}"'


def metadata_etag(mtime_ns: int, size: int, inode: int) -> ETag:
    """A strong ETag from file metadata: ``"<mtime_ns>-<size>-<inode>"`` in hex.

    Cheap (one ``fstat``, never a read of the content) and it changes whenever the file is
    replaced (new inode), resized, or rewritten (new nanosecond mtime). It is strong so that
    ``If-Range`` and ``If-Match`` can use it; a rewrite that keeps size, inode and a forged
    mtime goes unnoticed, as with every metadata ETag (nginx, Apache).
    """
    return ETag(f"{mtime_ns:x}-{size:x}-{inode:x}")


@dataclass(frozen=True)
class EntityTags:
    """A parsed ``If-Match``/``If-None-Match`` value: ``*`` and/or a list of tags."""

    any: bool
    tags: tuple[ETag, ...]


_ETAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
_LIST_ITEM = re.compile(r'[ \t]*(?:(\*)|(W/)?"([\x21\x23-\x7e\x80-\xff]*)")[ \t]*(?:,|\Z)')
_EMPTY_ITEM = re.compile(r"[ \t]*,")


def parse_etag(value: str) -> ETag | None:
    """Parse a single entity-tag (as in ``If-Range``); None if malformed."""
    match = _ETAG.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    return ETag(match.group(2), weak=match.group(1) is not None)


def parse_etag_list(value: str) -> EntityTags:
    """Parse ``*`` or a comma-separated list of entity-tags.

    Empty list members are skipped; the list ends at the first malformed member.
    """
    star = False
    tags: list[ETag] = []
    position = 0
    while position < len(value):
        empty = _EMPTY_ITEM.match(value, position)
        if empty is not None:
            position = empty.end()
            continue
        item = _LIST_ITEM.match(value, position)
        if item is None:
            break
        if item.group(1):
            star = True
        else:
            tags.append(ETag(item.group(3), weak=item.group(2) is not None))
        position = item.end()
    return EntityTags(star, tuple(tags))


def strong_match(a: ETag, b: ETag) -> bool:
    """RFC 9110 §8.8.3.2 strong comparison: both strong and identical."""
    return not a.weak and not b.weak and a.opaque == b.opaque


def weak_match(a: ETag, b: ETag) -> bool:
    """RFC 9110 §8.8.3.2 weak comparison: identical opaque values."""
    return a.opaque == b.opaque


# --- HTTP dates -------------------------------------------------------------------------

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAY = "|".join(_DAYS)
_MONTH = "|".join(_MONTHS)
_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_IMF_FIXDATE = re.compile(rf"(?:{_DAY}), ([0-9]{{2}}) ({_MONTH}) ([0-9]{{4}}) {_TIME} GMT")
_RFC850 = re.compile(
    rf"(?:{'|'.join(_LONG_DAYS)}), ([0-9]{{2}})-({_MONTH})-([0-9]{{2}}) {_TIME} GMT"
)
_ASCTIME = re.compile(rf"(?:{_DAY}) ({_MONTH}) ([0-9 ][0-9]) {_TIME} ([0-9]{{4}})")


def _timestamp(year: int, month: str, day: int, hms: tuple[str, str, str]) -> int | None:
    """Seconds since the epoch for a UTC date, or None if it does not exist."""
    hour, minute, second = (int(part) for part in hms)
    if hour > 23 or minute > 59 or second > 60:
        return None
    try:
        date = datetime.date(year, _MONTHS.index(month) + 1, day)
    except ValueError:
        return None
    # A leap second (":60") is folded onto the last second of its minute.
    return calendar.timegm((*date.timetuple()[:3], hour, minute, min(second, 59)))


def _full_year(two_digits: int, now: float) -> int:
    """RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is in the past century."""
    this_year = time.gmtime(now).tm_year
    year = this_year - this_year % 100 + two_digits
    return year - 100 if year > this_year + 50 else year


def parse_http_date(value: str, now: float | None = None) -> int | None:
    """Parse an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms).

    Returns seconds since the epoch, or None when the value is not a valid date (a
    recipient then ignores the header). ``now`` resolves RFC 850 two-digit years.
    """
    value = value.strip(" \t")
    if match := _IMF_FIXDATE.fullmatch(value):
        day, month, year, *hms = match.groups()
        return _timestamp(int(year), month, int(day), (hms[0], hms[1], hms[2]))
    if match := _RFC850.fullmatch(value):
        day, month, year, *hms = match.groups()
        full = _full_year(int(year), time.time() if now is None else now)
        return _timestamp(full, month, int(day), (hms[0], hms[1], hms[2]))
    if match := _ASCTIME.fullmatch(value):
        month, day, *hms, year = match.groups()
        return _timestamp(int(year), month, int(day), (hms[0], hms[1], hms[2]))
    return None


def format_http_date(seconds: float) -> str:
    """Format a time as an IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


# --- evaluation -------------------------------------------------------------------------


class Verdict(enum.Enum):
    """What the preconditions of a request decide."""

    PROCEED = 200
    """Answer normally (possibly with a range)."""
    NOT_MODIFIED = 304
    """Answer ``304 Not Modified``."""
    PRECONDITION_FAILED = 412
    """Answer ``412 Precondition Failed``."""


@dataclass(frozen=True)
class Conditions:
    """The conditional headers of a request (None when absent)."""

    if_match: str | None = None
    if_unmodified_since: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None


@dataclass(frozen=True)
class Validators:
    """The current validators of the selected representation."""

    etag: ETag
    last_modified: int
    """Whole seconds since the epoch, as sent in ``Last-Modified``."""
    strong_date: bool = True
    """Whether ``last_modified`` is a strong validator (RFC 9110 §8.8.2.2): at least one
    second before the response's ``Date``. A file changed in the same second as the response
    may change again within that second, unseen by a one-second date."""


def validators_at(etag: ETag, mtime_ns: int, date: int) -> Validators:
    """The validators of a file modified at ``mtime_ns`` (nanoseconds) answered in a
    response whose ``Date`` is ``date`` (seconds).

    ``Last-Modified`` is never later than ``Date`` (RFC 9110 §8.8.2.1: a modification time
    in the future is replaced by the ``Date``); it is strong only when it is at least one
    second before the ``Date`` (§8.8.2.2).
    """
    last_modified = min(mtime_ns // 10**9, date)
    return Validators(etag, last_modified, strong_date=last_modified < date)


def _if_match(value: str, etag: ETag) -> bool:
    """True when ``If-Match`` passes: ``*`` or a strongly matching tag."""
    tags = parse_etag_list(value)
    return tags.any or any(strong_match(tag, etag) for tag in tags.tags)


def _if_none_match(value: str, etag: ETag) -> bool:
    """True when ``If-None-Match`` passes: neither ``*`` nor a weakly matching tag."""
    tags = parse_etag_list(value)
    return not tags.any and not any(weak_match(tag, etag) for tag in tags.tags)


def _modified_since(value: str, current: Validators) -> bool | None:
    """True when the representation may have changed after the date; None when the date is
    invalid. A date equal to a weak ``Last-Modified`` counts as changed: the one-second date
    cannot tell the version the client saw from a later one of the same second."""
    date = parse_http_date(value)
    if date is None:
        return None
    if current.last_modified == date:
        return not current.strong_date
    return current.last_modified > date


def evaluate(method: str, conditions: Conditions, current: Validators) -> Verdict:
    """Evaluate preconditions in the order of RFC 9110 §13.2.2 (steps 1 to 4).

    ``If-Range`` (step 5) is separate: see :func:`if_range_allows`.
    """
    if conditions.if_match is not None:
        if not _if_match(conditions.if_match, current.etag):
            return Verdict.PRECONDITION_FAILED
    elif conditions.if_unmodified_since is not None:
        if _modified_since(conditions.if_unmodified_since, current):
            return Verdict.PRECONDITION_FAILED
    safe = method in ("GET", "HEAD")
    if conditions.if_none_match is not None:
        if not _if_none_match(conditions.if_none_match, current.etag):
            return Verdict.NOT_MODIFIED if safe else Verdict.PRECONDITION_FAILED
    elif safe and conditions.if_modified_since is not None:
        if _modified_since(conditions.if_modified_since, current) is False:
            return Verdict.NOT_MODIFIED
    return Verdict.PROCEED


def if_range_allows(value: str | None, current: Validators) -> bool:
    """True when a ``Range`` may be honoured given ``If-Range`` (RFC 9110 §13.1.5).

    An entity-tag must match strongly (a weak tag never does), a date must equal a strong
    ``Last-Modified`` exactly (§8.8.2.2; a weak one never matches); anything else, malformed
    values included, means "send the whole representation".
    """
    if value is None:
        return True
    stripped = value.strip(" \t")
    if stripped.startswith(('"', "W/")):
        tag = parse_etag(stripped)
        return tag is not None and strong_match(tag, current.etag)
    date = parse_http_date(stripped)
    return date is not None and date == current.last_modified and current.strong_date
