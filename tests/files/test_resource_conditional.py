"""``FileResource`` on the wire (raw sockets, 127.0.0.1): ranges of empty files, validators
against the response's ``Date``, and what every answer says about itself under compression.

The tests belong to two kinds of issue 11: Kind 1 (validators and conditional requests,
RFC 9110 §8.8, §13, §14) and Kind 2 (compression must not change what a response says about
itself). A site whose clock is fixed (:class:`AtDate`) makes "in the same second as the
response" exact: the ``Date`` a ``twisted.web`` request carries is the one the resource
reads.
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from twisted_stream import FileResource, StreamSettings
from twisted_stream._files._preconditions import format_http_date, parse_http_date

from ..rawclient import raw_get

T = 1_700_000_000
"""A fixed response time (a whole second): Tue, 14 Nov 2023 22:13:20 GMT."""
GZIP = "Accept-Encoding: gzip\r\n"


class AtDate(Resource):
    """Serves ``inner`` as if every request arrived at second ``date`` (its ``Date``)."""

    isLeaf = True

    def __init__(self, inner: IResource, date: int) -> None:
        super().__init__()
        self.inner = inner
        self.date = date

    def render(self, request: Request) -> Any:
        request.setHeader(b"date", format_http_date(self.date).encode())
        return self.inner.render(request)


def write(path: pathlib.Path, data: bytes, mtime: float) -> None:
    """Write ``data`` to ``path``, modified at ``mtime`` (seconds, fractions kept)."""
    path.write_bytes(data)
    os.utime(path, ns=(int(mtime * 1e9), int(mtime * 1e9)))


# --- Kind 1: ranges of an empty file ----------------------------------------------------


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "spec", ["bytes=0-", "bytes=0-0", "bytes=-5", "bytes=5-", "bytes=0-0,-1", "bytes=0-,0-"]
)
async def test_ranges_of_an_empty_file_give_it_whole(
    server: Any, tmp_path: pathlib.Path, spec: str
) -> None:
    """Kind 1 (validators and ranges), the reported input: ``Range: bytes=0-`` or ``0-0`` on
    an empty file answered 416; players and download tools put a Range on every request.
    Every range of an empty file (suffix, past the end, multi-range) gives 200 with
    ``Content-Length: 0``, as Go's ServeContent does."""
    (tmp_path / "empty.txt").write_bytes(b"")
    server.serve(FileResource(tmp_path))
    status, headers, body = await raw_get(server.port, "/empty.txt", extra=f"Range: {spec}\r\n")
    assert (status, headers["content-length"], body) == (200, ["0"], b"")
    assert "content-range" not in headers


# --- Kind 1: Last-Modified against the Date ---------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_file_rewritten_within_the_second_is_not_resumed_by_date(
    server: Any, tmp_path: pathlib.Path
) -> None:
    """Kind 1 (validators), the reported input: a file rewritten twice within one second;
    ``bytes=0-9`` fetched in that second (its Last-Modified and Date are the same second),
    the file rewritten, then resumed with ``Range: bytes=10-`` and ``If-Range: <that
    Last-Modified>``. That date is not a strong validator (RFC 9110 §8.8.2.2): 200 with the
    whole new file, never a 206 of the new bytes spliced onto the old ones."""
    file = tmp_path / "log.txt"
    write(file, b"A" * 20, T + 0.2)
    server.serve(AtDate(FileResource(tmp_path), T))
    status, headers, body = await raw_get(server.port, "/log.txt", extra="Range: bytes=0-9\r\n")
    assert (status, body) == (206, b"A" * 10)
    last_modified = headers["last-modified"][0]
    assert last_modified == headers["date"][0] == format_http_date(T)
    write(file, b"B" * 20, T + 0.7)
    extra = f"Range: bytes=10-\r\nIf-Range: {last_modified}\r\n"
    status, headers, body = await raw_get(server.port, "/log.txt", extra=extra)
    assert (status, body) == (200, b"B" * 20)
    assert "content-range" not in headers


