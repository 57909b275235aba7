"""Tests for :class:`twisted_stream._files._resource.FileResource` on a real Site on 127.0.0.1.

treq is used where a client's view is enough; raw sockets (:mod:`tests.rawclient`) where a
client would normalise the path or hide the exact bytes. The ``static.File`` regressions
(cases ``twisted.web.static.File`` gets wrong in Twisted 26.10) are marked in docstrings.
"""

from __future__ import annotations

import errno
import io
import os
import pathlib
import re
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

import pytest
import pytest_twisted
import treq
from twisted.python.filepath import FilePath

from twisted_stream import Outcome, State, StreamSettings
from twisted_stream._engine._stream import Stream
from twisted_stream._errors import FileTruncated
from twisted_stream._files import _resource as file_resource_module
from twisted_stream._files._preconditions import format_http_date
from twisted_stream._files._resource import FileResource

from ..rawclient import RawClient, connect, get, parse_response, raw_get
from ..waiting import turns, until, within

GIB = 1 << 30
MIB = 1 << 20
TEXT = b"hello!"  # the 6-byte file of the static.File regression


# --- helpers ----------------------------------------------------------------------------


def fds_on(path: pathlib.Path) -> int:
    """How many of this process's descriptors are open on ``path`` (deleted or not)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target in (str(path), f"{path} (deleted)"):
            count += 1
    return count


def sparse(path: pathlib.Path, size: int, marks: dict[int, bytes] | None = None) -> None:
    """Create a sparse file of ``size`` bytes with ``marks`` written at their offsets."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in (marks or {}).items():
            f.seek(offset)
            f.write(data)


def one_stream(server: Any) -> Stream:
    """The single stream the site is serving now."""
    streams = list(server.site.active_streams)
    assert len(streams) == 1, streams
    stream: Stream = streams[0]
    return stream


class OpenRecorder:
    """Wraps ``_open_file`` to keep every file object FileResource opens."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, factory: Any = None) -> None:
        self.files: list[BinaryIO] = []
        real = file_resource_module._open_file

        def opener(path: str) -> BinaryIO:
            file = real(path) if factory is None else factory(path)
            self.files.append(file)
            return file

        monkeypatch.setattr(file_resource_module, "_open_file", opener)


class CountingFileIO(io.FileIO):
    """A raw file that counts the bytes read from it."""

    bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size) or b""
        self.bytes_read += len(data)
        return data


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    """A served tree: files, a sub-directory, a dotfile, and symlinks in and out of it."""
    top = tmp_path / "root"
    top.mkdir()
    (top / "hello.txt").write_bytes(TEXT)
    (top / "data.bin").write_bytes(bytes(range(256)) * 4)
    (top / "blob.unknownext").write_bytes(b"?")
    (top / "empty.txt").write_bytes(b"")
    (top / "page.html").write_bytes(b"<p>hi</p>")
    (top / ".secret").write_bytes(b"dotfile")
    (top / ".git").mkdir()
    (top / ".git" / "config").write_bytes(b"git config")
    (top / "sub").mkdir()
    (top / "sub" / "inner.json").write_bytes(b"{}")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"outside the root")
    (top / "escape.txt").symlink_to(outside)
    (top / "inside.txt").symlink_to(top / "hello.txt")
    (top / "to-secret").symlink_to(top / ".secret")
    (top / "escape-dir").symlink_to(tmp_path)
    # Written an hour ago, as served files usually are: a file changed in the second of the
    # response has only a weak Last-Modified (tests/files/test_validators.py).
    an_hour_ago = time.time() - 3600
    for path in [*top.rglob("*"), outside]:
        if path.is_file() and not path.is_symlink():
            os.utime(path, (an_hour_ago, an_hour_ago))
    return top


def serve(server: Any, path: Any, **options: Any) -> FileResource:
    """Serve a FileResource at the site root."""
    resource = FileResource(path, **options)
    server.serve(resource)
    return resource


# --- plain GET and HEAD -----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_get_sends_the_file_with_its_headers(
    server: Any, client: Any, root: pathlib.Path
) -> None:
    """GET: the body, Content-Length, Last-Modified, Accept-Ranges, a metadata ETag, the
    type with charset, and nosniff."""
    serve(server, root)
    status, headers, body = await raw_get(server.port, "/hello.txt")
    info = os.stat(root / "hello.txt")
    assert (status, body) == (200, TEXT)
    assert headers["content-length"] == ["6"]
    assert headers["accept-ranges"] == ["bytes"]
    assert headers["last-modified"] == [format_http_date(info.st_mtime_ns // 10**9)]
    assert headers["etag"] == [f'"{info.st_mtime_ns:x}-{info.st_size:x}-{info.st_ino:x}"']
    assert headers["content-type"] == ["text/plain; charset=utf-8"]
    assert headers["x-content-type-options"] == ["nosniff"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("data.bin", "application/octet-stream"),
        ("blob.unknownext", "application/octet-stream"),
        ("page.html", "text/html; charset=utf-8"),
        ("sub/inner.json", "application/json; charset=utf-8"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_content_types_come_from_the_fixed_table(
    server: Any, client: Any, root: pathlib.Path, name: str, content_type: str
) -> None:
    """Types come from the fixed table; unknown extensions are octet-stream, not text/html."""
    serve(server, root)
    response = await client.get(server.url("/" + name))
    assert response.headers.getRawHeaders("content-type") == [content_type]
    await treq.content(response)


@pytest_twisted.ensureDeferred
async def test_default_type_extra_headers_and_cache_control(
    server: Any, client: Any, root: pathlib.Path
) -> None:
    """default_type, headers and cache_control options reach the response."""
    serve(
        server,
        root,
        default_type="text/plain",
        headers={"X-Served-By": "tests"},
        cache_control="public, max-age=60",
    )
    response = await client.get(server.url("/blob.unknownext"))
    assert response.headers.getRawHeaders("content-type") == ["text/plain; charset=utf-8"]
    assert response.headers.getRawHeaders("x-served-by") == ["tests"]
    assert response.headers.getRawHeaders("cache-control") == ["public, max-age=60"]
    assert await treq.content(response) == b"?"


@pytest_twisted.ensureDeferred
async def test_empty_file(server: Any, client: Any, root: pathlib.Path) -> None:
    """An empty file is a 200 with Content-Length 0."""
    serve(server, root)
    status, headers, body = await raw_get(server.port, "/empty.txt")
    assert (status, headers["content-length"], body) == (200, ["0"], b"")


@pytest_twisted.ensureDeferred
async def test_head_sends_headers_without_reading_the_file(
    server: Any, root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEAD: every header GET sends, no body, no read of the file, and the file closed."""
    opened = OpenRecorder(monkeypatch, lambda path: CountingFileIO(path, "rb"))
    serve(server, root)
    _, get_headers, _ = await raw_get(server.port, "/data.bin")
    status, headers, body = await raw_get(server.port, "/data.bin", method="HEAD")
    assert (status, body) == (200, b"")
    for name in ("content-length", "etag", "last-modified", "accept-ranges", "content-type"):
        assert headers[name] == get_headers[name]
    head_file = opened.files[1]
    assert isinstance(head_file, CountingFileIO)
    assert head_file.bytes_read == 0 and head_file.closed


