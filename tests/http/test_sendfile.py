"""Zero-copy file bodies (``twisted_stream._http._sendfile``) on real sockets (127.0.0.1).

Each case checks what a client receives (exact bytes, statuses, headers, the connection's
fate), what the server's stream reports, and whether ``os.sendfile`` carried the body: a spy
counts its calls, so the fallback cases show the read/write path was chosen instead.
"""

from __future__ import annotations

import errno
import os
import pathlib
import zlib
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, ssl
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.web.resource import EncodingResourceWrapper, Resource
from twisted.web.server import Site

from twisted_stream import Outcome, State, StreamSettings, stream, stream_for
from twisted_stream._engine._stream import Stream
from twisted_stream._files._resource import FileResource
from twisted_stream._http import _sendfile

from ..conftest import Server, leaf
from ..rawclient import RawClient, connect, get
from ..waiting import turns, until, within

MIB = 1 << 20
BODY = os.urandom(3 * MIB + 12345)  # not a multiple of anything the engine uses


class SendfileSpy:
    """Counts ``os.sendfile`` calls and the bytes they sent; ``fail`` makes the next calls
    raise that error instead."""

    def __init__(self) -> None:
        self.calls = 0
        self.sent = 0
        self.fail: OSError | None = None

    def __call__(self, out_fd: int, in_fd: int, offset: int, count: int) -> int:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        sent = REAL_SENDFILE(out_fd, in_fd, offset, count)
        self.sent += sent
        return sent


REAL_SENDFILE = os.sendfile


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> SendfileSpy:
    found = SendfileSpy()
    monkeypatch.setattr(os, "sendfile", found)
    return found


@pytest.fixture
def files(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "body.bin").write_bytes(BODY)
    (tmp_path / "text.txt").write_bytes(b"hello, compressible world\n" * 4000)
    with open(tmp_path / "huge.bin", "wb") as f:
        f.truncate(256 * MIB)  # sparse: never fits in the socket buffers
    return tmp_path


class Streams:
    """The streams a site started, by path."""

    def __init__(self) -> None:
        self.by_path: dict[str, Stream] = {}

    def record(self, request: Any) -> None:
        handle = stream_for(request)
        if handle is not None:
            self.by_path[request.path.decode()] = handle

    async def only(self) -> Stream:
        """The one stream started (waiting for it to start)."""
        await until(lambda: bool(self.by_path), what="the stream to start")
        (handle,) = self.by_path.values()
        return handle


