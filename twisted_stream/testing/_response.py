"""What a :class:`~twisted_stream.testing.StreamTestClient` request gives back, and
:func:`assert_released`, the check that a stream let go of everything it held."""

from __future__ import annotations

from typing import Any, Protocol

from twisted.web.http_headers import Headers

from .. import Stream, StreamResult, StreamSite, stream_for
from ._clock import StreamTestClock
from ._connection import Connection
from ._parse import Parsed, parse_response


class _Client(Protocol):
    """What a response needs of its client."""

    clock: StreamTestClock
    site: StreamSite

    def flush(self) -> None: ...

    def _open(self) -> int: ...


class StreamTestResponse:
    """A response as the client received it so far: its attributes are live, and change as
    the client reads (after :meth:`StreamTestClient.flush` or ``advance``).

    ``raw`` is every byte received; ``code``, ``headers``, ``body`` (transfer coding
    removed, no content coding) and ``complete`` are read out of it. ``stream`` is the
    :class:`~twisted_stream.Stream` the resource started (None if it did not call
    :func:`~twisted_stream.stream` or a sibling), ``result`` its
    :class:`~twisted_stream.StreamResult` once it ended.
    """

    def __init__(self, client: _Client, connection: Connection, method: str, path: str) -> None:
        self._client = client
        self._connection = connection
        self._head = method.upper() == "HEAD"
        self._what = f"{method} {path}"
        self._request: Any = None
        self._parsed: tuple[int, bool, Parsed] | None = None

    def __repr__(self) -> str:
        state = "complete" if self.complete else "incomplete"
        return f"<StreamTestResponse {self._what}: {self.code}, {len(self.raw)} bytes, {state}>"

    def _parse(self) -> Parsed:
        size, lost = len(self._connection.received), self._connection.lost is not None
        if self._parsed is None or self._parsed[:2] != (size, lost):
            cleanly = lost and self._connection.closed_by_server
            parsed = parse_response(self.raw, head=self._head, closed_cleanly=cleanly)
            self._parsed = (size, lost, parsed)
        return self._parsed[2]

    @property
    def raw(self) -> bytes:
        """Every byte the client has read: status line, headers, framed body."""
        return bytes(self._connection.received)

    @property
    def code(self) -> int | None:
        """The status code; None until the status line and headers have been read."""
        return self._parse().code

    @property
    def headers(self) -> Headers:
        """The response's headers (empty until they have been read)."""
        return self._parse().headers

    @property
    def body(self) -> bytes:
        """The body read so far, its chunked framing removed."""
        return self._parse().body

    @property
    def complete(self) -> bool:
        """Whether the body arrived whole: its ``Content-Length``, its last chunk, or (with
        neither) the server closing the connection cleanly. False for a body cut short."""
        return self._parse().complete

    @property
    def disconnected(self) -> bool:
        """Whether the connection is closed, by either side."""
        return self._connection.lost is not None

    @property
    def stream(self) -> Stream | None:
        """The stream the resource started for this request, if any."""
        return None if self._request is None else stream_for(self._request)

    @property
    def result(self) -> StreamResult | None:
        """How the stream ended; None while it runs (or if no stream was started)."""
        found = self.stream
        return None if found is None else found.result

    @property
    def source_closed(self) -> bool:
        """Whether the stream's source has been released (a generator closed, an async
        generator's ``aclose()`` done, a threaded one closed on its worker, a file
        closed)."""
        found = self.stream
        return found is not None and found.source_closed.called

    def stop_reading(self) -> None:
        """The client stops reading now: the server's writes pile up in its transport."""
        self._connection.stop_reading()
        self._client.flush()

    def resume_reading(self) -> None:
        """The client reads again, with no ``stop_reading_after`` (its ``read_rate`` and
        ``disconnect_after`` still apply)."""
        self._connection.resume_reading()
        self._client.flush()

    def disconnect(self) -> None:
        """The client closes the connection now; the server notices at once."""
        self._connection.disconnect()
        self._client.flush()


def assert_released(response: StreamTestResponse) -> None:
    """Fail (``AssertionError``) unless ``response``'s stream has ended and let go of what
    it held: its source was closed (a generator's ``finally`` ran, an async generator's
    ``aclose()`` completed, a threaded source closed on its worker) and, once no connection
    of the client is open, nothing is left running: no timer on the clock (as trial's
    "dirty reactor" check), no thread of the site's pool still busy.

    The client's reactor is flushed first; a teardown that waits on the clock needs the
    test to ``advance`` it. Use it after a disconnect to catch a leak, and after a stream
    ends on its own.
    """
    client = response._client
    client.flush()
    what = response._what
    stream = response.stream
    if stream is None:
        raise AssertionError(f"{what}: no stream was started (did the resource call stream()?)")
    if stream.result is None:
        raise AssertionError(
            f"{what}: the stream is still running ({stream.state.name}, {stream.bytes_sent} "
            "bytes sent): disconnect the client, advance the clock or let it end first"
        )
    outcome = stream.result.outcome.name
    if not response.source_closed:
        raise AssertionError(
            f"{what}: the stream ended {outcome} but its source was never released (a "
            "finally that waits on something that never comes, a threaded source blocked "
            "in next(), or a close that waits on the clock: advance it)"
        )
    if client._open():
        return
    timers = [call for call in client.clock.calls if call.active()]
    if timers:
        listed = "; ".join(f"{call.func!r} at t={call.getTime():g}" for call in timers)
        raise AssertionError(
            f"{what}: the stream ended {outcome} and every connection is closed, but "
            f"{len(timers)} timer(s) are still scheduled: {listed}"
        )
    if client.clock.threads_busy():
        raise AssertionError(
            f"{what}: the stream ended {outcome} and every connection is closed, but "
            f"{client.site.thread_pool.busy} thread(s) of the site's pool are still busy"
        )