@pytest_twisted.ensureDeferred
async def test_a_date_a_second_old_is_strong(server: Any, tmp_path: pathlib.Path) -> None:
    """Kind 1 (validators): a Last-Modified at least one second before the Date is strong:
    If-Range with it resumes (206), If-Modified-Since with it gives 304."""
    write(tmp_path / "log.txt", b"A" * 20, T - 0.5)
    server.serve(AtDate(FileResource(tmp_path), T))
    _, headers, _ = await raw_get(server.port, "/log.txt")
    last_modified = headers["last-modified"][0]
    assert last_modified == format_http_date(T - 1)
    extra = f"Range: bytes=10-\r\nIf-Range: {last_modified}\r\n"
    status, headers, body = await raw_get(server.port, "/log.txt", extra=extra)
    assert (status, headers["content-range"], body) == (206, ["bytes 10-19/20"], b"A" * 10)
    status, _, _ = await raw_get(
        server.port, "/log.txt", extra=f"If-Modified-Since: {last_modified}\r\n"
    )
    assert status == 304


@pytest_twisted.ensureDeferred
async def test_a_same_second_date_gives_no_wrong_304_or_200(
    server: Any, tmp_path: pathlib.Path
) -> None:
    """Kind 1 (validators): If-Modified-Since equal to a Last-Modified of the response's own
    second does not give 304 (the file may have changed since, within that second), and
    If-Unmodified-Since equal to it fails with 412 (§13.2.2 steps 2 and 4 with a weak
    date); the nanosecond ETag still gives 304."""
    write(tmp_path / "log.txt", b"A" * 20, T + 0.2)
    server.serve(AtDate(FileResource(tmp_path), T))
    _, headers, _ = await raw_get(server.port, "/log.txt")
    date, etag = format_http_date(T), headers["etag"][0]
    for extra, code in [
        (f"If-Modified-Since: {date}\r\n", 200),
        (f"If-Unmodified-Since: {date}\r\n", 412),
        (f"If-None-Match: {etag}\r\n", 304),
        (f"If-Modified-Since: {format_http_date(T + 1)}\r\n", 304),
    ]:
        status, _, _ = await raw_get(server.port, "/log.txt", extra=extra)
        assert status == code, extra


@pytest_twisted.ensureDeferred
async def test_last_modified_is_never_later_than_date(server: Any, tmp_path: pathlib.Path) -> None:
    """Kind 1 (validators): a file whose modification time is in the future (clock skew, a
    restored backup) is sent with ``Last-Modified`` equal to ``Date`` (RFC 9110 §8.8.2.1),
    on the real clock; such a date is weak, so it neither resumes a range nor gives 304."""
    write(tmp_path / "future.txt", b"F" * 20, time.time() + 86400)
    server.serve(FileResource(tmp_path))
    _, headers, _ = await raw_get(server.port, "/future.txt")
    last_modified = headers["last-modified"][0]
    date = parse_http_date(headers["date"][0])
    assert date is not None and parse_http_date(last_modified) == date
    extra = f"Range: bytes=10-\r\nIf-Range: {last_modified}\r\n"
    status, _, body = await raw_get(server.port, "/future.txt", extra=extra)
    assert (status, body) == (200, b"F" * 20)
    extra = f"If-Modified-Since: {last_modified}\r\n"
    status, _, _ = await raw_get(server.port, "/future.txt", extra=extra)
    assert status == 200


