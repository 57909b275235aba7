"""Shared pieces of the benchmark scripts: server processes, /proc readers, a raw HTTP client.

Everything talks to 127.0.0.1 only. The client is deliberately minimal so it is not the
bottleneck: it sends one request, ``recv_into``s a large reusable buffer and only counts
bytes until the end of the response (the chunked terminator, the Content-Length, or the
connection closing); it does not parse or keep the body.
"""

from __future__ import annotations

import fcntl
import os
import platform
import resource
import selectors
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SERVERS = os.path.join(HERE, "_servers.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1_000_000  # throughput and memory are reported in MB = 10**6 bytes
RECV_BUFFER = 4 << 20


# /proc readers.


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of process ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    return sum(cpu_times(pid))


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat), to spot other load."""
    with open("/proc/stat", "rb") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (VmRSS)."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# Server processes.


class Server:
    """One benchmark server (see ``_servers.py``) in its own process."""

    def __init__(
        self,
        impl: str,
        *,
        extra: Sequence[str] = (),
        profile: str | None = None,
        address_space_limit: int = 8 << 30,
        start_timeout: float = 30.0,
    ) -> None:
        self.impl = impl
        self.profile = profile
        cmd = [sys.executable, SERVERS, impl, *extra]
        if profile:
            cmd += ["--profile", profile]
        self._log = tempfile.TemporaryFile(prefix=f"bench-{impl}-", suffix=".log")

        def limit() -> None:
            # A safety net against a server that buffers without bound (the naive loop):
            # past this much address space its allocations fail instead of eating the machine.
            resource.setrlimit(resource.RLIMIT_AS, (address_space_limit, address_space_limit))

        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            preexec_fn=limit,
            cwd=REPO,
        )
        self.pid = self.proc.pid
        self.port = self._read_port(start_timeout)

    def _read_port(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                self.stop()
                raise RuntimeError(f"{self.impl} server did not start:\n{self.log_text()}")
            got = os.read(self.proc.stdout.fileno(), 256)
            if not got:
                self.stop()
                raise RuntimeError(f"{self.impl} server exited:\n{self.log_text()}")
            line += got
        sel.close()
        word, port = line.split()[:2]
        assert word == b"PORT", line
        return int(port)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def cpu_times(self) -> tuple[float, float]:
        return cpu_times(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-4000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM (lets a profiled server dump its stats), then SIGKILL after 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._log.close()


# The client.


@dataclass
class Response:
    """What the client saw of one response."""

    path: str
    sent_at: float = 0.0
    done_at: float | None = None
    status: int | None = None
    header_bytes: int = 0
    body_wire_bytes: int = 0  # body bytes on the wire, chunk framing included
    complete: bool = False
    error: str | None = None
    _head: bytearray = field(default_factory=bytearray)
    _mode: str = ""  # "chunked", "length" or "close"
    _length: int = 0
    _tail: bytes = b"\r\n"

    @property
    def elapsed(self) -> float:
        assert self.done_at is not None
        return self.done_at - self.sent_at

    def feed(self, data: memoryview, now: float) -> bool:
        """Account for received ``data``; True once the response is complete."""
        if self._mode == "":
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > 65536:
                    raise RuntimeError(f"{self.path}: no end of headers")
                return False
            head = bytes(self._head[:end]).decode("latin-1")
            rest = memoryview(bytes(self._head[end + 4 :]))
            self.header_bytes = end + 4
            self._head = bytearray()
            lines = head.split("\r\n")
            self.status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if headers.get("transfer-encoding", "").lower() == "chunked":
                self._mode = "chunked"
            elif "content-length" in headers:
                self._mode = "length"
                self._length = int(headers["content-length"])
            else:
                self._mode = "close"
            return self._body(rest, now)
        return self._body(data, now)

    def _body(self, data: memoryview, now: float) -> bool:
        self.body_wire_bytes += len(data)
        if self._mode == "length":
            done = self.body_wire_bytes >= self._length
        elif self._mode == "chunked":
            # The generated bodies never contain CR/LF, so a size line of "0" followed by the
            # empty trailer can only be the end.
            self._tail = (self._tail + bytes(data[-7:]))[-7:]
            done = self._tail.endswith(b"\r\n0\r\n\r\n")
        else:
            done = False
        if done:
            self.complete = True
            self.done_at = now
        return done

    def eof(self, now: float) -> None:
        if self._mode == "close":
            self.complete = True
        elif not self.complete:
            self.error = "connection closed before the end of the response"
        if self.done_at is None:
            self.done_at = now


def request_bytes(path: str, extra_headers: Iterable[str] = ()) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *extra_headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def fetch(port: int, path: str, *, timeout: float = 300.0) -> Response:
    """One request on a fresh connection, timed from sending it to its last byte."""
    buf = bytearray(RECV_BUFFER)
    view = memoryview(buf)
    sock = connect(port)
    sock.settimeout(timeout)
    resp = Response(path)
    deadline = time.monotonic() + timeout
    try:
        perf = time.perf_counter
        recv_into = sock.recv_into
        resp.sent_at = perf()
        sock.sendall(request_bytes(path))
        while True:
            n = recv_into(view)
            now = perf()
            if n == 0:
                resp.eof(now)
                break
            if resp.feed(view[:n], now):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: no end after {timeout} s")
    finally:
        sock.close()
    if resp.error:
        raise RuntimeError(f"{path}: {resp.error}")
    if resp.status != 200:
        raise RuntimeError(f"{path}: status {resp.status}")
    return resp


def fetch_many(port: int, paths: Sequence[str], *, timeout: float = 300.0) -> list[Response]:
    """Concurrent requests, one connection each, driven by one selector loop."""
    buf = bytearray(RECV_BUFFER)
    view = memoryview(buf)
    sel = selectors.DefaultSelector()
    perf = time.perf_counter
    socks = []
    responses = []
    try:
        for path in paths:
            sock = connect(port)
            socks.append(sock)
            resp = Response(path)
            responses.append(resp)
        # Connect everything first, then send all requests back to back.
        for sock, resp in zip(socks, responses, strict=True):
            resp.sent_at = perf()
            sock.sendall(request_bytes(resp.path))
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, resp)
        open_count = len(socks)
        deadline = time.monotonic() + timeout
        while open_count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{open_count} responses unfinished after {timeout} s")
            for key, _ in sel.select(min(left, 1.0)):
                resp = key.data
                sock = key.fileobj
                try:
                    n = sock.recv_into(view)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                now = perf()
                if n == 0:
                    resp.eof(now)
                    finished = True
                else:
                    finished = resp.feed(view[:n], now)
                if finished:
                    sel.unregister(sock)
                    open_count -= 1
    finally:
        sel.close()
        for sock in socks:
            sock.close()
    for resp in responses:
        if resp.error:
            raise RuntimeError(f"{resp.path}: {resp.error}")
        if resp.status != 200:
            raise RuntimeError(f"{resp.path}: status {resp.status}")
    return responses


def queued_bytes(sock: socket.socket) -> int:
    """Bytes waiting unread in ``sock``'s receive queue (FIONREAD), without reading them."""
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int.from_bytes(raw, sys.byteorder)


