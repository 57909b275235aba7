"""Server-Sent Events: the wire format (exact bytes, injection attempts, a spec parser's view)
and ``stream_events`` / ``EventStreamResource`` end to end against a real Site."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.web.resource import Resource

from twisted_stream import ChunkTypeError, Outcome, stream_for
from twisted_stream._demo._events import events_demo
from twisted_stream._events._event_stream import EventStreamResource, stream_events
from twisted_stream._events._sse import Event, convert_event, encode_data
from twisted_stream._sources._heartbeat import HEARTBEAT

from ..conftest import leaf
from ..rawclient import RawClient, connect, get
from ..waiting import turns, until, within

# A parser following the WHATWG "event stream interpretation" rules, to check what a browser
# makes of the bytes.


@dataclass
class Parsed:
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, data, lastEventId) of each dispatched event."""
    comments: list[str] = field(default_factory=list)
    retry: int | None = None


def parse_sse(text: str) -> Parsed:
    """Interpret a complete event stream as EventSource does (an unterminated last line is
    ignored, as it would still be pending)."""
    out = Parsed()
    data: list[str] = []
    event_type = ""
    last_id = ""
    lines = re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff"))
    for line in lines[:-1]:
        if line == "":
            if data:
                out.events.append((event_type or "message", "\n".join(data), last_id))
            data = []
            event_type = ""
            continue
        if line.startswith(":"):
            out.comments.append(line[1:])
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            if "\0" not in value:
                last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            out.retry = int(value)
    return out


# Raw HTTP helpers.


