"""The upload workload: one client sends a large request body to a server that reads it as
it arrives and drops it (``PUT /upload``, the ``upload`` feature); throughput, and the
server's memory while it does.

The client sends a ``Content-Length`` body from one constant buffer (``sendall``, so its own
cost is the kernel's copy) and waits for the answer, which carries the size the server
counted. Meanwhile a thread samples the server's RSS every 20 ms: the figure is the peak
over the upload less the RSS of the warmed-up server just before it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from benchmarks import _clients as clients
from benchmarks._proc import MB, MiB, Probe
from benchmarks._server import ServerProcess

if TYPE_CHECKING:
    from benchmarks._workloads import Trial

BLOCK = b"u" * MiB


def put(port: int, path: str, size: int, *, timeout: float = 600.0) -> tuple[float, bytes]:
    """Send ``PUT path`` with a ``size``-byte body; the seconds from the first byte sent to
    the whole answer, and the answer."""
    sock = clients.connect(port, timeout)
    try:
        head = (
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
        started = time.monotonic()
        sock.sendall(head)
        left = size
        view = memoryview(BLOCK)
        while left:
            n = min(left, len(BLOCK))
            sock.sendall(view[:n])
            left -= n
        answer = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return time.monotonic() - started, answer
    finally:
        sock.close()


def sampled_peak(rss: Callable[[], int], during: Callable[[], None]) -> int:
    """Run ``during()`` while sampling ``rss()`` every 20 ms; the highest sample."""
    peak = rss()
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.02):
            peak = max(peak, rss())

    thread = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    thread.start()
    try:
        during()
    finally:
        stop.set()
        thread.join()
    return max(peak, rss())


def upload(trial: Trial) -> dict[str, float]:
    server: ServerProcess = trial.server
    size = trial.params["size"]
    put(server.port, trial.path, 4 * MiB)  # warm up: first-use allocations
    time.sleep(trial.params["rest"])
    baseline = server.rss()
    result: list[tuple[float, bytes]] = []
    probe = Probe(server.pid)
    peak = sampled_peak(server.rss, lambda: result.append(put(server.port, trial.path, size)))
    trial.usage = probe.stop()
    seconds, answer = result[0]
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") or body.strip() != str(size).encode():
        raise RuntimeError(f"unexpected answer: {answer[:300]!r}")
    return {
        "MB/s": size / seconds / MB,
        "RSS growth MB": (peak - baseline) / MB,
        "server CPU s/GiB": trial.usage.server_cpu / (size / (1 << 30)),
    }
