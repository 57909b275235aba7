""":class:`StreamTestClient`: requests to a site over in-memory connections on a fake clock."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.web.resource import IResource

from .. import StreamSettings, StreamSite
from ._clock import StreamTestClock
from ._connection import Connection
from ._response import StreamTestResponse


class StreamTestClient:
    """A client of ``resource`` (or of a :class:`~twisted_stream.StreamSite`) that needs no
    network: each request is a new in-memory connection to the site's own protocol (our
    HTTP/1.1 channel, its limits and timeouts), and everything runs on :attr:`clock`.

    A resource is served by ``StreamSite(resource, settings=settings)``; a site given is
    used as it is, except that it now runs on :attr:`clock` (its ``reactor`` and
    ``monotonic`` are replaced). ``clock`` is the :class:`StreamTestClock` to run on, when
    the resource was built with it (a new one by default).

    Threaded sources run on real threads, in real time: ``thread_timeout`` is how long, in
    real seconds, the client waits for a busy thread of the site's pool to hand something
    back; a thread blocked longer is left running, and what it hands back later is taken
    on a later :meth:`flush`.

    Every request, read change and disconnect runs the reactor until nothing is left to do
    without the clock moving (:meth:`flush`); :meth:`advance` moves the clock. Call
    :meth:`close` at the end (or use the client as a context manager) to close what is open
    and stop the site's threads.
    """

    def __init__(
        self,
        resource: IResource | StreamSite,
        *,
        settings: StreamSettings | None = None,
        clock: StreamTestClock | None = None,
        thread_timeout: float = 10.0,
    ) -> None:
        self.clock = clock if clock is not None else StreamTestClock()
        """The fake reactor everything runs on."""
        self.clock.thread_timeout = thread_timeout
        if isinstance(resource, StreamSite):
            if settings is not None:
                raise TypeError("settings are the site's: StreamSite(resource, settings=...)")
            site = resource
            site.reactor = self.clock
        else:
            site = StreamSite(resource, settings=settings, reactor=self.clock)
        site.monotonic = self.clock.seconds
        self.site = site
        """The site the requests go to."""
        pool = site.thread_pool
        self.clock.watch_threads(lambda: bool(pool.busy or pool.waiting))
        self._connections: list[Connection] = []
        self._port = 40000

    def __enter__(self) -> StreamTestClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        read_rate: float | None = None,
        stop_reading_after: int | None = None,
        disconnect_after: int | None = None,
    ) -> StreamTestResponse:
        """Send one HTTP/1.1 request on a new connection and run until it settles.

        ``headers`` are added to ``Host: localhost`` and ``Connection: close`` (a header of
        the same name replaces them); a ``body`` is sent with its ``Content-Length``. The
        client reads everything as it comes, or ``read_rate`` bytes per second of the
        clock; it stops reading after ``stop_reading_after`` bytes and closes the
        connection after ``disconnect_after`` bytes (0: before reading anything), counted
        from the first byte of the response, status line and headers included. Raises
        ``ValueError`` for a path that is not ASCII without spaces or does not start with
        ``/`` (``*`` is allowed for ``OPTIONS``), a method that is not a token, and a header
        whose name is not a token or whose value holds CR, LF or NUL.
        """
        data = _request_bytes(method, path, headers or {}, body)  # refused before connecting
        self._port += 1
        peer = IPv4Address("TCP", "127.0.0.1", self._port)
        protocol: Any = self.site.buildProtocol(peer)  # type: ignore[no-untyped-call]
        connection = Connection(
            self.clock,
            protocol,
            peer,
            read_rate=read_rate,
            stop_reading_after=stop_reading_after,
            disconnect_after=disconnect_after,
            on_close=self._connections.remove,
        )
        response = StreamTestResponse(self, connection, method, path)
        make_request = protocol.requestFactory

        def recorded(channel: object, queued: object) -> object:
            request = make_request(channel, queued)
            if response._request is None:
                response._request = request
            return request

        protocol.requestFactory = recorded
        self._connections.append(connection)
        connection.open(data)
        self.flush()
        return response

    def get(
        self,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        read_rate: float | None = None,
        stop_reading_after: int | None = None,
        disconnect_after: int | None = None,
    ) -> StreamTestResponse:
        """:meth:`request` with ``GET``."""
        return self.request(
            "GET",
            path,
            headers=headers,
            read_rate=read_rate,
            stop_reading_after=stop_reading_after,
            disconnect_after=disconnect_after,
        )

    def post(
        self,
        path: str,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        read_rate: float | None = None,
        stop_reading_after: int | None = None,
        disconnect_after: int | None = None,
    ) -> StreamTestResponse:
        """:meth:`request` with ``POST`` and ``body``."""
        return self.request(
            "POST",
            path,
            headers=headers,
            body=body,
            read_rate=read_rate,
            stop_reading_after=stop_reading_after,
            disconnect_after=disconnect_after,
        )

    def flush(self) -> None:
        """Run the reactor until nothing is left to do without the clock moving: what is
        due now, what follows from it, and what the site's busy threads hand back."""
        self.clock.flush()

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, running each timer due meanwhile at its own time
        (clients reading at a rate read as time passes)."""
        self.clock.advance(seconds)

    def close(self) -> None:
        """Disconnect every open connection, let their streams end, and stop the reactor,
        which stops the site's threads (a thread blocked in a source is left to end with
        the process, as at a real shutdown)."""
        for connection in list(self._connections):
            connection.disconnect()
        for _ in range(1000):
            if not self.clock.run_turn():
                break
        self.clock.stop()

    def _open(self) -> int:
        """Connections still open."""
        return len(self._connections)


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""RFC 9110 §5.6.2's ``token``: a method or a field name."""


def _request_bytes(method: str, path: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 request."""
    if not path.isascii() or any(c.isspace() for c in path) or not path:
        raise ValueError(f"the path must be ASCII without spaces (percent-encode it): {path!r}")
    if not (path.startswith("/") or (path == "*" and method.upper() == "OPTIONS")):
        raise ValueError(
            f"the path must start with '/' (or be '*' for OPTIONS), as a request target "
            f"does (RFC 9112 §3.2): {path!r}"
        )
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"the method must be a token (RFC 9110 §9.1): {method!r}")
    fields = {"host": ("Host", "localhost"), "connection": ("Connection", "close")}
    if body or method.upper() in ("POST", "PUT", "PATCH"):
        fields["content-length"] = ("Content-Length", str(len(body)))
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n\0"):
            raise ValueError(
                f"a header needs a token for a name and no CR, LF or NUL in its value: "
                f"{name!r}: {value!r}"
            )
        fields[name.lower()] = (name, value)
    head = [f"{method} {path} HTTP/1.1", *(f"{name}: {value}" for name, value in fields.values())]
    return "\r\n".join([*head, "", ""]).encode("latin-1") + body
