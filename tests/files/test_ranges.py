"""Range parsing and multipart/byteranges framing (``twisted_stream._files._ranges``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twisted_stream._files._ranges import (
    MAX_RANGES,
    ByteRange,
    FileRegion,
    IgnoreRange,
    Layout,
    RangeOutcome,
    Satisfiable,
    Unsatisfiable,
    coalesce,
    content_range,
    layout_length,
    multipart_layout,
    parse_range,
    unsatisfied_content_range,
)

GIB = 1 << 30


def ranges_of(outcome: RangeOutcome) -> tuple[tuple[int, int], ...]:
    """The (start, length) pairs of a satisfiable outcome; fails for any other."""
    assert isinstance(outcome, Satisfiable), outcome
    return tuple((r.start, r.length) for r in outcome.ranges)


# --- examples ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, ((0, 1),)),
        ("bytes=0-9", 10, ((0, 10),)),
        ("bytes=2-5", 10, ((2, 4),)),
        ("bytes=5-", 10, ((5, 5),)),
        ("bytes=5-100", 10, ((5, 5),)),
        ("bytes=-3", 10, ((7, 3),)),
        ("bytes=-10", 10, ((0, 10),)),
        ("bytes=0-1,5-6", 10, ((0, 2), (5, 2))),
        ("bytes=5-6,0-1", 10, ((0, 2), (5, 2))),
        ("BYTES=1-2", 10, ((1, 2),)),
        ("bytes=1-2, 4-5", 10, ((1, 2), (4, 2))),
        (" bytes=1-2 ,, 4-5 ,", 10, ((1, 2), (4, 2))),
        ("bytes=1 - 2", 10, ((1, 2),)),
        ("bytes=0-99999999999999999999999999999999", 10, ((0, 10),)),
        ("bytes=-99999999999999999999999999999999", 10, ((0, 10),)),
        ("bytes=0000003-0000004", 10, ((3, 2),)),
    ],
)
def test_satisfiable_examples(header: str, size: int, expected: tuple[tuple[int, int]]) -> None:
    """Well-formed headers give the RFC 9110 byte ranges, sorted by offset."""
    assert ranges_of(parse_range(header, size)) == expected


def test_suffix_larger_than_file_is_whole_file() -> None:
    """``bytes=-100`` on a 6-byte file is the whole file (static.File answers 500)."""
    assert ranges_of(parse_range("bytes=-100", 6)) == ((0, 6),)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-4,5-9", ((0, 10),)),
        ("bytes=0-5,3-8", ((0, 9),)),
        ("bytes=10-20,0-2,3-4", ((0, 5), (10, 11))),
        ("bytes=0-1,3-4", ((0, 2), (3, 2))),
        ("bytes=50-,-10", ((50, 50),)),
    ],
)
def test_overlapping_and_adjacent_ranges_are_coalesced(
    header: str, expected: tuple[tuple[int, int]]
) -> None:
    """Ranges that overlap or touch merge into one; a one-byte gap keeps them apart."""
    assert ranges_of(parse_range(header, 100)) == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        "bytes",
        "bytes=",
        "bytes=,",
        "bytes 0-1",
        "items=0-1",
        "bytes=a-b",
        "bytes=5-3",
        "bytes=-",
        "bytes=1-2,x",
        "bytes=--1",
        "bytes=+1-2",
        "bytes=1-+2",
        "bytes=0x1-2",
        "bytes=1_0-20",
        "bytes=\u00b2-3",
        "bytes=\u0663-5",
        "bytes=1-2-3",
    ],
)
def test_malformed_header_is_ignored(header: str) -> None:
    """A malformed Range header is ignored (full 200), never an error or a 416."""
    assert isinstance(parse_range(header, 100), IgnoreRange)


def test_missing_header_is_ignored() -> None:
    """No Range header means the full representation."""
    assert isinstance(parse_range(None, 100), IgnoreRange)


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=10-20", "bytes=-0", "bytes=10-,20-30"])
def test_unsatisfiable(header: str) -> None:
    """Ranges that all start at or past the end, or ``-0``, are unsatisfiable (416)."""
    assert parse_range(header, 10) == Unsatisfiable()


def test_unsatisfiable_specs_are_dropped_when_one_is_satisfiable() -> None:
    """A satisfiable spec wins over unsatisfiable ones next to it."""
    assert ranges_of(parse_range("bytes=50-60,0-1,-0", 10)) == ((0, 2),)


def test_too_many_ranges_is_ignored() -> None:
    """200 copies of ``0-`` give the whole file once (static.File sent 200 times the file)."""
    assert isinstance(parse_range("bytes=" + ",".join(["0-"] * 200), 1 << 20), IgnoreRange)


def test_range_cap_is_counted_before_coalescing() -> None:
    """Exactly MAX_RANGES specs are accepted; one more is ignored even if they would merge."""
    specs = [f"{i}-{i}" for i in range(MAX_RANGES + 1)]
    assert ranges_of(parse_range("bytes=" + ",".join(specs[:MAX_RANGES]), 1000)) == (
        (0, MAX_RANGES),
    )
    assert isinstance(parse_range("bytes=" + ",".join(specs), 1000), IgnoreRange)


def test_ranges_adding_up_to_more_than_the_file_are_ignored() -> None:
    """Overlapping ranges whose lengths sum past the size are ignored (as in Go)."""
    assert isinstance(parse_range("bytes=0-,0-", 10), IgnoreRange)
    assert isinstance(parse_range("bytes=0-7,2-9", 10), IgnoreRange)


@pytest.mark.parametrize(
    "header",
    ["bytes=0-", "bytes=0-0", "bytes=-5", "bytes=-0", "bytes=5-10", "bytes=0-0,-1", "bytes=0-,0-"],
)
def test_empty_file(header: str) -> None:
    """Kind 1 (validators and ranges): every range of an empty file is ignored, so it is
    served whole (200, Content-Length: 0) as Go's ServeContent does, never 416: the open
    ``0-`` players send, ``0-0``, suffixes, unsatisfiable specs and multi-ranges alike."""
    assert isinstance(parse_range(header, 0), IgnoreRange)


def test_offsets_beyond_4_gib() -> None:
    """Sizes and offsets past 2**32 are exact."""
    size = 5 * GIB + 3
    assert ranges_of(parse_range(f"bytes={4 * GIB}-{4 * GIB + 9}", size)) == ((4 * GIB, 10),)
    assert ranges_of(parse_range("bytes=-10", size)) == ((size - 10, 10),)
    assert ranges_of(parse_range(f"bytes={size - 1}-", size)) == ((size - 1, 1),)


def test_content_range_values() -> None:
    """Content-Range uses inclusive last offsets and ``*`` for 416."""
    assert content_range(ByteRange(0, 1), 10) == "bytes 0-0/10"
    assert (
        content_range(ByteRange(4 * GIB, 2), 5 * GIB) == f"bytes {4 * GIB}-{4 * GIB + 1}/{5 * GIB}"
    )
    assert unsatisfied_content_range(10) == "bytes */10"


def test_coalesce_keeps_disjoint_ranges() -> None:
    """Ranges with a gap between them are kept separate and sorted."""
    assert coalesce([ByteRange(10, 2), ByteRange(0, 2)]) == (ByteRange(0, 2), ByteRange(10, 2))


# --- multipart framing ------------------------------------------------------------------


def render(layout: Layout, data: bytes) -> bytes:
    """The body a layout describes over ``data``."""
    return b"".join(
        data[s.offset : s.offset + s.length] if isinstance(s, FileRegion) else s
        for s in layout.segments
    )


def parse_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/byteranges body into (headers, data) parts, checking the framing."""
    opening, closing = f"--{boundary}\r\n".encode(), f"\r\n--{boundary}--\r\n".encode()
    assert body.startswith(opening) and body.endswith(closing)
    parts = []
    for raw in body[len(opening) : -len(closing)].split(f"\r\n--{boundary}\r\n".encode()):
        head, sep, data = raw.partition(b"\r\n\r\n")
        assert sep
        headers = dict(line.split(": ", 1) for line in head.decode("ascii").split("\r\n"))
        parts.append((headers, data))
    return parts


