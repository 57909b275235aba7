"""Fan-out latency: one event to many subscribers, in one process and through Redis.

``python -m benchmarks.fanout`` opens ``--subscribers`` event streams (10,000) of
``servers/fanout_app.py`` and publishes one event per round; each subscriber's latency is the
time from sending the publish request to that subscriber receiving the event, measured by the
client, which reads every stream in one epoll loop (so the tail includes its own time to read
them all, the same in both setups). Two setups:

- ``one process``: one ``twistd streamweb``, its in-process channel, every subscriber on it;
- ``2 processes + Redis``: two ``twistd streamweb --channel-backend redis://...`` processes
  sharing the channel through a ``redis-server`` started here (a free port, no persistence),
  half of the subscribers on each; the event is published through the first.

Reported: p50 and p99 over every subscriber of every round, and the slowest. ``--smoke``:
a few subscribers and rounds, to check that it runs. Run it under ``flock /work/bench.lock``
on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks._clients import connect, request
from benchmarks._server import REPO, ServerProcess, free_port

APP = "benchmarks.servers.fanout_app:resource"
_TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'x'; run()"
_SINK = bytearray(1 << 16)


def streamweb(port: int, backend: str | None) -> list[str]:
    endpoint = f"tcp:{port}:interface=127.0.0.1:backlog=4096"
    command = [sys.executable, "-c", _TWISTD, "-n", "--pidfile=", "streamweb", "--app", APP,
               "--port", endpoint, "--logfile", os.devnull]  # fmt: skip
    return command + (["--channel-backend", backend] if backend else [])


@contextmanager
def redis_server() -> Iterator[str]:
    """A ``redis-server`` on a free port without persistence; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


class Subscribers:
    """Event streams spread over ``ports``, read by one epoll loop."""

    def __init__(self, ports: list[int], count: int, batch: int = 250) -> None:
        self.epoll = select.epoll()
        self.socks: dict[int, socket.socket] = {}
        deadline = time.monotonic() + 120
        while len(self.socks) < count:
            waiting = set()
            for _ in range(min(batch, count - len(self.socks))):
                sock = connect(ports[len(self.socks) % len(ports)])
                sock.sendall(request("/events", close=False))
                sock.setblocking(False)
                self.socks[sock.fileno()] = sock
                self.epoll.register(sock.fileno(), select.EPOLLIN)
                waiting.add(sock.fileno())
            while waiting:  # each batch's headers before the next batch
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(waiting)} event streams sent no headers")
                for fd, _ in self.epoll.poll(0.5):
                    self.socks[fd].recv_into(_SINK)
                    waiting.discard(fd)

    def receive(self, marker: bytes, since: float, timeout: float) -> list[float]:
        """Seconds from ``since`` until each stream received ``marker``."""
        pending = set(self.socks)
        got: list[float] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} of {len(self.socks)} never got {marker!r}")
            for fd, _ in self.epoll.poll(0.5, len(self.socks)):
                try:
                    n = self.socks[fd].recv_into(_SINK)
                except BlockingIOError:
                    continue
                if n == 0:
                    raise RuntimeError("the server closed an event stream")
                if fd in pending and marker in _SINK[:n]:
                    got.append(time.perf_counter() - since)
                    pending.discard(fd)
        return got

    def close(self) -> None:
        self.epoll.close()
        for sock in self.socks.values():
            sock.close()


def publish(port: int, data: str) -> socket.socket:
    """Send the publish request; the caller reads the answer (after the event arrived)."""
    sock = connect(port)
    sock.sendall(request(f"/publish?data={data}"))
    return sock


def measure(ports: list[int], count: int, rounds: int) -> list[float]:
    subscribers = Subscribers(ports, count)
    try:
        # Every subscriber's process reads its channel once a first event reaches them all.
        for attempt in range(50):
            answer = publish(ports[0], f"warm{attempt}")
            try:
                subscribers.receive(f"warm{attempt}\n".encode(), time.perf_counter(), 2.0)
                break
            except TimeoutError:
                continue
            finally:
                answer.close()
        latencies: list[float] = []
        for number in range(rounds):
            marker = f"round{number}x"
            since = time.perf_counter()
            answer = publish(ports[0], marker)
            latencies += subscribers.receive(f"{marker}\n".encode(), since, 30.0)
            if not answer.recv(64).startswith(b"HTTP/1.1 200"):
                raise RuntimeError("publishing failed")
            answer.close()
            time.sleep(0.2)  # let the servers settle between rounds
        return latencies
    finally:
        subscribers.close()


def run_setup(
    name: str, processes: int, backend: str | None, count: int, rounds: int
) -> dict[str, float]:
    servers = [ServerProcess(name, streamweb(port, backend), port, cpus=None)
               for port in (free_port() for _ in range(processes))]  # fmt: skip
    try:
        for server in servers:
            server.wait_ready()
        latencies = measure([s.port for s in servers], count, rounds)
    finally:
        for server in servers:
            server.close()
    ms = sorted(v * 1000 for v in latencies)
    return {
        "p50 ms": statistics.median(ms),
        "p99 ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max ms": ms[-1],
        "samples": len(ms),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout", description=__doc__)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="20 subscribers, 2 rounds")
    args = parser.parse_args(argv)
    count, rounds = (20, 2) if args.smoke else (args.subscribers, args.rounds)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if count + 100 > hard:
        raise SystemExit(f"{count} subscribers need more descriptors than the limit {hard}")
    os.chdir(REPO)
    print(f"fan-out of one event to {count:,} subscribers, {rounds} rounds", flush=True)
    results = {"one process": run_setup("one process", 1, None, count, rounds)}
    print(f"  one process: {results['one process']}", flush=True)
    with redis_server() as url:
        results["2 processes + Redis"] = run_setup("2 processes", 2, url, count, rounds)
    print(f"  2 processes + Redis: {results['2 processes + Redis']}", flush=True)
    print("\n| setup | p50 ms | p99 ms | max ms |\n|---|---|---|---|")
    for name, figures in results.items():
        print(f"| {name} | {figures['p50 ms']:.1f} | {figures['p99 ms']:.1f} | "
              f"{figures['max ms']:.1f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