def serve_files(server: Server, root: pathlib.Path, **settings: Any) -> Streams:
    """``FileResource(root)`` at ``/files/``, ``stream(request, Path)`` at ``/path/<name>``,
    a file object without a length at ``/object/<name>`` and a small generated body at
    ``/gen``."""
    streams = Streams()
    resource = FileResource(root)

    def files(request: Any) -> Any:
        result = resource.render(request)
        streams.record(request)
        return result

    def by_path(request: Any) -> Any:
        result = stream(request, root / request.postpath[0].decode())
        streams.record(request)
        return result

    def file_object(request: Any) -> Any:
        result = stream(request, open(root / request.postpath[0].decode(), "rb"))
        streams.record(request)
        return result

    top = Resource()
    top.putChild(b"files", leaf(files))
    top.putChild(b"path", leaf(by_path))
    top.putChild(b"object", leaf(file_object))
    top.putChild(b"gen", leaf(lambda request: stream(request, iter([b"generated", b"!"]))))
    server.serve(top, settings=StreamSettings(**settings))
    return streams


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Every complete HTTP/1.1 response in ``raw``, in order (Content-Length or chunked)."""
    found = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, raw[:200]
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        if "content-length" in headers:
            length = int(headers["content-length"])
            body, raw = rest[:length], rest[length:]
        else:
            assert headers.get("transfer-encoding") == "chunked", headers
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16)
                body += rest[:size]
                rest = rest[size + 2 :]
                if not size:
                    break
            raw = rest
        found.append((int(status.split()[1]), headers, body))
    return found


async def fetch(port: int, path: str, version: str = "1.0", extra: str = "") -> Any:
    """One request on a new connection, read to the close."""
    raw = await connect(port, get(path, version=version, extra=extra))
    await within(raw.closed)
    (response,) = responses(bytes(raw.received))
    return response


# --- bodies sent with sendfile ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/files/body.bin", "/path/body.bin"])
@pytest_twisted.ensureDeferred
async def test_whole_file_is_sent_with_sendfile(
    server: Server, files: pathlib.Path, spy: SendfileSpy, path: str
) -> None:
    """A whole file from FileResource or stream(request, Path) arrives byte for byte with
    its Content-Length, carried by sendfile; the stream counts every byte and the access
    log's byte count is the body's."""
    streams = serve_files(server, files)
    logged: list[int] = []
    server.site.log = lambda request: logged.append(request.sentLength)
    status, headers, body = await fetch(server.port, path)
    assert status == 200
    assert body == BODY and int(headers["content-length"]) == len(BODY)
    assert spy.sent == len(BODY)
    result = await within((await streams.only()).when_done())
    assert result.outcome is Outcome.COMPLETED and result.bytes_sent == len(BODY)
    assert (await streams.only()).first_byte_seconds is not None
    assert logged == [len(BODY)]


@pytest.mark.parametrize(("first", "last"), [(0, 0), (1, 2 * MIB), (len(BODY) - 7, len(BODY) - 1)])
@pytest_twisted.ensureDeferred
async def test_single_range_is_sent_with_sendfile(
    server: Server, files: pathlib.Path, spy: SendfileSpy, first: int, last: int
) -> None:
    """A single range is the exact bytes of the file, 206 with its Content-Range, by
    sendfile from the range's offset."""
    serve_files(server, files)
    status, headers, body = await fetch(
        server.port, "/files/body.bin", extra=f"Range: bytes={first}-{last}\r\n"
    )
    assert status == 206
    assert headers["content-range"] == f"bytes {first}-{last}/{len(BODY)}"
    assert body == BODY[first : last + 1]
    assert spy.sent == last + 1 - first


@pytest_twisted.ensureDeferred
async def test_keep_alive_and_pipelining_after_a_sendfile_body(
    server: Server, files: pathlib.Path, spy: SendfileSpy
) -> None:
    """Requests pipelined behind sendfile bodies on one connection are all answered, in
    order and byte-exact: a file, a range, a generated body, the file again."""
    serve_files(server, files)
    requests = (
        get("/files/body.bin")
        + get("/files/body.bin", extra="Range: bytes=100-199\r\n")
        + get("/gen")
        + get("/path/body.bin", extra="Connection: close\r\n")
    )
    raw = await connect(server.port, requests)
    await within(raw.closed)
    answers = responses(bytes(raw.received))
    assert [status for status, _, _ in answers] == [200, 206, 200, 200]
    assert [body for _, _, body in answers] == [BODY, BODY[100:200], b"generated!", BODY]
    assert spy.sent == 2 * len(BODY) + 100


@pytest_twisted.ensureDeferred
async def test_disconnect_mid_sendfile_stops_it_at_once(
    server: Server, files: pathlib.Path, spy: SendfileSpy
) -> None:
    """A client that resets the connection mid-body ends the stream as client-gone: no
    sendfile call follows, and the file is closed."""
    streams = serve_files(server, files)
    raw = await connect(server.port, get("/files/huge.bin"))
    await within(raw.received_at_least(MIB))
    assert spy.calls
    raw.transport.abortConnection()  # type: ignore[union-attr]
    handle = await streams.only()
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    calls = spy.calls
    await turns(20)
    assert spy.calls == calls
    assert open_descriptors(files / "huge.bin") == 0