@pytest_twisted.ensureDeferred
async def test_other_methods_are_405(server: Any, client: Any, root: pathlib.Path) -> None:
    """Only GET and HEAD are allowed; others get 405 with Allow (OPTIONS is answered)."""
    serve(server, root)
    for method in ("POST", "PUT", "DELETE"):
        response = await client.request(method, server.url("/hello.txt"))
        assert response.code == 405
        assert response.headers.getRawHeaders("allow") == ["GET, HEAD, OPTIONS"]
        await treq.content(response)


@pytest_twisted.ensureDeferred
async def test_a_single_file_root(server: Any, client: Any, root: pathlib.Path) -> None:
    """A FileResource for one file serves it at its own URL and nothing below it."""
    serve(server, FilePath(str(root / "hello.txt")))
    response = await client.get(server.url("/"))
    assert await treq.content(response) == TEXT
    assert response.headers.getRawHeaders("content-type") == ["text/plain; charset=utf-8"]
    missing = await client.get(server.url("/other"))
    assert missing.code == 404
    await treq.content(missing)


# --- preconditions ----------------------------------------------------------------------


async def validators(server: Any, client: Any) -> tuple[str, str]:
    """The ETag and Last-Modified of /hello.txt."""
    response = await client.get(server.url("/hello.txt"))
    await treq.content(response)
    return (
        response.headers.getRawHeaders("etag")[0],
        response.headers.getRawHeaders("last-modified")[0],
    )


@pytest_twisted.ensureDeferred
async def test_if_none_match_gives_304(server: Any, client: Any, root: pathlib.Path) -> None:
    """If-None-Match with the ETag (strong, weak, in a list, or *) gives 304 (static.File
    has no ETag); another tag gives 200."""
    serve(server, root)
    etag, _ = await validators(server, client)
    for value, code in [
        (etag, 304),
        ("W/" + etag, 304),
        (f'"other", {etag}', 304),
        ("*", 304),
        ('"other"', 200),
    ]:
        response = await client.get(server.url("/hello.txt"), headers={"If-None-Match": value})
        assert response.code == code, value
        await treq.content(response)


