"""A benchmark server in its own process: started pinned to the server CPU, ready once
``GET /ping`` answers (``wait_ready``), stopped with SIGTERM (then SIGKILL)."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence

from benchmarks._proc import cpu_seconds, rss_bytes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int, timeout: float = 2.0) -> bool:
    """Whether ``GET /ping`` on ``port`` answers 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class ServerProcess:
    """One server process for ``target``, listening on ``port``."""

    def __init__(
        self,
        target: str,
        command: Sequence[str],
        port: int,
        *,
        cpus: set[int] | None,
        start_timeout: float = 30.0,
    ) -> None:
        self.target = target
        self.port = port
        self._log = tempfile.TemporaryFile(prefix=f"bench-{target}-")

        def child_setup() -> None:
            # Not inherited from the suite, which pins itself to the client's CPU: an
            # unpinned server (worker processes) may use every CPU.
            os.sched_setaffinity(0, cpus or range(os.cpu_count() or 1))
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

        self.proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=child_setup,
            cwd=REPO,
        )
        self.pid = self.proc.pid
        self.start_timeout = start_timeout

    def wait_ready(self) -> None:
        """Return once ``GET /ping`` answers; RuntimeError with the server's output if it
        exits or does not answer in time."""
        deadline = time.monotonic() + self.start_timeout
        while not ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.target} did not start:\n{self.log_text()}")
            time.sleep(0.02)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-3000:]

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (a profiled server writes its statistics), SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        self.stop()
        self._log.close()