@pytest_twisted.ensureDeferred
async def test_client_that_stops_reading_pauses_sendfile_and_stalls(
    server: Server, files: pathlib.Path, spy: SendfileSpy
) -> None:
    """A client that stops reading pauses the stream (no sendfile call while the socket is
    full, the pause is counted) and the stall timeout then aborts it."""
    streams = serve_files(server, files, stall_timeout=0.5)
    raw = await connect(server.port, get("/files/huge.bin"))
    await within(raw.received_at_least(MIB))
    raw.stop_reading()
    handle = await streams.only()
    await until(lambda: handle.state is State.PAUSED, what="the stream to pause")
    calls = spy.calls
    await turns(20)
    assert handle.state is State.PAUSED and spy.calls == calls
    assert handle.pause_count >= 1
    result = await within(handle.when_done())
    assert result.outcome is Outcome.STALLED
    assert result.bytes_sent < 256 * MIB
    assert open_descriptors(files / "huge.bin") == 0


@pytest_twisted.ensureDeferred
async def test_slow_reader_resumes_sendfile(
    server: Server, files: pathlib.Path, spy: SendfileSpy
) -> None:
    """A client that pauses and then reads again gets the whole body, exact."""
    serve_files(server, files)
    raw = await connect(server.port, get("/files/body.bin", version="1.0"))
    await within(raw.received_at_least(100_000))
    raw.stop_reading()
    await turns(20)
    raw.resume_reading()
    await within(raw.closed)
    ((status, _, body),) = responses(bytes(raw.received))
    assert status == 200 and body == BODY


