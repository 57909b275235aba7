"""``RequestBody`` against a fake connection side and a fake clock: chunking, reads, discard,
backpressure (when it asks the connection to read), ``100 Continue``, limits, the idle
timer, failures; and ``request_body`` over a body Twisted buffered."""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from twisted_stream import (
    RequestBody,
    RequestBodyError,
    RequestBodyIncomplete,
    RequestBodyTooLarge,
    request_body,
)


class Source:
    """Records what a body asks of its connection side (a ``BodySource``)."""

    def __init__(self) -> None:
        self.wants: list[bool] = []
        self.handed_back = 0
        self.continues = 0
        self.refused: list[RequestBodyError] = []

    def want(self, more: bool) -> None:
        self.wants.append(more)

    def consumed(self, flow: int) -> None:
        self.handed_back += flow

    def send_continue(self) -> None:
        self.continues += 1

    def refuse(self, error: RequestBodyError) -> None:
        self.refused.append(error)


def make(length: int | None = None, **kwargs: Any) -> tuple[RequestBody, Source]:
    source = Source()
    return RequestBody(source, length=length, **kwargs), source


def result(d: Deferred[Any]) -> Any:
    """The result of a fired Deferred (raises its failure)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def collect(body: RequestBody) -> Deferred[list[bytes]]:
    async def run() -> list[bytes]:
        return [chunk async for chunk in body]

    return Deferred.fromCoroutine(run())


def test_chunks_are_at_most_buffer_size_and_small_pieces_are_coalesced() -> None:
    """``async for`` yields chunks of at most ``buffer_size`` bytes: a large piece is split,
    small pieces received while nobody read are joined, and the iteration ends with the
    body."""
    body, _ = make(buffer_size=10)
    body.feed(b"a" * 25)
    body.feed(b"b")
    body.feed(b"c")
    body.finish()
    chunks = result(collect(body))
    assert chunks == [b"a" * 10, b"a" * 10, b"aaaaabc"]


def test_reading_stops_once_a_buffer_is_held_that_nobody_asked_for() -> None:
    """The connection is told to stop reading when a buffer's worth is held with no read
    waiting, and to read again only when the application waits for bytes."""
    body, source = make(buffer_size=100)
    body.feed(b"x" * 60)
    assert source.wants == []  # under one buffer: reading goes on
    body.feed(b"x" * 60)
    assert source.wants == [False] and body.paused
    assert result(body.read(500)) == b"x" * 120  # served from what is held: no read yet
    assert source.wants == [False]
    pending = body.read(10)
    assert source.wants == [False, True] and not body.paused
    body.feed(b"yz")
    assert result(pending) == b"yz"


def test_a_waiting_reader_keeps_reading_on() -> None:
    """While a read waits, every piece goes straight to it and reading never stops."""
    body, source = make(buffer_size=10)
    got: list[bytes] = []

    async def consume() -> None:
        async for chunk in body:
            got.append(chunk)

    done = Deferred.fromCoroutine(consume())
    for _ in range(50):
        body.feed(b"0123456789")
    body.finish()
    result(done)
    assert len(got) == 50 and False not in source.wants


def test_continue_is_sent_on_the_first_read_only() -> None:
    """With ``Expect: 100-continue``, ``100 Continue`` goes out when the application first
    asks for the body, once; never before, never without an expectation."""
    body, source = make(expect_continue=True)
    assert source.continues == 0
    first = body.read(10)
    assert source.continues == 1 and body.continued
    body.feed(b"hello")
    assert result(first) == b"hello"
    body.read(10)
    assert source.continues == 1
    plain, plain_source = make()
    plain.read(10)
    assert plain_source.continues == 0


def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    """A declared length over the limit fails the body at once (``limit``, which
    ``request_body`` calls): the connection is told to refuse it, no ``100 Continue`` is
    sent, and reads fail with ``RequestBodyTooLarge``."""
    body, source = make(length=1001, max_size=1000, expect_continue=True)
    body.limit(None)
    assert [type(e) for e in source.refused] == [RequestBodyTooLarge]
    with pytest.raises(RequestBodyTooLarge) as raised:
        result(body.read())
    assert raised.value.code == 413 and raised.value.max_size == 1000
    assert source.continues == 0 and source.wants == []


def test_a_raised_limit_lets_a_larger_declared_body_in() -> None:
    """``max_size`` replaces the limit before the check: higher lets a larger body in, 0
    means none."""
    body, source = make(length=5000, max_size=1000)
    body.limit(10_000)
    body.feed(b"z" * 5000)
    body.finish()
    assert result(body.read()) == b"z" * 5000 and source.refused == []
    unlimited, _ = make(length=10**12, max_size=1000)
    unlimited.limit(0)
    assert unlimited.error is None


def test_a_body_passing_the_limit_fails_with_bytes_received() -> None:
    """A body of unknown length that passes the limit fails the waiting read with
    ``RequestBodyTooLarge`` (carrying ``bytes_received``) and the connection is told to
    refuse it; later bytes are dropped."""
    body, source = make(max_size=100)
    pending = body.read(1000)
    body.feed(b"a" * 60)
    assert result(pending) == b"a" * 60
    pending = body.read(1000)
    body.feed(b"b" * 60)
    with pytest.raises(RequestBodyTooLarge) as raised:
        result(pending)
    assert raised.value.bytes_received == 120
    assert len(source.refused) == 1
    body.feed(b"c" * 10)
    assert body.bytes_received == 120


def test_discard_drops_the_rest_and_counts_it() -> None:
    """``discard()`` drops what is held and what arrives until the end, fires with the
    count, and hands all of it back to flow control."""
    body, source = make(expect_continue=True)
    body.feed(b"x" * 30)
    d = body.discard()
    assert source.continues == 1  # discarding reads the body
    body.feed(b"y" * 70)
    body.finish()
    assert result(d) == 100
    assert source.handed_back == 100
    assert result(body.read()) == b""


def test_idle_timer_runs_only_while_the_application_waits() -> None:
    """The idle timeout counts only while a read waits for the client: a slow application
    never times the client out; a client silent for the timeout fails the body with a 408
    ``RequestBodyIncomplete``."""
    clock = MemoryReactorClock()
    body, source = make(clock=clock, idle_timeout=2.0, buffer_size=10)
    body.feed(b"x" * 10)  # held, nobody waiting
    clock.advance(100)
    assert source.refused == []
    assert result(body.read(10)) == b"x" * 10
    pending = body.read(10)
    clock.advance(1.5)
    body.feed(b"y")  # a byte resets it
    assert result(pending) == b"y"
    pending = body.read(10)
    clock.advance(1.99)
    assert source.refused == []
    clock.advance(0.02)
    with pytest.raises(RequestBodyIncomplete) as raised:
        result(pending)
    assert raised.value.code == 408 and raised.value.bytes_received == 11
    assert source.refused == [raised.value]


def test_a_lost_body_fails_pending_and_later_reads() -> None:
    """When the connection side loses the body, the waiting read and every later one fail
    with its ``RequestBodyIncomplete``, ``bytes_received`` included."""
    body, _ = make()
    body.feed(b"abc")
    result(body.read(10))
    pending = body.read(10)
    error = RequestBodyIncomplete("gone", 3)
    body.lose(error)
    with pytest.raises(RequestBodyIncomplete):
        result(pending)
    with pytest.raises(RequestBodyIncomplete) as raised:
        result(body.read())
    assert raised.value.bytes_received == 3
    assert body.outcome == "incomplete"


def test_one_read_at_a_time() -> None:
    """A second read while one waits is an error, not a silent reorder."""
    body, _ = make()
    body.read(10)
    with pytest.raises(RuntimeError):
        result(body.read(10))


def test_flow_control_is_handed_back_as_bytes_are_taken() -> None:
    """Each piece's flow-controlled length (HTTP/2 counts padding) is handed back only when
    the application takes its bytes, in proportion when a piece is split."""
    body, source = make(buffer_size=1000)
    body.feed(b"a" * 100, 120)
    assert source.handed_back == 0
    assert result(body.read(40)) == b"a" * 40
    assert source.handed_back == 40
    assert result(body.read(1000)) == b"a" * 60
    assert source.handed_back == 120


def test_a_cancelled_read_leaves_the_body_readable() -> None:
    """Cancelling a waiting read (a handler cancelled) removes it; bytes arriving later are
    kept for the next read."""
    body, _ = make()
    pending = body.read(10)
    pending.cancel()
    pending.addErrback(lambda _: None)
    body.feed(b"later")
    assert result(body.read(10)) == b"later"


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
    sizes=st.lists(st.integers(min_value=-1, max_value=700), min_size=1, max_size=20),
    buffer_size=st.integers(min_value=1, max_value=512),
)
def test_any_split_and_any_reads_give_back_the_body(
    data: bytes, cuts: list[int], sizes: list[int], buffer_size: int
) -> None:
    """However the body arrives (any split into pieces) and however it is read (reads of any
    size, interleaved with arrivals, chunks of ``async for``), the bytes come back in order,
    whole, each chunk within its bound."""
    body, _ = make(buffer_size=buffer_size)
    points = sorted({c for c in cuts if c <= len(data)} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)]
    out = bytearray()
    pending: Deferred[bytes] | None = None
    turn = 0
    for piece in pieces:
        body.feed(piece)
        n = sizes[turn % len(sizes)]
        turn += 1
        if pending is None and n:
            pending = body.read(n) if n > 0 else None
        if pending is not None and pending.called:
            chunk = result(pending)
            assert 0 < len(chunk) <= sizes[(turn - 1) % len(sizes)]
            out += chunk
            pending = None
    body.finish()
    if pending is not None:
        out += result(pending)
    for chunk in result(collect(body)):
        assert 0 < len(chunk) <= buffer_size
        out += chunk
    assert bytes(out) == data


def test_request_body_reads_a_buffered_body_the_same_way() -> None:
    """For a request whose body Twisted buffered (its resource does not stream bodies),
    ``request_body`` reads ``request.content`` with the same API, and is the same object
    on every call."""
    request = DummyRequest([b""])
    request.content = io.BytesIO(b"q" * 150_000)
    body = request_body(request)
    assert request_body(request) is body
    assert body.length == 150_000
    chunks = result(collect(body))
    assert b"".join(chunks) == b"q" * 150_000
    assert max(map(len, chunks)) <= 65536


def test_a_buffered_body_over_a_lower_limit_is_answered_413() -> None:
    """``max_size`` below a buffered body's size answers 413 (nothing was sent yet) and
    reads fail with ``RequestBodyTooLarge``."""
    request = DummyRequest([b""])
    request.content = io.BytesIO(b"q" * 500)
    body = request_body(request, max_size=100)
    with pytest.raises(RequestBodyTooLarge):
        result(body.read())
    assert request.responseCode == 413
    assert request.finished
