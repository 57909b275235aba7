"""Tests for :mod:`twisted_stream._sources._file`: the file source and ``stream()`` of files."""

from __future__ import annotations

import io
import math
import os
import pathlib
import time
from typing import Any, BinaryIO

import pytest
import pytest_twisted
import treq
from twisted.python.filepath import FilePath
from twisted.web.resource import Resource

from twisted_stream import Outcome, State, StreamingResource, stream, stream_for
from twisted_stream._engine._source import EOF, SliceDeadline, Source
from twisted_stream._engine._stream import Stream
from twisted_stream._errors import FileTruncated
from twisted_stream._sources._file import (
    FileRegion,
    FileSource,
    PathSource,
    Segment,
    file_content_type,
    file_source,
)

from ..conftest import leaf
from ..rawclient import connect, get
from ..waiting import turns, until, within

LATER = SliceDeadline(math.inf, time.monotonic)
GIB = 1 << 30
DATA = bytes(range(256)) * 64  # 16 KiB


class CountingFile(io.BytesIO):
    """An in-memory binary file that counts the bytes read from it and its closes."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0
        self.reads: list[int] = []
        self.close_calls = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        self.reads.append(len(data))
        return data

    def close(self) -> None:
        self.close_calls += 1
        super().close()


def drain(source: Source, limit: int = 1000) -> list[bytes]:
    """All chunks a synchronous source gives until EOF."""
    chunks = []
    while (chunk := source.read(limit, LATER)) is not EOF:
        assert isinstance(chunk, bytes)
        chunks.append(chunk)
    return chunks


# --- FileSource -------------------------------------------------------------------------


def test_reads_a_whole_file_in_limit_sized_chunks() -> None:
    """The file comes out in chunks of at most ``limit`` bytes, then EOF, then EOF again."""
    source = FileSource(CountingFile(DATA), [FileRegion(0, len(DATA))])
    chunks = drain(source, 1000)
    assert b"".join(chunks) == DATA
    assert all(len(c) <= 1000 for c in chunks) and len(chunks) == 17
    assert source.read(1000, LATER) is EOF


def test_reads_only_when_asked() -> None:
    """Nothing is read before the first read(); each read takes at most ``limit`` bytes."""
    file = CountingFile(DATA)
    source = FileSource(file, [FileRegion(0, len(DATA))])
    assert file.bytes_read == 0
    source.read(100, LATER)
    assert file.bytes_read == 100
    source.read(100, LATER)
    assert file.bytes_read == 200


def test_reads_a_region() -> None:
    """A region is read from its offset for its length."""
    source = FileSource(CountingFile(DATA), [FileRegion(1000, 3000)])
    assert b"".join(drain(source, 512)) == DATA[1000:4000]


def test_layout_of_literals_and_regions() -> None:
    """Literal bytes and regions come out in layout order, coalesced up to the limit."""
    layout: list[Segment] = [b"<a>", FileRegion(10, 5), b"<b>", FileRegion(0, 3), b"", b"<c>"]
    source = FileSource(CountingFile(DATA), layout)
    assert source.read(1000, LATER) == b"<a>" + DATA[10:15] + b"<b>" + DATA[0:3] + b"<c>"
    assert source.read(1000, LATER) is EOF


def test_layout_reads_stop_at_the_limit() -> None:
    """A read returns once the limit is reached; the next read goes on where it stopped."""
    source = FileSource(CountingFile(DATA), [b"head", FileRegion(0, 10), b"tail"])
    assert source.read(6, LATER) == b"head" + DATA[:2]
    assert source.read(6, LATER) == DATA[2:8]
    assert source.read(6, LATER) == DATA[8:10] + b"tail"
    assert source.read(6, LATER) is EOF


def test_a_past_deadline_returns_after_one_piece() -> None:
    """With the deadline passed a read still makes progress, one piece at a time."""
    source = FileSource(CountingFile(DATA), [b"a", FileRegion(0, 4), b"b"])
    past = SliceDeadline(time.monotonic() - 1, time.monotonic)
    assert [source.read(1000, past) for _ in range(4)] == [b"a", DATA[:4], b"b", EOF]


def test_empty_region_and_empty_layout() -> None:
    """Empty regions and an empty layout give EOF without reading."""
    file = CountingFile(DATA)
    assert FileSource(file, [FileRegion(5, 0)]).read(10, LATER) is EOF
    assert FileSource(file, []).read(10, LATER) is EOF
    assert file.bytes_read == 0


def test_truncation_raises_after_the_bytes_that_exist() -> None:
    """A region longer than the file gives what exists, then raises FileTruncated."""
    source = FileSource(CountingFile(b"x" * 10), [FileRegion(0, 20)])
    assert source.read(100, LATER) == b"x" * 10
    with pytest.raises(FileTruncated, match="10 bytes before the end"):
        source.read(100, LATER)
    assert issubclass(FileTruncated, OSError)


def test_rest_mode_reads_from_the_current_position_to_the_end() -> None:
    """Without a layout the file is read from where it stands to its end."""
    file = CountingFile(DATA)
    file.read(100)
    assert b"".join(drain(FileSource(file), 4096)) == DATA[100:]


def test_close_is_idempotent_and_closes_the_file() -> None:
    """close() closes the file once, however often it is called."""
    file = CountingFile(DATA)
    source = FileSource(file)
    source.close()
    source.close()
    assert file.closed and file.close_calls == 1


def test_close_never_raises() -> None:
    """A file whose close() fails does not make close() fail."""

    class Broken(io.BytesIO):
        def close(self) -> None:
            raise OSError("disk on fire")

    broken = Broken(DATA)
    FileSource(broken).close()
    # Really close it, or its finalizer calls the failing close() again (Python 3.13 reports
    # that as an unraisable exception).
    io.BytesIO.close(broken)
    assert broken.closed


def test_read_after_close_fails_cleanly() -> None:
    """Reading a closed source with bytes left raises instead of touching a closed file."""
    source = FileSource(CountingFile(DATA), [FileRegion(0, 10)])
    source.close()
    with pytest.raises(ValueError, match="closed"):
        source.read(10, LATER)


def test_offsets_beyond_4_gib(tmp_path: pathlib.Path) -> None:
    """Regions past 2**32 in a sparse file are read at the right offset."""
    path = tmp_path / "sparse"
    with open(path, "wb") as f:
        f.truncate(5 * GIB)
        f.seek(4 * GIB + 7)
        f.write(b"marker")
    with open(path, "rb") as f:
        source = FileSource(f, [FileRegion(4 * GIB + 5, 10)])
        assert source.read(1 << 16, LATER) == b"\0\0marker\0\0"


def test_a_deleted_file_streams_from_its_descriptor(tmp_path: pathlib.Path) -> None:
    """Unlinking the file after opening it does not stop the source."""
    path = tmp_path / "gone"
    path.write_bytes(DATA)
    source = FileSource(open(path, "rb"), [FileRegion(0, len(DATA))])
    first = source.read(100, LATER)
    path.unlink()
    assert isinstance(first, bytes)
    assert first + b"".join(drain(source, 4096)) == DATA
    source.close()


# --- PathSource and file_source ----------------------------------------------------------


def test_path_source_opens_lazily(tmp_path: pathlib.Path) -> None:
    """A path is opened on the first read: it need not exist before, and close() alone
    never opens it."""
    path = tmp_path / "later"
    source = PathSource(str(path))
    source.close()
    source = PathSource(str(path))
    path.write_bytes(DATA)
    assert b"".join(drain(source, 4096)) == DATA
    source.close()


def test_path_source_cuts_a_growing_file_at_its_opened_size(tmp_path: pathlib.Path) -> None:
    """Bytes appended after the file was opened are not sent."""
    path = tmp_path / "grows"
    path.write_bytes(b"a" * 10)
    source = PathSource(str(path))
    assert source.read(4, LATER) == b"aaaa"
    with open(path, "ab") as f:
        f.write(b"b" * 10)
    assert b"".join(drain(source, 100)) == b"a" * 6
    source.close()


def test_path_source_detects_a_shrinking_file(tmp_path: pathlib.Path) -> None:
    """A regular file truncated while read raises FileTruncated."""
    path = tmp_path / "shrinks"
    path.write_bytes(DATA)
    source = PathSource(str(path))
    source.read(100, LATER)
    os.truncate(path, 50)
    with pytest.raises(FileTruncated):
        source.read(100, LATER)
    source.close()


def test_path_source_reads_special_files_to_their_end(tmp_path: pathlib.Path) -> None:
    """A path that is not a regular file (size 0 in stat) is read until it ends."""
    source = PathSource("/proc/self/status")
    assert b"Name:" in b"".join(drain(source, 4096))
    source.close()


def test_path_source_missing_file_raises_on_read(tmp_path: pathlib.Path) -> None:
    """A missing path raises from read (the engine answers 500), not before."""
    source = PathSource(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        source.read(10, LATER)
    source.close()


@pytest.mark.parametrize("kind", ["path", "filepath"])
def test_file_source_accepts_paths(tmp_path: pathlib.Path, kind: str) -> None:
    """pathlib paths and FilePaths become lazily opened path sources."""
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    obj: object = path if kind == "path" else FilePath(str(path))
    source = file_source(obj)
    assert isinstance(source, PathSource)
    assert b"".join(drain(source, 4096)) == DATA
    source.close()


def test_file_source_accepts_binary_file_objects(tmp_path: pathlib.Path) -> None:
    """Buffered, raw and in-memory binary files, and objects with a binary mode, are files."""
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)

    class ModeOnly:
        mode = "rb"

        def read(self, size: int = -1) -> bytes:
            return b""

    files: list[Any] = [
        open(path, "rb"),
        open(path, "rb", buffering=0),
        io.BytesIO(DATA),
        ModeOnly(),
    ]
    for file in files:
        source = file_source(file)
        assert isinstance(source, FileSource), file
        source.close()


def test_file_source_refuses_text_and_other_objects(tmp_path: pathlib.Path) -> None:
    """str (text, never a path), bytes, text files and objects with a text mode are not files."""
    path = tmp_path / "f.txt"
    path.write_text("text")

    class TextMode:
        mode = "r"

        def read(self, size: int = -1) -> str:
            return ""

    with open(path) as text_file:
        for obj in [str(path), b"bytes", text_file, io.StringIO("x"), TextMode(), [b"x"], 1]:
            assert file_source(obj) is None, obj


# --- stream() of files through a real Site -----------------------------------------------


class Recorder:
    """A resource that streams what ``make()`` returns and records the Stream."""

    def __init__(self, make: Any, **kwargs: Any) -> None:
        self.make = make
        self.kwargs = kwargs
        self.streams: list[Stream] = []

    def resource(self) -> Resource:
        recorder = self

        class _Leaf(Resource):
            isLeaf = True

            def render_GET(self, request: Any) -> Any:
                result = stream(request, recorder.make(), **recorder.kwargs)
                handle = stream_for(request)
                assert handle is not None
                recorder.streams.append(handle)
                return result

        return _Leaf()


@pytest.mark.parametrize("kind", ["path", "filepath", "file"])
@pytest_twisted.ensureDeferred
async def test_stream_sends_a_file(
    server: Any, client: Any, tmp_path: pathlib.Path, kind: str
) -> None:
    """stream() sends a Path, a FilePath or an open binary file whole, then closes it."""
    path = tmp_path / "data.bin"
    path.write_bytes(DATA * 8)
    opened: list[BinaryIO] = []

    def make() -> object:
        if kind == "path":
            return path
        if kind == "filepath":
            return FilePath(str(path))
        opened.append(open(path, "rb"))
        return opened[-1]

    recorder = Recorder(make)
    server.serve(recorder.resource())
    response = await client.get(server.url())
    assert await within(treq.content(response)) == DATA * 8
    result = await within(recorder.streams[0].when_done())
    assert result.outcome is Outcome.COMPLETED
    assert all(f.closed for f in opened)


@pytest_twisted.ensureDeferred
async def test_stream_str_stays_text(server: Any, client: Any, tmp_path: pathlib.Path) -> None:
    """A str that happens to be a path is sent as text, not as the file."""
    path = tmp_path / "secret"
    path.write_bytes(b"file content")
    server.serve(Recorder(lambda: str(path)).resource())
    response = await client.get(server.url())
    assert await within(treq.content(response)) == str(path).encode()


@pytest_twisted.ensureDeferred
async def test_stream_closes_a_file_when_the_client_leaves(
    server: Any, tmp_path: pathlib.Path
) -> None:
    """A client that disconnects mid-body gets the file closed (a 64 MiB sparse file)."""
    path = tmp_path / "big"
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    opened: list[BinaryIO] = []

    def make() -> object:
        opened.append(open(path, "rb"))
        return opened[-1]

    recorder = Recorder(make)
    server.serve(recorder.resource())
    raw = await connect(server.port, get("/"))
    await within(raw.received_at_least(1000))
    raw.stop_reading()
    assert not opened[0].closed
    assert raw.transport is not None
    raw.transport.abortConnection()  # type: ignore[attr-defined]
    result = await within(recorder.streams[0].when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    assert opened[0].closed


@pytest_twisted.ensureDeferred
async def test_stream_closes_a_file_on_error(server: Any, client: Any) -> None:
    """A file object whose read fails gives a 500 and is still closed."""

    class Failing(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError("I/O error")

    failing = Failing(b"x")
    recorder = Recorder(lambda: failing)
    server.serve(recorder.resource())
    response = await client.get(server.url())
    assert response.code == 500
    await within(treq.content(response))
    result = await within(recorder.streams[0].when_done())
    assert result.outcome is Outcome.SOURCE_FAILED
    assert failing.closed


@pytest_twisted.ensureDeferred
async def test_stream_reads_a_file_only_while_the_client_reads(
    server: Any, tmp_path: pathlib.Path
) -> None:
    """A client that stops reading stops the file reads: far less than the file is read."""
    path = tmp_path / "big"
    with open(path, "wb") as f:
        f.truncate(256 << 20)
    counting: list[Any] = []

    class Counting(io.FileIO):
        bytes_read = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            self.bytes_read += len(data)
            return data or b""

    def make() -> object:
        counting.append(Counting(str(path), "rb"))
        return counting[-1]

    recorder = Recorder(make)
    server.serve(recorder.resource())
    raw = await connect(server.port, get("/", version="1.0"))
    await within(raw.received_at_least(1000))
    raw.stop_reading()
    handle = recorder.streams[0]
    await until(lambda: handle.state is State.PAUSED, what="the stream to pause")
    await turns(50)
    # Bounded by the socket buffers, far below the file; nothing read ahead of the writes.
    assert counting[0].bytes_read < 32 << 20
    assert counting[0].bytes_read - handle.bytes_sent <= 1 << 16
    raw.resume_reading()
    await within(raw.closed, 60)
    head, _, body = bytes(raw.received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and len(body) == 256 << 20
    assert counting[0].closed
    assert (await within(handle.when_done())).outcome is Outcome.COMPLETED


@pytest_twisted.ensureDeferred
async def test_stream_of_a_path_sends_its_content_length(
    server: Any, client: Any, tmp_path: pathlib.Path
) -> None:
    """stream(request, Path) sends a regular file with its Content-Length (not chunked);
    a str stays text and a missing file still answers 500."""
    (tmp_path / "f.bin").write_bytes(b"0123456789")
    targets = {b"/path": tmp_path / "f.bin", b"/text": str(tmp_path / "f.bin")}
    targets[b"/missing"] = tmp_path / "missing.bin"
    server.serve(leaf(lambda request: stream(request, targets[request.path])))
    raw = await connect(server.port, get("/path", extra="Connection: close\r\n"))
    await within(raw.closed)
    head, _, body = bytes(raw.received).partition(b"\r\n\r\n")
    assert b"\r\nContent-Length: 10\r\n" in head + b"\r\n"
    assert b"chunked" not in head.lower()
    assert body == b"0123456789"
    text = await client.get(server.url("/text"))
    assert await text.content() == str(tmp_path / "f.bin").encode()
    missing = await client.get(server.url("/missing"))
    assert missing.code == 500
    await missing.content()


# --- the media type of a streamed file --------------------------------------------------


def test_file_content_type_of_each_file_kind(tmp_path: pathlib.Path) -> None:
    """Kind 3 (a streamed file's media type): a Path, a FilePath and a binary file object
    are typed from FileResource's fixed table by their name; a file object without a usable
    name, and an unknown extension, are ``application/octet-stream``; anything that is not
    a file has no file type (None)."""
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"notes")
    with open(notes, "rb") as opened, open(opened.fileno(), "rb", closefd=False) as by_fd:
        assert file_content_type(opened) == "text/plain; charset=utf-8"
        assert file_content_type(by_fd) == "application/octet-stream"  # name is an int
    assert file_content_type(notes) == "text/plain; charset=utf-8"
    assert file_content_type(FilePath(str(tmp_path / "page.HTML"))) == "text/html; charset=utf-8"
    assert file_content_type(tmp_path / "upload.unknownext") == "application/octet-stream"
    assert file_content_type(io.BytesIO(b"x")) == "application/octet-stream"
    for other in (b"bytes", "str", iter([b"x"]), io.StringIO("text")):
        assert file_content_type(other) is None


def served_files(tmp_path: pathlib.Path) -> dict[bytes, Any]:
    """Paths of a test site to the call that streams a file there."""
    (tmp_path / "notes.txt").write_bytes(b"my notes")
    (tmp_path / "upload.unknownext").write_bytes(b"<script>alert(1)</script>")
    return {
        b"/path": lambda request: stream(request, tmp_path / "notes.txt"),
        b"/filepath": lambda request: stream(request, FilePath(str(tmp_path / "notes.txt"))),
        b"/object": lambda request: stream(request, open(tmp_path / "notes.txt", "rb")),
        b"/bytesio": lambda request: stream(request, io.BytesIO(b"<p>hi</p>")),
        b"/unknown": lambda request: stream(request, tmp_path / "upload.unknownext"),
    }


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        (b"/path", "text/plain; charset=utf-8"),
        (b"/filepath", "text/plain; charset=utf-8"),
        (b"/object", "text/plain; charset=utf-8"),
        (b"/bytesio", "application/octet-stream"),
        (b"/unknown", "application/octet-stream"),
    ],
)
async def test_a_streamed_file_is_typed_like_file_resource(
    server: Any, tmp_path: pathlib.Path, path: bytes, content_type: str
) -> None:
    """Kind 3 (a streamed file's media type), the reported input: ``stream(request,
    Path("notes.txt"))`` without ``content_type`` went out as Twisted's default
    ``text/html`` without ``nosniff`` (an XSS risk for uploaded files). Every file source
    (Path, FilePath, file object) gets the type FileResource would send, octet-stream when
    unknown, and ``X-Content-Type-Options: nosniff``."""
    routes = served_files(tmp_path)
    server.serve(leaf(lambda request: routes[request.path](request)))
    raw = await connect(server.port, get(path.decode(), extra="Connection: close\r\n"))
    await within(raw.closed)
    head = bytes(raw.received).partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    assert f"\r\ncontent-type: {content_type}\r\n" in head + "\r\n"
    assert "\r\nx-content-type-options: nosniff\r\n" in head + "\r\n"


@pytest_twisted.ensureDeferred
async def test_a_streamed_file_keeps_the_type_it_is_given(
    server: Any, client: Any, tmp_path: pathlib.Path
) -> None:
    """Kind 3 (a streamed file's media type): ``content_type=`` and a Content-Type the
    resource set before calling ``stream()`` win over the table (with ``nosniff``), and a
    ``StreamingResource`` returning a Path gets the table's type."""
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"my notes")

    def preset(request: Any) -> int:
        request.setHeader(b"content-type", b"text/markdown")
        return stream(request, notes)

    class Returns(StreamingResource):
        isLeaf = True

        def render_GET(self, request: Any) -> object:
            return notes

    root = Resource()
    root.putChild(b"given", leaf(lambda request: stream(request, notes, content_type="x/y")))
    root.putChild(b"preset", leaf(preset))
    root.putChild(b"returned", Returns())
    server.serve(root)
    for path, expected in [
        ("/given", "x/y"),
        ("/preset", "text/markdown"),
        ("/returned", "text/plain; charset=utf-8"),
    ]:
        response = await client.get(server.url(path))
        assert response.headers.getRawHeaders("content-type") == [expected], path
        assert response.headers.getRawHeaders("x-content-type-options") == ["nosniff"]
        assert await response.content() == b"my notes"


@pytest_twisted.ensureDeferred
async def test_other_sources_keep_the_site_default_type(server: Any, client: Any) -> None:
    """Kind 3 (a streamed file's media type), the decision for non-files: bytes, str and
    generators without ``content_type`` keep the site's default (``Request.
    defaultContentType``, Twisted's ``text/html``), as every Twisted resource returning
    bytes does and as ``StreamingResource.content_type = None`` documents; only files,
    whose bytes the application did not write, are typed from the table."""
    server.serve(leaf(lambda request: stream(request, iter([b"<p>page</p>"]))))
    response = await client.get(server.url())
    assert response.headers.getRawHeaders("content-type") == ["text/html"]
    assert response.headers.getRawHeaders("x-content-type-options") is None
    await response.content()
