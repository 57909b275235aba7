"""The Server-Sent Events demo: a live clock and a shared click counter.

:func:`events_demo` returns a resource to mount anywhere (e.g. ``/events/``):

- ``./``: an HTML page whose ``EventSource`` shows the clock and the counter;
- ``clock?interval=1&drop=0``: one ``tick`` event per interval, ``id`` = its number. A
  browser reconnecting sends ``Last-Event-ID`` and the count resumes after it (``drop=N``
  ends each connection after N ticks, to watch that happen);
- ``counter``: a :class:`~twisted_stream.Channel` every open page subscribes to; a new page
  first gets the current count;
- ``click`` (POST): adds one to the counter and publishes it to every page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web.resource import IResource
from twisted.web.server import Request

from twisted_stream import Channel, Event, EventStreamResource, StreamingResource

from ._query import page, query_number

CLOCK_INTERVAL = 1.0
RETRY_MS = 1000

PAGE_BODY = """<h1>Server-Sent Events</h1>
<p>Both boxes below are fed by <code>EventSource</code> streams that never end. If the
connection drops, the browser reconnects by itself and sends the id of the last event it
saw (<code>Last-Event-ID</code>), so the tick count resumes where it stopped.</p>
<h2>Clock</h2>
<p class="big"><span id="time">--:--:--</span></p>
<p>Tick <span id="tick">0</span>, <span id="status">connecting...</span>
<span id="resumed"></span></p>
<h2>Shared counter</h2>
<p class="big" id="count">0</p>
<p><button id="click">+1</button> Every open page sees each click (one
<code>Channel.publish</code>, delivered to all subscribers).</p>
<script>
const clock = new EventSource({clock_url});
clock.onopen = () => {{ document.getElementById("status").textContent = "connected"; }};
clock.onerror = () => {{ document.getElementById("status").textContent = "reconnecting..."; }};
clock.addEventListener("tick", (e) => {{
  const tick = JSON.parse(e.data);
  document.getElementById("time").textContent = tick.time;
  document.getElementById("tick").textContent = e.lastEventId;
  if (tick.resumed_from !== null) {{
    document.getElementById("resumed").textContent =
      "(resumed after tick " + tick.resumed_from + ")";
  }}
}});
const counter = new EventSource({counter_url});
counter.addEventListener("count", (e) => {{
  document.getElementById("count").textContent = e.data;
}});
document.getElementById("click").onclick = () => fetch({click_url}, {{method: "POST"}});
</script>
"""


def _js_string(url: bytes) -> str:
    """``url`` as a JavaScript string literal safe inside a <script> element."""
    return json.dumps(url.decode("latin-1")).replace("<", "\\u003c")


class _Page(StreamingResource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        query = request.uri.partition(b"?")[2]
        suffix = b"?" + query if query else b""

        def link(name: bytes) -> str:
            return _js_string(_sibling(request, name))

        body: str = PAGE_BODY.format(
            clock_url=link(b"clock" + suffix),
            counter_url=link(b"counter"),
            click_url=link(b"click"),
        )
        return page("Server-Sent Events", body).encode("utf-8")


def _sibling(request: Request, name: bytes) -> bytes:
    """A URL for child ``name`` of the demo, relative to the page being rendered (the page
    may be requested as ``/events`` or ``/events/``)."""
    if request.prepath and request.prepath[-1] and not request.postpath:
        last: bytes = request.prepath[-1]
        return last + b"/" + name
    return name


class _Clock(EventStreamResource):
    """One ``tick`` event per interval, numbered on from the client's Last-Event-ID."""

    def __init__(self) -> None:
        super().__init__(retry=RETRY_MS)

    def events(self, request: Request, last_event_id: str | None) -> object:
        from twisted.internet import reactor

        interval = query_number(request, "interval", CLOCK_INTERVAL, 0.01, 60.0)
        drop = int(query_number(request, "drop", 0, 0, 1_000_000))
        try:
            resumed: int | None = int(last_event_id) if last_event_id is not None else None
        except ValueError:
            resumed = None

        def ticks() -> Iterator[object]:
            n = resumed or 0
            sent = 0
            while not drop or sent < drop:
                n += 1
                sent += 1
                now = datetime.now(timezone.utc).strftime("%H:%M:%S UTC")
                data = json.dumps({"time": now, "resumed_from": resumed})
                yield Event(data, event="tick", id=str(n))
                if not drop or sent < drop:
                    wait: Deferred[None] = deferLater(reactor, interval, lambda: None)
                    yield wait

        return ticks()


class _Click(StreamingResource):
    isLeaf = True

    def __init__(self, counter: list[int], channel: Channel) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._counter = counter
        self._channel = channel

    def render_POST(self, request: Request) -> bytes:
        self._counter[0] += 1
        self._channel.publish(str(self._counter[0]), event="count")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"%d\n" % self._counter[0]


class _Demo(StreamingResource):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def getChild(self, path: bytes, request: Request) -> Any:
        if path == b"":
            return self.children[b""]
        return super().getChild(path, request)  # type: ignore[no-untyped-call]

    def render_GET(self, request: Request) -> bytes:
        # "/events" without the slash: the page, with links made relative to it.
        return _Page().render_GET(request)


def events_demo() -> IResource:
    """The SSE demo resource (see the module docstring)."""
    channel = Channel(history=1, overflow="drop-oldest")
    counter = [0]
    channel.publish(str(counter[0]), event="count")
    root = _Demo()
    root.putChild(b"", _Page())
    root.putChild(b"clock", _Clock())
    root.putChild(
        b"counter",
        EventStreamResource(lambda request, last_id: channel.subscribe(replay=1)),
    )
    root.putChild(b"click", _Click(counter, channel))
    return root
