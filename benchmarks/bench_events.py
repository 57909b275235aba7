"""Idle Server-Sent Events connections: server memory and CPU per connection, fan-out latency.

Usage::

    .venv/bin/python benchmarks/bench_events.py [--connections 5000] [--runs 3]
        [--heartbeat 15] [--idle 20] [--rounds 20] [--impl twisted_stream,bare]

Each run starts one server process (this file with ``serve``) listening on 127.0.0.1; this
process is the client. It opens ``--connections`` event streams with non-blocking sockets
driven by one selector, then measures:

- **RSS per connection**: the server's VmRSS with every stream open and idle, minus its
  VmRSS before (after a warm-up), divided by the number of connections;
- **CPU while idle**: server CPU seconds (user + system) over ``--idle`` seconds in which
  the only traffic is heartbeats (every ``--heartbeat`` seconds per stream, 15 s being the
  default of ``stream_events``; the window covers at least one per stream), as a percentage
  of one core;
- **fan-out latency**: the client asks the server (``GET /publish`` on its own connection)
  to publish one event to every stream, and times from sending that request until the last
  of the ``--connections`` sockets has received the event (``--rounds`` times; median and
  worst are reported). The server also reports how long ``publish()`` itself took; the rest
  is mostly Twisted flushing 5,000 transports (a ``send`` and two ``epoll_ctl`` per socket)
  and, for the worst rounds, CPython's full garbage collections over the ~10^6 objects that
  5,000 connections hold.

Implementations: ``twisted_stream`` is ``EventStreamResource(channel)`` on a ``StreamSite``
(the engine with its flow control, heartbeat timer, stall timeout...); ``bare`` is plain
Twisted for reference: a resource that writes the headers and keeps the request in a set,
one ``LoopingCall`` writing a heartbeat to all of them, and a publish that loops
``request.write``.

Everything talks to 127.0.0.1 only and every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import select
import shlex
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# The server (a subprocess).


def serve(impl: str, heartbeat: float) -> None:
    raise_fd_limit()
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall
    from twisted.web.resource import Resource
    from twisted.web.server import NOT_DONE_YET, Site

    root = Resource()
    counter = [0]

    class Ping(Resource):
        isLeaf = True

        def render_GET(self, request: object) -> bytes:
            return b"pong\n"

    root.putChild(b"ping", Ping())

    if impl == "twisted_stream":
        from twisted_stream._channel import Channel

        from twisted_stream import StreamSite
        from twisted_stream._events import EventStreamResource

        channel = Channel()
        root.putChild(b"events", EventStreamResource(channel, heartbeat=heartbeat))

        def publish(data: str) -> None:
            channel.publish(data)

        site: Site = StreamSite(root)
    elif impl == "bare":
        clients: set[object] = set()

        class Bare(Resource):
            isLeaf = True

            def render_GET(self, request: object) -> object:
                request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")  # type: ignore[attr-defined]
                request.setHeader(b"cache-control", b"no-store")  # type: ignore[attr-defined]
                request.write(b"")  # type: ignore[attr-defined]
                clients.add(request)
                request.notifyFinish().addBoth(lambda _: clients.discard(request))  # type: ignore[attr-defined]
                return NOT_DONE_YET

        def beat() -> None:
            for request in list(clients):
                request.write(b":\n\n")  # type: ignore[attr-defined]

        LoopingCall(beat).start(heartbeat, now=False)
        root.putChild(b"events", Bare())

        def publish(data: str) -> None:
            wire = f"id: {counter[0]}\ndata: {data}\n\n".encode()
            for request in list(clients):
                request.write(wire)  # type: ignore[attr-defined]

        site = Site(root)
    else:
        raise SystemExit(f"unknown implementation {impl!r}")

    class Publish(Resource):
        isLeaf = True

        def render_GET(self, request: object) -> bytes:
            counter[0] += 1
            data = request.args[b"marker"][0].decode()  # type: ignore[attr-defined]
            started = time.perf_counter()
            publish(data)
            took = time.perf_counter() - started
            return b"%.6f\n" % took

    root.putChild(b"publish", Publish())
    site.displayTracebacks = False
    site.log = lambda request: None  # type: ignore[method-assign]
    port = reactor.listenTCP(0, site, backlog=1024, interface="127.0.0.1")  # type: ignore[attr-defined]
    sys.stdout.write(f"PORT {port.getHost().port}\n")
    sys.stdout.flush()
    reactor.run()  # type: ignore[attr-defined]


# /proc readers.


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# The client.


def request_bytes(path: str, close: bool = False) -> bytes:
    extra = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def simple_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request_bytes(path, close=True))
        chunks = []
        while True:
            got = s.recv(65536)
            if not got:
                break
            chunks.append(got)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{path}: {head[:100]!r}")
    return body


class Streams:
    """Open event streams, read by one epoll loop (kept minimal so the client is quick)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.epoll = select.epoll()
        self.socks: dict[int, socket.socket] = {}
        self.tails: dict[int, bytes] = {}
        self.buf = bytearray(1 << 16)

    def open(self, count: int, batch: int = 500, timeout: float = 60.0) -> None:
        """Open ``count`` streams, ``batch`` at a time, each batch waiting for its headers."""
        deadline = time.monotonic() + timeout
        while len(self.socks) < count:
            waiting = set()
            for _ in range(min(batch, count - len(self.socks))):
                s = socket.socket()
                s.connect(("127.0.0.1", self.port))
                s.sendall(request_bytes("/events"))
                s.setblocking(False)
                fd = s.fileno()
                self.socks[fd] = s
                self.tails[fd] = b""
                self.epoll.register(fd, select.EPOLLIN)
                waiting.add(fd)
            while waiting:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(waiting)} streams sent no headers")
                for fd in self.poll(1.0):
                    if b"\r\n\r\n" in self.tails[fd]:
                        waiting.discard(fd)

    def poll(self, timeout: float) -> list[int]:
        """Read whatever arrived; the fds that got data (keeping a short tail of each)."""
        got = []
        view = memoryview(self.buf)
        socks = self.socks
        tails = self.tails
        for fd, _ in self.epoll.poll(timeout, len(socks) or 1):
            try:
                n = socks[fd].recv_into(view)
            except BlockingIOError:
                continue
            if n == 0:
                raise RuntimeError("the server closed an event stream")
            tails[fd] = tails[fd][-200:] + view[:n].tobytes()
            got.append(fd)
        return got

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.poll(min(left, 0.5))

    def fan_out(self, marker: str, timeout: float = 30.0) -> tuple[float, float]:
        """Ask for one publish; seconds until every stream has it, and the server's
        publish() time."""
        needle = marker.encode()
        for fd in self.tails:
            self.tails[fd] = b""
        missing = set(self.tails)
        control = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        started = time.perf_counter()
        control.sendall(request_bytes(f"/publish?marker={marker}", close=True))
        deadline = time.monotonic() + timeout
        tails = self.tails
        while missing:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(missing)} streams did not get {marker}")
            for fd in self.poll(1.0):
                if needle in tails[fd]:
                    missing.discard(fd)
        took = time.perf_counter() - started
        reply = b""
        while chunk := control.recv(4096):
            reply += chunk
        control.close()
        return took, float(reply.partition(b"\r\n\r\n")[2])

    def close(self) -> None:
        self.epoll.close()
        for s in self.socks.values():
            s.close()


