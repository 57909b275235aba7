"""One Redis connection that comes back by itself: a ``ClientService`` (Twisted's reconnecting
client, with back-off) around ``txredisapi``'s protocol.

txredisapi parses and pipelines the Redis protocol; the connection's life is ours, so that a
command sent while Redis is away fails at once instead of waiting for the next connection
(what txredisapi's own connection pool does), and so that the code using it can tell a
reconnection from the first connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from .._sources._stream import default_reactor
from .._types import Reactor
from ._redis_address import RedisAddress

_log = Logger(namespace="twisted_stream.redis")


class RedisConnection(Protocol):
    """The part of txredisapi's ``RedisProtocol`` we use."""

    transport: Any

    def execute_command(self, *args: object, **kwargs: object) -> Deferred[Any]: ...

    def whenDisconnected(self) -> Deferred[Any]: ...


class _Factory(Factory):
    """Builds txredisapi protocols that hand back raw ``bytes`` (no decoding, no number
    conversion) and time out replies after ``timeout`` seconds."""

    noisy = False

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def buildProtocol(self, addr: object) -> Any:
        import txredisapi

        protocol = txredisapi.RedisProtocol(
            charset=None, convertNumbers=False, replyTimeout=self.timeout or None
        )
        protocol.factory = self
        return protocol


class RedisLink:
    """One reconnecting connection to ``address``.

    ``connection`` is the ready connection, or None while there is none. ``on_connect`` runs
    with each new connection once it is ready (after ``AUTH``/``SELECT`` and ``prepare``),
    ``reconnected`` telling whether there was one before.
    """

    def __init__(
        self,
        address: RedisAddress,
        *,
        name: str,
        timeout: float,
        retry: tuple[float, float],
        reactor: Reactor | None = None,
        prepare: Callable[[RedisConnection], Deferred[None]] | None = None,
        on_connect: Callable[[RedisConnection, bool], None] | None = None,
    ) -> None:
        self.address = address
        self.name = name
        self.connection: RedisConnection | None = None
        self._prepare_more = prepare
        self._on_connect = on_connect
        self._connected_before = False
        self._tried = False
        self._reactor = default_reactor(reactor)
        endpoint = HostnameEndpoint(self._reactor, address.host, address.port, timeout=timeout)
        self._service = ClientService(
            endpoint,
            _Factory(timeout),
            retryPolicy=backoffPolicy(initialDelay=retry[0], maxDelay=retry[1], factor=2.0),
            clock=cast(IReactorTime, self._reactor),
            prepareConnection=lambda protocol: self._prepare(cast(RedisConnection, protocol)),
        )
        self._waiters: list[Deferred[Any]] = []
        self._pending: list[tuple[tuple[object, ...], Deferred[Any], bool]] = []

    def start(self) -> None:
        if not self._service.running:
            first = self._service.whenConnected(failAfterFailures=1)
            first.addBoth(self._attempted)
            self._service.startService()

    def _attempted(self, _: object) -> None:
        # Called from inside a ClientService state transition, which user code must not
        # re-enter (stopping the service from a callback): fail the waiting commands later.
        self._reactor.callLater(0, self._first_done)

    def _first_done(self) -> None:
        self._tried = True
        if self.connection is None:  # the first attempt failed: no waiting for publishes
            keep: list[tuple[tuple[object, ...], Deferred[Any], bool]] = []
            for args, result, wait in self._pending:
                if wait:
                    keep.append((args, result, wait))
                else:
                    result.errback(ConnectionRefusedError("cannot connect"))
            self._pending = keep

    def execute(self, *args: object, wait: bool) -> Deferred[Any]:
        """Send a command; its reply. Without a connection: with ``wait``, the command waits
        for the next one; without, it fails at once (``ConnectionError``), except while
        the first connection is being made. Commands are sent in the order given."""
        connection = self.connection
        if connection is not None and not self._pending:
            try:
                return connection.execute_command(*args)
            except Exception as e:  # txredisapi raises when the connection just went
                return fail(e)
        if not wait and not self.trying_first:
            return fail(ConnectionError("not connected"))
        result: Deferred[Any] = Deferred()
        self._pending.append((args, result, wait))
        return result

    def _flush(self, connection: RedisConnection) -> None:
        pending, self._pending = self._pending, []
        for args, result, _wait in pending:
            try:
                connection.execute_command(*args).chainDeferred(result)
            except Exception as e:
                result.errback(e)

    def stop(self) -> Deferred[None]:
        """Close the connection and stop reconnecting."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(CancelledError("the connection to Redis was closed"))
        if not self._service.running:
            return succeed(None)
        stopped: Deferred[None] = self._service.stopService()
        return stopped

    @property
    def trying_first(self) -> bool:
        """True until the first connection attempt has succeeded or failed."""
        return not self._tried and bool(self._service.running)

    def when_connected(self) -> Deferred[Any]:
        """Fires with the next ready connection (at once if there is one)."""
        if self.connection is not None:
            return succeed(self.connection)
        waiter: Deferred[Any] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def _prepare(self, connection: RedisConnection) -> Deferred[None]:
        async def prepare() -> None:
            for command in self.address.setup_commands():
                await connection.execute_command(*command)
            await connection.execute_command("CLIENT", "SETNAME", f"twisted_stream-{self.name}")
            if self._prepare_more is not None:
                await self._prepare_more(connection)
            self._ready(connection)

        return Deferred.fromCoroutine(prepare())

    def _ready(self, connection: RedisConnection) -> None:
        self.connection = connection
        reconnected, self._connected_before = self._connected_before, True
        if reconnected:
            _log.info("Redis at {where} is back ({name})", where=self.address, name=self.name)
        connection.whenDisconnected().addCallback(lambda _: self._lost(connection))
        if self._on_connect is not None:
            self._on_connect(connection, reconnected)
        self._flush(connection)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(connection)

    def _lost(self, connection: RedisConnection) -> None:
        if self.connection is connection:
            self.connection = None
            if self._service.running:
                _log.warn(
                    "Lost the connection to Redis at {where} ({name}); reconnecting",
                    where=self.address,
                    name=self.name,
                )
