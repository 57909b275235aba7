"""Noticing that a peer closed or reset a connection whose reading is paused.

While a transport does not read (``stopReading``), the reactor does not watch its socket, so
a FIN or RST from the peer goes unseen until something is written. A :class:`HangupWatch`
watches paused sockets for hang-up only: one ``epoll`` set per reactor, registered with the
reactor as a reader only while it watches something, becomes readable when a watched socket
reports ``EPOLLRDHUP`` (the peer's FIN was processed, even with unread data queued before
it, which a one-byte ``MSG_PEEK`` cannot see), ``EPOLLHUP`` or ``EPOLLERR`` (a reset).

Nothing runs while nothing hangs up: the cost is one ``epoll_ctl`` when reading pauses and
one when it resumes, and reading pauses only for a client that sends past the read-ahead
bound or one whose upload waits for its consumer. Where ``select.epoll`` does not exist
(not Linux), :func:`hangup_watch` returns None and such a close is noticed at the next
write, as with Twisted alone.
"""

from __future__ import annotations

import select
import weakref
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

_EPOLL = getattr(select, "epoll", None)
_EVENTS = (
    getattr(select, "EPOLLRDHUP", 0x2000)
    | getattr(select, "EPOLLHUP", 0x10)
    | getattr(select, "EPOLLERR", 0x8)
)


@implementer(IReadDescriptor)
class HangupWatch:
    """Calls back once when a watched socket's peer closes or resets the connection."""

    def __init__(self, reactor: Any) -> None:
        assert _EPOLL is not None
        self._reactor = reactor
        self._epoll = _EPOLL()
        self._callbacks: dict[int, Callable[[], None]] = {}

    def watch(self, fd: int, on_hangup: Callable[[], None]) -> None:
        """Call ``on_hangup()`` (once) when the peer of socket ``fd`` hangs up."""
        try:
            self._epoll.register(fd, _EVENTS)
        except FileExistsError:
            self._epoll.modify(fd, _EVENTS)
        if not self._callbacks:
            self._reactor.addReader(self)
        self._callbacks[fd] = on_hangup

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd`` (no-op if not watched, or already closed)."""
        if self._callbacks.pop(fd, None) is None:
            return
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass  # closed: the kernel dropped it from the set already
        if not self._callbacks:
            self._reactor.removeReader(self)

    @property
    def watched(self) -> int:
        """How many sockets are watched now."""
        return len(self._callbacks)

    # IReadDescriptor

    def fileno(self) -> int:
        fd: int = self._epoll.fileno()
        return fd

    def doRead(self) -> None:
        for fd, _events in self._epoll.poll(0):
            callback = self._callbacks.get(fd)
            if callback is None:
                continue
            self.unwatch(fd)
            callback()

    def connectionLost(self, reason: Failure) -> None:
        # The reactor is shutting down (disconnectAll): every transport goes too.
        for fd in list(self._callbacks):
            self.unwatch(fd)

    def logPrefix(self) -> str:
        return "HangupWatch"


_watches: weakref.WeakKeyDictionary[Any, HangupWatch] = weakref.WeakKeyDictionary()


def hangup_watch(reactor: Any) -> HangupWatch | None:
    """The reactor's :class:`HangupWatch`, made on first use; None without ``epoll``."""
    if _EPOLL is None:
        return None
    found = _watches.get(reactor)
    if found is None:
        found = _watches[reactor] = HangupWatch(reactor)
    return found