@pytest_twisted.ensureDeferred
async def test_304_has_the_etag_and_no_body(server: Any, client: Any, root: pathlib.Path) -> None:
    """A 304 carries the ETag and Cache-Control but no body, length or type (raw bytes)."""
    serve(server, root, cache_control="no-cache")
    etag, _ = await validators(server, client)
    for method in ("GET", "HEAD"):
        status, headers, body = await raw_get(
            server.port, "/hello.txt", method=method, extra=f"If-None-Match: {etag}\r\n"
        )
        assert (status, body) == (304, b"")
        assert headers["etag"] == [etag] and headers["cache-control"] == ["no-cache"]
        assert "content-length" not in headers and "content-type" not in headers


@pytest_twisted.ensureDeferred
async def test_if_modified_since(server: Any, client: Any, root: pathlib.Path) -> None:
    """If-Modified-Since at or after Last-Modified gives 304, before it 200; it is ignored
    when If-None-Match is present."""
    serve(server, root)
    _, last_modified = await validators(server, client)
    mtime = os.stat(root / "hello.txt").st_mtime_ns // 10**9
    cases = [
        ({"If-Modified-Since": last_modified}, 304),
        ({"If-Modified-Since": format_http_date(mtime + 3600)}, 304),
        ({"If-Modified-Since": format_http_date(mtime - 1)}, 200),
        ({"If-Modified-Since": "not a date"}, 200),
        ({"If-None-Match": '"other"', "If-Modified-Since": last_modified}, 200),
    ]
    for headers, code in cases:
        response = await client.get(server.url("/hello.txt"), headers=headers)
        assert response.code == code, headers
        await treq.content(response)


@pytest_twisted.ensureDeferred
async def test_if_match_and_if_unmodified_since_give_412(
    server: Any, client: Any, root: pathlib.Path
) -> None:
    """If-Match without the ETag and If-Unmodified-Since before Last-Modified give 412,
    and If-Match is evaluated before If-None-Match."""
    serve(server, root)
    etag, last_modified = await validators(server, client)
    mtime = os.stat(root / "hello.txt").st_mtime_ns // 10**9
    cases = [
        ({"If-Match": etag}, 200),
        ({"If-Match": "*"}, 200),
        ({"If-Match": '"other"'}, 412),
        ({"If-Match": "W/" + etag}, 412),
        ({"If-Unmodified-Since": last_modified}, 200),
        ({"If-Unmodified-Since": format_http_date(mtime - 1)}, 412),
        ({"If-Match": '"other"', "If-None-Match": etag}, 412),
        ({"If-Match": etag, "If-Unmodified-Since": format_http_date(mtime - 1)}, 200),
    ]
    for headers, code in cases:
        response = await client.get(server.url("/hello.txt"), headers=headers)
        assert response.code == code, headers
        await treq.content(response)


# --- ranges -----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_suffix_range_larger_than_the_file(server: Any, root: pathlib.Path) -> None:
    """``Range: bytes=-100`` on a 6-byte file is the whole file as a 206 (static.File: 500)."""
    serve(server, root)
    status, headers, body = await raw_get(server.port, "/hello.txt", extra="Range: bytes=-100\r\n")
    assert (status, body) == (206, TEXT)
    assert headers["content-range"] == ["bytes 0-5/6"]
    assert headers["content-length"] == ["6"]


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [
        ("0-0", 0, 0),
        ("500-", 500, 1023),
        ("-500", 524, 1023),
        ("10-19", 10, 19),
        ("1000-5000", 1000, 1023),
    ],
)
@pytest_twisted.ensureDeferred
async def test_single_ranges(
    server: Any, root: pathlib.Path, spec: str, start: int, end: int
) -> None:
    """Single, open-ended and suffix ranges give 206 with the exact slice and headers."""
    serve(server, root)
    data = (root / "data.bin").read_bytes()
    status, headers, body = await raw_get(
        server.port, "/data.bin", extra=f"Range: bytes={spec}\r\n"
    )
    assert (status, body) == (206, data[start : end + 1])
    assert headers["content-range"] == [f"bytes {start}-{end}/1024"]
    assert headers["content-length"] == [str(end - start + 1)]
    assert headers["content-type"] == ["application/octet-stream"]


def split_multipart(headers: dict[str, list[str]], body: bytes) -> list[tuple[str, bytes]]:
    """(Content-Range, data) of each part of a multipart/byteranges body."""
    (content_type,) = headers["content-type"]
    match = re.fullmatch(r"multipart/byteranges; boundary=([0-9a-f]+)", content_type)
    assert match, content_type
    boundary = match.group(1).encode()
    assert body.startswith(b"--" + boundary + b"\r\n")
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n")
    inner = body[len(boundary) + 4 : -(len(boundary) + 8)]
    parts = []
    for part in inner.split(b"\r\n--" + boundary + b"\r\n"):
        head, _, data = part.partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((fields["Content-Range"], data))
    return parts


