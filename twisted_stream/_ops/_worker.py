"""The worker side of ``twistd streamweb --workers N``: a worker is ``twistd streamweb`` run
with the parent's command line, which adopts the listening sockets the parent passed instead
of opening its own, and talks to the parent through its standard descriptors.

Descriptors of a worker (set up by :mod:`._workers`): 0 is a pipe from the parent (its end
means the parent is gone: the worker shuts down gracefully); 1 is the parent's standard
output (``--logfile -``); 2 carries the worker's log lines to the parent, which logs them;
3 is where the worker says ``ready`` once it listens; 4, 5, ... are the listening sockets,
in the order of the ``--port``/``--listen`` options. :data:`WORKER_ENV` holds the worker's
number and the directory of the shared figures (:mod:`._cluster`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import FileLogObserver, ILogObserver, Logger, formatEventAsClassicLogText
from twisted.python.failure import Failure

from .._http._twisted import connection_state, transport_of
from .._sources._stream import default_reactor
from ._cluster import Cluster
from ._shutdown import GracefulShutdown
from ._site import StreamSite

_log = Logger(namespace="twisted_stream.workers")

WORKER_ENV = "TWISTED_STREAM_WORKER"
CONTROL_FD = 3
FIRST_PORT_FD = 4
READY = b"ready\n"


@dataclass(frozen=True)
class WorkerConfig:
    """What a parent tells its worker."""

    index: int
    state: str
    """The directory of the workers' shared figures."""

    def to_env(self) -> str:
        return json.dumps({"index": self.index, "state": self.state})

    @classmethod
    def from_env(cls) -> WorkerConfig | None:
        """The configuration of this process if it is a worker, else None."""
        text = os.environ.get(WORKER_ENV)
        if not text:
            return None
        data = json.loads(text)
        return cls(int(data["index"]), str(data["state"]))


def log_observer() -> ILogObserver:
    """The log of a worker (``twistd --logger``): classic log lines without a timestamp on
    descriptor 2, which its parent reads and logs with its own."""
    out = sys.__stderr__
    assert out is not None
    return FileLogObserver(out, lambda event: formatEventAsClassicLogText(event, lambda _: ""))


class _AdoptingReactor:
    """A reactor whose ``listenTCP``/``listenSSL``/``listenUNIX`` adopt the already listening
    socket ``fd`` instead of opening one: any endpoint description Twisted parses (TLS
    options included) then serves on the socket the parent opened."""

    def __init__(self, reactor: Any, fd: int) -> None:
        self._reactor = reactor
        self._fd = fd

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def _adopt(self, factory: Any) -> IListeningPort:
        with socket.socket(fileno=os.dup(self._fd)) as probe:
            family = probe.family
        port: IListeningPort = self._reactor.adoptStreamPort(self._fd, family, factory)
        _accept_one_per_wakeup(port)
        return port

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        return self._adopt(factory)

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        return self._adopt(TLSMemoryBIOFactory(contextFactory, False, factory))

    def listenUNIX(self, address: str, factory: Any, *args: Any, **kwargs: Any) -> Any:
        return self._adopt(factory)


def _accept_one_per_wakeup(port: Any) -> None:
    """Make ``port`` accept one connection each time the socket is readable. Every worker
    is woken for a new connection and Twisted's port would accept all that are waiting (up
    to 100 and more): the first worker awake, often the same one, would take a burst whole.
    One at a time, a worker busy serving comes back later and an idle one takes more."""
    read = port.doRead

    def doRead() -> Any:
        port.numberAccepts = 1
        return read()

    port.doRead = doRead


def adopted_port(description: str, fd: int, site: StreamSite) -> Service:
    """The port service serving ``site`` on the inherited listening socket ``fd``, which the
    parent opened for endpoint ``description``."""
    reactor = _AdoptingReactor(default_reactor(None), fd)
    endpoint = endpoints.serverFromString(reactor, description)
    service = StreamServerEndpointService(endpoint, site)
    service._raiseSynchronously = True
    return service