@pytest_twisted.ensureDeferred
async def test_comparison_functions_on_the_wire(server: Any, tmp_path: pathlib.Path) -> None:
    """Kind 1 (validators): weak comparison for If-None-Match (``W/`` matches, ``*``
    matches, commas inside quotes do not split a tag), strong comparison for If-Match and
    If-Range (a ``W/`` tag never satisfies either), If-Range ignored without a Range and
    with two values."""
    write(tmp_path / "a.txt", b"0123456789", T - 10)
    server.serve(AtDate(FileResource(tmp_path), T))
    _, headers, _ = await raw_get(server.port, "/a.txt")
    etag = headers["etag"][0]
    opaque = etag.strip('"')
    cases = [
        (f"If-None-Match: W/{etag}\r\n", 304, None),
        ("If-None-Match: *\r\n", 304, None),
        (f'If-None-Match: "x,y", {etag}\r\n', 304, None),
        (f'If-None-Match: "{opaque},x"\r\n', 200, b"0123456789"),
        (f"If-Match: W/{etag}\r\n", 412, None),
        (f'If-Match: "x,{opaque}"\r\n', 412, None),
        (f"If-Match: {etag}\r\n", 200, b"0123456789"),
        (f"Range: bytes=0-1\r\nIf-Range: W/{etag}\r\n", 200, b"0123456789"),
        (f"Range: bytes=0-1\r\nIf-Range: {etag}\r\n", 206, b"01"),
        (f"Range: bytes=0-1\r\nIf-Range: {etag}\r\nIf-Range: {etag}\r\n", 200, b"0123456789"),
        (f"If-Range: {etag}\r\n", 200, b"0123456789"),
    ]
    for extra, code, body in cases:
        status, _, got = await raw_get(server.port, "/a.txt", extra=extra)
        assert status == code, extra
        if body is not None:
            assert got == body, extra


# --- Kind 2: what each answer says under compression ------------------------------------


def compressing(server: Any, root: pathlib.Path, **options: Any) -> None:
    """Serve ``root`` with compression on, clock fixed at :data:`T`."""
    (root / "style.css").write_bytes(b"body { color: red }\n\n")  # 21 bytes, as reported
    os.utime(root / "style.css", (T - 60, T - 60))
    server.serve(AtDate(FileResource(root, **options), T), settings=StreamSettings(compress=True))


SAME_HEADERS = ("content-type", "content-encoding", "etag", "vary", "last-modified")


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("accept", [GZIP, ""])
async def test_head_says_what_get_says(server: Any, tmp_path: pathlib.Path, accept: str) -> None:
    """Kind 2 (compression changes what a response says about itself), the reported input:
    ``HEAD /style.css`` with ``Accept-Encoding: gzip`` answered without Content-Encoding,
    with the identity ETag and ``Content-Length: 21`` while the GET was gzip with the
    ``-gzip`` ETag. HEAD carries GET's headers (RFC 9110 §9.3.2), and a Content-Length only
    when GET's body has that length (the identity one, for a client without gzip)."""
    compressing(server, tmp_path)
    _, get_headers, _ = await raw_get(server.port, "/style.css", extra=accept)
    status, headers, body = await raw_get(server.port, "/style.css", "HEAD", extra=accept)
    assert (status, body) == (200, b"")
    for name in SAME_HEADERS:
        assert headers.get(name) == get_headers.get(name), name
    assert headers.get("content-length") == get_headers.get("content-length")
    if accept:
        assert headers["content-encoding"] == ["gzip"]
        assert headers["etag"][0].endswith('-gzip"')
        assert "content-length" not in headers
    else:
        assert headers["content-length"] == ["21"]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("accept", [GZIP, ""])
async def test_304_carries_what_its_200_carries(
    server: Any, tmp_path: pathlib.Path, accept: str
) -> None:
    """Kind 2 (compression changes what a response says about itself), the reported input:
    the 304 lacked the ``Vary: Accept-Encoding`` of its 200. A 304 carries the ETag, Vary,
    Cache-Control, Expires and Date its 200 would have (RFC 9110 §15.4.5), for a client
    with gzip (the gzip ETag) and one without (the identity ETag), and no Content-Encoding
    or Content-Length."""
    compressing(
        server, tmp_path, cache_control="max-age=60", headers={"Expires": format_http_date(T)}
    )
    _, ok, _ = await raw_get(server.port, "/style.css", extra=accept)
    extra = accept + f"If-None-Match: {ok['etag'][0]}\r\n"
    status, headers, body = await raw_get(server.port, "/style.css", extra=extra)
    assert (status, body) == (304, b"")
    for name in ("etag", "vary", "cache-control", "expires", "date"):
        assert headers[name] == ok[name], name
    assert "content-encoding" not in headers and "content-length" not in headers