@pytest_twisted.ensureDeferred
async def test_file_truncated_during_sendfile_aborts(
    server: Server, files: pathlib.Path, spy: SendfileSpy
) -> None:
    """A file that shrinks while it is sent: the connection closes short of the
    Content-Length (never padded), the stream fails with FileTruncated."""
    streams = serve_files(server, files)
    raw = await connect(server.port, get("/files/huge.bin"))
    await within(raw.received_at_least(MIB))
    raw.stop_reading()
    handle = await streams.only()
    await until(lambda: handle.state is State.PAUSED, what="the stream to pause")
    os.truncate(files / "huge.bin", 2 * MIB)
    raw.resume_reading()
    result = await within(handle.when_done())
    assert result.outcome is Outcome.SOURCE_FAILED
    assert "ended at byte" in str(result.failure.value)  # type: ignore[union-attr]
    await within(raw.closed)
    assert len(bytes(raw.received).partition(b"\r\n\r\n")[2]) < 256 * MIB


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (OSError(errno.EIO, "Input/output error"), Outcome.SOURCE_FAILED),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), Outcome.CLIENT_GONE),
        (OSError(errno.ENOTCONN, "not connected"), Outcome.CLIENT_GONE),
    ],
)
@pytest_twisted.ensureDeferred
async def test_sendfile_errors(
    server: Server, files: pathlib.Path, spy: SendfileSpy, error: OSError, outcome: Outcome
) -> None:
    """sendfile failing on the file fails the stream, on the connection ends it as
    client-gone; either way the connection closes short and the file is closed."""
    streams = serve_files(server, files)
    spy.fail = error
    raw = await connect(server.port, get("/files/body.bin"))
    result = await within((await streams.only()).when_done())
    assert result.outcome is outcome
    await within(raw.closed)
    head, _, body = bytes(raw.received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and len(body) < len(BODY)
    assert open_descriptors(files / "body.bin") == 0


# --- the read/write path where sendfile cannot carry the body ---------------------------


class Reverse:
    """A Twisted response encoder (``EncodingResourceWrapper``): every write reversed."""

    def __init__(self, request: Any) -> None:
        pass

    def encode(self, data: bytes) -> bytes:
        return data[::-1]

    def finish(self) -> bytes:
        return b""


class ReverseFactory:
    def encoderForRequest(self, request: Any) -> Reverse:
        return Reverse(request)


@pytest.mark.parametrize(
    ("case", "path", "extra", "settings"),
    [
        ("file object without a length (chunked)", "/object/body.bin", "", {}),
        ("several ranges (multipart)", "/files/body.bin", "Range: bytes=0-9,20-29\r\n", {}),
        ("compressed", "/files/text.txt", "Accept-Encoding: gzip\r\n", {"compress": True}),
        ("sendfile turned off", "/files/body.bin", "", {"sendfile": False}),
        ("HEAD", "/files/body.bin", "", {}),
    ],
)
@pytest_twisted.ensureDeferred
async def test_fallback_to_reading_and_writing(
    server: Server,
    files: pathlib.Path,
    spy: SendfileSpy,
    case: str,
    path: str,
    extra: str,
    settings: dict[str, Any],
) -> None:
    """Bodies sendfile cannot carry (no length, multipart, gzip, turned off) are read and
    written exactly as before; HEAD sends no body at all."""
    serve_files(server, files, **settings)
    method = "HEAD" if case == "HEAD" else "GET"
    raw = await connect(server.port, get(path, version="1.1", method=method, extra=extra))
    if method == "HEAD":
        await within(raw.received_at_least(1))
        await turns(5)
        head, _, body = bytes(raw.received).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == b""
        assert spy.calls == 0
        return
    raw.transport.write(get("/gen", extra="Connection: close\r\n"))  # type: ignore[union-attr]
    await within(raw.closed)
    (status, headers, body), last = responses(bytes(raw.received))
    assert last[2] == b"generated!"
    if case.startswith("several"):
        assert status == 206 and BODY[0:10] in body and BODY[20:30] in body
    elif case == "compressed":
        assert headers["content-encoding"] == "gzip"
        assert zlib.decompress(body, 16 + zlib.MAX_WBITS) == (files / "text.txt").read_bytes()
    else:
        assert status == 200 and body == BODY
    assert spy.calls == 0


@pytest_twisted.ensureDeferred
async def test_fallback_without_os_sendfile(
    server: Server, files: pathlib.Path, spy: SendfileSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the platform has no os.sendfile, files are read and written."""
    monkeypatch.setattr(_sendfile, "SENDFILE", False)
    serve_files(server, files)
    status, _, body = await fetch(server.port, "/files/body.bin")
    assert status == 200 and body == BODY
    assert spy.calls == 0


@pytest_twisted.ensureDeferred
async def test_fallback_for_twisted_response_encoders(
    server: Server, files: pathlib.Path, spy: SendfileSpy
) -> None:
    """A Twisted encoder on the resource (EncodingResourceWrapper) sees every body byte."""
    wrapped = EncodingResourceWrapper(FileResource(files), [ReverseFactory()])
    server.serve(wrapped)
    raw = await connect(server.port, get("/body.bin", version="1.0"))
    await within(raw.closed)
    body = bytes(raw.received).partition(b"\r\n\r\n")[2]
    assert len(body) == len(BODY) and body != BODY
    assert spy.calls == 0


@pytest_twisted.ensureDeferred
async def test_fallback_over_tls(files: pathlib.Path, spy: SendfileSpy) -> None:
    """Over TLS the body must be encrypted: it is read and written, and arrives exact."""
    pem = (pathlib.Path(ssl.__file__).parent.parent / "test" / "server.pem").read_bytes()
    certificate = ssl.PrivateCertificate.loadPEM(pem)
    site = Site(FileResource(files))
    port = reactor.listenSSL(0, site, certificate.options(), interface="127.0.0.1")
    try:
        endpoint = SSL4ClientEndpoint(
            reactor, "127.0.0.1", port.getHost().port, ssl.CertificateOptions()
        )
        raw: Any = await connectProtocol(endpoint, RawClient())
        raw.transport.write(get("/body.bin", version="1.0"))
        await within(raw.closed)
        body = bytes(raw.received).partition(b"\r\n\r\n")[2]
        assert body == BODY
        assert spy.calls == 0
    finally:
        await port.stopListening()


def open_descriptors(path: pathlib.Path) -> int:
    """How many of this process's descriptors are open on ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") in (str(path), f"{path} (deleted)"):
                count += 1
        except OSError:
            continue
    return count
