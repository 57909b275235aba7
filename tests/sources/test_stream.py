"""``stream()`` and its defaults (``twisted_stream._sources._stream``)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport

from twisted_stream import Outcome, StreamSettings, StreamSite, stream, stream_events, stream_for

from ..conftest import leaf


def test_without_a_reactor_a_stream_runs_on_its_sites() -> None:
    """A stream started without ``reactor=`` puts its timers on the reactor of its site (a
    fake clock here): the stall timeout of a client that does not read fires when that
    clock passes it, and an event stream's heartbeat is scheduled there too."""
    clock = MemoryReactorClock()
    requests: list[Any] = []

    def render(request: Any) -> int:
        requests.append(request)
        if request.path == b"/events":
            return stream_events(request, iter([Deferred()]), heartbeat=5)
        return stream(request, iter([b"x" * 65536] * 4))

    site = StreamSite(leaf(render), settings=StreamSettings(stall_timeout=3), reactor=clock)
    site.monotonic = clock.seconds
    for path in (b"/", b"/events"):
        channel = site.buildProtocol(None)
        channel.makeConnection(StringTransport())
        channel.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    download, events = (stream_for(request) for request in requests)
    assert download is not None and events is not None
    download._producer.pauseProducing()  # the transport is full: the client does not read
    assert sorted(call.getTime() for call in clock.getDelayedCalls())[-2:] == [3.0, 5.0]
    clock.advance(3)
    assert download.outcome is Outcome.STALLED
    assert events.outcome is None
