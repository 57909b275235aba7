"""Two real sites on 127.0.0.1: an upstream with recording resources, and a proxy site
with a :class:`~twisted_stream.ProxyResource` in front of it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.web import pages
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from twisted_stream import (
    Channel,
    EventStreamResource,
    FileResource,
    ProxyResource,
    StreamingResource,
    StreamSite,
    request_body,
    stream,
    stream_for,
)
from twisted_stream._engine._stream import Stream

from ..http.conftest import certificate, tls_server  # noqa: F401 (fixtures of HTTP/2 tests)
from ..http.test_uploads import Store

BLOCK = bytes(range(256)) * 256
"""64 KiB of 0..255: byte ``i`` of a generated body is ``i % 256``."""


def pattern(size: int, piece: int = len(BLOCK)) -> bytes:
    """The first ``size`` bytes of the generated bodies."""
    whole = BLOCK * (size // len(BLOCK) + 1)
    return whole[:size]


class Upstream:
    """What the upstream site saw and did: each request (method, URI, headers, client
    port), bytes its endless source produced, the sources whose ``finally`` ran, its
    streams, and a channel for event streams."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.produced = 0
        self.closed: list[str] = []
        self.streams: list[Stream] = []
        self.channel = Channel(history=10)
        self.silent: list[Any] = []

    def record(self, request: Any) -> None:
        self.requests.append(
            {
                "method": request.method,
                "uri": request.uri,
                "headers": {
                    name.lower(): list(values)
                    for name, values in request.requestHeaders.getAllRawHeaders()
                },
                "port": request.getClientAddress().port,
            }
        )

    def keep(self, request: Any) -> None:
        handle = stream_for(request)
        if handle is not None:
            self.streams.append(handle)


class _Root(Resource):
    def getChild(self, path: bytes, request: Any) -> Resource:
        return pages.notFound()


class _Leaf(Resource):
    isLeaf = True

    def __init__(self, upstream: Upstream, render: Any) -> None:
        super().__init__()
        self.upstream = upstream
        self._render = render

    def render(self, request: Any) -> Any:
        result = self._render(request)
        self.upstream.keep(request)
        return result


def _query(request: Any, name: str, default: int) -> int:
    values = request.args.get(name.encode())
    return int(values[0]) if values else default


def upstream_tree(upstream: Upstream, files: Path) -> Resource:
    """The upstream's resources:

    - ``/bytes?size=N&piece=P[&chunked=1]``: ``N`` pattern bytes in ``P``-byte pieces, with
      ``Content-Length`` unless ``chunked``;
    - ``/endless[?size=N]``: 64 KiB blocks for ever (or ``N`` bytes, a multiple of 64 KiB,
      with ``Content-Length``), counted in ``produced``; its ``finally`` is recorded;
    - ``/broken``: 256 KiB, then the source fails;
    - ``/headers``: the request's headers as JSON, answered with hop-by-hop headers;
    - ``/silent``: never answers;
    - ``/stalled``: its head and a few body bytes, then nothing (never finished);
    - ``/events``: an event stream of ``channel``;
    - ``/files/``: a ``FileResource`` of ``files``;
    - ``/echo``: the SHA-256 and length of the request body.
    """

    def generated(request: Any) -> Any:
        size = _query(request, "size", 1000)
        piece = _query(request, "piece", len(BLOCK))
        body = pattern(size)
        pieces = (body[at : at + piece] for at in range(0, size, piece))
        length = None if request.args.get(b"chunked") else size
        return stream(
            request, pieces, content_type="application/octet-stream", content_length=length
        )

    def endless(request: Any) -> Any:
        size = _query(request, "size", 0)

        def blocks() -> Iterator[bytes]:
            try:
                while not size or upstream.produced < size:
                    upstream.produced += len(BLOCK)
                    yield BLOCK
            finally:
                upstream.closed.append("endless")

        return stream(
            request,
            blocks(),
            content_type="application/octet-stream",
            content_length=size or None,
        )

    def broken(request: Any) -> Any:
        def body() -> Iterator[bytes]:
            yield BLOCK * 4
            raise OSError("the upstream's disk failed")

        return stream(request, body(), content_type="application/octet-stream")

    def headers(request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"connection", b"X-Hop, Keep-Alive")
        request.setHeader(b"x-hop", b"for the next hop only")
        request.setHeader(b"keep-alive", b"timeout=5")
        request.setHeader(b"proxy-authenticate", b"Basic")
        request.setHeader(b"x-end-to-end", b"kept")
        seen = upstream.requests[-1]
        return json.dumps(
            {
                "uri": seen["uri"].decode("latin-1"),
                "headers": {
                    k.decode(): [v.decode("latin-1") for v in vs]
                    for k, vs in seen["headers"].items()
                },
            }
        ).encode()

    def silent(request: Any) -> Any:
        upstream.silent.append(request)
        return NOT_DONE_YET

    def stalled(request: Any) -> Any:
        upstream.silent.append(request)
        request.setHeader(b"content-type", b"application/octet-stream")
        request.write(b"first bytes")
        return NOT_DONE_YET

    def echo(request: Any) -> bytes:
        data = request.content.read()
        return b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())

    root = _Root()
    for name, render in {
        "bytes": generated,
        "endless": endless,
        "broken": broken,
        "headers": headers,
        "silent": silent,
        "stalled": stalled,
        "echo": echo,
    }.items():
        root.putChild(name.encode(), _Leaf(upstream, render))
    root.putChild(b"events", EventStreamResource(upstream.channel))
    root.putChild(b"files", FileResource(files))
    return root


