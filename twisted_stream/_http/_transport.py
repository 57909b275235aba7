"""The plain socket transport under an HTTP/1.x request, as the engine drives it directly.

Twisted's TCP transport (``twisted.internet.tcp.Connection``, a ``FileDescriptor``) sends only
from ``doWrite``, which the reactor calls on its next turn once the socket is writable, and
sends at most ``SEND_LIMIT`` (128 KiB) per call: a streamed response written in 64 KiB pieces
costs a reactor turn per piece. The engine instead flushes the transport itself
(:func:`flush`, through ``IWriteDescriptor.doWrite``, the method the reactor calls) when it
has written what it has, sends the rest of a body to the socket itself (:mod:`._direct`),
and sends file bodies with ``sendfile`` (:mod:`._sendfile`). All need the transport object
itself; :func:`direct_transport` finds it, and only for a plain TCP or UNIX socket carrying
HTTP/1.x (not TLS, whose bytes must be encrypted, nor HTTP/2, whose
connection multiplexes streams, nor a test's ``StringTransport``).

What this reads of Twisted beyond its interfaces (checked against Twisted 26.10,
``internet/abstract.py`` and ``internet/tcp.py``): the ``connected``, ``disconnecting`` and
``disconnected`` flags, the producer registered on the transport (``producer``,
``streamingProducer``, ``producerPaused``), its ``reactor``, and ``startWriting``.
"""

from __future__ import annotations

import socket
from typing import Protocol, cast

from twisted.internet import tcp
from twisted.internet.interfaces import IProducer, IReactorFDSet, IReadWriteDescriptor
from twisted.python.failure import Failure

from .._types import StreamRequest
from ._twisted import channel_of, transport_of


class SocketTransport(Protocol):
    """What the engine uses of a ``twisted.internet.tcp.Connection``."""

    connected: int
    disconnecting: int
    disconnected: int
    producer: IProducer | None
    producerPaused: bool
    streamingProducer: bool

    @property
    def reactor(self) -> IReactorFDSet: ...

    def fileno(self) -> int: ...

    def getHandle(self) -> socket.socket: ...

    def writeSequence(self, data: list[bytes]) -> None: ...

    def connectionLost(self, reason: Failure) -> None: ...

    def doWrite(self) -> object: ...

    def startWriting(self) -> None: ...

    def registerProducer(self, producer: IProducer, streaming: bool) -> None: ...

    def unregisterProducer(self) -> None: ...


def direct_transport(request: StreamRequest) -> SocketTransport | None:
    """The socket transport carrying ``request`` if the engine may write to it directly:
    a plain TCP or UNIX connection (no TLS) whose HTTP/1.x channel is the transport's
    producer, still connected. None otherwise (HTTP/2, TLS, a test transport, gone)."""
    channel = channel_of(request)
    transport = transport_of(request)
    if not isinstance(transport, tcp.Connection) or getattr(transport, "TLS", False):
        return None
    found = cast(SocketTransport, transport)
    if found.producer is not channel or not found.connected or found.disconnecting:
        return None
    return found


def flush(transport: SocketTransport) -> None:
    """Send what ``transport`` holds now instead of on the reactor's next turn.

    This is what the reactor does when the socket is writable: the transport's own
    ``doWrite`` (``IWriteDescriptor``) sends up to 128 KiB and, when that empties its
    buffer, resumes the producer it paused (synchronously, from here); and when ``doWrite``
    says the connection is over (it was closing and everything is sent, or the send failed),
    the descriptor is removed from the reactor and told ``connectionLost``, as the reactor
    would. Nothing is done for a connection already lost.
    """
    if not transport.connected:
        return
    why = transport.doWrite()
    if why is None:
        return
    reactor, descriptor = transport.reactor, cast(IReadWriteDescriptor, transport)
    reactor.removeReader(descriptor)
    reactor.removeWriter(descriptor)
    reason = why if isinstance(why, Failure) else Failure(why)
    transport.connectionLost(reason)


def can_take_over(transport: SocketTransport) -> bool:
    """Whether the engine may take ``transport``'s producer slot for a while: a streaming
    producer (the HTTP channel) holds it, not paused by the transport, and the connection is
    open."""
    return (
        transport.producer is not None
        and transport.streamingProducer
        and not transport.producerPaused
        and bool(transport.connected)
        and not transport.disconnecting
    )


def is_open(transport: SocketTransport) -> bool:
    """Whether ``transport`` still has a connection (it may be closing)."""
    return bool(transport.connected) and not transport.disconnected


def input_waiting(transport: object) -> bool:
    """Whether the peer has sent bytes the reactor has not read yet (peeked, not taken).

    A timer can fire before input already in the socket is read: the reactor runs its due
    calls before it polls, so after a busy turn a deadline passes with the client's bytes
    queued unseen. ``transport`` is a socket transport (``getHandle()`` a socket) or a
    wrapper over one in ``.transport`` (TLS: the bytes are records, still the client's);
    anything else (a test's ``StringTransport``) has nothing waiting. A peer's close (an
    empty peek) or a socket error is not input.
    """
    for candidate in (transport, getattr(transport, "transport", None)):
        get_handle = getattr(candidate, "getHandle", None)
        handle = get_handle() if get_handle is not None else None
        if isinstance(handle, socket.socket):
            try:
                return bool(handle.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
            except OSError:  # nothing waiting (EAGAIN), or the socket failed or closed
                return False
    return False