@pytest_twisted.ensureDeferred
async def test_multiple_ranges_are_multipart_with_exact_length(
    server: Any, root: pathlib.Path
) -> None:
    """Several ranges give multipart/byteranges whose Content-Length is the exact body size."""
    serve(server, root)
    data = (root / "data.bin").read_bytes()
    status, headers, body = await raw_get(
        server.port, "/data.bin", extra="Range: bytes=0-9, 100-109, -6\r\n"
    )
    assert status == 206
    assert headers["content-length"] == [str(len(body))]
    assert "content-range" not in headers
    assert split_multipart(headers, body) == [
        ("bytes 0-9/1024", data[0:10]),
        ("bytes 100-109/1024", data[100:110]),
        ("bytes 1018-1023/1024", data[1018:]),
    ]


@pytest_twisted.ensureDeferred
async def test_overlapping_and_adjacent_ranges_are_coalesced(
    server: Any, root: pathlib.Path
) -> None:
    """Overlapping and adjacent ranges merge: here into one single-part 206."""
    serve(server, root)
    data = (root / "data.bin").read_bytes()
    status, headers, body = await raw_get(
        server.port, "/data.bin", extra="Range: bytes=10-19,15-29,30-39\r\n"
    )
    assert (status, body) == (206, data[10:40])
    assert headers["content-range"] == ["bytes 10-39/1024"]


@pytest_twisted.ensureDeferred
async def test_many_copies_of_the_whole_file_give_it_once(server: Any, root: pathlib.Path) -> None:
    """200 copies of ``0-`` on a 1 MiB file give a 200 of 1 MiB (static.File: 200 MiB)."""
    (root / "mib.bin").write_bytes(os.urandom(MIB))
    serve(server, root)
    status, headers, body = await raw_get(
        server.port, "/mib.bin", extra="Range: bytes=" + ",".join(["0-"] * 200) + "\r\n"
    )
    assert (status, len(body)) == (200, MIB)
    assert headers["content-length"] == [str(MIB)]
    assert body == (root / "mib.bin").read_bytes()


@pytest.mark.parametrize(
    "value",
    [
        "bytes=0-5,0-5",  # add up to more than the file: ignored
        "bytes=5-2",  # malformed
        "bytes=abc",  # malformed
        "pages=1-2",  # unknown unit
        "bytes=",  # empty
    ],
)
@pytest_twisted.ensureDeferred
async def test_ignored_ranges_give_the_whole_file(
    server: Any, root: pathlib.Path, value: str
) -> None:
    """A malformed Range, or ranges adding up to more than the file, give a full 200."""
    serve(server, root)
    status, headers, body = await raw_get(server.port, "/hello.txt", extra=f"Range: {value}\r\n")
    assert (status, body) == (200, TEXT)
    assert "content-range" not in headers


@pytest_twisted.ensureDeferred
async def test_unsatisfiable_range_is_416(server: Any, root: pathlib.Path) -> None:
    """A range starting past the end gives 416 with ``Content-Range: bytes */size`` (an
    empty file ignores every range: tests/files/test_validators.py)."""
    serve(server, root)
    status, headers, _ = await raw_get(server.port, "/hello.txt", extra="Range: bytes=6-\r\n")
    assert status == 416
    assert headers["content-range"] == ["bytes */6"]


@pytest_twisted.ensureDeferred
async def test_if_range(server: Any, client: Any, root: pathlib.Path) -> None:
    """If-Range with the current ETag or date allows the range; a stale ETag (which
    static.File ignores), a weak one or another date give the whole file as a 200."""
    serve(server, root)
    etag, last_modified = await validators(server, client)
    cases = [
        (etag, 206, TEXT[:2]),
        (last_modified, 206, TEXT[:2]),
        ('"stale"', 200, TEXT),
        ("W/" + etag, 200, TEXT),
        ("Sat, 01 Jan 2000 00:00:00 GMT", 200, TEXT),
    ]
    for value, code, expected in cases:
        response = await client.get(
            server.url("/hello.txt"), headers={"Range": "bytes=0-1", "If-Range": value}
        )
        assert response.code == code, value
        assert await treq.content(response) == expected


@pytest_twisted.ensureDeferred
async def test_head_ignores_range(server: Any, root: pathlib.Path) -> None:
    """Range is defined for GET only (RFC 9110 §14.2): HEAD with a Range is a plain 200."""
    serve(server, root)
    status, headers, body = await raw_get(
        server.port, "/hello.txt", method="HEAD", extra="Range: bytes=0-1\r\n"
    )
    assert (status, headers["content-length"], body) == (200, ["6"], b"")


