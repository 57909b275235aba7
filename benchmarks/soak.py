"""Soak: hold thousands of mixed streams for minutes and check that nothing grows.

Not a test: run it by hand (it takes ``--minutes``, 10 by default)::

    python -m benchmarks.soak                 # 2,000 streams for 10 minutes
    python -m benchmarks.soak --quick         # 1 minute
    python -m benchmarks.soak --streams 500 --minutes 3
    python -m benchmarks.soak --smoke         # seconds: checks that it runs, not the verdict

A server process (this script with ``--serve``) runs a ``StreamSite`` on 127.0.0.1 with:
paced generators (``/gen``), async generators (``/agen``), blocking generators in the thread
pool (``/tgen``), files through ``FileResource`` (``/files/``), event streams (``/events``),
and the metrics and status pages. This process is the client: it keeps ``--streams``
connections open at all times, each a random kind and a random behaviour, and opens a new
one whenever one ends:

- ``normal``: reads the whole response (file downloads are rate-limited, as a browser on a
  slow link would be; event streams are read for a random while, then left);
- ``slow``: reads in bursts, far below the stream's rate, but drains its buffer well within
  the stall timeout, so the server must keep it going;
- ``stall``: stops reading; the server's stall timeout (``--stall-timeout``) must abort it;
- ``disconnect``: leaves at a random moment, half of them with a reset (RST).

Every ``--sample`` seconds it prints the server's RSS, descriptors, threads and the counts
so far. It reports the figures at four points: idle before the load, the start of the
measured period (once the load is up and ``--warmup`` has passed: allocator arenas and caches
have grown to the load), the end of the run (same load), and idle after every client has
left. Errors are: client-side (connection refused, a status other than 200, a body cut
short although neither the client nor the stall timeout did it) and server-side (streams
that ended as ``source-failed`` or ``aborted``, and error/critical log events). The verdict
fails when RSS grew by more than ``--rss-tolerance`` between start and end, when the
descriptors idle after exceed those idle before, or on any error.

Everything stays on 127.0.0.1; connection counts and the run time are bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KINDS = {"file": 0.20, "gen": 0.25, "agen": 0.15, "tgen": 0.05, "events": 0.35}
BEHAVIOURS = {"normal": 0.60, "slow": 0.15, "stall": 0.10, "disconnect": 0.15}
FILE_SIZES = {"one.bin": 1 << 20, "two.bin": 2 << 20, "small.bin": 200_000}
STALL_FILE = ("big.bin", 32 << 20)
"""What stalling clients ask for: more than loopback socket buffers (megabytes) hold."""
FILE_READ_RATE = 64_000
"""Bytes per second a normal client reads a file at (a slow link)."""
SLOW_READ_RATE = 8_000
"""Bytes per second a slow client reads at."""
TICK = 0.1


def raise_nofile() -> int:
    """Raise the soft descriptor limit to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------------------------------
# The server (``--serve``).