def test_multipart_layout_example() -> None:
    """A two-range body has the exact RFC 9110 §14.6 framing and length."""
    data = b"0123456789"
    layout = multipart_layout([ByteRange(0, 2), ByteRange(5, 3)], "text/plain", 10, "XYZ")
    body = render(layout, data)
    assert body == (
        b"--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01"
        b"\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-7/10\r\n\r\n567"
        b"\r\n--XYZ--\r\n"
    )
    assert layout.length == len(body) == layout_length(layout.segments)


def test_multipart_layout_beyond_4_gib() -> None:
    """Layout lengths count file regions past 2**32 without reading them."""
    size = 6 * GIB
    layout = multipart_layout([ByteRange(0, 1), ByteRange(5 * GIB, GIB)], "a/b", size, "b")
    literal = sum(len(s) for s in layout.segments if isinstance(s, bytes))
    assert layout.length == literal + 1 + GIB


# --- properties -------------------------------------------------------------------------

SIZES = st.integers(min_value=0, max_value=300)
SPEC = st.one_of(
    st.tuples(st.integers(0, 400), st.none()),
    st.tuples(st.integers(0, 400), st.integers(0, 400)).map(lambda t: (min(t), max(t))),
    st.tuples(st.none(), st.integers(0, 400)),
)


