"""The in-memory connection (``twisted_stream.testing._connection``): the server's side
behaves as Twisted's TCP transport for flow control and closing; the client reads at its
rate, stops reading and disconnects where it is told."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from twisted_stream.testing import _connection
from twisted_stream.testing._clock import StreamTestClock
from twisted_stream.testing._connection import BUFFER_SIZE, Connection

PEER = IPv4Address("TCP", "127.0.0.1", 40001)


class Server(Protocol):
    """Records what it receives and the order of the events around its end."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        assert reason is not None
        self.events.append(f"lost {reason.type.__name__}")


class Producer:
    """A push producer that records pause, resume and stop."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


def connected(**reading: Any) -> tuple[StreamTestClock, Connection, list[str]]:
    reactor = StreamTestClock()
    events: list[str] = []
    connection = Connection(reactor, Server(events), PEER, **reading)
    connection.open(b"GET / HTTP/1.1\r\n\r\n")
    connection.registerProducer(Producer(events), True)
    return reactor, connection, events


def test_a_full_buffer_pauses_on_every_write_and_only_an_empty_one_resumes() -> None:
    """Past 64 KiB unread every write pauses the producer (as TCP does); the client reading
    a part does not resume it, reading the last byte does, once."""
    reactor, connection, events = connected(read_rate=10_000)
    connection.write(b"x" * BUFFER_SIZE)
    assert events == []
    connection.write(b"x")
    connection.write(b"x")
    assert events == ["pause", "pause"]
    reactor.advance(5)
    assert connection.unread == BUFFER_SIZE + 2 - 51_000 and events == ["pause", "pause"]
    reactor.advance(5)
    assert connection.unread == 0 and events == ["pause", "pause", "resume"]
    assert len(connection.received) == BUFFER_SIZE + 2


def test_the_request_reaches_the_server_as_its_reading_allows() -> None:
    """What the client sends is delivered at once, or, while the server's reading is
    paused, on the turn after it resumes."""
    reactor = StreamTestClock()
    server = Server([])
    connection = Connection(reactor, server, PEER)
    server.makeConnection = lambda transport: connection.pauseProducing()  # type: ignore[method-assign]
    connection.open(b"GET / HTTP/1.1\r\n\r\n")
    assert server.received == b""
    connection.resumeProducing()
    reactor.flush()
    assert server.received == b"GET / HTTP/1.1\r\n\r\n"


def test_a_rate_reads_that_many_bytes_per_second_of_the_clock() -> None:
    """At 1000 bytes/s the client has read 1000 bytes per second of the clock, in steps of
    0.1 s; nothing while the clock stands still."""
    reactor, connection, _ = connected(read_rate=1000)
    connection.write(b"x" * 5000)
    reactor.flush()
    assert len(connection.received) == 100  # the first step is at once
    reactor.advance(2)
    assert len(connection.received) == 2100
    reactor.advance(10)
    assert len(connection.received) == 5000


def test_a_fractional_rate_still_makes_progress() -> None:
    """At 2.5 bytes/s (a quarter of a byte per step) 5 bytes are read in 2 seconds."""
    reactor, connection, _ = connected(read_rate=2.5)
    connection.write(b"x" * 10)
    reactor.advance(1.95)
    assert len(connection.received) == 5


def test_disconnect_after_stops_the_producer_before_the_protocol_hears() -> None:
    """After ``disconnect_after`` bytes the client leaves: what is unread is lost, the
    producer is stopped, then the protocol's connectionLost (as a TCP transport does)."""
    reactor, connection, events = connected(disconnect_after=10)
    connection.write(b"y" * 50)
    reactor.flush()
    assert bytes(connection.received) == b"y" * 10
    assert events == ["stop", "lost ConnectionDone"]
    assert connection.lost is not None and not connection.closed_by_server
    connection.write(b"more")
    assert connection.unread == 0


def test_disconnect_after_zero_leaves_before_anything_is_read() -> None:
    """``disconnect_after=0`` leaves on the first turn, even if the server wrote nothing."""
    reactor, _, events = connected(disconnect_after=0)
    reactor.flush()
    assert events == ["stop", "lost ConnectionDone"]


def test_lose_connection_waits_until_the_client_read_everything() -> None:
    """``loseConnection`` closes cleanly once everything written was read: never while the
    client does not read; with a producer still registered and paused, it is resumed first
    (as TCP's doWrite does)."""
    reactor, connection, events = connected(stop_reading_after=5)
    connection.write(b"z" * 10)
    connection.unregisterProducer()
    connection.loseConnection()
    reactor.advance(100)
    assert connection.lost is None and connection.disconnecting
    connection.resume_reading()
    reactor.flush()
    assert connection.lost is not None and connection.lost.check(ConnectionDone)
    assert connection.closed_by_server and events == ["lost ConnectionDone"]


def test_abort_drops_what_is_unread_and_closes_on_the_next_turn() -> None:
    """``abortConnection`` drops the unread bytes, ignores later writes and closes on the
    next turn with ConnectionAborted."""
    reactor, connection, events = connected(stop_reading_after=0)
    connection.write(b"lost")
    connection.abortConnection()
    connection.write(b"ignored")
    assert connection.lost is None and connection.unread == 0
    reactor.run_turn()
    assert connection.lost is not None and connection.lost.check(ConnectionAborted)
    assert events == ["stop", "lost ConnectionAborted"]
    assert connection.received == b""


def test_a_producer_registered_on_a_closed_connection_is_stopped() -> None:
    """As on TCP: registering on a lost connection stops the producer; registering twice is
    an error; a pull producer is asked for data at once."""
    _, connection, events = connected()
    with pytest.raises(RuntimeError, match="still is"):
        connection.registerProducer(Producer(events), True)
    connection.unregisterProducer()
    connection.registerProducer(Producer(events), False)
    assert events == ["resume"]
    connection.disconnect()
    late: list[str] = []
    connection.registerProducer(Producer(late), True)
    assert late == ["stop"]


def test_reading_options_are_checked() -> None:
    """Negative counts and a zero rate are refused with the option's name."""
    for option in ("read_rate", "stop_reading_after", "disconnect_after"):
        with pytest.raises(ValueError, match=option):
            Connection(StreamTestClock(), Server([]), PEER, **{option: -1})
    with pytest.raises(ValueError, match="positive"):
        Connection(StreamTestClock(), Server([]), PEER, read_rate=0)


def test_an_endless_response_read_in_full_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client reading an endless response as fast as it comes would hold it all: past
    MAX_RECEIVED bytes it disconnects and raises, naming the options that bound it."""
    monkeypatch.setattr(_connection, "MAX_RECEIVED", 1000)
    reactor, connection, events = connected()
    connection.write(b"e" * 2000)
    with pytest.raises(RuntimeError, match="disconnect_after"):
        reactor.flush()
    assert connection.lost is not None and "stop" in events
