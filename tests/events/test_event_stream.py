"""Serving Server-Sent Events: ``stream_events`` and ``EventStreamResource`` end to end
against a real Site, over 127.0.0.1 or, where time matters, over the in-memory connections
of ``twisted_stream.testing`` on its fake clock (the wire format itself is tested in
``test_sse``)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web.resource import Resource

from twisted_stream import Outcome, stream_for
from twisted_stream._demo._events import events_demo
from twisted_stream._events._event_stream import EventStreamResource, stream_events
from twisted_stream._events._sse import Event
from twisted_stream.testing import StreamTestClient, assert_released
from twisted_stream.testing._parse import parse_response

from ..conftest import leaf
from ..rawclient import RawClient, connect, get
from ..waiting import turns, until, within
from .test_sse import parse_sse


def split_response(raw: bytes) -> tuple[bytes, dict[bytes, bytes], bytes, bool]:
    """(status line, headers, de-chunked body so far, whether the terminator arrived)."""
    head = raw.partition(b"\r\n\r\n")[0].split(b"\r\n")
    parsed = parse_response(raw)
    headers = {name.lower(): values[-1] for name, values in parsed.headers.getAllRawHeaders()}
    return head[0], headers, parsed.body, parsed.complete


def body_of(raw: RawClient) -> bytes:
    return split_response(bytes(raw.received))[2]


def serve_events(server: Any, make: Any, **kwargs: Any) -> list[Any]:
    """Serve ``stream_events(request, make(request), **kwargs)``; returns the requests seen."""
    requests: list[Any] = []

    def render(request: Any) -> Any:
        requests.append(request)
        return stream_events(request, make(request), **kwargs)

    server.serve(leaf(render))
    return requests


# End to end.


@pytest_twisted.ensureDeferred
async def test_headers_go_out_before_the_first_event(server: Any) -> None:
    """The status line and the event-stream headers arrive while the source has produced
    nothing yet; the event follows when it exists."""
    gate: Deferred[object] = Deferred()

    def source(request: Any) -> Iterator[object]:
        yield gate
        yield "first"

    serve_events(server, source)
    raw = await connect(server.port, get())
    await until(lambda: b"\r\n\r\n" in raw.received, what="the headers")
    status, headers, body, _ = split_response(bytes(raw.received))
    assert status == b"HTTP/1.1 200 OK"
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"cache-control"] == b"no-store"
    assert headers[b"x-accel-buffering"] == b"no"
    assert b"content-length" not in headers
    assert body == b""
    gate.callback(None)
    await until(lambda: body_of(raw) == b"data: first\n\n", what="the event")
    raw.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_the_body_is_exactly_the_serialised_events(server: Any) -> None:
    """Events and str items from a generator become exactly their wire bytes, in order, and
    a source that ends finishes the response (chunked terminator)."""

    def source(request: Any) -> Iterator[object]:
        yield Event("a\r\nb", event="x", id="1")
        yield "plain"
        yield Event("", retry=500)

    serve_events(server, source, heartbeat=None)
    raw = await connect(server.port, get(extra="Connection: close\r\n"))
    await within(raw.closed)
    _, _, body, complete = split_response(bytes(raw.received))
    assert complete
    assert body == b"id: 1\nevent: x\ndata: a\ndata: b\n\ndata: plain\n\nretry: 500\ndata: \n\n"


@pytest_twisted.ensureDeferred
async def test_async_and_threaded_sources(server: Any) -> None:
    """An async generator and a blocking generator run with threaded=True are event sources
    like any other."""
    caller: list[str] = []

    async def agen() -> AsyncIterator[object]:
        for i in range(3):
            await deferLater(reactor, 0, lambda: None)
            yield Event(str(i), id=str(i))

    def blocking() -> Iterator[object]:
        caller.append(threading.current_thread().name)
        yield "from a thread"

    root = Resource()
    root.putChild(b"async", leaf(lambda r: stream_events(r, agen(), heartbeat=None)))
    root.putChild(
        b"threaded",
        leaf(lambda r: stream_events(r, blocking(), heartbeat=None, threaded=True)),
    )
    server.serve(root)
    raw = await connect(server.port, get("/async", extra="Connection: close\r\n"))
    await within(raw.closed)
    assert parse_sse(body_of(raw).decode()).events == [
        ("message", "0", "0"),
        ("message", "1", "1"),
        ("message", "2", "2"),
    ]
    raw = await connect(server.port, get("/threaded", extra="Connection: close\r\n"))
    await within(raw.closed)
    assert body_of(raw) == b"data: from a thread\n\n"
    assert caller and caller[0] != threading.main_thread().name


@pytest_twisted.ensureDeferred
async def test_last_event_id_is_handed_to_the_source(server: Any) -> None:
    """A callable source receives the request's Last-Event-ID (None when absent) and returns
    the source: here one that resumes counting after it."""
    seen: list[str | None] = []

    def resume(last_id: str | None) -> Iterator[Event]:
        seen.append(last_id)
        start = int(last_id) + 1 if last_id else 1
        for n in range(start, start + 2):
            yield Event(f"n={n}", id=str(n))

    serve_events(server, lambda request: resume, heartbeat=None)
    raw = await connect(server.port, get(extra="Connection: close\r\n"))
    await within(raw.closed)
    assert body_of(raw) == b"id: 1\ndata: n=1\n\nid: 2\ndata: n=2\n\n"
    raw = await connect(server.port, get(extra="Connection: close\r\nLast-Event-ID: 41\r\n"))
    await within(raw.closed)
    assert body_of(raw) == b"id: 42\ndata: n=42\n\nid: 43\ndata: n=43\n\n"
    assert seen == [None, "41"]


@pytest_twisted.ensureDeferred
async def test_retry_goes_first(server: Any) -> None:
    """``retry=`` is sent before any event, as a field of its own."""
    serve_events(server, lambda request: iter(["x"]), heartbeat=None, retry=1500)
    raw = await connect(server.port, get(extra="Connection: close\r\n"))
    await within(raw.closed)
    assert body_of(raw) == b"retry: 1500\n\ndata: x\n\n"
    assert parse_sse(body_of(raw).decode()).retry == 1500
    with pytest.raises(TypeError):
        stream_events(object(), [], retry=1.5)  # type: ignore[arg-type]


@pytest_twisted.ensureDeferred
async def test_a_silent_stream_gets_heartbeats(server: Any) -> None:
    """With heartbeat=0.1 a source that stays silent still sends a comment every tenth of a
    second (real reactor; the exact timing is tested on a fake clock)."""
    serve_events(server, lambda request: iter([Deferred()]), heartbeat=0.1)
    raw = await connect(server.port, get())
    await until(lambda: body_of(raw).count(b":\n\n") >= 2, what="two heartbeats")
    assert body_of(raw).replace(b":\n\n", b"") == b""
    raw.transport.abortConnection()  # type: ignore[union-attr]


def test_a_client_leaving_tears_everything_down() -> None:
    """When the client disconnects, the generator's finally runs, the stream ends as
    client-gone and no heartbeat timer is left behind."""
    cleaned: list[str] = []

    def source(request: Any) -> Iterator[object]:
        try:
            yield "hello"
            yield Deferred()
        finally:
            cleaned.append("finally")

    with StreamTestClient(leaf(lambda request: stream_events(request, source(request)))) as client:
        response = client.get("/")
        assert response.body == b"data: hello\n\n"
        assert response.stream is not None and response.stream.endless
        assert any(c.active() for c in client.clock.getDelayedCalls())
        response.disconnect()
        assert response.result is not None and response.result.outcome is Outcome.CLIENT_GONE
        assert cleaned == ["finally"]
        assert [c for c in client.clock.getDelayedCalls() if c.active()] == []
        assert_released(response)


@pytest_twisted.ensureDeferred
async def test_the_server_can_end_an_event_stream_cleanly(server: Any) -> None:
    """``Stream.end()`` finishes the response (chunked terminator) so the browser simply
    reconnects; the source is closed."""
    cleaned: list[str] = []

    def source(request: Any) -> Iterator[object]:
        try:
            yield "one"
            yield Deferred()
        finally:
            cleaned.append("finally")

    requests = serve_events(server, source)
    raw = await connect(server.port, get(extra="Connection: close\r\n"))
    await until(lambda: body_of(raw) == b"data: one\n\n", what="the event")
    handle = stream_for(requests[0])
    assert handle is not None
    handle.end()
    await within(raw.closed)
    assert split_response(bytes(raw.received))[3], "the response ended with its terminator"
    assert cleaned == ["finally"]


@pytest_twisted.ensureDeferred
async def test_an_item_that_is_not_an_event_fails_the_stream(server: Any) -> None:
    """A source yielding something that is neither an Event nor a str fails the stream: the
    connection is aborted after what was sent, with no clean terminator."""
    requests = serve_events(server, lambda request: iter(["ok", 42]), heartbeat=None)
    raw = await connect(server.port, get())
    await within(raw.closed)
    _, _, body, complete = split_response(bytes(raw.received))
    assert body == b"data: ok\n\n"
    assert not complete
    handle = stream_for(requests[0])
    assert handle is not None
    result = await within(handle.when_done())
    assert result.outcome is Outcome.SOURCE_FAILED


@pytest_twisted.ensureDeferred
async def test_head_gets_the_headers_and_never_reads_the_source(server: Any) -> None:
    """HEAD answers the event-stream headers and closes the source unread."""
    pulled: list[int] = []

    def source(request: Any) -> Iterator[object]:
        pulled.append(1)
        yield "x"

    serve_events(server, source)
    raw = await connect(server.port, get(method="HEAD", extra="Connection: close\r\n"))
    await within(raw.closed)
    status, headers, body, _ = split_response(bytes(raw.received))
    assert status == b"HTTP/1.1 200 OK"
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert body == b""
    assert pulled == []


@pytest_twisted.ensureDeferred
async def test_event_stream_resource(server: Any) -> None:
    """EventStreamResource streams what ``events(request, last_event_id)`` returns, given as
    a callable or by overriding the method (neither: 500)."""
    calls: list[tuple[bytes, str | None]] = []

    def events(request: Any, last_id: str | None) -> list[str]:
        calls.append((request.path, last_id))
        return ["from callable"]

    class Sub(EventStreamResource):
        def events(self, request: Any, last_event_id: str | None) -> object:
            return iter([Event("from subclass", id="s1")])

    root = Resource()
    root.putChild(b"callable", EventStreamResource(events, heartbeat=None))
    root.putChild(b"sub", Sub(retry=100))
    root.putChild(b"nothing", EventStreamResource())
    server.serve(root)
    raw = await connect(
        server.port, get("/callable", extra="Connection: close\r\nLast-Event-ID: 9\r\n")
    )
    await within(raw.closed)
    assert body_of(raw) == b"data: from callable\n\n"
    assert calls == [(b"/callable", "9")]
    raw = await connect(server.port, get("/sub", extra="Connection: close\r\n"))
    await within(raw.closed)
    assert body_of(raw) == b"retry: 100\n\nid: s1\ndata: from subclass\n\n"
    raw = await connect(server.port, get("/nothing", extra="Connection: close\r\n"))
    await within(raw.closed)
    assert raw.received.startswith(b"HTTP/1.1 500")


@pytest_twisted.ensureDeferred
async def test_events_go_out_as_they_are_produced(server: Any) -> None:
    """Each event reaches the client on its own, before the next exists (nothing is held
    back to fill a buffer)."""
    gates = [Deferred[object]() for _ in range(3)]

    def source(request: Any) -> Iterator[object]:
        for i, gate in enumerate(gates):
            yield Event(str(i))
            yield gate

    serve_events(server, source)
    raw = await connect(server.port, get())
    for i, gate in enumerate(gates):
        await until(
            lambda i=i: parse_sse(body_of(raw).decode()).events[-1:] == [("message", str(i), "")],
            what=f"event {i}",
        )
        await turns(5)
        assert len(parse_sse(body_of(raw).decode()).events) == i + 1
        gate.callback(None)
    await until(lambda: split_response(bytes(raw.received))[3], what="the end")
    raw.transport.abortConnection()  # type: ignore[union-attr]


def test_a_client_that_stops_reading_is_cut_as_stalled_heartbeats_or_not() -> None:
    """A client that stops reading an event stream is aborted when the stall timeout
    passes, though the source has gone quiet and heartbeats keep being due meanwhile; it
    took no more from the source than the transport's buffer and one engine buffer."""
    big = "x" * 65536

    def source(request: Any) -> Iterator[object]:
        for _ in range(64):  # 4 MiB: far more than the transport holds
            yield big
        yield Deferred()  # then silence: only heartbeats would flow

    def render(request: Any) -> Any:
        return stream_events(request, source(request), heartbeat=0.05, stall_timeout=0.3)

    with StreamTestClient(leaf(render)) as client:
        response = client.get("/", stop_reading_after=0)
        client.advance(0.25)
        assert response.result is None
        client.advance(0.05)
        assert response.result is not None and response.result.outcome is Outcome.STALLED
        assert response.result.bytes_sent <= 3 * 65536
        assert response.disconnected


