"""The upstream of the proxy workloads: one plain HTTP/1.1 server behind every proxy target,
as cheap as possible so that the proxies are what is measured (a thread per connection,
keep-alive, no parsing beyond the request line). The suite runs it on the client's CPU.

- ``GET /ping``: a tiny body;
- ``GET /files/<name>``: ``<name>`` from ``--root`` with ``Content-Length``, by ``sendfile``;
- ``GET /chunks?n=N&size=S``: ``N`` chunks of ``S`` bytes, each its own HTTP chunk (chunked
  transfer encoding), written in blocks of about 1 MB.
"""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import sys
from typing import Any
from urllib.parse import parse_qs

from benchmarks.servers._common import parse_args, run

BLOCK_CHUNKS = 10_000
"""Framed chunks per write of ``/chunks``."""


class Handler(socketserver.BaseRequestHandler):
    root = ""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                data = sock.recv(65536)
                if not data:
                    return
                pending += data
            head, _, pending = pending.partition(b"\r\n\r\n")
            target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
            path, _, query = target.partition("?")
            try:
                if path == "/ping":
                    self.simple(sock, 200, b"pong\n")
                elif path.startswith("/files/"):
                    self.file(sock, os.path.join(self.root, os.path.basename(path)))
                elif path == "/chunks":
                    params = parse_qs(query)
                    self.chunks(sock, int(params["n"][0]), int(params["size"][0]))
                else:
                    self.simple(sock, 404, b"not found\n")
            except OSError:
                return  # the proxy closed the connection
            if b"connection: close" in head.lower():
                return

    @staticmethod
    def simple(sock: socket.socket, status: int, body: bytes) -> None:
        sock.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))

    def file(self, sock: socket.socket, path: str) -> None:
        try:
            f = open(path, "rb")
        except OSError:
            self.simple(sock, 404, b"no such file\n")
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % size
            )
            offset = 0
            while offset < size:
                sent = os.sendfile(sock.fileno(), f.fileno(), offset, size - offset)
                if not sent:
                    raise OSError("sendfile sent nothing")
                offset += sent

    @staticmethod
    def chunks(sock: socket.socket, n: int, size: int) -> None:
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        framed = b"%x\r\n%s\r\n" % (size, b"x" * size)
        block = framed * min(n, BLOCK_CHUNKS)
        full, rest = divmod(n, BLOCK_CHUNKS)
        for _ in range(full):
            sock.sendall(block)
        sock.sendall(framed * rest + b"0\r\n\r\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096


def serve(port: int, root: str | None) -> None:
    Handler.root = root or ""
    server = Server(("127.0.0.1", port), Handler)

    def stop(*_: Any) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    run(lambda: serve(args.port, args.root), args.profile)


if __name__ == "__main__":
    main()