# Stalled clients and RSS.


@dataclass
class RssResult:
    impl: str
    baseline: int
    stable: int | None  # RSS once it stopped growing (None: it never did)
    peak: int
    settle_seconds: float
    receiving: int
    clients: int
    queued: int
    after_close: int | None = None
    capped: str | None = None  # why the run was cut short, if it was

    @property
    def growth(self) -> int:
        return (self.stable if self.stable is not None else self.peak) - self.baseline


def stalled_rss(
    server: Server,
    paths: Sequence[str],
    *,
    read_first: int = 0,
    stable_for: float = 2.0,
    max_wait: float = 30.0,
    cap_growth: int = 2 << 30,
    poll: float = 0.1,
    after_close_wait: float = 2.0,
) -> RssResult:
    """Open one connection per path, send the request, read ``read_first`` body-ish bytes
    (0: nothing at all) and then stop reading; poll the server's RSS until it has not grown
    for ``stable_for`` seconds (at most ``max_wait``), killing the server if its RSS grows
    past ``cap_growth``. Closes the connections and reports."""
    baseline = server.rss()
    peak = baseline
    socks: list[socket.socket] = []
    capped = None
    try:
        for path in paths:
            sock = connect(port=server.port)
            sock.sendall(request_bytes(path))
            socks.append(sock)
        if read_first:
            sink = bytearray(1 << 20)
            for sock in socks:
                got = 0
                sock.settimeout(30)
                while got < read_first:
                    n = sock.recv_into(sink, min(len(sink), read_first - got))
                    if n == 0:
                        break
                    got += n
        start = time.monotonic()
        history: list[tuple[float, int]] = []
        stable = None
        settle = max_wait
        receiving = 0
        queued = 0
        while True:
            now = time.monotonic()
            if not server.alive():
                capped = "server died"
                break
            rss = server.rss()
            peak = max(peak, rss)
            history.append((now, rss))
            depths = [queued_bytes(s) for s in socks]
            receiving = len(socks) if read_first else sum(1 for d in depths if d > 0)
            queued = sum(depths)
            if rss - baseline > cap_growth:
                server.kill()
                capped = (
                    f"killed: RSS grew past the {cap_growth // MB} MB cap after "
                    f"{now - start:.1f} s"
                )
                break
            window = [r for t, r in history if t >= now - stable_for]
            if (
                receiving == len(socks)
                and now - start >= stable_for
                and max(window) - min(window) < 256 * 1024
            ):
                stable = rss
                settle = now - start
                break
            if now - start > max_wait:
                capped = f"RSS still changing after {max_wait:.0f} s"
                break
            time.sleep(poll)
    finally:
        for sock in socks:
            sock.close()
    result = RssResult(
        server.impl, baseline, stable, peak, settle, receiving, len(paths), queued, capped=capped
    )
    if server.alive():
        time.sleep(after_close_wait)
        if server.alive():
            result.after_close = server.rss()
    return result


# Reporting.


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def command_line() -> str:
    return " ".join(
        shlex.quote(a)
        for a in [
            os.path.relpath(sys.executable, REPO)
            if sys.executable.startswith(REPO)
            else sys.executable,
            *sys.argv,
        ]
    )


def environment_lines(extra: Callable[[], list[str]] | None = None) -> list[str]:
    import twisted

    lines = [
        f"command: {command_line()}",
        f"python {platform.python_version()}, twisted {twisted.__version__}",
    ]
    try:
        import aiohttp

        lines[-1] += f", aiohttp {aiohttp.__version__}"
    except ImportError:
        lines[-1] += ", aiohttp not installed"
    lines.append(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.release()}; started {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    lines.append(git_state())
    lines.append(
        f"load average at start: {load_average()} (other work on this machine "
        "shows as 'other CPU s': machine busy time minus server and client)"
    )
    if extra:
        lines += extra()
    return lines


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", REPO, "status", "--porcelain", "--", "twisted_stream"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "git: unavailable"
    state = "with uncommitted changes in twisted_stream/" if dirty else "clean twisted_stream/"
    return f"git: {head or '?'}, {state}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    out = [fmt(headers), "  ".join("-" * w for w in widths)]
    out += [fmt(r) for r in rows]
    return "\n".join(out)


def say(*parts: object) -> None:
    print(*parts, flush=True)
