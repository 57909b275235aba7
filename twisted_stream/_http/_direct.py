"""Writing a response body to the socket of the connection ourselves, around Twisted's buffer.

Twisted's TCP transport sends only what it has buffered: each ``write`` lands in a list,
asks the reactor to watch the socket for writability (an ``epoll_ctl``), may pause the
producer, and the next ``doWrite`` joins the list into one new bytes object (a copy of the
chunk and its framing), sends it and stops watching (another ``epoll_ctl``). A
:class:`DirectWriter` sends a body's pieces with one ``sendmsg`` each instead, straight from
the caller's bytes objects, while the transport holds nothing; whatever the socket does not
take goes to the transport, and the owner is paused until the transport has sent it. The
transport stays the one object the reactor watches for the socket:

- :meth:`~DirectWriter.attach` takes the transport's producer slot from the HTTP channel for
  the length of the body (as Twisted's own switch to HTTP/2 does) and registers as a *pull*
  producer: the transport calls its ``resumeProducing`` each time its buffer is empty and the
  socket writable, so direct sends start only after anything buffered before them is sent;
- :meth:`~DirectWriter.write` sends some buffers now, or hands them to the transport while it
  still holds something;
- when the socket is full, :meth:`~DirectWriter.wait` pauses the owner (the engine, which then
  counts the pause and runs its stall timeout) and asks the transport to watch for
  writability; the transport's next ``doWrite`` that empties its buffer resumes the owner;
- the transport losing the connection calls ``stopProducing``, which stops the owner at once;
- :meth:`~DirectWriter.detach` gives the slot back to the channel, so the end of the body,
  keep-alive and the next pipelined request continue through the transport in order.

Only for what :func:`~._transport.direct_transport` accepts (a plain TCP or UNIX socket under
HTTP/1.x). :class:`~._sendfile.SendfileWriter` builds on it for file bodies.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.interfaces import IProducer, IPullProducer
from zope.interface import implementer

from ._transport import SocketTransport, can_take_over, flush, is_open


class Owner(Protocol):
    """What the writer tells the stream it sends for (the engine's producer methods)."""

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def stopProducing(self) -> None: ...


def chunk_framing(data: bytes) -> list[bytes]:
    """``data`` as one chunk of the chunked transfer coding (RFC 9112 §7.1), in three pieces
    so that the data itself is not copied: size line, data, ``CRLF``. ``data`` is not
    empty (an empty chunk ends the body)."""
    return [b"%x\r\n" % len(data), data, b"\r\n"]


@implementer(IPullProducer)
class DirectWriter:
    """Sends a body to ``transport``'s socket for ``owner``."""

    __slots__ = (
        "_owner",
        "_previous",
        "_registering",
        "_transport",
        "_waiting",
        "attached",
    )

    def __init__(self, transport: SocketTransport, owner: Owner) -> None:
        self._transport = transport
        self._owner = owner
        self._previous: IProducer | None = None
        """The producer the transport had (the HTTP channel), given back by :meth:`detach`."""
        self.attached = False
        """The writer holds the transport's producer slot."""
        self._waiting = False
        self._registering = False

    @staticmethod
    def possible(transport: SocketTransport) -> bool:
        """Whether a writer can take over ``transport`` now."""
        return can_take_over(transport)

    @property
    def direct(self) -> bool:
        """Whether the writer sends to the socket now: attached, the transport empty."""
        return self.attached and not self._waiting

    def attach(self) -> None:
        """Take the transport's producer slot and wait until it has sent what it holds: the
        owner is paused until then, or resumed from here if a flush of the transport empties
        it at once."""
        transport = self._transport
        self._previous = transport.producer
        transport.unregisterProducer()
        # A pull producer is asked for data at once on registration, before the transport
        # has sent what it holds: that first call is ignored.
        self._registering = True
        try:
            transport.registerProducer(self, False)
        finally:
            self._registering = False
        self.attached = True
        self.wait()
        flush(transport)

    def write(self, buffers: list[bytes]) -> None:
        """Send ``buffers`` (in order, not empty) with one ``sendmsg``; what the socket does not
        take is handed to the transport and the owner waits for it to be sent. While the
        transport still holds something they all go to the transport. A failed send hands
        them to the transport too, whose next ``doWrite`` meets the error and loses the
        connection as Twisted does."""
        transport = self._transport
        if self._waiting:
            transport.writeSequence(buffers)
            return
        try:
            sent = transport.getHandle().sendmsg(buffers)
        except OSError:  # full (EAGAIN) or failed: the transport finds out which
            sent = 0
        for at, piece in enumerate(buffers):
            if sent < len(piece):
                rest = [piece[sent:] if sent else piece, *buffers[at + 1 :]]
                transport.writeSequence(rest)
                self.wait()
                return
            sent -= len(piece)

    def wait(self) -> None:
        """Pause the owner until the socket is writable and the transport's buffer empty."""
        self._waiting = True
        self._owner.pauseProducing()
        self._transport.startWriting()

    def detach(self) -> None:
        """Give the producer slot back to the channel; nothing once the connection is gone.
        What the transport still holds is sent before anything written after this."""
        if not self.attached:
            return
        self.attached = False
        self._waiting = False
        transport = self._transport
        previous, self._previous = self._previous, None
        if transport.producer is self:
            transport.unregisterProducer()
            if previous is not None and is_open(transport):
                transport.registerProducer(previous, True)

    # IPullProducer, called by the transport.

    def resumeProducing(self) -> None:
        """The transport's buffer is empty and the socket writable: the owner goes on."""
        if self._registering or not self._waiting:
            return
        self._waiting = False
        self._owner.resumeProducing()

    def stopProducing(self) -> None:
        """The connection is gone: the owner stops at once."""
        self.attached = False
        self._waiting = False
        self._owner.stopProducing()
