"""One in-memory connection: the server's transport and the client reading from it.

:class:`Connection` is the transport the site's protocol is given, and behaves as Twisted's
TCP transport does (``twisted.internet.abstract.FileDescriptor``, ``tcp.Connection``):
writes are buffered; every write that finds more than :data:`BUFFER_SIZE` bytes unread
pauses the registered streaming producer; only an empty buffer resumes it (or, for a pull
producer, asks it for more); ``loseConnection`` closes once everything written was read,
``abortConnection`` drops what is unread and closes on the next turn; when the connection
goes, the producer is stopped before the protocol hears of it.

The other side is the client: it reads what was written on the reactor's turns (as the
kernel would take it), everything at once or ``read_rate`` bytes a second in steps of
:data:`READ_INTERVAL`, stops reading after ``stop_reading_after`` bytes and disconnects
after ``disconnect_after`` bytes (counted from the first byte of the response, status line
included). A disconnect reaches the server at once, whether it reads or not, as the
connection layer's hang-up watch makes it in production.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IProducer,
    IProtocol,
    IPushProducer,
    ITransport,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from ._clock import StreamTestClock

BUFFER_SIZE = FileDescriptor.bufferSize
"""Unread bytes past which the producer is paused: a TCP transport's (64 KiB)."""
READ_INTERVAL = 0.1
"""Seconds of the clock between two reads of a client given a ``read_rate``."""
MAX_RECEIVED = 256 * 1024 * 1024
"""Bytes one response may hold: past it, reading raises (an endless source read in full)."""


