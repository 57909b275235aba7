"""The clients: curl for single downloads, and raw-socket clients that cost the machine as
little as possible (no parsing beyond the headers, no copy of bodies with a length:
``recv_into`` with ``MSG_TRUNC`` discards them in the kernel).

Everything talks to 127.0.0.1 only and every wait is bounded.
"""

from __future__ import annotations

import select
import selectors
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

RECV = 4 << 20  # bytes asked for per receive
_SINK = bytearray(RECV)  # reused by every receive; MSG_TRUNC never writes into it
_TERMINATOR = b"\r\n0\r\n\r\n"  # end of a chunked body (the generated bodies hold no CR/LF)


def request(path: str, *, close: bool = True, headers: str = "") -> bytes:
    """A GET of ``path``; ``headers``: more header lines, each ending with CRLF."""
    extra = ("Connection: close\r\n" if close else "") + headers
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def connect(port: int, timeout: float = 30.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@dataclass
class Transfer:
    """One response as the client saw it."""

    status: int = 0
    body: int = 0  # body bytes received (chunk framing included for chunked bodies)
    sent_at: float = 0.0
    done_at: float = 0.0
    length: int | None = None  # Content-Length
    chunked: bool = False
    complete: bool = False
    _head: bytes = b""
    _tail: bytes = b""

    @property
    def seconds(self) -> float:
        return self.done_at - self.sent_at

    def head_received(self, data: bytes) -> bool:
        """Feed bytes until the headers are in; True once they are (the rest counts as body)."""
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > 65536:
                raise RuntimeError("no end of the response headers")
            return False
        lines = self._head[:end].decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                self.length = int(value)
            elif name == "transfer-encoding":
                self.chunked = "chunked" in value.lower()
        rest = self._head[end + 4 :]
        self._head = b""
        self.body_received(rest)
        return True

    def body_received(self, data: bytes | memoryview) -> None:
        self.body += len(data)
        if self.chunked:
            self._tail = (self._tail + bytes(data[-len(_TERMINATOR) :]))[-len(_TERMINATOR) :]
            self.complete = self._tail == _TERMINATOR
        elif self.length is not None:
            self.complete = self.body >= self.length

    def wants(self) -> tuple[int, int]:
        """``(bytes to ask for, recv flags)``: a body with a length is discarded unread."""
        if self.length is not None and not self.chunked:
            return min(RECV, max(1, self.length - self.body)), socket.MSG_TRUNC
        return RECV, 0


def receive(sock: socket.socket, transfer: Transfer) -> bool:
    """One receive on ``sock`` for ``transfer``; False at end of stream."""
    if not transfer.status:
        data = sock.recv(65536)
        if data:
            transfer.head_received(data)
        return bool(data)
    size, flags = transfer.wants()
    n = sock.recv_into(_SINK, size, flags)
    if n and flags:
        transfer.body += n
        transfer.complete = transfer.length is not None and transfer.body >= transfer.length
    elif n:
        transfer.body_received(memoryview(_SINK)[:n])
    return n > 0


def get(port: int, path: str, *, timeout: float = 300.0) -> Transfer:
    """One request on a fresh connection, timed from sending it to its last byte."""
    transfer = Transfer()
    with connect(port, timeout) as sock:
        transfer.sent_at = time.perf_counter()
        sock.sendall(request(path))
        while not transfer.complete and receive(sock, transfer):
            pass
        transfer.done_at = time.perf_counter()
    return checked(path, transfer)


def checked(path: str, transfer: Transfer) -> Transfer:
    if transfer.status != 200 or not transfer.complete:
        raise RuntimeError(
            f"{path}: status {transfer.status}, {transfer.body:,} body bytes, "
            f"{'complete' if transfer.complete else 'cut short'}"
        )
    return transfer


def curl_get(port: int, path: str, *, timeout: float = 300.0) -> Transfer:
    """One download with curl to /dev/null (curl does the de-chunking); ``body`` is the
    payload without chunk framing."""
    out = subprocess.run(
        [
            "curl", "-s", "-o", "/dev/null", "--http1.1", "--max-time", str(int(timeout)),
            "-w", "%{http_code} %{size_download} %{time_total}",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    status, size, total = out.stdout.split()
    transfer = Transfer(status=int(status), body=int(size), done_at=float(total))
    transfer.complete = out.returncode == 0
    return checked(path, transfer)


def have_curl() -> bool:
    return shutil.which("curl") is not None


def get_many(
    port: int, paths: list[str], *, timeout: float = 300.0, headers: str = ""
) -> list[Transfer]:
    """Concurrent requests, one connection each, all read by one selector loop."""
    socks = [connect(port, timeout) for _ in paths]
    transfers = [Transfer() for _ in paths]
    sel = selectors.DefaultSelector()
    try:
        for sock, transfer, path in zip(socks, transfers, paths, strict=True):
            transfer.sent_at = time.perf_counter()
            sock.sendall(request(path, headers=headers))
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, transfer)
        left = len(socks)
        deadline = time.monotonic() + timeout
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{left} responses unfinished after {timeout} s")
            for key, _ in sel.select(1.0):
                transfer = key.data
                try:
                    more = receive(key.fileobj, transfer)  # type: ignore[arg-type]
                except BlockingIOError:
                    continue
                if transfer.complete or not more:
                    transfer.done_at = time.perf_counter()
                    sel.unregister(key.fileobj)
                    left -= 1
    finally:
        sel.close()
        for sock in socks:
            sock.close()
    return [checked(path, t) for path, t in zip(paths, transfers, strict=True)]


def first_byte(port: int, path: str) -> float:
    """Seconds from opening a connection to the first byte of the response; the rest of
    the response is then read and the connection closed."""
    started = time.perf_counter()
    with connect(port) as sock:
        sock.sendall(request(path))
        transfer = Transfer()
        data = sock.recv(65536)
        took = time.perf_counter() - started
        transfer.head_received(data)
        while not transfer.complete and receive(sock, transfer):
            pass
    checked(path, transfer)
    return took


def open_stalled(port: int, path: str, count: int) -> list[socket.socket]:
    """``count`` connections that each send the request, read the first bytes of the
    response, then stop reading (the caller closes them)."""
    socks = []
    try:
        for _ in range(count):
            sock = connect(port)
            sock.sendall(request(path))
            socks.append(sock)
        for sock in socks:
            if not sock.recv(4096).startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{path}: no 200 response")
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class EventStreams:
    """Open event streams, all read by one epoll loop that counts the events received."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.path = path
        self.epoll = select.epoll()
        self.socks: dict[int, socket.socket] = {}
        self.events = 0

    def open(self, count: int, *, batch: int = 200, timeout: float = 60.0) -> None:
        """Open ``count`` streams, ``batch`` at a time, each batch waiting for its headers."""
        deadline = time.monotonic() + timeout
        while len(self.socks) < count:
            waiting = set()
            for _ in range(min(batch, count - len(self.socks))):
                sock = connect(self.port)
                sock.sendall(request(self.path, close=False))
                sock.setblocking(False)
                self.socks[sock.fileno()] = sock
                self.epoll.register(sock.fileno(), select.EPOLLIN)
                waiting.add(sock.fileno())
            while waiting:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(waiting)} event streams sent no headers")
                waiting -= set(self.poll(0.5))

    def poll(self, timeout: float) -> list[int]:
        """Read what arrived; the descriptors that got data."""
        got = []
        for fd, _ in self.epoll.poll(timeout, len(self.socks) or 1):
            try:
                n = self.socks[fd].recv_into(_SINK)
            except BlockingIOError:
                continue
            if n == 0:
                raise RuntimeError(f"the server closed an event stream of {self.path}")
            self.events += _SINK.count(b"data:", 0, n)
            got.append(fd)
        return got

    def drain(self, seconds: float) -> None:
        """Keep reading for ``seconds``."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.poll(min(left, 0.2))

    def close(self) -> None:
        self.epoll.close()
        for sock in self.socks.values():
            sock.close()
        self.socks.clear()