def spec_text(spec: tuple[int | None, int | None]) -> str:
    """Format a (first, last) pair as a range-spec; first None is a suffix range."""
    first, last = spec
    return f"{'' if first is None else first}-{'' if last is None else last}"


def selected_bytes(spec: tuple[int | None, int | None], size: int) -> set[int]:
    """Reference model: the byte offsets RFC 9110 §14.1.2 says a spec selects."""
    first, last = spec
    if first is None:
        assert last is not None
        return set(range(max(size - last, 0), size)) if last else set()
    return set(range(first, size if last is None else min(last + 1, size)))


def check_valid(outcome: RangeOutcome, size: int) -> None:
    """A satisfiable outcome is sorted, disjoint, non-adjacent, non-empty and in bounds."""
    if not isinstance(outcome, Satisfiable):
        return
    assert outcome.ranges
    end = -1
    for r in outcome.ranges:
        assert r.length > 0 and r.start > end and r.start + r.length <= size
        end = r.start + r.length
    assert sum(r.length for r in outcome.ranges) <= size


@given(st.text(), st.integers(min_value=0, max_value=1 << 70))
def test_parse_range_never_raises_on_any_text(header: str, size: int) -> None:
    """Any text and size give one of the three outcomes, and a valid one."""
    outcome = parse_range(header, size)
    assert isinstance(outcome, (IgnoreRange, Satisfiable, Unsatisfiable))
    check_valid(outcome, size)


@given(st.text(alphabet="bytes=0123456789-, \t"), SIZES)
def test_parse_range_never_raises_on_near_miss_headers(header: str, size: int) -> None:
    """Headers built from the grammar's own characters never raise and stay valid."""
    check_valid(parse_range(header, size), size)


@given(st.lists(SPEC, min_size=1, max_size=8), SIZES)
def test_parse_range_selects_exactly_the_requested_bytes(
    specs: list[tuple[int | None, int | None]], size: int
) -> None:
    """For well-formed specs the outcome matches a byte-set model of RFC 9110."""
    outcome = parse_range("bytes=" + ",".join(spec_text(s) for s in specs), size)
    wanted = [selected_bytes(s, size) for s in specs]
    union = set().union(*wanted)
    satisfiable = [w for w, s in zip(wanted, specs, strict=True) if w or (s[0] is None and s[1])]
    if size == 0:
        assert isinstance(outcome, IgnoreRange)
    elif not satisfiable:
        assert outcome == Unsatisfiable()
    elif sum(len(w) for w in satisfiable) > size:
        assert isinstance(outcome, IgnoreRange)
    else:
        assert isinstance(outcome, Satisfiable)
        check_valid(outcome, size)
        got = {i for r in outcome.ranges for i in range(r.start, r.start + r.length)}
        assert got == union


@given(st.binary(min_size=1, max_size=200), st.data())
def test_multipart_body_is_byte_exact(data: bytes, draw: st.DataObject) -> None:
    """Every part of a rendered multipart body carries exactly its slice of the file."""
    size = len(data)
    specs = draw.draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, size - 1))))
    ranges = coalesce([ByteRange(min(a, b), abs(a - b) + 1) for a, b in specs])
    boundary = "3d6b6a416f9b5c0e"
    layout = multipart_layout(ranges, "application/octet-stream", size, boundary)
    body = render(layout, data)
    assert len(body) == layout.length
    if not ranges:
        return
    parts = parse_multipart(body, boundary)
    assert len(parts) == len(ranges)
    for (headers, part), r in zip(parts, ranges, strict=True):
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["Content-Range"] == f"bytes {r.start}-{r.last}/{size}"
        assert part == data[r.start : r.start + r.length]
