"""Zero-copy file bodies: ``os.sendfile`` from an open file to the socket of the connection.

A :class:`SendfileWriter` sends one response body, ``length`` bytes of a file from
``offset``, after the headers, straight from the page cache to the socket: no read into a
bytes object, no copy into the transport's buffer, no ``send`` of it. It is driven by the
socket's writability through the transport itself, so the transport stays the one object
the reactor watches for that socket:

- :meth:`~SendfileWriter.attach` takes the transport's producer slot from the HTTP channel
  for the length of the body (as Twisted's own switch to HTTP/2 does) and registers as a
  *pull* producer: the transport calls its ``resumeProducing`` each time its buffer is empty
  and the socket writable, so the body starts only after the headers and anything buffered
  before them are sent;
- :meth:`~SendfileWriter.send` makes one non-blocking ``sendfile`` call;
- when the socket is full, :meth:`~SendfileWriter.wait` pauses the owner (the engine, which
  then counts the pause and runs its stall timeout) and asks the transport to watch for
  writability; the transport's next ``doWrite`` resumes the owner;
- the transport losing the connection calls ``stopProducing``, which stops the owner at once;
- :meth:`~SendfileWriter.detach` gives the slot back to the channel, so keep-alive and the
  next pipelined request continue as if the body had been written through the transport.

Only for what :func:`~._transport.direct_transport` accepts (a plain TCP or UNIX socket under
HTTP/1.x) and where ``os.sendfile`` exists (:data:`SENDFILE`); everything else is written by
the engine's read/write path.
"""

from __future__ import annotations

import errno
import os
from typing import Protocol

from twisted.internet.interfaces import IProducer, IPullProducer
from zope.interface import implementer

from .._errors import FileTruncated
from ._transport import SocketTransport, can_take_over, flush, is_open

SENDFILE = hasattr(os, "sendfile")
_CONNECTION_ERRORS = frozenset(
    {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ENOTCONN, errno.ETIMEDOUT}
)
"""What ``sendfile`` fails with when the connection, not the file, failed (Python makes
``ConnectionError`` of the first three)."""
"""Whether this platform has ``os.sendfile``."""

SENDFILE_MAX_CHUNK = 2 * 1024 * 1024
"""Most bytes one ``sendfile`` call may send (nginx's ``sendfile_max_chunk`` default): a
reader as fast as the server would otherwise keep one call, and the reactor, busy for the
whole file."""


class Owner(Protocol):
    """What the writer tells the stream it sends for (the engine's producer methods)."""

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def stopProducing(self) -> None: ...


@implementer(IPullProducer)
class SendfileWriter:
    """Sends ``length`` bytes of the open file ``fileno`` from ``offset`` to ``transport``'s
    socket, for ``owner``."""

    __slots__ = (
        "_fileno",
        "_offset",
        "_owner",
        "_previous",
        "_registering",
        "_socket",
        "_transport",
        "_waiting",
        "attached",
        "remaining",
    )

    def __init__(
        self,
        transport: SocketTransport,
        owner: Owner,
        fileno: int,
        offset: int,
        length: int,
    ) -> None:
        self._transport = transport
        self._owner = owner
        self._previous: IProducer | None = None
        """The producer the transport had (the HTTP channel), given back by :meth:`detach`."""
        self._fileno = fileno
        self._offset = offset
        self._socket = transport.fileno()
        self.remaining = length
        """Bytes of the body not sent yet."""
        self.attached = False
        """The writer holds the transport's producer slot."""
        self._waiting = False
        self._registering = False

    @staticmethod
    def possible(transport: SocketTransport) -> bool:
        """Whether a writer can take over ``transport`` now."""
        return SENDFILE and can_take_over(transport)

    def attach(self) -> None:
        """Take the transport's producer slot and wait until it has sent what it holds (the
        headers): the owner is paused until then, or resumed from here if a flush of the
        transport empties it at once."""
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

    def send(self) -> int:
        """One ``sendfile`` call of at most :data:`SENDFILE_MAX_CHUNK` bytes; the number
        sent. When the socket took less than that it is full: :meth:`wait` follows. Raises
        ``ConnectionError`` when the connection failed, :class:`FileTruncated` when the file
        ends before the body does, and any other ``OSError`` when reading the file failed."""
        count = min(self.remaining, SENDFILE_MAX_CHUNK)
        try:
            sent = os.sendfile(self._socket, self._fileno, self._offset, count)
        except BlockingIOError:
            self.wait()
            return 0
        except OSError as error:
            if error.errno in _CONNECTION_ERRORS and not isinstance(error, ConnectionError):
                raise ConnectionError(error.errno, error.strerror) from error
            raise
        if not sent:
            raise FileTruncated(
                f"the file ended at byte {self._offset}, "
                f"{self.remaining} bytes before the end of the response"
            )
        self._offset += sent
        self.remaining -= sent
        if sent < count:
            self.wait()
        return sent

    def wait(self) -> None:
        """Pause the owner until the socket is writable and the transport's buffer empty."""
        self._waiting = True
        self._owner.pauseProducing()
        self._transport.startWriting()

    def detach(self) -> None:
        """Give the producer slot back to the channel; nothing once the connection is gone."""
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
