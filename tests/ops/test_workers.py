"""``twistd streamweb --workers N``: the supervisor's restart policy on a fake clock, then
the real thing: a parent and its workers on one port, a worker killed and restarted, a
rolling restart under a hammering client, SIGTERM draining every worker, and the metrics and
status pages covering all workers."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from twisted_stream._ops import _workers
from twisted_stream._ops._workers import Supervisor, WorkerProcess

from ..rawclient import RawClient, connect, get, parse_response, raw_get
from ..waiting import until, within
from .test_plugin_e2e import LOCAL, PROJECT, Twistd, twistd_processes

APP = "tests.ops.scale_app:resource"


# The restart policy, on a fake clock.


class FakeWorker(WorkerProcess):
    """A worker that never runs: the test ends it."""

    def __init__(self, index: int, pid: int) -> None:
        super().__init__(index)
        self.pid = pid
        self.signals: list[str] = []

    def signal(self, name: str) -> None:
        self.signals.append(name)

    def die(self, how: str = "exited with status 1") -> None:
        self.ended.callback(how)


class FakeSpawner:
    def __init__(self) -> None:
        self.started: list[FakeWorker] = []

    def __call__(self, index: int) -> WorkerProcess:
        worker = FakeWorker(index, 1000 + len(self.started))
        self.started.append(worker)
        return worker


def test_a_dying_worker_is_restarted_with_back_off() -> None:
    """A worker that dies is started again at once; one that keeps dying young waits 0.5 s,
    then 1 s, 2 s... (up to 30 s); one that ran STABLE_SECONDS is restarted at once again.
    Workers asked to stop are not restarted."""
    clock = MemoryReactorClock()
    spawn = FakeSpawner()
    supervisor = Supervisor(2, spawn, clock)
    supervisor.start()
    assert [w.index for w in spawn.started] == [1, 2]
    delays = []
    for _ in range(5):
        spawn.started[-2 if len(spawn.started) == 2 else -1].die()  # worker 1 dies young
        (call,) = [c for c in clock.getDelayedCalls() if c.active()]
        delays.append(call.getTime() - clock.seconds())
        before = len(spawn.started)
        clock.advance(delays[-1])
        assert len(spawn.started) == before + 1 and spawn.started[-1].index == 1
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0]
    clock.advance(_workers.STABLE_SECONDS)
    spawn.started[-1].die()  # after a long life: at once again
    (call,) = [c for c in clock.getDelayedCalls() if c.active()]
    assert call.getTime() == clock.seconds()
    clock.advance(0)
    stopped = supervisor.stop()
    assert all("TERM" in w.signals for w in supervisor.workers)
    for worker in list(supervisor.workers):
        worker.die("was killed by SIGTERM")
    assert stopped.called
    assert len(spawn.started) == 8  # nothing restarted after stop()


def test_a_rolling_restart_replaces_one_worker_at_a_time() -> None:
    """SIGHUP's rolling restart starts worker 1's replacement, stops the old worker 1 only
    once the new one is ready, waits for it to end, then does worker 2."""
    clock = MemoryReactorClock()
    spawn = FakeSpawner()
    supervisor = Supervisor(2, spawn, clock)
    supervisor.start()
    old1, old2 = spawn.started
    done = supervisor.rolling_restart()
    new1 = spawn.started[-1]
    assert new1.index == 1 and old1.signals == []  # the old one serves until then
    new1.ready.callback(None)
    assert old1.signals == ["TERM"] and len(spawn.started) == 3
    old1.die("was killed by SIGTERM")  # it drained and ended: next
    new2 = spawn.started[-1]
    assert new2.index == 2 and old2.signals == []
    new2.ready.callback(None)
    old2.die("was killed by SIGTERM")
    assert done.called
    assert supervisor.workers == [new1, new2]
    assert not clock.getDelayedCalls()  # the replaced ones are not restarted


# The real thing.


@pytest.fixture
def twistd() -> Iterator[Any]:
    yield from twistd_processes()


async def start_workers(twistd: Any, *extra: str, workers: int = 2) -> tuple[Twistd, int]:
    """A parent with ``workers`` workers serving the scale app; its port, once all listen."""
    proc: Twistd = twistd(
        "streamweb", "--workers", str(workers), "--app", APP, "--port", LOCAL,
        "--grace-period", "0.3", *extra, cwd=PROJECT,
    )  # fmt: skip
    port = int((await proc.wait_for(r"Listening on 127\.0\.0\.1:(\d+) for")).group(1))
    for index in range(1, workers + 1):
        await proc.wait_for(rf"Worker {index} \(pid \d+\) ready")
    return proc, port


def ready_pids(proc: Twistd) -> dict[int, int]:
    """The latest pid of each worker number, from the "ready" lines."""
    found: dict[int, int] = {}
    for line in proc.lines:
        match = re.search(r"Worker (\d+) \(pid (\d+)\) ready", line)
        if match:
            found[int(match.group(1))] = int(match.group(2))
    return found


async def serving_pid(port: int) -> int:
    status, _headers, body = await raw_get(port, "/pid")
    assert status == 200
    return int(body)


async def reach(port: int, pids: set[int], timeout: float = 20.0) -> None:
    """Send requests (each on a new connection) until every pid of ``pids`` answered one:
    the kernel hands connections to whichever worker accepts first."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while not pids <= seen:
        assert time.monotonic() < deadline, f"only {seen} of {pids} answered"
        seen.add(await serving_pid(port))


