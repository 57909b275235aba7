"""Zero-copy file bodies: ``os.sendfile`` from an open file to the socket of the connection.

A :class:`SendfileWriter` sends one response body, ``length`` bytes of a file from
``offset``, after the headers, straight from the page cache to the socket: no read into a
bytes object, no copy into the transport's buffer, no ``send`` of it. It is a
:class:`~._direct.DirectWriter` (taking the transport's producer slot for the body, driven
by the socket's writability through the transport, pausing its owner while the socket is
full), whose :meth:`~SendfileWriter.send` makes one non-blocking ``sendfile`` call.

Only for what :func:`~._transport.direct_transport` accepts (a plain TCP or UNIX socket under
HTTP/1.x) and where ``os.sendfile`` exists (:data:`SENDFILE`); everything else is written by
the engine's read/write path.
"""

from __future__ import annotations

import errno
import os

from .._errors import FileTruncated
from ._direct import DirectWriter, Owner
from ._transport import SocketTransport, can_take_over

SENDFILE = hasattr(os, "sendfile")
"""Whether this platform has ``os.sendfile``."""

_CONNECTION_ERRORS = frozenset(
    {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ENOTCONN, errno.ETIMEDOUT}
)
"""What ``sendfile`` fails with when the connection, not the file, failed (Python makes
``ConnectionError`` of the first three)."""

SENDFILE_MAX_CHUNK = 2 * 1024 * 1024
"""Most bytes one ``sendfile`` call may send (nginx's ``sendfile_max_chunk`` default): a
reader as fast as the server would otherwise keep one call, and the reactor, busy for the
whole file."""


class SendfileWriter(DirectWriter):
    """Sends ``length`` bytes of the open file ``fileno`` from ``offset`` to ``transport``'s
    socket, for ``owner``."""

    __slots__ = ("_fileno", "_offset", "_socket", "remaining")

    def __init__(
        self,
        transport: SocketTransport,
        owner: Owner,
        fileno: int,
        offset: int,
        length: int,
    ) -> None:
        super().__init__(transport, owner)
        self._fileno = fileno
        self._offset = offset
        self._socket = transport.fileno()
        self.remaining = length
        """Bytes of the body not sent yet."""

    @staticmethod
    def possible(transport: SocketTransport) -> bool:
        """Whether a writer can take over ``transport`` now."""
        return SENDFILE and can_take_over(transport)

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
