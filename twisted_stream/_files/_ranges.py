"""``Range`` header parsing and ``multipart/byteranges`` framing (RFC 9110 §14).

Pure functions, no I/O: :func:`parse_range` turns a ``Range`` header value and a file size
into one of three outcomes, and :func:`multipart_layout` describes the exact bytes of a
multi-range body so it can be streamed (and its ``Content-Length`` announced) without
building it in memory.

Policy (where RFC 9110 leaves the server a choice, following Go's ``http.ServeContent``
except where noted):

- A malformed header, or a unit other than ``bytes``, is ignored: the full ``200``.
- More than :data:`MAX_RANGES` range-specs, or specs whose lengths add up to more than the
  file (counted before coalescing, as Go does), are ignored: the full ``200``. This keeps
  ``bytes=0-,0-,0-,...`` from multiplying the response.
- Overlapping or adjacent ranges are coalesced and sorted by offset (each part of a
  multipart body carries its own ``Content-Range``, so order carries no meaning).
- If no range-spec is satisfiable (first byte at or past the end, or ``-0``): ``416``.
- Every ``Range`` on an empty file is ignored: ``200`` with ``Content-Length: 0``, as Go
  (since 1.22), Werkzeug and Rack answer. No byte of it can be satisfied, but players and
  download tools put a ``Range`` on every request, and a 416 for an empty file breaks them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .._errors import MalformedRange
from .._sources._file import FileRegion, Segment

MAX_RANGES = 100
"""Most range-specs accepted in one header, before coalescing; more means ``200``."""

_MAX_DIGITS = 20
"""Longer numbers are all treated as "larger than any file" (avoids huge int parsing)."""

_HUGE = 1 << 80
_RANGE_SPEC = re.compile(r"([0-9]*)[ \t]*-[ \t]*([0-9]*)", re.ASCII)
_OWS = " \t"


class ByteRange(NamedTuple):
    """A satisfiable range of a file: ``length`` bytes from ``start``."""

    start: int
    length: int

    @property
    def last(self) -> int:
        """The offset of the last byte, as written in ``Content-Range``."""
        return self.start + self.length - 1


@dataclass(frozen=True)
class IgnoreRange:
    """Serve the whole file with ``200``, as if there were no ``Range`` header."""

    reason: str


@dataclass(frozen=True)
class Satisfiable:
    """Serve ``206`` with these sorted, disjoint, non-adjacent ranges (at least one)."""

    ranges: tuple[ByteRange, ...]


@dataclass(frozen=True)
class Unsatisfiable:
    """Answer ``416`` with ``Content-Range: bytes */<size>``."""


RangeOutcome = IgnoreRange | Satisfiable | Unsatisfiable


def _number(digits: str) -> int:
    """Parse a run of ASCII digits, saturating absurdly long ones."""
    stripped = digits.lstrip("0")
    if len(stripped) > _MAX_DIGITS:
        return _HUGE
    return int(stripped or "0")


def _parse_spec(spec: str, size: int) -> ByteRange | None:
    """Parse one range-spec against ``size``; None when it is unsatisfiable.

    Raises :class:`MalformedRange` when it does not follow the grammar.
    """
    match = _RANGE_SPEC.fullmatch(spec)
    if match is None:
        raise MalformedRange(spec)
    first, last = match.groups()
    if not first:
        if not last:
            raise MalformedRange(spec)
        suffix = _number(last)
        if suffix == 0:
            return None
        suffix = min(suffix, size)
        return ByteRange(size - suffix, suffix)
    start = _number(first)
    if last:
        end = _number(last)
        if end < start:
            raise MalformedRange(spec)
        end = min(end, size - 1)
    else:
        end = size - 1
    if start >= size:
        return None
    return ByteRange(start, end - start + 1)


def _split_specs(value: str) -> list[str] | None:
    """Return the range-specs of a ``bytes=`` header value, or None if it is malformed."""
    unit, sep, rest = value.strip(_OWS).partition("=")
    if not sep or unit.strip(_OWS).lower() != "bytes":
        return None
    specs = [part.strip(_OWS) for part in rest.split(",")]
    return [spec for spec in specs if spec]


def coalesce(ranges: Sequence[ByteRange]) -> tuple[ByteRange, ...]:
    """Sort ranges and merge those that overlap or touch."""
    merged: list[ByteRange] = []
    for current in sorted(ranges):
        if merged and current.start <= merged[-1].start + merged[-1].length:
            previous = merged[-1]
            end = max(previous.start + previous.length, current.start + current.length)
            merged[-1] = ByteRange(previous.start, end - previous.start)
        else:
            merged.append(current)
    return tuple(merged)


def parse_range(value: str | None, size: int) -> RangeOutcome:
    """Decide how to answer a ``Range`` header value for a file of ``size`` bytes.

    Never raises: any header, however malformed, gives one of the three outcomes.
    """
    if value is None:
        return IgnoreRange("no Range header")
    specs = _split_specs(value)
    if not specs:
        return IgnoreRange("malformed Range header")
    if len(specs) > MAX_RANGES:
        return IgnoreRange("too many ranges")
    try:
        parsed = [_parse_spec(spec, size) for spec in specs]
    except MalformedRange:
        return IgnoreRange("malformed Range header")
    if size == 0:
        return IgnoreRange("an empty file has no byte to select: the whole (empty) file")
    satisfiable = [r for r in parsed if r is not None]
    if not satisfiable:
        return Unsatisfiable()
    if sum(r.length for r in satisfiable) > size:
        return IgnoreRange("ranges add up to more than the file")
    return Satisfiable(coalesce(satisfiable))


def content_range(byte_range: ByteRange, size: int) -> str:
    """The ``Content-Range`` value of one satisfiable range."""
    return f"bytes {byte_range.start}-{byte_range.last}/{size}"


def unsatisfied_content_range(size: int) -> str:
    """The ``Content-Range`` value of a ``416`` answer."""
    return f"bytes */{size}"


@dataclass(frozen=True)
class Layout:
    """A body as literal pieces and file regions, with its exact total length."""

    segments: tuple[Segment, ...]
    length: int


def _part_header(boundary: str, content_type: str, byte_range: ByteRange, size: int) -> str:
    """The delimiter and headers that open one part."""
    return (
        f"--{boundary}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Range: {content_range(byte_range, size)}\r\n"
        "\r\n"
    )


def multipart_layout(
    ranges: Sequence[ByteRange], content_type: str, size: int, boundary: str
) -> Layout:
    """Describe a ``multipart/byteranges`` body (RFC 9110 §14.6) for ``ranges``.

    Each part is ``--boundary``, its ``Content-Type`` and ``Content-Range``, a blank line,
    the file bytes; parts are separated by CRLF and the body ends with ``--boundary--``.
    ``content_type`` and ``boundary`` must be plain ASCII without CR or LF.
    """
    segments: list[Segment] = []
    for index, byte_range in enumerate(ranges):
        header = _part_header(boundary, content_type, byte_range, size)
        segments.append(("\r\n" if index else "").encode("ascii") + header.encode("ascii"))
        segments.append(FileRegion(byte_range.start, byte_range.length))
    segments.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    return Layout(tuple(segments), layout_length(segments))


def layout_length(segments: Sequence[Segment]) -> int:
    """The number of bytes a layout produces."""
    return sum(
        segment.length if isinstance(segment, FileRegion) else len(segment) for segment in segments
    )
