"""``ProxyResource``: a streaming reverse proxy to one upstream HTTP server."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgent
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from .._errors import HTTPRefusal
from .._http._body import RequestBody
from .._http._head import header_tokens
from .._http._request_body import IStreamBodyResource, attached, request_body
from .._http._upstream import observe_pool
from .._sources._stream import default_reactor
from .._types import Reactor
from ._exchange import Exchange, Route, answer
from ._headers import header_bytes
from ._target import Upstream
from ._upload import UpstreamBody

DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
POOL_SIZE = 32
"""Idle connections a proxy's own pool keeps per upstream (Twisted's default is 2)."""
POOL_IDLE_SECONDS = 15
"""Seconds an idle pooled connection is kept: less than the keep-alive timeouts of common
servers (20 s for a ``StreamSite``'s ``header_timeout``, nginx 75 s), so the upstream rarely
closes one just as a request is sent on it."""


def proxy_pool(reactor: object) -> HTTPConnectionPool:
    """A persistent pool for a proxy: :data:`POOL_SIZE` idle connections per upstream,
    kept :data:`POOL_IDLE_SECONDS`."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = POOL_SIZE
    pool.cachedConnectionTimeout = POOL_IDLE_SECONDS
    return pool


@implementer(IResource, IStreamBodyResource)
class ProxyResource(Resource):
    """Forwards every request below it to ``upstream_url`` and streams the answer back.

    ``ProxyResource("http://127.0.0.1:9000")`` mounted at ``/api`` sends ``GET
    /api/items?page=2`` to ``http://127.0.0.1:9000/items?page=2`` (a base path in the URL is
    kept in front: ``http://host/v1`` gives ``/v1/items``; dot-segments are resolved, RFC
    3986 §5.2.4, and a path climbing above the mount point or a segment hiding a dot-segment
    such as ``..%2f`` gets ``400``), with the method, the request body and the end-to-end
    headers, over Twisted's ``Agent`` and a persistent ``HTTPConnectionPool`` (``pool``,
    else one of its own). The answer's status, reason,
    end-to-end headers and body are streamed back with flow control both ways: the upstream
    connection is read only as fast as the client reads (stall timeout, limits and metrics
    of the engine apply), and the client's body only as fast as the upstream takes it.

    Request bodies are streamed (it provides ``IStreamBodyResource``): each piece is read
    from the client only when the upstream connection has taken the previous one, so a slow
    upstream stops the client's socket being read (HTTP/2: keeps the stream's window
    closed), and nothing is buffered whole, in memory or on disk. A declared
    ``Content-Length`` is sent on; a body without one is sent chunked. ``Expect:
    100-continue`` is passed on: the client gets ``100 Continue`` only once the upstream
    asks for the body (or has not answered within a second, as curl does), and a final
    answer from the upstream first (``401``, ``413``, ...) is relayed without the body
    being read. The site's ``max_body_size`` applies (``413``, the upstream never gets the
    body, or its request is cut off); set ``max_body_size`` on the resource (bytes, 0: no
    limit) to change it for the proxy alone. The client leaving mid-body, or its body
    failing (too large, malformed, idle), aborts the upstream request.

    Hop-by-hop headers (RFC 9110 §7.6.1, and those a ``Connection`` header names) are
    dropped both ways; ``Via`` is appended both ways, ``X-Forwarded-For``,
    ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``Forwarded`` (RFC 7239) to the request.
    ``headers`` (``{name: value}``) are set on every upstream request, replacing the
    client's; ``preserve_host`` sends the client's ``Host`` instead of the upstream's.

    The client leaving aborts the upstream request at once (the connection is closed, never
    reused); an upstream failing mid-body closes the client's connection short. Failing to
    connect answers ``502``, a connect taking over ``connect_timeout`` seconds ``504``, and
    ``timeout`` seconds without progress before the response head (connecting, sending the
    body, waiting) ``504``, each with a one-line plain-text body naming the upstream. After
    the head, an upstream sending nothing for the site's ``idle_timeout`` (60 s when the
    site sets none, as nginx's ``proxy_read_timeout``) while the client waits for more is an
    upstream failure mid-body.
    ``Upgrade`` requests (WebSocket) and ``CONNECT`` get ``501``. Raises ``ValueError`` for
    an upstream URL that is not ``http://`` or ``https://`` with a host, or a timeout that
    is not positive.
    """

    isLeaf = True
    stream_body = True
    """Request bodies are streamed to the upstream as they arrive."""
    max_body_size: int | None = None
    """The most request body bytes relayed (0: no limit); None: the site's
    ``max_body_size``."""

    def __init__(
        self,
        upstream_url: str | bytes,
        *,
        pool: HTTPConnectionPool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        headers: Mapping[str | bytes, str | bytes] | None = None,
        preserve_host: bool = False,
        reactor: Reactor | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.upstream = Upstream.parse(upstream_url)
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.headers = header_bytes(headers or {})
        self.preserve_host = preserve_host
        self._pool = pool
        self._reactor = reactor
        self._route: Route | None = None

    @property
    def pool(self) -> HTTPConnectionPool:
        """The connection pool to the upstream (made on first use when none was given)."""
        self._routed()
        assert self._pool is not None
        return self._pool

    def _routed(self) -> Route:
        """What every exchange shares, made on first use (the reactor is imported only
        then)."""
        if self._route is None:
            reactor = default_reactor(self._reactor)
            if self._pool is None:
                self._pool = proxy_pool(reactor)
            pool = observe_pool(self._pool)
            agent: IAgent = Agent(reactor, connectTimeout=self.connect_timeout, pool=pool)
            self._route = Route(
                upstream=self.upstream,
                agent=agent,
                reactor=reactor,
                timeout=self.timeout,
                connect_timeout=self.connect_timeout,
                headers=self.headers,
                preserve_host=self.preserve_host,
            )
        return self._route

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self  # a leaf: Twisted never asks; kept whole for callers that do

    def render(self, request: Request) -> int:
        refusal = refused(request)
        if refusal is not None:
            answer(request, 501, refusal)
            return NOT_DONE_YET
        assert request.prepath is not None
        try:
            target = self.upstream.target(request.path, len(request.prepath), request.uri)
        except HTTPRefusal as unsafe:  # a path reaching above the mount point
            answer(request, unsafe.code, unsafe.message)
            return NOT_DONE_YET
        route = self._routed()
        reader = self._reader(request)
        if reader is not None and reader.error is not None:
            return NOT_DONE_YET  # refused (413 for a declared length over the limit)
        body = None
        if reader is not None:
            body = UpstreamBody(
                reader,
                clock=route.reactor,
                piece_size=reader.buffer_size,
                expect_continue=reader.expect_continue,
            )
        exchange = Exchange(request, route, target, body)
        if body is not None:
            body.on_progress = exchange.progress
        exchange.start()
        return NOT_DONE_YET

    def _reader(self, request: Request) -> RequestBody | None:
        """The client's request body as it arrives, None for a request without one."""
        if attached(request) is None:  # not streamed: none, or buffered by Twisted
            headers = request.requestHeaders
            framed = headers.hasHeader(b"content-length") or headers.hasHeader(
                b"transfer-encoding"
            )
            if not framed:
                return None
        return request_body(request)


def refused(request: Request) -> str | None:
    """Why ``request`` cannot be proxied (answered ``501``), or None: ``CONNECT``, and an
    ``Upgrade`` to anything but ``h2c`` (a server may ignore that one, RFC 9113 §3.1)."""
    if request.method == b"CONNECT":
        return "CONNECT is not proxied"
    protocols = header_tokens(request.requestHeaders.getRawHeaders(b"upgrade", []))
    wanted = sorted(p.decode("latin-1") for p in protocols if p != b"h2c")
    if wanted:
        return (
            f"Upgrade to {', '.join(wanted)} (WebSocket and other protocol switches) is not "
            "proxied yet"
        )
    return None