def serve(args: argparse.Namespace) -> None:
    import threading
    import time as _time
    from collections.abc import AsyncIterator, Iterator

    from twisted.internet import reactor
    from twisted.internet.task import deferLater
    from twisted.logger import LogLevel, globalLogBeginner
    from twisted.web.resource import Resource

    from twisted_stream import (
        Event,
        FileResource,
        MetricsResource,
        Mounts,
        StatusResource,
        StreamSettings,
        StreamSite,
        stream,
        stream_events,
    )

    raise_nofile()
    errors: list[str] = []
    error_count = [0]

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_level") in (LogLevel.error, LogLevel.critical):
            error_count[0] += 1
            if len(errors) < 20:
                failure = event.get("log_failure")
                text = str(event.get("log_format", ""))
                if failure is not None:
                    text += f" [{failure.getErrorMessage()}]"
                errors.append(text[:500])

    globalLogBeginner.beginLoggingTo([observe], redirectStandardIO=False)

    chunk = b"g" * 4096

    def paced(request: Any) -> tuple[int, float]:
        size = int(request.args.get(b"bytes", [b"65536"])[0])
        every = float(request.args.get(b"every", [b"0.5"])[0])
        return size, every

    def gen(size: int, every: float) -> Iterator[object]:
        for _ in range(0, size, len(chunk)):
            yield chunk
            yield deferLater(reactor, every, lambda: None)

    async def agen(size: int, every: float) -> AsyncIterator[bytes]:
        for _ in range(0, size, len(chunk)):
            yield chunk
            await deferLater(reactor, every, lambda: None)

    def tgen(size: int, every: float) -> Iterator[bytes]:
        for _ in range(0, size, len(chunk)):
            _time.sleep(every)  # a blocking source, run in the thread pool
            yield chunk

    def events_source() -> Iterator[object]:
        n = 0
        while True:
            n += 1
            yield Event(f"tick {n} " + "e" * 200, id=str(n))
            yield deferLater(reactor, 1.0, lambda: None)

    class Leaf(Resource):
        isLeaf = True

        def __init__(self, render: Any) -> None:
            super().__init__()
            self._render = render

        def render_GET(self, request: Any) -> Any:
            return self._render(request)

    root = Resource()
    root.putChild(b"gen", Leaf(lambda r: stream(r, gen(*paced(r)))))
    root.putChild(b"agen", Leaf(lambda r: stream(r, agen(*paced(r)))))
    root.putChild(b"tgen", Leaf(lambda r: stream(r, tgen(*paced(r)), threaded=True)))
    root.putChild(b"events", Leaf(lambda r: stream_events(r, events_source(), heartbeat=15)))
    root.putChild(b"files", FileResource(args.files))

    site: Any = None

    def soak_state(request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        body = {
            "errors": error_count[0],
            "first_errors": errors,
            "active_streams": len(site.active_streams),
            "threads": threading.active_count(),
            "metrics": site.metrics.snapshot(site.active_streams),
        }
        return json.dumps(body).encode()

    root.putChild(b"_soak", Leaf(soak_state))
    top = Mounts(root, {"/_metrics": MetricsResource(), "/_status": StatusResource()})
    settings = StreamSettings(stall_timeout=args.stall_timeout)
    site = StreamSite(top, settings=settings)
    site.noisy = False
    port = reactor.listenTCP(0, site, backlog=4096, interface="127.0.0.1")
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    # Announce the port once the reactor runs (its wakers and signal pipes exist by then, so
    # the idle figures the client takes first are the real idle state).
    reactor.callWhenRunning(lambda: print(f"PORT {port.getHost().port}", flush=True))
    reactor.run()


# ---------------------------------------------------------------------------------------
# The client (this process).


def proc_figures(pid: int) -> dict[str, int]:
    """RSS (bytes), descriptors (all, sockets) of process ``pid``."""
    rss = 0
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                rss = int(line.split()[1]) * 1024
    fds = sockets = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return {"rss": rss, "fds": fds, "sockets": sockets}


def fd_list(pid: int) -> list[str]:
    found = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            found.append(f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return found


TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
    "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}  # fmt: skip


def socket_states(pid: int, entries: set[str]) -> list[str]:
    """The TCP state and ports of the sockets among ``entries`` (``fd->socket:[inode]``)."""
    inodes = {e.split("socket:[")[1].rstrip("]") for e in entries if "socket:[" in e}
    found = []
    with open(f"/proc/{pid}/net/tcp") as f:
        for line in list(f)[1:]:
            parts = line.split()
            if parts[9] in inodes:
                local, remote = (int(x.split(":")[1], 16) for x in parts[1:3])
                state = TCP_STATES.get(parts[3], parts[3])
                found.append(
                    f"socket {parts[9]}: {state} local port {local} remote {remote} "
                    f"send queue {int(parts[4].split(':')[0], 16)} "
                    f"receive queue {int(parts[4].split(':')[1], 16)}"
                )
                inodes.discard(parts[9])
    found += [f"socket {inode}: in no TCP table (closed, but its descriptor is open)"
              for inode in sorted(inodes)]  # fmt: skip
    return found


@dataclass
class Tally:
    """What the clients saw."""

    requests: int = 0
    refused: int = 0
    bad_status: Counter[int] = field(default_factory=Counter)
    truncated: int = 0
    ended: Counter[str] = field(default_factory=Counter)
    bytes: int = 0

    @property
    def errors(self) -> int:
        return self.refused + sum(self.bad_status.values()) + self.truncated


def make_client_classes(driver: Driver) -> Any:
    from twisted.internet.protocol import ClientFactory, Protocol

    class SoakClient(Protocol):
        def __init__(self, kind: str, behaviour: str, path: str, rng: random.Random) -> None:
            self.kind = kind
            self.behaviour = behaviour
            self.path = path
            self.head = b""
            self.status = 0
            self.length: int | None = None
            self.chunked = False
            self.tail = b""
            self.body = 0
            self.budget = 0.0
            self.paused = False
            self.left_on_purpose = False
            self.stalled_since: float | None = None
            self.rate = 0.0
            if kind == "file" and behaviour == "normal":
                self.rate = FILE_READ_RATE
            elif behaviour == "slow":
                self.rate = SLOW_READ_RATE
            lifetime = {
                "disconnect": rng.uniform(1, 15),
                "normal": rng.uniform(20, 90) if kind == "events" else None,
                "slow": rng.uniform(20, 90) if kind == "events" else None,
            }.get(behaviour)
            self.leave_at = None if lifetime is None else time.monotonic() + lifetime
            self.reset = rng.random() < 0.5

        def connectionMade(self) -> None:
            driver.open.add(self)
            request = f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            self.transport.write(request.encode())  # type: ignore[union-attr]

        def dataReceived(self, data: bytes) -> None:
            driver.tally.bytes += len(data)
            if not self.status:
                self.head += data
                if b"\r\n\r\n" not in self.head:
                    return
                head, _, data = self.head.partition(b"\r\n\r\n")
                self.head = b""
                lines = head.decode("latin-1").split("\r\n")
                self.status = int(lines[0].split(" ")[1])
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        self.length = int(value)
                    elif name == "transfer-encoding" and "chunked" in value:
                        self.chunked = True
                if self.status != 200:
                    driver.tally.bad_status[self.status] += 1
                if self.behaviour == "stall":
                    self.stalled_since = time.monotonic()
                    self.pause()
            self.body += len(data)
            self.tail = (self.tail + data)[-5:]
            if self.rate:
                self.budget -= len(data)
                if self.budget <= 0:
                    self.pause()

        def pause(self) -> None:
            if not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pauseProducing()  # type: ignore[attr-defined]

        def resume(self) -> None:
            if self.paused and self.transport is not None:
                self.paused = False
                self.transport.resumeProducing()  # type: ignore[attr-defined]

        def tick(self, now: float) -> None:
            if self.rate:
                self.budget = min(self.budget + self.rate * TICK, self.rate * TICK)
                if self.budget > 0 and self.behaviour != "stall":
                    self.resume()
            if self.stalled_since is not None and now - self.stalled_since > 2 * driver.stall:
                # Look again, so the close the stall timeout caused is seen.
                self.stalled_since = None
                self.resume()
            if self.leave_at is not None and now >= self.leave_at:
                self.leave_at = None
                self.left_on_purpose = True
                transport: Any = self.transport
                if self.reset:
                    transport.getHandle().setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                transport.abortConnection()

        def complete(self) -> bool:
            if self.length is not None:
                return self.body == self.length
            if self.chunked:
                return self.tail == b"0\r\n\r\n"
            return False

        def connectionLost(self, reason: Any = None) -> None:
            driver.open.discard(self)
            tally = driver.tally
            if self.left_on_purpose:
                tally.ended["left"] += 1
            elif self.status == 200 and self.complete():
                tally.ended["complete"] += 1
            elif self.behaviour == "stall":
                tally.ended["stalled"] += 1
            elif self.status == 200:
                tally.truncated += 1
                tally.ended["truncated"] += 1
                if len(driver.samples_of_truncation) < 5:
                    driver.samples_of_truncation.append(
                        f"{self.path} {self.behaviour} body={self.body} length={self.length}"
                    )
            else:
                tally.ended["no-response"] += 1
            driver.replace()

    class SoakFactory(ClientFactory):
        def __init__(self, client: SoakClient) -> None:
            self.client = client

        def buildProtocol(self, addr: Any) -> SoakClient:
            return self.client

        def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
            driver.tally.refused += 1
            driver.replace()

    return SoakClient, SoakFactory


class Driver:
    """Keeps ``streams`` clients connected and samples the server."""

    def __init__(self, args: argparse.Namespace, port: int, pid: int) -> None:
        self.args = args
        self.port = port
        self.pid = pid
        self.stall = args.stall_timeout
        self.rng = random.Random(args.seed)
        self.tally = Tally()
        self.open: set[Any] = set()
        self.samples_of_truncation: list[str] = []
        self.stopping = False
        self.client_class, self.factory_class = make_client_classes(self)

    def pick(self, table: dict[str, float]) -> str:
        return self.rng.choices(list(table), list(table.values()))[0]

    def new_client(self) -> None:
        from twisted.internet import reactor

        kind, behaviour = self.pick(KINDS), self.pick(BEHAVIOURS)
        if kind == "file":
            path = "/files/" + self.rng.choice(list(FILE_SIZES))
        elif kind == "events":
            path = "/events"
        else:
            every = 0.5 if kind != "tgen" else 0.05
            size = self.rng.randrange(40, 160) * 4096
            path = f"/{kind}?bytes={size}&every={every}"
        if behaviour == "stall":
            # Only a fast stream fills the socket buffers (megabytes on loopback) soon enough
            # for the stall timeout to apply while the client looks away.
            kind, path = "file", "/files/" + STALL_FILE[0]
        client = self.client_class(kind, behaviour, path, self.rng)
        self.tally.requests += 1
        reactor.connectTCP("127.0.0.1", self.port, self.factory_class(client), timeout=30)

    def replace(self) -> None:
        if not self.stopping:
            self.new_client()

    def tick(self) -> None:
        now = time.monotonic()
        for client in list(self.open):
            client.tick(now)

    def server_state(self) -> dict[str, Any]:
        """The server's own counts (``/_soak``), fetched with a blocking socket."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(b"GET /_soak HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while True:
                got = sock.recv(65536)
                if not got:
                    break
                data += got
        result: dict[str, Any] = json.loads(data.partition(b"\r\n\r\n")[2])
        return result


def fmt_mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def run_client(args: argparse.Namespace) -> int:
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall, deferLater

    limit = raise_nofile()
    needed = args.streams + 200
    if limit < needed:
        print(f"soak: the descriptor limit is {limit}, {needed} are needed", file=sys.stderr)
        return 2

    import tempfile

    files = tempfile.mkdtemp(prefix="soak-files-")
    for name, size in [*FILE_SIZES.items(), STALL_FILE]:
        with open(os.path.join(files, name), "wb") as f:
            f.write(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    log = tempfile.TemporaryFile(prefix="soak-server-")
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.soak",
        "--serve",
        "--files",
        files,
        "--stall-timeout",
        str(args.stall_timeout),
    ]
    server = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO
    )
    assert server.stdout is not None
    line = server.stdout.readline().decode()
    if not line.startswith("PORT "):
        log.seek(0)
        print(f"soak: the server did not start: {line}\n{log.read().decode()}", file=sys.stderr)
        return 2
    port = int(line.split()[1])
    driver = Driver(args, port, server.pid)
    duration = args.minutes * 60
    report: dict[str, dict[str, Any]] = {}
    verdict = [1]

    def point(name: str) -> dict[str, Any]:
        # Descriptors first: the request for the server's state opens one more.
        figures: dict[str, Any] = dict(proc_figures(server.pid))
        figures["fd_list"] = fd_list(server.pid)
        state = driver.server_state()
        figures.update(
            threads=state["threads"],
            active=state["active_streams"],
            server_errors=state["errors"],
            client_errors=driver.tally.errors,
            open=len(driver.open),
            metrics=state["metrics"],
            first_errors=state["first_errors"],
        )
        report[name] = figures
        return figures

    def sample(t0: float) -> None:
        f = point("_sample")
        m = f["metrics"]
        errors = f["server_errors"] + f["client_errors"] + int(m["streams_source_failed"])
        print(
            f"t={time.monotonic() - t0:6.0f}s  streams {f['active']:5d}  "
            f"RSS {fmt_mb(f['rss']):>6} MB  fds {f['fds']:5d}  threads {f['threads']:3d}  "
            f"requests {driver.tally.requests:7d}  completed {int(m['streams_completed']):7d}  "
            f"stalled {int(m['streams_stalled']):5d}  "
            f"client-gone {int(m['streams_client_gone']):6d}  errors {errors}",
            flush=True,
        )

    async def main() -> None:
        point("idle before")
        t0 = time.monotonic()
        print(
            f"soak: {args.streams} streams for {args.minutes:g} min against pid {server.pid} "
            f"(kinds {KINDS}, behaviours {BEHAVIOURS}, stall timeout {args.stall_timeout:g} s)",
            flush=True,
        )
        ticker = LoopingCall(driver.tick)
        ticker.start(TICK)
        # Ramp up in batches so the accept queue is never flooded.
        for i in range(args.streams):
            driver.new_client()
            if i % 100 == 99:
                await deferLater(reactor, 0.1, lambda: None)
        sampler = LoopingCall(sample, t0)
        sampler.start(args.sample, now=True)
        warmup = min(args.warmup, duration / 4)
        await deferLater(reactor, max(0.0, warmup - (time.monotonic() - t0)), lambda: None)
        point("start (loaded)")
        await deferLater(reactor, max(0.0, duration - (time.monotonic() - t0)), lambda: None)
        point("end (loaded)")
        sampler.stop()
        driver.stopping = True
        for client in list(driver.open):
            client.left_on_purpose = True
            client.transport.abortConnection()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await deferLater(reactor, 0.5, lambda: None)
            state = driver.server_state()
            if not driver.open and state["active_streams"] == 0:
                break
        # Let closes settle: wait (30 s at most) for the descriptors to fall back to the
        # idle level, and say how long that took.
        settle_from = time.monotonic()
        idle_fds = report["idle before"]["fds"]
        while time.monotonic() - settle_from < 30:
            if proc_figures(server.pid)["fds"] <= idle_fds:
                break
            await deferLater(reactor, 0.5, lambda: None)
        settled = time.monotonic() - settle_from
        point("idle after")
        report["idle after"]["settled"] = settled
        report["idle after"]["socket_states"] = socket_states(
            server.pid,
            set(report["idle after"]["fd_list"]) - set(report["idle before"]["fd_list"]),
        )
        ticker.stop()
        verdict[0] = summarize(args, report, driver)

    def done(result: Any) -> None:
        if hasattr(result, "printTraceback"):
            result.printTraceback(file=sys.stderr)
        reactor.stop()

    from twisted.internet.defer import ensureDeferred

    reactor.callWhenRunning(lambda: ensureDeferred(main()).addBoth(done))
    try:
        reactor.run()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.seek(0)
        tail = log.read().decode("utf-8", "replace").strip()
        if tail:
            print("server stderr (last 2000 characters):\n" + tail[-2000:])
        for name in [*FILE_SIZES, STALL_FILE[0]]:
            os.unlink(os.path.join(files, name))
        os.rmdir(files)
    return verdict[0]


def summarize(args: argparse.Namespace, report: dict[str, dict[str, Any]], driver: Driver) -> int:
    rows = ["idle before", "start (loaded)", "end (loaded)", "idle after"]
    print(
        "\nstreams: running on the server; connections: open on the client side (a stream that"
        "\nhas ended may still be draining to a slow client, and new ones are connecting)\n"
    )
    print(
        f"{'':16} {'RSS MB':>8} {'fds':>6} {'sockets':>8} {'threads':>8} {'streams':>8} "
        f"{'connections':>12} {'server errors':>14} {'client errors':>14}"
    )
    for name in rows:
        f = report[name]
        print(
            f"{name:16} {fmt_mb(f['rss']):>8} {f['fds']:>6} {f['sockets']:>8} "
            f"{f['threads']:>8} {f['active']:>8} {f['open']:>12} {f['server_errors']:>14} "
            f"{f['client_errors']:>14}"
        )
    m = report["idle after"]["metrics"]
    outcomes = ", ".join(
        f"{k.removeprefix('streams_')} {int(v)}"
        for k, v in m.items()
        if k.startswith("streams_") and k not in ("streams_active", "streams_started")
    )
    print(f"\nserver: {int(m['streams_started'])} streams; ended: {outcomes}")
    print(f"server: {fmt_mb(int(m['bytes_sent']))} MB sent, {int(m['pauses'])} pauses")
    t = driver.tally
    print(
        f"client: {t.requests} requests, {fmt_mb(t.bytes)} MB received; ended {dict(t.ended)}; "
        f"errors {t.errors} (refused {t.refused}, bad status {dict(t.bad_status)}, "
        f"truncated {t.truncated})"
    )
    for text in driver.samples_of_truncation:
        print(f"  truncated: {text}")
    for text in report["idle after"]["first_errors"]:
        print(f"  server error: {text}")

    start, end = report["start (loaded)"], report["end (loaded)"]
    before, after = report["idle before"], report["idle after"]
    rss_growth = (end["rss"] - start["rss"]) / start["rss"]
    failed = int(m["streams_source_failed"]) + int(m["streams_aborted"])
    checks = [
        (
            f"RSS start->end {rss_growth:+.1%} (limit +{args.rss_tolerance:.0%})",
            rss_growth <= args.rss_tolerance,
        ),
        (
            f"descriptors idle before {before['fds']}, idle after {after['fds']} "
            f"({after['settled']:.1f} s after the last client left)",
            after["fds"] <= before["fds"],
        ),
        (
            f"threads idle after {after['threads']} <= loaded {end['threads']}",
            after["threads"] <= end["threads"],
        ),
        (f"server errors {after['server_errors']}", after["server_errors"] == 0),
        (f"streams failed or aborted by the server {failed}", failed == 0),
        (f"client errors {t.errors}", t.errors == 0),
        (f"no stream left running ({after['active']})", after["active"] == 0),
    ]
    if after["fds"] > before["fds"]:
        extra = sorted(set(after["fd_list"]) - set(before["fd_list"]))
        print(f"  descriptors open idle after but not before: {extra}")
        for text in after.get("socket_states", []):
            print(f"  {text}")
    print()
    for text, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {text}")
    passed = all(ok for _, ok in checks)
    print(f"\nverdict: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="run time (default 10)")
    parser.add_argument("--quick", action="store_true", help="a 1-minute run")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds with a few streams: checks that the soak runs and reports; its "
        "verdict is printed but does not set the exit status",
    )
    parser.add_argument("--streams", type=int, default=2000, help="concurrent streams")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds before the start figures"
    )
    parser.add_argument("--stall-timeout", type=float, default=5.0)
    parser.add_argument("--rss-tolerance", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return 0
    if args.quick:
        args.minutes = 1.0
        args.sample = min(args.sample, 10.0)
        args.warmup = min(args.warmup, 15.0)
    if args.smoke:
        args.minutes, args.streams, args.sample, args.warmup = 0.03, 40, 1.0, 0.5
        args.stall_timeout = min(args.stall_timeout, 1.0)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    print(f"soak: seed {args.seed}; command: {' '.join(sys.argv)}")
    status = run_client(args)
    if args.smoke:
        print("SMOKE RUN: the verdict above is not enforced")
        return 0 if status in (0, 1) else status
    return status


if __name__ == "__main__":
    sys.exit(main())