@dataclass
class RunResult:
    impl: str
    rss_per_connection: float
    idle_cpu_percent: float
    fan_out: list[float]
    publish: list[float]


def one_run(impl: str, args: argparse.Namespace) -> RunResult:
    proc = subprocess.Popen(
        [sys.executable, __file__, "serve", impl, str(args.heartbeat)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
    )
    streams = None
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line or line[0] != b"PORT":
            raise RuntimeError("the server did not start")
        port = int(line[1])
        # Warm up: a few streams and publishes, so imports and first-use allocations are
        # in the baseline.
        warm = Streams(port)
        warm.open(50)
        warm.fan_out("warmup")
        warm.close()
        simple_get(port, "/ping")
        time.sleep(0.5)  # let the server notice the closed warm-up streams
        baseline = rss(proc.pid)
        streams = Streams(port)
        streams.open(args.connections)
        streams.drain(1.0)
        open_rss = rss(proc.pid)
        cpu_start = cpu(proc.pid)
        idle_start = time.monotonic()
        streams.drain(args.idle)
        idle_cpu = cpu(proc.pid) - cpu_start
        idle_seconds = time.monotonic() - idle_start
        idle_rss = max(open_rss, rss(proc.pid))
        fan_out = []
        publish = []
        for i in range(args.rounds):
            took, server_took = streams.fan_out(f"event-{i}-{os.getpid()}")
            fan_out.append(took)
            publish.append(server_took)
        return RunResult(
            impl,
            (idle_rss - baseline) / args.connections,
            100 * idle_cpu / idle_seconds,
            fan_out,
            publish,
        )
    finally:
        if streams is not None:
            streams.close()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--heartbeat", type=float, default=15.0)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--impl", default="twisted_stream,bare")
    args = parser.parse_args()
    limit = raise_fd_limit()
    if limit < args.connections + 100:
        raise SystemExit(f"RLIMIT_NOFILE is {limit}: too low for {args.connections} streams")
    import twisted

    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print(
        f"python {platform.python_version()}, twisted {twisted.__version__}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}, load {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{args.connections} idle event streams, heartbeat every {args.heartbeat} s, "
        f"{args.idle} s idle window, {args.rounds} fan-out rounds, {args.runs} runs "
        "(medians over runs)"
    )
    print(
        f"{'impl':<16}{'RSS/conn':>10}{'idle CPU':>10}{'fan-out median':>16}"
        f"{'fan-out worst':>15}{'publish() median':>18}"
    )
    for impl in args.impl.split(","):
        results = [one_run(impl, args) for _ in range(args.runs)]
        med = statistics.median
        rss_kb = med(r.rss_per_connection for r in results) / 1024
        idle = med(r.idle_cpu_percent for r in results)
        fan = med(med(r.fan_out) for r in results) * 1000
        worst = max(max(r.fan_out) for r in results) * 1000
        pub = med(med(r.publish) for r in results) * 1000
        print(
            f"{impl:<16}{rss_kb:>8.2f}KB{idle:>9.2f}%{fan:>13.1f} ms{worst:>12.1f} ms"
            f"{pub:>15.1f} ms"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