@pytest_twisted.ensureDeferred
async def test_files_larger_than_4_gib(server: Any, tmp_path: pathlib.Path) -> None:
    """A sparse 5 GiB file: exact length, ranges across and past 2**32, suffix, multipart."""
    size = 5 * GIB
    sparse(tmp_path / "big.bin", size, {4 * GIB - 3: b"across", size - 4: b"tail"})
    serve(server, tmp_path)
    _, headers, _ = await raw_get(server.port, "/big.bin", method="HEAD")
    assert headers["content-length"] == [str(size)]
    status, headers, body = await raw_get(
        server.port, "/big.bin", extra=f"Range: bytes={4 * GIB - 3}-{4 * GIB + 2}\r\n"
    )
    assert (status, body) == (206, b"across")
    assert headers["content-range"] == [f"bytes {4 * GIB - 3}-{4 * GIB + 2}/{size}"]
    status, _, body = await raw_get(server.port, "/big.bin", extra="Range: bytes=-4\r\n")
    assert (status, body) == (206, b"tail")
    status, headers, body = await raw_get(
        server.port, "/big.bin", extra=f"Range: bytes=0-1,{4 * GIB - 3}-{4 * GIB + 2}\r\n"
    )
    assert status == 206 and headers["content-length"] == [str(len(body))]
    assert split_multipart(headers, body) == [
        (f"bytes 0-1/{size}", b"\0\0"),
        (f"bytes {4 * GIB - 3}-{4 * GIB + 2}/{size}", b"across"),
    ]


# --- safety -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/../outside.txt",
        "/sub/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/%2E%2E/outside.txt",
        "/sub/%2e%2e%2f%2e%2e%2foutside.txt",
        "/..%2foutside.txt",
        "/sub%2finner.json",
        "/..\\outside.txt",
        "/sub%5c..%5c..%5coutside.txt",
        "/./hello.txt",
        "//hello.txt",
        "/sub//inner.json",
        "/hello.txt/",
        "/" + "a" * 300,
        "/" + "/".join(["sub"] * 1100),
        "/missing.txt",
        "/hello.txt/x",
    ],
)
@pytest_twisted.ensureDeferred
async def test_traversal_and_bad_names_are_404(server: Any, root: pathlib.Path, path: str) -> None:
    """``..``, encoded dots and slashes, backslashes, empty and overlong segments: 404."""
    serve(server, root)
    status, _, body = await raw_get(server.port, path)
    assert status == 404, path
    assert b"outside" not in body


@pytest.mark.parametrize("path", ["/hello.txt%00", "/%00/hello.txt", "/%ff.txt", "/sub/%c3%28"])
@pytest_twisted.ensureDeferred
async def test_nul_bytes_and_invalid_utf8_are_400(
    server: Any, root: pathlib.Path, path: str
) -> None:
    """A NUL byte in the path (static.File: 500) or invalid UTF-8 is a 400."""
    serve(server, root)
    status, _, _ = await raw_get(server.port, path)
    assert status == 400


@pytest.mark.parametrize("path", ["/.secret", "/.git/config", "/.git/", "/to-secret"])
@pytest_twisted.ensureDeferred
async def test_dotfiles_are_hidden(server: Any, root: pathlib.Path, path: str) -> None:
    """Dotfiles, dot-directories and symlinks to them are 404 (static.File serves them)."""
    serve(server, root, listing=True)
    status, _, _ = await raw_get(server.port, path)
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_dotfiles_when_enabled(server: Any, client: Any, root: pathlib.Path) -> None:
    """With dotfiles=True, dotfiles are served; ``.`` and ``..`` still are not."""
    serve(server, root, dotfiles=True)
    response = await client.get(server.url("/.git/config"))
    assert await treq.content(response) == b"git config"
    status, _, _ = await raw_get(server.port, "/.%2e/outside.txt")
    assert status == 404


@pytest.mark.parametrize("path", ["/escape.txt", "/escape-dir/outside.txt"])
@pytest_twisted.ensureDeferred
async def test_symlinks_out_of_the_root_are_404(
    server: Any, root: pathlib.Path, path: str
) -> None:
    """Symlinks resolving outside the root are 404 (static.File follows them)."""
    serve(server, root)
    status, _, body = await raw_get(server.port, path)
    assert status == 404 and b"outside" not in body


@pytest_twisted.ensureDeferred
async def test_symlinks_when_enabled_and_inside(
    server: Any, client: Any, root: pathlib.Path
) -> None:
    """Symlinks inside the root are served; outside ones only with follow_symlinks=True."""
    serve(server, root)
    response = await client.get(server.url("/inside.txt"))
    assert await treq.content(response) == TEXT
    serve(server, root, follow_symlinks=True)
    response = await client.get(server.url("/escape.txt"))
    assert await treq.content(response) == b"outside the root"