@pytest_twisted.ensureDeferred
async def test_the_events_demo_over_http(server: Any) -> None:
    """The demo's page links its streams; the clock numbers ticks on from Last-Event-ID and
    ends after ``drop`` ticks; a POST to click reaches every counter subscriber."""
    root = Resource()
    root.putChild(b"events", events_demo())
    server.serve(root)
    for path, clock_url in ((b"/events/", b'"clock?x=1"'), (b"/events", b'"events/clock?x=1"')):
        raw = await connect(
            server.port, get(path.decode() + "?x=1", extra="Connection: close\r\n")
        )
        await within(raw.closed)
        assert raw.received.startswith(b"HTTP/1.1 200")
        assert b"new EventSource(" + clock_url + b")" in raw.received
    raw = await connect(
        server.port,
        get(
            "/events/clock?interval=0.01&drop=2", extra="Connection: close\r\nLast-Event-ID: 5\r\n"
        ),
    )
    await within(raw.closed)
    parsed = parse_sse(body_of(raw).decode())
    assert parsed.retry == 1000
    assert [(t, i) for t, _, i in parsed.events] == [("tick", "6"), ("tick", "7")]
    assert all('"resumed_from": 5' in d for _, d, _ in parsed.events)
    watchers = [await connect(server.port, get("/events/counter")) for _ in range(3)]
    for w in watchers:
        await until(lambda w=w: b"event: count\ndata: 0\n\n" in body_of(w), what="the count")
    click = await connect(
        server.port, get("/events/click", method="POST", extra="Connection: close\r\n")
    )
    await within(click.closed)
    for w in watchers:
        await until(lambda w=w: b"event: count\ndata: 1\n\n" in body_of(w), what="the click")
        w.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_a_factory_returning_none_answers_204(server: Any) -> None:
    """A callable source that returns None (nothing to stream for this client) answers
    204 No Content, which makes EventSource stop reconnecting."""
    serve_events(server, lambda request: lambda last_id: None)
    raw = await connect(server.port, get(extra="Connection: close\r\n"))
    await within(raw.closed)
    assert raw.received.startswith(b"HTTP/1.1 204 ")


@pytest_twisted.ensureDeferred
async def test_a_silent_async_generator_gets_heartbeats_then_its_event(server: Any) -> None:
    """An async generator (whose heartbeat is built into its adapter) that stays silent
    gets a comment every tenth of a second, and the event it then yields follows them."""
    gate: Deferred[None] = Deferred()

    async def events() -> AsyncIterator[str]:
        await gate
        yield "late"

    serve_events(server, lambda request: events(), heartbeat=0.1)
    raw = await connect(server.port, get())
    await until(lambda: body_of(raw).count(b":\n\n") >= 2, what="two heartbeats")
    gate.callback(None)
    await until(lambda: body_of(raw).endswith(b"data: late\n\n"), what="the event")
    assert body_of(raw).replace(b":\n\n", b"") == b"data: late\n\n"
    raw.transport.abortConnection()  # type: ignore[union-attr]
