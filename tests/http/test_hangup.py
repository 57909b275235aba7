"""The hang-up watch on real sockets: a peer's FIN (even behind unread data) or RST is
reported once, and the watch costs the reactor nothing while it watches nothing."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor

from twisted_stream._http import _hangup
from twisted_stream._http._hangup import HangupWatch, hangup_watch

from ..waiting import turns, until

pytestmark = pytest.mark.skipif(_hangup._EPOLL is None, reason="needs epoll (Linux)")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    yield server, client
    server.close()
    client.close()


@pytest.mark.parametrize("how", ["fin", "fin-behind-data", "rst"])
@pytest_twisted.ensureDeferred
async def test_hangup_is_reported_once(
    pair: tuple[socket.socket, socket.socket], how: str
) -> None:
    """The callback runs once when the peer closes (also with unread data queued before its
    FIN, which a one-byte MSG_PEEK would not see) or resets; the socket is then unwatched
    and the watch leaves the reactor."""
    server, client = pair
    watch = hangup_watch(reactor)
    assert watch is not None
    calls: list[int] = []
    watch.watch(server.fileno(), lambda: calls.append(1))
    assert watch in reactor.getReaders()
    if how == "fin-behind-data":
        client.sendall(b"x" * 50_000)
    if how == "rst":
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    await until(lambda: calls == [1], timeout=2, what="the hang-up")
    await turns(5)
    assert calls == [1]
    assert watch.watched == 0
    assert watch not in reactor.getReaders()


@pytest_twisted.ensureDeferred
async def test_nothing_is_reported_while_the_peer_stays(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Data from a peer that stays connected is not a hang-up; unwatching stops watching."""
    server, client = pair
    watch = hangup_watch(reactor)
    assert watch is not None
    calls: list[int] = []
    watch.watch(server.fileno(), lambda: calls.append(1))
    client.sendall(b"more data")
    await turns(20)
    assert calls == []
    watch.unwatch(server.fileno())
    client.close()
    await turns(20)
    assert calls == []
    assert watch not in reactor.getReaders()


def test_a_reused_descriptor_number_is_watched_again() -> None:
    """A socket closed while watched leaves the kernel's set by itself; a new socket with
    the same descriptor number can be watched again (and unwatching a closed one is fine)."""
    watch = HangupWatch(reactor)
    a, b = socket.socketpair()
    fd = a.fileno()
    watch.watch(fd, lambda: None)
    a.close()
    c, d = socket.socketpair()
    try:
        assert fd in (c.fileno(), d.fileno())
        watch.watch(fd, lambda: None)
        watch.unwatch(fd)
        watch.unwatch(fd)
        assert watch.watched == 0
    finally:
        for s in (b, c, d):
            s.close()


def test_one_watch_per_reactor_and_none_without_epoll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reactor has one watch; where ``select.epoll`` is missing there is none."""
    assert hangup_watch(reactor) is hangup_watch(reactor)
    monkeypatch.setattr(_hangup, "_EPOLL", None)
    assert hangup_watch(reactor) is None