def split_response(raw: bytes) -> tuple[bytes, dict[bytes, bytes], bytes, bool]:
    """(status line, headers, de-chunked body so far, whether the terminator arrived)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding") != b"chunked":
        return lines[0], headers, rest, False
    body = b""
    while True:
        size_line, sep, after = rest.partition(b"\r\n")
        if not sep:
            return lines[0], headers, body, False
        size = int(size_line, 16)
        if size == 0:
            return lines[0], headers, body, after.startswith(b"\r\n")
        if len(after) < size + 2:
            return lines[0], headers, body, False
        body += after[:size]
        rest = after[size + 2 :]


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


# The wire format.


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (Event("hello"), b"data: hello\n\n"),
        (Event(""), b"data: \n\n"),
        (Event("a\nb\nc"), b"data: a\ndata: b\ndata: c\n\n"),
        (Event("a\r\nb\rc\n"), b"data: a\ndata: b\ndata: c\ndata: \n\n"),
        (Event("\n"), b"data: \ndata: \n\n"),
        (Event(" lead"), b"data:  lead\n\n"),
        (Event("x", event="update"), b"event: update\ndata: x\n\n"),
        (Event("x", id="42"), b"id: 42\ndata: x\n\n"),
        (Event("x", id=""), b"id: \ndata: x\n\n"),
        (Event("x", retry=2500), b"retry: 2500\ndata: x\n\n"),
        (
            Event("one\ntwo", event="e", id="7", retry=0),
            b"id: 7\nevent: e\nretry: 0\ndata: one\ndata: two\n\n",
        ),
        (Event("caf\u00e9 \u2603"), "data: caf\u00e9 \u2603\n\n".encode()),
        (Event("data: fake\n\nevent: evil"), b"data: data: fake\ndata: \ndata: event: evil\n\n"),
    ],
)
def test_wire_format_exact_bytes(event: Event, wire: bytes) -> None:
    """Each event serialises to exactly these bytes (UTF-8, one data: line per line)."""
    assert event.encode() == wire


def test_a_str_item_is_one_events_data() -> None:
    """A str item encodes like an Event with only that data; bytes pass as they are."""
    assert encode_data("a\r\nb") == b"data: a\ndata: b\n\n"
    assert convert_event("a\nb") == Event("a\nb").encode()
    assert convert_event(Event("x", id="1")) == b"id: 1\ndata: x\n\n"
    assert convert_event(b": raw\n\n") == b": raw\n\n"
    with pytest.raises(ChunkTypeError, match="int"):
        convert_event(42)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "\n", "a\0b", "x\ndata: injected"])
@pytest.mark.parametrize("name", ["event", "id"])
def test_event_and_id_with_cr_lf_or_nul_are_rejected(name: str, bad: str) -> None:
    """CR, LF or NUL in ``event`` or ``id`` would inject fields or events: ValueError."""
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        Event("data", **{name: bad})


@pytest.mark.parametrize("retry", [1.5, "100", True, None])
def test_retry_must_be_an_integer(retry: Any) -> None:
    """``retry`` is an int of milliseconds (None means absent); negative is refused."""
    if retry is None:
        assert Event("x", retry=None).encode() == b"data: x\n\n"
        return
    with pytest.raises(TypeError, match="retry"):
        Event("x", retry=retry)


def test_negative_retry_and_non_str_fields_are_refused() -> None:
    """A negative retry is a ValueError; data, event and id must be str."""
    with pytest.raises(ValueError):
        Event("x", retry=-1)
    with pytest.raises(TypeError):
        Event(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Event("x", id=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Event("x", event=1)  # type: ignore[arg-type]


def test_events_are_immutable_values() -> None:
    """Events compare by their fields and cannot be changed after their bytes are made."""
    assert Event("x", id="1") == Event("x", id="1")
    assert Event("x", id="1") != Event("x", id="2")
    with pytest.raises(AttributeError):
        Event("x").data = "y"  # type: ignore[misc]


FIELD_TEXT = st.text().filter(lambda s: not ({"\r", "\n", "\0"} & set(s)))


@given(
    data=st.text(),
    event=st.one_of(st.none(), FIELD_TEXT),
    id_=st.one_of(st.none(), FIELD_TEXT),
    retry=st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)),
)
def test_a_parser_reads_back_exactly_one_event(
    data: str, event: str | None, id_: str | None, retry: int | None
) -> None:
    """Whatever the data (any line breaks, field-like text, colons, spaces), an EventSource
    parser sees exactly one event with that data (line breaks normalised to LF), its type
    and its id, and the retry."""
    parsed = parse_sse(Event(data, event=event, id=id_, retry=retry).encode().decode("utf-8"))
    normalised = data.replace("\r\n", "\n").replace("\r", "\n")
    assert parsed.events == [(event or "message", normalised, id_ or "")]
    assert parsed.retry == retry
    assert parsed.comments == []


def test_the_heartbeat_is_a_comment_that_dispatches_nothing() -> None:
    """The heartbeat bytes are a comment: no event, and they do not disturb the next one."""
    parsed = parse_sse((HEARTBEAT + Event("x").encode() + HEARTBEAT).decode())
    assert parsed.events == [("message", "x", "")]
    assert parsed.comments == ["", ""]


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


@pytest_twisted.ensureDeferred
async def test_a_client_leaving_tears_everything_down(server: Any) -> None:
    """When the client disconnects, the generator's finally runs, the stream ends as
    client-gone and no heartbeat timer is left behind."""
    clock = MemoryReactorClock()
    cleaned: list[str] = []

    def source(request: Any) -> Iterator[object]:
        try:
            yield "hello"
            yield Deferred()
        finally:
            cleaned.append("finally")

    requests = serve_events(server, source, reactor=clock)
    raw = await connect(server.port, get())
    await until(lambda: body_of(raw) == b"data: hello\n\n", what="the first event")
    handle = stream_for(requests[0])
    assert handle is not None and handle.endless
    assert any(c.active() for c in clock.getDelayedCalls())
    raw.transport.abortConnection()  # type: ignore[union-attr]
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    assert cleaned == ["finally"]
    assert [c for c in clock.getDelayedCalls() if c.active()] == []


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


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_is_cut_as_stalled_heartbeats_or_not(
    server: Any,
) -> None:
    """A client that stops reading an event stream is aborted after the stall timeout, even
    though the source has gone quiet and heartbeats keep being due meanwhile."""
    requests: list[Any] = []
    big = "x" * 65536

    def source(request: Any) -> Iterator[object]:
        for _ in range(64):  # 4 MiB: far more than the small socket buffers hold
            yield big
        yield Deferred()  # then silence: only heartbeats would flow

    def render(request: Any) -> Any:
        requests.append(request)
        handle = request.channel.transport.getHandle()
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        return stream_events(request, source(request), heartbeat=0.05, stall_timeout=0.3)

    server.serve(leaf(render))
    raw = await connect(server.port, get())
    raw.transport.getHandle().setsockopt(  # type: ignore[union-attr]
        socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
    )
    raw.stop_reading()
    await until(lambda: bool(requests), what="the request")
    handle = stream_for(requests[0])
    assert handle is not None
    result = await within(handle.when_done())
    assert result.outcome is Outcome.STALLED
    assert result.bytes_sent < 64 * 65536


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