@implementer(ITransport, IConsumer, IPushProducer)
class Connection:
    """The server's transport of one connection, and the client at its other end."""

    def __init__(
        self,
        reactor: StreamTestClock,
        protocol: IProtocol,
        peer: IPv4Address,
        *,
        read_rate: float | None = None,
        stop_reading_after: int | None = None,
        disconnect_after: int | None = None,
        on_close: Callable[[Connection], object] = lambda connection: None,
    ) -> None:
        for name, value in (
            ("read_rate", read_rate),
            ("stop_reading_after", stop_reading_after),
            ("disconnect_after", disconnect_after),
        ):
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, not {value}")
        if read_rate == 0:
            raise ValueError("read_rate must be positive (stop_reading_after=0 reads nothing)")
        self.reactor = reactor
        self.protocol = protocol
        self._peer = peer
        self.read_rate = read_rate
        self.stop_reading_after = stop_reading_after
        self.disconnect_after = disconnect_after
        self._on_close = on_close
        self.received = bytearray()
        """Every byte the client has read."""
        self.reading = True
        """Whether the client reads (False once it stopped)."""
        self.lost: Failure | None = None
        """Why the connection closed (None while open)."""
        self.disconnecting = False
        """The server asked to close (``loseConnection``)."""
        self.closed_by_server = False
        """The server closed the connection cleanly, after the client read everything."""
        self._unread = bytearray()
        self._aborting = False
        self._producer: IProducer | None = None
        self._streaming = False
        self._producer_paused = False
        self._read_call: IDelayedCall | None = None
        self._last_read = -READ_INTERVAL
        self._allowance = 0.0
        self._outgoing = bytearray()
        self._input_paused = False

    def open(self, request: bytes) -> None:
        """Connect and send ``request`` (read by the server as its transport lets it)."""
        self.protocol.makeConnection(self)
        self._outgoing += request
        self._send()
        self._schedule_read(at_once=True)

    # ITransport: the server's side.

    def write(self, data: bytes) -> None:
        if self.lost is not None or self._aborting or not data:
            return
        self._unread += data
        if self._producer is not None and self._streaming and len(self._unread) > BUFFER_SIZE:
            self._producer_paused = True
            self._producer.pauseProducing()  # type: ignore[attr-defined]
        self._schedule_read()

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if self.lost is not None or self.disconnecting:
            return
        self.disconnecting = True
        if not self._unread:
            self.reactor.callLater(0, self._check_drained)

    def abortConnection(self) -> None:
        if self.lost is not None or self._aborting:
            return
        self._aborting = True
        self._unread.clear()
        self.reactor.callLater(0, self._lose, Failure(ConnectionAborted()))

    def getPeer(self) -> IPv4Address:
        return self._peer

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 80)

    # IConsumer: the producer writing into the connection (the HTTP channel).

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        if self._producer is not None:
            raise RuntimeError(f"{producer!r} registered while {self._producer!r} still is")
        if self.lost is not None:
            producer.stopProducing()
            return
        self._producer, self._streaming, self._producer_paused = producer, streaming, False
        if not streaming:
            producer.resumeProducing()  # type: ignore[attr-defined]

    def unregisterProducer(self) -> None:
        self._producer = None
        if self.disconnecting and not self._unread:
            self.reactor.callLater(0, self._check_drained)

    # IPushProducer: the server reading the client's bytes.

    def pauseProducing(self) -> None:
        self._input_paused = True

    def resumeProducing(self) -> None:
        self._input_paused = False
        if self._outgoing:
            self.reactor.callLater(0, self._send)

    def stopProducing(self) -> None:
        self.loseConnection()

    def _send(self) -> None:
        if self._outgoing and not self._input_paused and self.lost is None:
            data = bytes(self._outgoing)
            self._outgoing.clear()
            self.protocol.dataReceived(data)

    # The client's side.

    @property
    def unread(self) -> int:
        """Bytes written by the server that the client has not read."""
        return len(self._unread)

    def stop_reading(self) -> None:
        self.reading = False
        self._cancel_read()

    def resume_reading(self) -> None:
        """Read again, ``stop_reading_after`` lifted (``read_rate`` and
        ``disconnect_after`` still apply)."""
        self.reading = True
        self.stop_reading_after = None
        self._schedule_read(at_once=True)

    def disconnect(self) -> None:
        """The client closes the connection (the server sees it at once)."""
        self._lose(Failure(ConnectionDone("the client closed the connection")))

    def _schedule_read(self, at_once: bool = False) -> None:
        if self._read_call is not None or self.lost is not None or not self.reading:
            return
        delay = 0.0
        if self.read_rate is not None and not at_once:
            delay = max(0.0, self._last_read + READ_INTERVAL - self.reactor.seconds())
        self._read_call = self.reactor.callLater(delay, self._read)

    def _cancel_read(self) -> None:
        call, self._read_call = self._read_call, None
        if call is not None and call.active():
            call.cancel()

    def _read(self) -> None:
        """One read by the client: what its rate and limits allow of what is unread."""
        self._read_call = None
        if self.lost is not None or not self.reading:
            return
        budget = len(self._unread)
        if self.read_rate is not None:
            # What a step allows, plus what the last ones left unused (at most a step's
            # worth, or a byte): a buffer that ran dry in the middle of a step does not
            # lower the rate, and a rate under a byte a step still reads.
            self._last_read = self.reactor.seconds()
            step = self.read_rate * READ_INTERVAL
            self._allowance = min(self._allowance, max(step, 1.0)) + step
            budget = min(budget, int(self._allowance))
        received = len(self.received)
        for limit in (self.stop_reading_after, self.disconnect_after):
            if limit is not None:
                budget = max(0, min(budget, limit - received))
        if budget:
            self.received += self._unread[:budget]
            del self._unread[:budget]
            received += budget
            self._allowance -= budget
        if received > MAX_RECEIVED:
            self.disconnect()
            raise RuntimeError(
                f"the response passed {MAX_RECEIVED} bytes: an endless source read in full? "
                "give the request read_rate=, stop_reading_after= or disconnect_after="
            )
        if self.disconnect_after is not None and received >= self.disconnect_after:
            self.disconnect()
            return
        if self.stop_reading_after is not None and received >= self.stop_reading_after:
            self.reading = False
        if self._unread:
            self._schedule_read()
        else:
            self._check_drained()

    def _check_drained(self) -> None:
        """Everything written was read: resume the producer, or close if asked to."""
        if self.lost is not None or self._unread:
            return
        producer = self._producer
        if producer is not None and (not self._streaming or self._producer_paused):
            self._producer_paused = False
            producer.resumeProducing()  # type: ignore[attr-defined]
        elif self.disconnecting:
            self.closed_by_server = True
            self._lose(Failure(ConnectionDone()))

    def _lose(self, reason: Failure) -> None:
        if self.lost is not None:
            return
        self.lost = reason
        self._unread.clear()
        self._cancel_read()
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()
        self.protocol.connectionLost(reason)
        self._on_close(self)
