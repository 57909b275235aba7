"""Our HTTP/2 connection on a ``StringTransport`` and a fake clock, driven frame by frame by
an ``h2`` client state machine: deterministic, no sockets, no TLS."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

from twisted_stream import StreamSettings, StreamSite
from twisted_stream._http._h2 import StreamH2Connection

from .h2client import GoAwaySplitter

DEFAULT_WINDOW = 65535


class Harness:
    """A client and our server connection, wired by hand.

    ``window`` is what the client grants per stream and for the connection. Nothing runs
    until the test says so: :meth:`send` delivers the client's frames, :meth:`turn` runs one
    reactor turn (the calls due now, not those they schedule), :meth:`receive` parses what
    the server wrote.
    """

    def __init__(
        self,
        resource: Resource,
        *,
        window: int = DEFAULT_WINDOW,
        settings: StreamSettings | None = None,
        connection_class: type[Any] = StreamH2Connection,
    ) -> None:
        self.clock = MemoryReactorClock()
        self.site = StreamSite(resource, reactor=self.clock, settings=settings)
        self.conn = connection_class(self.clock)
        self.conn.site = self.site
        self.conn.factory = self.site
        self.conn.requestFactory = self.site.requestFactory
        self.conn.timeOut = None
        self.conn.callLater = self.clock.callLater
        self.transport = StringTransport()
        self.conn.makeConnection(self.transport)
        self.transport.registerProducer(self.conn, True)
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.client.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
        )
        self.client.initiate_connection()
        if window > DEFAULT_WINDOW:
            self.client.increment_flow_control_window(window - DEFAULT_WINDOW)
        self.send()
        self.frames = GoAwaySplitter()
        self.events: list[h2.events.Event] = []
        self.receive()

    def send(self) -> None:
        """Deliver what the client has to send."""
        data = self.client.data_to_send()
        if data:
            self.conn.dataReceived(data)

    def receive(self) -> list[h2.events.Event]:
        """Parse what the server wrote since the last call (acknowledging nothing); GOAWAY
        frames go to ``frames.goaways``."""
        data = self.frames.feed(self.transport.value())
        self.transport.clear()
        events = list(self.client.receive_data(data)) if data else []
        self.events += events
        self.send()  # SETTINGS and PING acknowledgements
        return events

    def get(self, path: str) -> int:
        """Send ``GET path``; the stream id."""
        stream_id = int(self.client.get_next_available_stream_id())
        self.client.send_headers(
            stream_id,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", path.encode()),
            ],
            end_stream=True,
        )
        self.send()
        return stream_id

    def turn(self) -> None:
        """Run the calls due now, once each (what they schedule waits for the next turn)."""
        now = self.clock.seconds()
        due = [call for call in self.clock.getDelayedCalls() if call.getTime() <= now]
        for call in due:
            if call.active():
                self.clock.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)

    def pending_turns(self) -> int:
        """Calls waiting to run (a busy send loop always has one)."""
        return sum(1 for call in self.clock.getDelayedCalls() if call.active())


def data_bytes(events: list[h2.events.Event], stream_id: int | None = None) -> int:
    """DATA bytes in ``events`` (for ``stream_id``, or all)."""
    return sum(
        len(e.data)
        for e in events
        if isinstance(e, h2.events.DataReceived) and stream_id in (None, e.stream_id)
    )
