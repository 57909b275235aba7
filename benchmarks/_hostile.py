"""The hostile-client workloads: what a server holds while one client misbehaves, and what a
normal client sees meanwhile.

Each trial runs on a fresh server. While the hostile clients act, a *normal client* asks
for ``/ping`` on a new connection every 50 ms (2 s timeout each); its median and worst
latency and its failures are reported with the server's RSS growth and its descriptors.

- ``hostile_pipeline``: one client with a 4 KiB receive buffer asks for a large response,
  never reads, and pipelines ``GET /ping`` requests as fast as it can for ``seconds``:
  how much the server accepts (MB sent by the client) and its RSS growth;
- ``hostile_slowloris``: ``clients`` connections each send a request line and then one
  header byte a second for ``seconds``: how many the server still holds at the end;
- ``hostile_threaded``: ``requests`` requests at once for a threaded stream that blocks
  ``sleep`` seconds, on a pool of 10 (twisted_stream only: the peers run no blocking code
  on a pool): how many are served, refused with 503 (and how fast), or left unanswered;
- ``hostile_body``: one client sends a chunked body of up to ``body`` bytes on a GET as
  fast as it can: how much the server takes before it answers, its answer, its RSS growth
  and the disk its temporary files hold.
"""

from __future__ import annotations

import os
import selectors
import socket
import statistics
import threading
import time
from typing import TYPE_CHECKING, Any

from benchmarks._clients import connect, request
from benchmarks._proc import MB, Probe, tree

if TYPE_CHECKING:
    from benchmarks._workloads import Trial


def descriptors(pid: int) -> int:
    """Open descriptors of ``pid`` and its descendants."""
    total = 0
    for member in tree(pid):
        try:
            total += len(os.listdir(f"/proc/{member}/fd"))
        except OSError:
            continue
    return total


def temp_disk(pid: int) -> int:
    """Bytes of the regular files (deleted temporary files included) the server holds open
    outside its program and libraries."""
    total = 0
    for member in tree(pid):
        try:
            fds = os.listdir(f"/proc/{member}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{member}/fd/{fd}"
            try:
                target = os.readlink(path)
                info = os.stat(path)
            except OSError:
                continue
            if target.startswith("/tmp/") or target.endswith("(deleted)"):
                if os.path.isfile(path):
                    total += info.st_size
    return total


class NormalClient:
    """Asks for ``/ping`` on a new connection every ``every`` seconds until stopped."""

    def __init__(self, port: int, every: float = 0.05, timeout: float = 2.0) -> None:
        self.port, self.every, self.timeout = port, every, timeout
        self.latencies: list[float] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="normal-client", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), self.timeout) as sock:
                    sock.settimeout(self.timeout)
                    sock.sendall(request("/ping"))
                    if not sock.recv(64).startswith(b"HTTP/1.1 200"):
                        raise OSError("not 200")
                self.latencies.append(time.monotonic() - started)
            except OSError:
                self.failed += 1
            self._stop.wait(max(0.0, self.every - (time.monotonic() - started)))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(self.timeout + 1)
        lat = self.latencies or [float("nan")]
        return {
            "normal p50 ms": statistics.median(lat) * 1000,
            "normal max ms": max(lat) * 1000,
            "normal failed": self.failed,
        }


class Watch:
    """Samples the server's RSS (peak) and descriptors (peak) every 0.1 s."""

    def __init__(self, trial: Trial) -> None:
        self.server = trial.server
        time.sleep(0.3)  # let the fresh server settle
        self.baseline = self.server.rss()
        self.fds0 = descriptors(self.server.pid)
        self.peak, self.fds = self.baseline, self.fds0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()

    def sample(self) -> None:
        self.peak = max(self.peak, self.server.rss())
        self.fds = max(self.fds, descriptors(self.server.pid))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(1)
        self.sample()
        return {
            "RSS growth MB": (self.peak - self.baseline) / MB,
            "peak fds": self.fds,
        }


