"""Shared fixtures: a real Site listening on 127.0.0.1 and a treq client for it."""

from __future__ import annotations

import gc
from collections.abc import Callable, Generator
from typing import Any

import pytest
import pytest_twisted
from hypothesis import HealthCheck, settings
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource

from twisted_stream import StreamSite, stream_for
from twisted_stream._engine._stream import Stream

from .redis_server import RedisServer, redis_servers
from .waiting import until

# Hypothesis' per-example deadline (200 ms) and its too-slow health check time the machine,
# not the code: on a loaded machine they fail at random. Its CI profile (``CI`` set) drops
# both already; this does the same for ``pytest`` run by hand.
settings.register_profile(
    "twisted_stream",
    parent=settings.default,
    deadline=None,
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.too_slow],
)
settings.load_profile("twisted_stream")


class Server:
    """A listening site; ``url(path)`` builds a URL for it."""

    def __init__(self) -> None:
        self.ports: list[Any] = []
        self.site: StreamSite | None = None

    def serve(self, resource: Resource, **site_kwargs: Any) -> StreamSite:
        site = StreamSite(resource, **site_kwargs)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.ports.append(port)
        self.site = site
        return site

    @property
    def port(self) -> int:
        return int(self.ports[-1].getHost().port)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server() -> Generator[Server, None, None]:
    srv = Server()
    yield srv
    for port in srv.ports:
        pytest_twisted.blockon(port.stopListening())


@pytest.fixture
def client() -> Generator[HTTPClient, None, None]:
    pool = HTTPConnectionPool(reactor, persistent=False)
    yield HTTPClient(Agent(reactor, pool=pool))
    pytest_twisted.blockon(pool.closeCachedConnections())


@pytest.fixture
def keepalive_client() -> Generator[HTTPClient, None, None]:
    pool = HTTPConnectionPool(reactor, persistent=True)
    yield HTTPClient(Agent(reactor, pool=pool))
    pytest_twisted.blockon(pool.closeCachedConnections())


def leaf(render: Callable[[Any], Any]) -> Resource:
    """A leaf Resource whose GET (and HEAD) is ``render``."""

    class _Leaf(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            return render(request)

    return _Leaf()


class Served:
    """Records the streams a test resource starts."""

    def __init__(self) -> None:
        self.streams: list[Stream] = []

    def add(self, request: Any) -> None:
        handle = stream_for(request)
        assert handle is not None
        self.streams.append(handle)

    async def first(self) -> Stream:
        await until(lambda: bool(self.streams), what="a stream to start")
        return self.streams[0]


def serve_streams(server: Server, start: Callable[[Any], Any]) -> Served:
    """Serve a leaf whose GET is ``start(request)`` (a ``stream*()`` call) on ``server``,
    recording each stream it starts."""
    served = Served()

    def render(request: Any) -> Any:
        result = start(request)
        served.add(request)
        return result

    server.serve(leaf(render))
    return served


@pytest.fixture
def logged() -> Generator[list[dict[str, Any]], None, None]:
    """Error and critical log events (tracebacks, unhandled errors in Deferreds)."""
    events: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_level") in (LogLevel.error, LogLevel.critical):
            events.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        yield events
    finally:
        gc.collect()  # "Unhandled error in Deferred" is logged when the Deferred is collected
        globalLogPublisher.removeObserver(observe)


def logged_text(events: list[dict[str, Any]]) -> list[str]:
    """Each event of :func:`logged` as its format, with the failure's type and message."""
    texts = []
    for event in events:
        failure = event.get("log_failure")
        text = str(event.get("log_format", ""))
        if isinstance(failure, Failure):
            text += f" [{failure.type.__name__}: {failure.value}]"
        texts.append(text)
    return texts


@pytest.fixture
def redis() -> Generator[RedisServer, None, None]:
    """A real redis-server on a free port of 127.0.0.1, without persistence."""
    yield from redis_servers()


@pytest.fixture
def logged_lines() -> Generator[list[str], None, None]:
    """Every line of the log, formatted."""
    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)