class Dropper(StreamingResource):
    """``PUT``: reads the first chunk of the body, then aborts the connection (an upstream
    failing mid-upload)."""

    isLeaf = True
    stream_body = True
    max_body_size = 0

    def __init__(self) -> None:
        super().__init__()
        self.received = 0

    async def render_PUT(self, request: Any) -> bytes:
        body = request_body(request)
        self.received += len(await body.read(65536))
        request.channel.transport.abortConnection()
        return b""


def upload_resources(root: Resource) -> tuple[Store, Store, Dropper]:
    """The upstream's streaming body consumers, put on ``root``: ``/store`` and ``/big``
    (a :class:`~tests.http.test_uploads.Store` without a body limit), ``/small`` (one that
    takes at most 10 bytes) and ``/drop`` (:class:`Dropper`)."""
    store, small, dropper = Store(), Store(), Dropper()
    store.max_body_size = 0  # type: ignore[attr-defined]
    small.max_body_size = 10  # type: ignore[attr-defined]
    root.putChild(b"store", store)
    root.putChild(b"big", store)
    root.putChild(b"small", small)
    root.putChild(b"drop", dropper)
    return store, small, dropper


class _RecordingSite(StreamSite):
    """The upstream's site: records every request before it is rendered."""

    def __init__(self, resource: Resource, upstream: Upstream) -> None:
        super().__init__(resource)
        self.upstream = upstream

    def getResourceFor(self, request: Any) -> Any:
        self.upstream.record(request)
        return super().getResourceFor(request)


class Proxied:
    """An upstream site and a proxy site in front of it: the proxy's ``ProxyResource`` at
    ``/`` and another at ``/api`` (``http://upstream/``)."""

    def __init__(self, files: Path) -> None:
        self.upstream = Upstream()
        self.ports: list[Any] = []
        tree = upstream_tree(self.upstream, files)
        self.store, self.small, self.dropper = upload_resources(tree)
        self.upstream_site = _RecordingSite(tree, self.upstream)
        self.upstream_port = self._listen(self.upstream_site)
        self.proxy = ProxyResource(self.upstream_url(), timeout=5.0, connect_timeout=5.0)
        self.proxy_site = StreamSite(self.proxy)
        self.port = self._listen(self.proxy_site)

    def _listen(self, site: StreamSite) -> int:
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.ports.append(port)
        return int(port.getHost().port)

    def upstream_url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.upstream_port}{path}"

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        for request in self.upstream.silent:
            if not getattr(request, "finished", True) and not getattr(
                request, "_disconnected", False
            ):
                request.finish()
        pytest_twisted.blockon(self.proxy.pool.closeCachedConnections())
        for port in self.ports:
            pytest_twisted.blockon(port.stopListening())


@pytest.fixture
def warnings_logged() -> Generator[list[str], None, None]:
    """The text of each warning logged during the test."""
    found: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_level") is LogLevel.warn:
            found.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield found
    globalLogPublisher.removeObserver(observe)


@pytest.fixture
def proxied(tmp_path: Path) -> Generator[Proxied, None, None]:
    pair = Proxied(tmp_path)
    yield pair
    pair.close()