@pytest_twisted.ensureDeferred
async def test_unreadable_file_is_403(
    server: Any, client: Any, root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the server may not open is a 403 (simulated: tests run as root)."""

    def refuse(path: str) -> BinaryIO:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(file_resource_module, "_open_file", refuse)
    serve(server, root)
    response = await client.get(server.url("/hello.txt"))
    assert response.code == 403
    await treq.content(response)


@pytest_twisted.ensureDeferred
async def test_unreadable_directory_is_403(
    server: Any, client: Any, root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory the server may not list is a 403 (simulated)."""

    def refuse(path: str) -> Iterator[os.DirEntry[bytes]]:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(file_resource_module, "_scan_directory", refuse)
    serve(server, root, listing=True)
    response = await client.get(server.url("/sub/"))
    assert response.code == 403
    await treq.content(response)


@pytest_twisted.ensureDeferred
async def test_special_files_are_404(server: Any, client: Any, tmp_path: pathlib.Path) -> None:
    """A FIFO is not served (opening it would block the reactor)."""
    os.mkfifo(tmp_path / "fifo")
    serve(server, tmp_path)
    response = await client.get(server.url("/fifo"))
    assert response.code == 404
    await treq.content(response)


# --- directories ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_directories_are_404_without_listing(
    server: Any, client: Any, root: pathlib.Path
) -> None:
    """Listing is off by default: a directory without index file is 404."""
    serve(server, root)
    for path in ("/", "/sub/"):
        response = await client.get(server.url(path))
        assert response.code == 404
        await treq.content(response)


@pytest_twisted.ensureDeferred
async def test_directory_without_slash_redirects(server: Any, root: pathlib.Path) -> None:
    """A directory without its final slash is a 301 to a relative ``./name/`` (query kept)."""
    serve(server, root, listing=True)
    status, headers, _ = await raw_get(server.port, "/sub?x=1")
    assert (status, headers["location"]) == (301, ["./sub/?x=1"])


@pytest_twisted.ensureDeferred
async def test_index_file_is_served(server: Any, client: Any, root: pathlib.Path) -> None:
    """index.html is served for its directory; index=None turns that off."""
    (root / "sub" / "index.html").write_bytes(b"<h1>index</h1>")
    serve(server, root)
    response = await client.get(server.url("/sub/"))
    assert await treq.content(response) == b"<h1>index</h1>"
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    serve(server, root, index=None)
    response = await client.get(server.url("/sub/"))
    assert response.code == 404
    await treq.content(response)


@pytest_twisted.ensureDeferred
async def test_listing_escapes_names(server: Any, client: Any, tmp_path: pathlib.Path) -> None:
    """The listing HTML-escapes names and percent-encodes links, and leaves out dotfiles,
    escaping symlinks and names that could not be served."""
    top = tmp_path / "top"
    top.mkdir()
    (top / "d").mkdir()
    names = ['<b onclick="x">.txt', "a b&c%20'.txt", "ünï.txt", "d"]
    for name in names[:3]:
        (top / name).write_bytes(b"x")
    (top / ".hidden").write_bytes(b"x")
    (top / "out").symlink_to(tmp_path)
    os.close(os.open(os.path.join(os.fsencode(top), b"bad-\xff"), os.O_CREAT | os.O_WRONLY))
    (top / "back\\slash").write_bytes(b"x")
    serve(server, top, listing=True)
    response = await client.get(server.url("/"))
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    page = (await treq.content(response)).decode()
    links = re.findall(r'<a href="([^"]*)">([^<]*)</a>', page)
    assert sorted(links) == sorted(
        [
            ("./%3Cb%20onclick%3D%22x%22%3E.txt", "&lt;b onclick=&quot;x&quot;&gt;.txt"),
            ("./a%20b%26c%2520%27.txt", "a b&amp;c%20&#x27;.txt"),
            ("./%C3%BCn%C3%AF.txt", "ünï.txt"),
            ("./d/", "d/"),
        ]
    )
    assert "<b " not in page and "hidden" not in page and '"./out' not in page
    for href, _ in links:
        linked = await client.get(server.url("/" + href[2:]))
        assert linked.code in (200, 301), href
        await treq.content(linked)


@pytest_twisted.ensureDeferred
async def test_listing_links_to_the_parent_below_the_root(
    server: Any, client: Any, root: pathlib.Path
) -> None:
    """Listings below the root link to ``../``; the root's does not."""
    serve(server, root, listing=True)
    top = (await treq.content(await client.get(server.url("/")))).decode()
    sub = (await treq.content(await client.get(server.url("/sub/")))).decode()
    assert 'href="../"' not in top and 'href="../"' in sub
    assert 'href="./inner.json"' in sub


