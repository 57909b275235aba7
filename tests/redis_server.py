"""A real ``redis-server`` for the tests: on a free port of 127.0.0.1, no persistence, started
and stopped at will (to test outages). A missing ``redis-server`` skips the tests that need
one, except under CI (``CI`` set), where it is a failure: ``.ci/run`` installs it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """Send one command to the server on ``port``; its reply's first line (blocking)."""
    request = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received.partition(b"\r\n")[0]


class RedisServer:
    """One ``redis-server`` process; :meth:`stop` and :meth:`start` again keep its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:  # process-level readiness: poll with a deadline
            try:
                if redis_command(self.port, "PING") == b"+PONG":
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()  # an outage, not a clean shutdown
            proc.wait(10)

    def command(self, *args: str) -> bytes:
        return redis_command(self.port, *args)


def redis_servers() -> Iterator[RedisServer]:
    """The body of a ``redis`` fixture: a started server, stopped at teardown."""
    if shutil.which("redis-server") is None:
        why = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Redis tests: {why}")
        pytest.skip(why)
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