@pytest_twisted.ensureDeferred
async def test_the_identity_tag_does_not_revalidate_the_gzip_form(
    server: Any, tmp_path: pathlib.Path
) -> None:
    """Kind 2 (compression changes what a response says about itself): preconditions are
    evaluated against the representation the request selects. For a client accepting gzip
    that is the gzip form, so ``If-None-Match: <identity ETag>`` gives a 200 with the gzip
    body (a 304 would have to carry the gzip ETag, which names another representation than
    the one the client holds), and ``If-Match: <identity ETag>`` a 412; ``If-Match`` with
    the gzip ETag passes."""
    compressing(server, tmp_path)
    _, identity, _ = await raw_get(server.port, "/style.css")
    _, gzipped, _ = await raw_get(server.port, "/style.css", extra=GZIP)
    tag, gzip_tag = identity["etag"][0], gzipped["etag"][0]
    extra = GZIP + f"If-None-Match: {tag}\r\n"
    status, headers, _ = await raw_get(server.port, "/style.css", extra=extra)
    assert (status, headers["etag"], headers["content-encoding"]) == (200, [gzip_tag], ["gzip"])
    status, headers, _ = await raw_get(
        server.port, "/style.css", extra=GZIP + f"If-Match: {tag}\r\n"
    )
    assert (status, headers["etag"], headers["vary"]) == (412, [gzip_tag], ["Accept-Encoding"])
    extra = GZIP + f"If-Match: {gzip_tag}\r\n"
    status, _, _ = await raw_get(server.port, "/style.css", extra=extra)
    assert status == 200
    status, _, _ = await raw_get(server.port, "/style.css", extra=f"If-None-Match: {gzip_tag}\r\n")
    assert status == 200  # a client without gzip does not hold the gzip form


@pytest_twisted.ensureDeferred
async def test_ranges_and_errors_describe_the_identity_form(
    server: Any, tmp_path: pathlib.Path
) -> None:
    """Kind 2 (compression changes what a response says about itself): 206 and 416 are of
    the file as it is (ranges are never gzipped): the identity ETag, no Content-Encoding,
    and Vary like every answer of the resource; 412 has Vary and no Content-Encoding; a
    gzipped 200 does not advertise ``Accept-Ranges`` for a body it cannot range."""
    compressing(server, tmp_path)
    _, identity, _ = await raw_get(server.port, "/style.css")
    status, headers, body = await raw_get(
        server.port, "/style.css", extra=GZIP + "Range: bytes=0-3\r\n"
    )
    assert (status, body, headers["etag"]) == (206, b"body", identity["etag"])
    assert headers["vary"] == ["Accept-Encoding"] and "content-encoding" not in headers
    status, headers, _ = await raw_get(
        server.port, "/style.css", extra=GZIP + "Range: bytes=99-\r\n"
    )
    assert (status, headers["content-range"], headers["etag"]) == (
        416,
        ["bytes */21"],
        identity["etag"],
    )
    assert headers["vary"] == ["Accept-Encoding"] and "content-encoding" not in headers
    status, headers, _ = await raw_get(server.port, "/style.css", extra=GZIP + 'If-Match: "x"\r\n')
    assert status == 412 and headers["vary"] == ["Accept-Encoding"]
    assert "content-encoding" not in headers
    _, headers, _ = await raw_get(server.port, "/style.css", extra=GZIP)
    assert headers["content-encoding"] == ["gzip"] and "accept-ranges" not in headers
    assert identity["accept-ranges"] == ["bytes"]


@pytest_twisted.ensureDeferred
async def test_a_listing_head_says_what_its_get_says(server: Any, tmp_path: pathlib.Path) -> None:
    """Kind 2 (compression changes what a response says about itself): a directory listing
    is gzipped for a client that accepts it, and its HEAD carries the same headers."""
    compressing(server, tmp_path, listing=True)
    _, get_headers, body = await raw_get(server.port, "/", extra=GZIP)
    assert get_headers["content-encoding"] == ["gzip"] and body[:2] == b"\x1f\x8b"
    status, headers, body = await raw_get(server.port, "/", "HEAD", extra=GZIP)
    assert (status, body) == (200, b"")
    for name in SAME_HEADERS:
        assert headers.get(name) == get_headers.get(name), name