def pipeline_flood(trial: Trial) -> dict[str, float]:
    p = trial.params
    watch = Watch(trial)
    normal = NormalClient(trial.server.port)
    probe = Probe(trial.server.pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", trial.server.port))
    sock.sendall(request(trial.path, close=False))
    sock.setblocking(False)
    burst = request("/ping", close=False) * 2000
    sent, started = 0, time.monotonic()
    while time.monotonic() - started < p["seconds"] and watch.peak - watch.baseline < p["cap"]:
        try:
            sent += sock.send(burst)
        except BlockingIOError:
            time.sleep(0.005)
    trial.usage = probe.stop()
    figures = {"client sent MB": sent / MB, **watch.stop(), **normal.stop()}
    sock.close()
    return figures


def slowloris(trial: Trial) -> dict[str, float]:
    p = trial.params
    watch = Watch(trial)
    socks = []
    for _ in range(p["clients"]):
        sock = connect(trial.server.port)
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.setblocking(False)
        socks.append(sock)
    normal = NormalClient(trial.server.port)
    probe = Probe(trial.server.pid)
    started = time.monotonic()
    open_ = set(socks)
    tick = 0
    while time.monotonic() - started < p["seconds"]:
        for sock in list(open_):
            try:
                sock.recv(4096)  # an answer (a 408) or a close: the server let go of it
                open_.discard(sock)
            except BlockingIOError:
                try:
                    sock.send(b"X-a: b\r\n"[tick % 8 : tick % 8 + 1])
                except OSError:
                    open_.discard(sock)
            except OSError:
                open_.discard(sock)
        tick += 1
        time.sleep(max(0.0, started + tick * p["every"] - time.monotonic()))
    trial.usage = probe.stop()
    figures = {"still open": len(open_), **watch.stop(), **normal.stop()}
    for sock in socks:
        sock.close()
    return figures


def threaded_burst(trial: Trial) -> dict[str, float]:
    p = trial.params
    watch = Watch(trial)
    normal = NormalClient(trial.server.port)
    probe = Probe(trial.server.pid)
    selector = selectors.DefaultSelector()
    started = time.monotonic()
    state: dict[socket.socket, list[Any]] = {}
    for _ in range(p["requests"]):
        sock = connect(trial.server.port)
        sock.sendall(request(trial.path))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        state[sock] = [None, b""]  # first byte at, response
    pending = set(state)
    while pending and time.monotonic() - started < p["timeout"]:
        for key, _ in selector.select(0.1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data and state[sock][0] is None:
                state[sock][0] = time.monotonic() - started
            state[sock][1] += data
            if not data:
                selector.unregister(sock)
                pending.discard(sock)
    trial.usage = probe.stop()
    figures = {**watch.stop(), **normal.stop()}
    codes = [answer[:12] for _, answer in state.values()]
    refused = [at for at, answer in state.values() if answer.startswith(b"HTTP/1.1 503")]
    for sock in state:
        sock.close()
    return {
        "served": sum(c.startswith(b"HTTP/1.1 200") for c in codes),
        "503": len(refused),
        "503 within s": max(refused, default=0.0),
        "unanswered": sum(not c for c in codes),
        **figures,
    }


def body_on_get(trial: Trial) -> dict[str, float]:
    p = trial.params
    watch = Watch(trial)
    normal = NormalClient(trial.server.port)
    probe = Probe(trial.server.pid)
    disk = 0
    sock = connect(trial.server.port, timeout=10)
    path = trial.path
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"100000\r\n" + b"u" * 0x100000 + b"\r\n"  # 1 MiB chunks, sent whole
    sent, started, answered_at, at = 0, time.monotonic(), None, 0
    sock.setblocking(False)
    response = b""
    next_check = 0
    while sent < p["body"] and time.monotonic() - started < p["timeout"]:
        try:
            response += sock.recv(65536)
            if answered_at is None and response:
                answered_at = time.monotonic() - started
        except BlockingIOError:
            pass
        except OSError:
            break
        try:
            n = sock.send(memoryview(chunk)[at:])
        except BlockingIOError:
            time.sleep(0.001)
            continue
        except OSError:
            break
        sent += n
        at = (at + n) % len(chunk)
        if sent >= next_check:
            disk = max(disk, temp_disk(trial.server.pid))
            next_check = sent + 64 * 1024 * 1024
    disk = max(disk, temp_disk(trial.server.pid))
    sock.settimeout(2)
    try:
        response += sock.recv(65536)
    except OSError:
        pass
    if answered_at is None and response:
        answered_at = time.monotonic() - started
    trial.usage = probe.stop()
    sock.close()
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.") else 0
    return {
        "status": status,
        "client sent MB": sent / MB,
        "answered after s": answered_at if answered_at is not None else float("nan"),
        "temp disk MB": disk / MB,
        **watch.stop(),
        **normal.stop(),
    }