async def open_event_streams(port: int, per_worker: int, workers: set[int]) -> list[RawClient]:
    """Event streams until each worker of ``workers`` serves ``per_worker`` of them."""
    clients: list[RawClient] = []
    count: dict[int, int] = {}
    deadline = time.monotonic() + 20
    while any(count.get(pid, 0) < per_worker for pid in workers):
        assert time.monotonic() < deadline, f"streams per worker: {count}"
        client = await connect(port, get("/events"))
        await within(client.received_at_least(1))
        await until(lambda c=client: b"\r\n\r\n" in c.received, what="the headers")
        _status, headers, _ = parse_response(bytes(client.received))
        pid = int(headers["x-worker-pid"][0])
        if count.get(pid, 0) < per_worker:
            count[pid] = count.get(pid, 0) + 1
            clients.append(client)
        else:
            client.transport.loseConnection()  # type: ignore[union-attr]
    return clients


@pytest_twisted.ensureDeferred
async def test_workers_share_the_port(twistd: Any) -> None:
    """--workers 2 starts two worker processes on the one port the parent opened; each
    serves requests, and neither is the parent."""
    proc, port = await start_workers(twistd)
    pids = set(ready_pids(proc).values())
    assert len(pids) == 2 and proc.proc.pid not in pids
    await reach(port, pids)
    await proc.terminate()


@pytest_twisted.ensureDeferred
async def test_a_dead_worker_is_logged_and_restarted(twistd: Any) -> None:
    """A worker killed with SIGKILL is logged with how it ended and started again; the new
    one serves."""
    proc, port = await start_workers(twistd)
    old = ready_pids(proc)[1]
    os.kill(old, signal.SIGKILL)
    await proc.wait_for(rf"Worker 1 \(pid {old}\) was killed by SIGKILL after .* restarting it")
    new = int((await proc.wait_for(rf"Worker 1 \(pid (?!{old}\))(\d+)\) ready")).group(1))
    await reach(port, {new})
    await proc.terminate()


@pytest_twisted.ensureDeferred
async def test_sighup_replaces_workers_with_no_refused_connection(twistd: Any) -> None:
    """SIGHUP replaces both workers one at a time while a client sends request after request
    on new connections: every request is answered, and the new workers serve afterwards."""
    proc, port = await start_workers(twistd)
    old = set(ready_pids(proc).values())
    answered: list[int] = []
    failures: list[str] = []
    rolling = True

    async def hammer() -> None:
        while rolling:
            try:
                answered.append(await serving_pid(port))
            except Exception as e:
                failures.append(f"{e!r} after: {proc.lines[-1]}")

    hammering = Deferred.fromCoroutine(hammer())
    await until(lambda: len(answered) >= 5, what="the client to start")
    proc.proc.send_signal(signal.SIGHUP)
    await proc.wait_for("Rolling restart done", timeout=60)
    new = set(ready_pids(proc).values())
    await until(lambda: bool(new & set(answered[-5:])), what="the new workers to serve")
    rolling = False
    await within(hammering)
    assert failures == [], proc.output
    assert not new & old and len(new) == 2
    assert len(answered) > 20
    await proc.terminate()


@pytest_twisted.ensureDeferred
async def test_sigterm_drains_every_worker(twistd: Any) -> None:
    """SIGTERM to the parent: each worker ends its event streams cleanly after the grace
    period (complete events, then the connection closes), and the parent exits after them."""
    proc, port = await start_workers(twistd)
    clients = await open_event_streams(port, 1, set(ready_pids(proc).values()))
    await proc.terminate()
    for client in clients:
        await within(client.closed)
        body = bytes(client.received).partition(b"\r\n\r\n")[2]
        assert body.endswith(b"0\r\n\r\n")  # the chunked terminator: ended, not cut
    assert proc.output.count("Server Shut Down.") == 3  # two workers and the parent
    assert proc.output.rindex("Server Shut Down.") > proc.output.rindex("[worker")


@pytest_twisted.ensureDeferred
async def test_metrics_and_status_cover_every_worker(twistd: Any) -> None:
    """--metrics and --status, served by any one worker, count the streams of all workers;
    the status page lists each stream with its worker."""
    proc, port = await start_workers(twistd, "--metrics", "/_m", "--status", "/_s")
    pids = ready_pids(proc)
    clients = await open_event_streams(port, 2, set(pids.values()))

    async def converged(path: str, done: Callable[[str], bool]) -> str:
        """``path``'s body once ``done`` accepts it: each worker's figures reach the
        others within 0.5 s, so any one page may lag behind for that long."""
        deadline = time.monotonic() + 10
        while True:
            body = (await raw_get(port, path))[2].decode()
            if done(body):
                return body
            assert time.monotonic() < deadline, body

    await converged("/_m", lambda body: "twisted_stream_streams_active 4.0" in body)

    def event_workers(body: str) -> list[int]:
        streams = json.loads(body)["streams"]
        return sorted(s["worker"] for s in streams if s["path"] == "/events")

    status = await converged("/_s?json", lambda body: event_workers(body) == [1, 1, 2, 2])
    assert sorted(w["worker"] for w in json.loads(status)["workers"]) == [1, 2]
    page = (await raw_get(port, "/_s"))[2].decode()
    assert '<th data-col="worker">worker</th>' in page
    for client in clients:
        client.transport.loseConnection()  # type: ignore[union-attr]
    await proc.terminate()