@pytest_twisted.ensureDeferred
async def test_head_of_a_listing_never_reads_the_directory(
    server: Any, root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEAD of a listing sends the headers only and closes the directory handle unread."""
    handles: list[Any] = []
    real = file_resource_module._scan_directory

    class Handle:
        def __init__(self, path: str) -> None:
            self._it = real(path)
            self.consumed = 0
            self.closed = False

        def __iter__(self) -> Handle:
            return self

        def __next__(self) -> os.DirEntry[bytes]:
            self.consumed += 1
            return next(self._it)

        def close(self) -> None:
            self.closed = True
            self._it.close()  # type: ignore[attr-defined]

    def scan(path: str) -> Handle:
        handles.append(Handle(path))
        return handles[-1]

    monkeypatch.setattr(file_resource_module, "_scan_directory", scan)
    serve(server, root, listing=True)
    status, headers, body = await raw_get(server.port, "/sub/", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["content-type"] == ["text/html; charset=utf-8"]
    assert handles[0].consumed == 0 and handles[0].closed


# --- streaming and teardown -------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest_twisted.ensureDeferred
async def test_descriptor_closed_on_completion(
    server: Any, root: pathlib.Path, version: str
) -> None:
    """After a complete response the file descriptor is closed (HTTP/1.0 and 1.1)."""
    serve(server, root)
    extra = "Connection: close\r\n" if version == "1.1" else ""
    for path in ("/data.bin", "/hello.txt"):
        raw = await connect(server.port, get(path, version=version, extra=extra))
        await within(raw.closed)
        assert parse_response(bytes(raw.received))[0] == 200
        assert fds_on(root / path[1:]) == 0


@pytest_twisted.ensureDeferred
async def test_descriptor_closed_on_keep_alive(
    server: Any, keepalive_client: Any, root: pathlib.Path
) -> None:
    """On a kept-alive connection each response closes its file before the next request."""
    serve(server, root)
    for headers in ({}, {"Range": "bytes=0-1,4-5"}, {}):
        response = await keepalive_client.get(server.url("/data.bin"), headers=headers)
        await treq.content(response)
        assert fds_on(root / "data.bin") == 0
    assert not server.site.active_streams


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest_twisted.ensureDeferred
async def test_descriptor_closed_on_disconnect(
    server: Any, tmp_path: pathlib.Path, version: str
) -> None:
    """A client that disconnects mid-body gets the file closed (HTTP/1.0 and 1.1)."""
    sparse(tmp_path / "big.bin", 256 * MIB)
    serve(server, tmp_path)
    raw = await connect(server.port, get("/big.bin", version=version))
    await within(raw.received_at_least(1000))
    raw.stop_reading()
    handle = one_stream(server)
    assert fds_on(tmp_path / "big.bin") == 1
    abort(raw)
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    assert fds_on(tmp_path / "big.bin") == 0


def abort(raw: RawClient) -> None:
    """Drop the connection without a goodbye."""
    assert raw.transport is not None
    raw.transport.abortConnection()  # type: ignore[attr-defined]


class FailingAfter(io.FileIO):
    """A raw file whose reads fail once ``limit`` bytes were read."""

    limit = 0
    read_so_far = 0

    def read(self, size: int | None = -1) -> bytes:
        if self.read_so_far >= self.limit:
            raise OSError(errno.EIO, "Input/output error")
        want = self.limit - self.read_so_far if size is None or size < 0 else size
        data = super().read(min(want, self.limit - self.read_so_far)) or b""
        self.read_so_far += len(data)
        return data


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize(("fail_after", "expect"), [(0, "500"), (256 * 1024, "abort")])
@pytest_twisted.ensureDeferred
async def test_descriptor_closed_on_error(
    server: Any,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    fail_after: int,
    expect: str,
    version: str,
) -> None:
    """On the read/write path (sendfile off; its errors are in tests/http/test_sendfile.py),
    a read error gives a 500 before the first byte, an aborted connection after it, and the
    file is closed either way."""

    def failing(path: str) -> BinaryIO:
        file = FailingAfter(path, "rb")
        file.limit = fail_after
        return file

    opened = OpenRecorder(monkeypatch, failing)
    sparse(tmp_path / "big.bin", 4 * MIB)
    server.serve(FileResource(tmp_path), settings=StreamSettings(sendfile=False))
    extra = "Connection: close\r\n" if version == "1.1" else ""
    raw = await connect(server.port, get("/big.bin", version=version, extra=extra))
    await within(raw.closed)
    status, headers, body = parse_response(bytes(raw.received))
    if expect == "500":
        assert status == 500
    else:
        assert status == 200 and len(body) < int(headers["content-length"][0])
    assert opened.files[0].closed
    assert fds_on(tmp_path / "big.bin") == 0


@pytest_twisted.ensureDeferred
async def test_truncated_while_streaming_aborts(server: Any, tmp_path: pathlib.Path) -> None:
    """A file truncated while it is sent aborts the connection: never padded, never hung."""
    path = tmp_path / "shrinks.bin"
    sparse(path, 256 * MIB)
    serve(server, tmp_path)
    raw = await connect(server.port, get("/shrinks.bin"))
    await within(raw.received_at_least(1000))
    raw.stop_reading()
    handle = one_stream(server)
    os.truncate(path, MIB)
    raw.resume_reading()
    await within(raw.closed)
    status, headers, body = parse_response(bytes(raw.received))
    assert status == 200 and headers["content-length"] == [str(256 * MIB)]
    assert len(body) < 256 * MIB
    result = await within(handle.when_done())
    assert result.outcome is Outcome.SOURCE_FAILED
    assert result.failure is not None and result.failure.check(FileTruncated)
    assert fds_on(path) == 0


@pytest_twisted.ensureDeferred
async def test_deleted_while_open_still_streams(server: Any, tmp_path: pathlib.Path) -> None:
    """A file deleted after it was opened streams to the end from its descriptor."""
    path = tmp_path / "doomed.bin"
    data = bytes(range(256)) * (128 * 1024)  # 32 MiB
    path.write_bytes(data)
    serve(server, tmp_path)
    raw = await connect(server.port, get("/doomed.bin", version="1.0"))
    await within(raw.received_at_least(1000))
    raw.stop_reading()
    path.unlink()
    assert fds_on(path) == 1  # still being read, from the deleted file
    raw.resume_reading()
    await within(raw.closed)
    status, _, body = parse_response(bytes(raw.received))
    assert status == 200 and body == data
    assert fds_on(path) == 0


@pytest.mark.parametrize("sendfile", [True, False])
@pytest_twisted.ensureDeferred
async def test_many_slow_downloads_read_only_what_they_send(
    server: Any, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, sendfile: bool
) -> None:
    """20 clients that stop reading a 1 GiB file: each stream has sent no more than the
    socket buffers hold, not the file; read and written, it has read no more than it has
    written plus one buffer; sent with sendfile, nothing is read into Python at all."""
    opened = OpenRecorder(monkeypatch, lambda path: CountingFileIO(path, "rb"))
    sparse(tmp_path / "huge.bin", GIB)
    server.serve(FileResource(tmp_path), settings=StreamSettings(sendfile=sendfile))
    clients = []
    for _ in range(20):
        raw = await connect(server.port, get("/huge.bin"))
        await within(raw.received_at_least(1000))
        raw.stop_reading()
        clients.append(raw)
    streams = list(server.site.active_streams)
    await until(lambda: all(s.state is State.PAUSED for s in streams), what="all paused")
    await turns(20)
    counted = [f for f in opened.files if isinstance(f, CountingFileIO)]
    assert len(counted) == 20
    assert all(f.bytes_read < 32 * MIB for f in counted)
    assert all(s.bytes_sent < 32 * MIB for s in streams)
    read = sum(f.bytes_read for f in counted)
    if sendfile:
        assert read == 0
    else:
        assert read - sum(s.bytes_sent for s in streams) <= (20 * 65536)
    for raw in clients:
        abort(raw)
    for s in streams:
        await within(s.when_done())
    assert all(f.closed for f in opened.files)


@pytest_twisted.ensureDeferred
async def test_gzip_form_revalidates_with_its_own_etag(server: Any, root: pathlib.Path) -> None:
    """With compression on, a text file is sent gzipped under a distinct ETag, and a client
    revalidating with that ETag gets 304 (with the same ETag and Vary), not the file again."""
    from twisted_stream import StreamSettings

    server.serve(FileResource(root), settings=StreamSettings(compress=True))
    status, headers, _ = await raw_get(
        server.port, "/hello.txt", extra="Accept-Encoding: gzip\r\n"
    )
    assert status == 200
    assert headers["content-encoding"] == ["gzip"]
    tag = headers["etag"][0]
    assert tag.endswith('-gzip"')
    status, headers, body = await raw_get(
        server.port,
        "/hello.txt",
        extra=f"Accept-Encoding: gzip\r\nIf-None-Match: {tag}\r\n",
    )
    assert (status, body) == (304, b"")
    assert headers["etag"] == [tag]
    assert "Accept-Encoding" in headers["vary"][0]