class _Parent(Protocol):
    """Descriptor 0 (from the parent) and 3 (to it): says ready; stops the worker when the
    parent is gone."""

    def __init__(self, gone: Callable[[], None]) -> None:
        self._gone = gone

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._gone()


class _Connections:
    """The connections of ``site`` in this worker, for a shutdown that loses no request.

    When a worker stops listening (at shutdown, or replaced by a rolling restart) it may
    have just accepted connections whose request it has not read yet, or answered one whose
    response is still in its write buffer: the reactor's shutdown would close those with
    nothing sent. So at shutdown each connection is waited for until it has asked and been
    answered, and then closed after its buffer is flushed (``loseConnection``)."""

    def __init__(self, site: StreamSite) -> None:
        self._open: weakref.WeakSet[Any] = weakref.WeakSet()
        self._asked: weakref.WeakSet[Any] = weakref.WeakSet()
        build: Callable[[Any], Any] = site.buildProtocol
        resource_for: Callable[[Any], Any] = site.getResourceFor

        def tracked(address: Any) -> Any:
            protocol = build(address)
            if protocol is not None:
                self._open.add(protocol)
            return protocol

        def marked(request: Any) -> Any:
            transport = transport_of(request)
            if transport is not None:
                self._asked.add(transport)
            return resource_for(request)

        site.buildProtocol = tracked  # type: ignore[method-assign]
        site.getResourceFor = marked  # type: ignore[method-assign]

    def settle(self) -> bool:
        """Close the connections that asked and were answered (after their buffers are
        sent); whether some are still open."""
        remaining = False
        for protocol in list(self._open):
            found, in_flight = connection_state(protocol)
            transport: Any = found
            if transport is None or not transport.connected:
                continue
            remaining = True
            if transport in self._asked and in_flight == 0 and not transport.disconnecting:
                transport.loseConnection()
        return remaining


class WorkerService(Service):
    """Added last to a worker's service: says ``ready`` once the ports listen, publishes the
    site's figures for the other workers, and shuts the worker down if the parent dies."""

    def __init__(
        self,
        config: WorkerConfig,
        site: StreamSite,
        shutdown: GracefulShutdown,
        rows: Callable[[StreamSite], list[dict[str, Any]]],
    ) -> None:
        self.config = config
        self.shutdown = shutdown
        self.cluster = Cluster(site, config.state, config.index, rows=rows)
        self._connections = _Connections(site)
        self._stopping = False
        self._stdio: Any = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        from twisted.internet import stdio

        # A hangup of the terminal reaches the whole process group: the parent decides
        # (SIGHUP to it replaces the workers), a worker carries on.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.cluster.start()
        # POSIX's StandardIO takes the descriptors (the stubs mypy reads are Windows').
        standard_io: Any = stdio.StandardIO
        self._stdio = standard_io(_Parent(self._parent_gone), stdin=0, stdout=CONTROL_FD)
        self._stdio.write(READY)
        _log.info("Worker {index} (pid {pid}) ready", index=self.config.index, pid=os.getpid())

    def _parent_gone(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        _log.warn("The parent process is gone: shutting down")
        reactor = default_reactor(None)
        reactor.callLater(0, reactor.stop)  # type: ignore[attr-defined]

    def stopService(self) -> Deferred[None]:
        self._stopping = True
        super().stopService()  # type: ignore[no-untyped-call]

        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        reactor = default_reactor(None)
        deadline = reactor.seconds() + self.shutdown.grace_period
        drained = self.shutdown.drain()
        while self._connections.settle() and reactor.seconds() < deadline:
            # No event says "this connection's request arrived": look every few ms.
            await deferLater(cast(IReactorTime, reactor), 0.005, lambda: None)
        await drained
        self.cluster.stop()  # the final figures, after every stream ended
