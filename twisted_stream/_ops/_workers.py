"""The parent of ``twistd streamweb --workers N``: it opens the listening sockets, runs N
worker processes on them and supervises them.

Why inherited sockets, not ``SO_REUSEPORT``: the parent opens each ``--port``/``--listen``
socket once and every worker adopts it (``adoptStreamPort``), so all workers accept from one
kernel queue. A worker that stops listening leaves the connections waiting in that queue to
the others, and the socket stays open in the parent whatever the workers do: replacing
workers one at a time refuses no connection. With ``SO_REUSEPORT`` each worker would have a
queue of its own, and the connections waiting in it are reset when that worker closes it;
the kernel also spreads connections by a hash, blind to how busy a worker is. Inherited
sockets work for TCP, TLS and UNIX endpoints alike, on every POSIX system.

Supervision: a worker that exits without being asked to is logged with its exit status and
started again, at once if it had run for :data:`STABLE_SECONDS`, else after a delay that
doubles from :data:`FIRST_DELAY` to :data:`MAX_DELAY` while it keeps dying. ``SIGTERM`` stops
the parent's own listening and sends ``SIGTERM`` to every worker, which drains its streams
exactly as a single process does (the same ``--grace-period``); the parent exits once all
have. ``SIGHUP`` replaces the workers one at a time: a new worker is started, and only once
it listens is the old one told to stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import endpoints
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from .._sources._stream import default_reactor
from .._types import Clock
from ._checks import listen_failure
from ._cluster import retire
from ._worker import CONTROL_FD, FIRST_PORT_FD, READY, WORKER_ENV, WorkerConfig

_log = Logger(namespace="twisted_stream.workers")

STABLE_SECONDS = 10.0
"""A worker that ran this long before dying is restarted at once."""
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
READY_TIMEOUT = 60.0
"""Longest a replacement worker may take to listen during a rolling restart."""
STOP_MARGIN = 15.0
"""Seconds beyond the grace period (and the closing of sources) after which workers that have
not exited are killed."""

_TWISTD = (
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; sys.exit(run())"
)


def describe_exit(reason: Failure) -> str:
    """How a process ended, in words: ``exited with status 3``, ``was killed by SIGKILL``."""
    value = reason.value
    if isinstance(value, ProcessTerminated) and value.signal is not None:
        try:
            name = signal.Signals(value.signal).name
        except ValueError:
            name = f"signal {value.signal}"
        return f"was killed by {name}"
    if isinstance(value, (ProcessDone, ProcessTerminated)):
        return f"exited with status {value.exitCode}"
    return f"ended: {reason.getErrorMessage()}"


class WorkerProcess(ProcessProtocol):
    """One worker process: ``ready`` fires once it listens, ``ended`` with how it ended; its
    log lines are logged here, prefixed with its number."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.pid: int | None = None
        self.ready: Deferred[None] = Deferred()
        self.ended: Deferred[str] = Deferred()
        self.asked_to_stop = False
        self._partial = b""

    def connectionMade(self) -> None:
        self.pid = self.transport.pid if self.transport is not None else None

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == CONTROL_FD:
            if READY.strip() in data and not self.ready.called:
                self.ready.callback(None)
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._relay(line)

    def _relay(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            _log.info("[worker {index}]{line}", index=self.index, line=_spaced(text))

    def processEnded(self, reason: Failure) -> None:
        if self._partial:
            self._relay(self._partial)
        if not self.ready.called:
            self.ready.errback(RuntimeError(f"worker {self.index} {describe_exit(reason)}"))
            self.ready.addErrback(lambda _: None)
        self.ended.callback(describe_exit(reason))

    def signal(self, name: str) -> None:
        """Send ``name`` (``"TERM"``, ``"KILL"``) if it is still running."""
        if self.ended.called or self.transport is None:
            return
        try:
            self.transport.signalProcess(name)
        except Exception:  # ProcessExitedAlready: it is ending anyway
            pass

    def stop(self) -> None:
        self.asked_to_stop = True
        self.signal("TERM")


def _spaced(text: str) -> str:
    return text if text.startswith(" ") else " " + text


@dataclass
class _Slot:
    """Worker number ``index``: its process, and how often it died young in a row."""

    index: int
    worker: WorkerProcess | None = None
    started: float = 0.0
    failures: int = 0
    timer: IDelayedCall | None = None
    candidates: list[WorkerProcess] = field(default_factory=list)


class Supervisor:
    """Keeps ``count`` workers running; ``spawn(index)`` starts worker ``index`` (1 to N)."""

    def __init__(
        self,
        count: int,
        spawn: Callable[[int], WorkerProcess],
        clock: Clock,
        *,
        on_ended: Callable[[WorkerProcess], None] = lambda worker: None,
    ) -> None:
        self._spawn = spawn
        self._clock = clock
        self._on_ended = on_ended
        self.slots = [_Slot(index) for index in range(1, count + 1)]
        self.stopping = False
        self.rolling: Deferred[None] | None = None

    @property
    def workers(self) -> list[WorkerProcess]:
        """Every running worker, replacements being started included."""
        found = [s.worker for s in self.slots if s.worker is not None]
        return found + [c for s in self.slots for c in s.candidates]

    def start(self) -> None:
        for slot in self.slots:
            self._launch(slot)

    def _launch(self, slot: _Slot) -> WorkerProcess:
        slot.timer = None
        worker = self._spawn(slot.index)
        slot.worker = worker
        slot.started = self._clock.seconds()
        worker.ended.addCallback(self._ended, slot, worker)
        return worker

    def _ended(self, how: str, slot: _Slot, worker: WorkerProcess) -> None:
        self._on_ended(worker)
        if worker in slot.candidates:
            slot.candidates.remove(worker)
        if slot.worker is not worker:  # replaced by a rolling restart, or a failed replacement
            log = _log.info if worker.asked_to_stop else _log.error
            log("Worker {index} (pid {pid}, replaced) {how}",
                index=slot.index, pid=worker.pid, how=how)  # fmt: skip
            return
        slot.worker = None
        if self.stopping or worker.asked_to_stop:
            _log.info(
                "Worker {index} (pid {pid}) {how}", index=slot.index, pid=worker.pid, how=how
            )
            return
        lived = self._clock.seconds() - slot.started
        slot.failures = 0 if lived >= STABLE_SECONDS else slot.failures + 1
        delay = (
            0.0 if slot.failures <= 1 else min(MAX_DELAY, FIRST_DELAY * 2 ** (slot.failures - 2))
        )
        _log.error(
            "Worker {index} (pid {pid}) {how} after {lived:.1f} s; restarting it{when}",
            index=slot.index,
            pid=worker.pid,
            how=how,
            lived=lived,
            when=f" in {delay:g} s (it keeps dying)" if delay else "",
        )
        slot.timer = self._clock.callLater(delay, self._launch, slot)

    def rolling_restart(self) -> Deferred[None]:
        """Replace the workers one at a time (``SIGHUP``); fires when done."""
        if self.rolling is not None:
            _log.info("A rolling restart is already running")
            return self.rolling
        self.rolling = Deferred.fromCoroutine(self._roll())

        def done(result: object) -> None:
            self.rolling = None

        self.rolling.addBoth(done)
        return self.rolling

    async def _roll(self) -> None:
        _log.info("Rolling restart of {count} workers", count=len(self.slots))
        for slot in self.slots:
            if self.stopping:
                return
            old = slot.worker
            new = self._spawn(slot.index)
            slot.candidates.append(new)
            new.ended.addCallback(self._ended, slot, new)
            try:
                await new.ready.addTimeout(READY_TIMEOUT, self._clock)  # type: ignore[arg-type]
            except Exception as e:
                new.stop()
                _log.error("Rolling restart stopped: the new worker {index} did not start "
                           "({e}); the old ones keep serving", index=slot.index, e=e)  # fmt: skip
                return
            if new in slot.candidates:
                slot.candidates.remove(new)
            slot.worker, slot.started, slot.failures = new, self._clock.seconds(), 0
            if slot.timer is not None and slot.timer.active():
                slot.timer.cancel()
            if old is not None:
                old.stop()
                await old.ended
        _log.info("Rolling restart done")

    def stop(self) -> Deferred[Any]:
        """Stop every worker (``SIGTERM``: each drains its streams); fires once all ended."""
        self.stopping = True
        for slot in self.slots:
            if slot.timer is not None and slot.timer.active():
                slot.timer.cancel()
        workers = self.workers
        for worker in workers:
            worker.stop()
        return DeferredList([w.ended for w in workers])


class _Held(Protocol):
    """Never used: the parent's listening sockets are read only by its workers."""


class StreamWebWorkers(Factory):
    """The factory of the parent's listening ports (it never accepts a connection)."""

    protocol = _Held
    noisy = False


def open_port(description: str) -> IListeningPort:
    """Listen on ``description`` in this process without accepting: the socket is for the
    workers. Raises what listening raises (``CannotListenError``...)."""
    reactor = default_reactor(None)
    got: list[Any] = []
    endpoints.serverFromString(reactor, description).listen(Factory.forProtocol(_Held)).addBoth(
        got.append
    )
    if isinstance(got[0], Failure):
        got[0].raiseException()
    port: Any = got[0]
    port.stopReading()  # the workers accept; this process only keeps the socket open
    return port  # type: ignore[no-any-return]


class WorkerParent(MultiService):
    """What ``twistd streamweb --workers N`` runs in the parent process."""

    def __init__(
        self,
        argv: Sequence[str],
        ports: Sequence[str],
        count: int,
        grace_period: float,
        *,
        announce: Callable[[Any, bool], list[str]] = lambda address, tls: [],
    ) -> None:
        """``announce(address, tls)``: the start-up lines of a port listening at
        ``address`` (the URLs to open)."""
        super().__init__()  # type: ignore[no-untyped-call]
        self._announce = announce
        self.argv = list(argv)
        self.descriptions = tuple(ports)
        self.count = count
        self.grace_period = grace_period
        self.ports: list[IListeningPort] = []
        self.state = ""
        self.supervisor: Supervisor | None = None
        self._previous_hup: Any = None

    def privilegedStartService(self) -> None:
        # twistd calls this before dropping privileges: open the listening sockets.
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        try:
            for description in self.descriptions:
                self.ports.append(open_port(description))
        except Exception as e:
            raise listen_failure(e) from None
        for port, description in zip(self.ports, self.descriptions, strict=True):
            host = port.getHost()
            where = f"{getattr(host, 'host', '')}:{getattr(host, 'port', '')}".strip(":")
            where = where or str(getattr(host, "name", host))
            _log.info("Listening on {where} for {count} workers", where=where, count=self.count)
            for line in self._announce(host, description.startswith("ssl:")):
                _log.info("{line}", line=line)

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.state = tempfile.mkdtemp(prefix="streamweb-workers-")
        reactor = default_reactor(None)
        self.supervisor = Supervisor(
            self.count, self._spawn, reactor, on_ended=lambda w: self._retire(w)
        )
        self.supervisor.start()
        self._previous_hup = signal.signal(
            signal.SIGHUP, lambda *_: reactor.callFromThread(self._hup)
        )

    def _hup(self) -> None:
        if self.supervisor is not None and not self.supervisor.stopping:
            self.supervisor.rolling_restart()

    def _retire(self, worker: WorkerProcess) -> None:
        if worker.pid is not None and self.state:
            retire(self.state, worker.pid)

    def _spawn(self, index: int) -> WorkerProcess:
        reactor: Any = default_reactor(None)
        worker = WorkerProcess(index)
        env = dict(os.environ)
        env[WORKER_ENV] = WorkerConfig(index, self.state).to_env()
        env.setdefault("PYTHONUNBUFFERED", "1")
        fds: dict[int, Any] = {0: "w", 1: 1, 2: "r", CONTROL_FD: "r"}
        for offset, port in enumerate(self.ports):
            fds[FIRST_PORT_FD + offset] = port.fileno()  # type: ignore[attr-defined]
        logger = "--logger=twisted_stream._ops._worker.log_observer"
        args = [sys.executable, "-c", _TWISTD, "-n", "--pidfile=", logger, "streamweb", *self.argv]
        reactor.spawnProcess(worker, sys.executable, args, env=env, path=os.getcwd(), childFDs=fds)
        return worker

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
        for port in self.ports:
            port.stopListening()  # the workers' copies close as they stop listening
        supervisor = self.supervisor
        done: Deferred[None] = Deferred()
        if supervisor is None:
            done.callback(None)
            return done
        reactor = default_reactor(None)
        kill = reactor.callLater(self.grace_period + STOP_MARGIN, self._kill_all)
        _log.info("Stopping {count} workers", count=len(supervisor.workers))

        def ended(_: object) -> None:
            if kill.active():
                kill.cancel()
            shutil.rmtree(self.state, ignore_errors=True)
            done.callback(None)

        supervisor.stop().addCallback(ended)
        return done

    def _kill_all(self) -> None:
        if self.supervisor is not None:
            for worker in self.supervisor.workers:
                _log.warn("Worker {index} (pid {pid}) did not stop in time: killing it",
                          index=worker.index, pid=worker.pid)  # fmt: skip
                worker.signal("KILL")
