"""``StreamSite``: the registry of active streams."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from twisted_stream import GracefulShutdown, Outcome, StreamSite, stream, stream_for

from ..conftest import leaf
from ..waiting import until, within


@pytest_twisted.ensureDeferred
async def test_active_streams_are_tracked_until_they_end(server: Any, client: Any) -> None:
    """A running stream is in site.active_streams and leaves it when it ends."""
    gate: Deferred[bytes] = Deferred()
    handles: list[Any] = []

    def render(request: Any) -> Any:
        result = stream(request, iter([b"a", gate]))
        handles.append(stream_for(request))
        return result

    site = server.serve(leaf(render))
    response = client.get(server.url())
    await until(lambda: bool(handles))
    assert site.active_streams == {handles[0]}
    gate.callback(b"b")
    assert await (await within(response)).content() == b"ab"
    await within(handles[0].when_done())
    assert site.active_streams == set()


@pytest_twisted.ensureDeferred
async def test_ended_streams_and_their_requests_are_freed(server: Any, client: Any) -> None:
    """Nothing global keeps a finished stream or its request alive."""
    import gc
    import weakref

    refs: list[weakref.ref[Any]] = []

    def render(request: Any) -> Any:
        result = stream(request, iter([b"a"]))
        refs.append(weakref.ref(stream_for(request)))
        refs.append(weakref.ref(request))
        return result

    server.serve(leaf(render))
    for _ in range(3):
        assert await (await client.get(server.url())).content() == b"a"
    await client._agent._pool.closeCachedConnections()
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)


@pytest_twisted.ensureDeferred
async def test_streams_ended_at_shutdown_get_their_access_log_line(
    client: Any, tmp_path: pathlib.Path
) -> None:
    """Kind 6 (access-log lines of streams ended at shutdown outside the plugin): a plain
    StreamSite with GracefulShutdown, as the README's integration recipe and
    ``examples/existing_service.tac`` build it. The port stops listening first (closing a
    ``Site``'s log), then the grace period ends an endless stream and aborts an unfinished
    one: each still gets its access-log line, with its real status and bytes, and the log
    is closed after the last."""
    log = tmp_path / "access.log"
    handles: list[Any] = []

    def render(request: Any) -> Any:
        result = stream(request, iter([b"12345", Deferred()]))
        handle = stream_for(request)
        handle.endless = request.path == b"/endless"
        handles.append(handle)
        return result

    site = StreamSite(leaf(render), logPath=str(log))
    shutdown = GracefulShutdown(site, grace_period=0.05)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}"
    responses = [await within(client.get(url + path)) for path in ("/endless", "/unfinished")]
    bodies = [treq.collect(response, lambda data: None) for response in responses]
    await until(lambda: len(handles) == 2 and all(h.bytes_sent == 5 for h in handles))
    await within(port.stopListening())
    await within(shutdown.stopService())
    assert [h.outcome for h in handles] == [Outcome.COMPLETED, Outcome.ABORTED]
    await within(bodies[0])
    with pytest.raises(Exception):  # noqa: B017 - any client-side failure
        await within(bodies[1])
    lines = log.read_text()
    assert '"GET /endless HTTP/1.1" 200 5 ' in lines
    assert '"GET /unfinished HTTP/1.1" 200 5 ' in lines
    assert site._logFile is None


def test_a_site_can_name_the_channel_backend() -> None:
    """StreamSite(channel_backend=url) makes the named channels of the process shared
    through that Redis (for applications that do not use the plugin)."""
    from twisted.web.resource import Resource

    from twisted_stream import Channel, RedisBackend, set_channel_backend
    from twisted_stream._backends._current import channel_backend

    try:
        StreamSite(Resource(), channel_backend="redis://127.0.0.1:1/0")
        backend = channel_backend()
        assert isinstance(backend, RedisBackend) and str(backend.address).endswith(":1/0")
        assert Channel("news").shared
    finally:
        set_channel_backend(None)


def _ended_request(path: bytes) -> Any:
    """A request as the access log sees it once its response has ended (200, no body)."""
    from twisted.web.test.requesthelper import DummyRequest

    request = DummyRequest([path.lstrip(b"/")])
    request.uri = path
    request.code = 200
    request.sentLength = 0
    return request


class _Lines:
    """An access-log file collecting its lines; ``on_write`` runs before each is kept."""

    def __init__(self, on_write: Any = None) -> None:
        self.lines: list[str] = []
        self.closed = False
        self.on_write = on_write

    def write(self, data: str) -> None:
        if self.on_write is not None:
            self.on_write()
        self.lines.append(data)

    def close(self) -> None:
        self.closed = True


@pytest_twisted.ensureDeferred
async def test_access_log_line_comes_after_the_first_byte(server: Any) -> None:
    """A short streamed response (it ends within its first slice) is on the client's socket
    before its access-log line is formatted: the line costs no time to first byte."""
    import socket

    site = server.serve(leaf(lambda request: stream(request, iter([b"x" * 1024] * 16))))
    seen: list[bytes] = []
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setblocking(False)

    def peek() -> None:
        try:
            seen.append(sock.recv(65536, socket.MSG_PEEK))
        except BlockingIOError:
            seen.append(b"")

    log = _Lines(peek)
    site.logFile = log
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        await until(lambda: bool(log.lines), what="the access-log line")
    finally:
        sock.close()
    assert seen[0].startswith(b"HTTP/1.1 200 ")
    assert '"GET / HTTP/1.1" 200 16384 ' in log.lines[0]


def test_access_log_lines_are_written_once_per_turn_in_order() -> None:
    """Lines of responses ended in one reactor turn are written together at its end,
    complete and in the order the responses ended; none before."""
    from twisted.internet.task import Clock

    clock = Clock()
    site = StreamSite(leaf(lambda request: b""), reactor=clock)
    log = _Lines()
    site.logFile = log
    for path in (b"/a", b"/b", b"/c"):
        site.log(_ended_request(path))
    assert log.lines == []
    clock.advance(0)
    assert len(log.lines) == 3
    for line, path in zip(log.lines, ("/a", "/b", "/c"), strict=True):
        assert f'"GET {path} HTTP/1.0" 200 - ' in line
    assert all(line.endswith("\n") for line in log.lines)
    assert not clock.getDelayedCalls()


def test_stopping_the_site_writes_waiting_lines_before_closing_the_log(
    tmp_path: pathlib.Path,
) -> None:
    """A line still waiting for the end of the turn when the site stops is written before
    the log file is closed, and nothing is left scheduled."""
    from twisted.internet.task import Clock

    clock = Clock()
    path = tmp_path / "access.log"
    site = StreamSite(leaf(lambda request: b""), reactor=clock, logPath=str(path))
    site.startFactory()
    site.log(_ended_request(b"/last"))
    site.stopFactory()
    assert site._logFile is None
    assert '"GET /last HTTP/1.0"' in path.read_text()
    assert not clock.getDelayedCalls()
