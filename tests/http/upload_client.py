"""A chunked upload client run as its own process (so neither its memory nor the GIL mixes
with the server's): ``python -m tests.http.upload_client PORT TOTAL``.

It sends ``PUT /big`` with a chunked body of ``TOTAL`` bytes (one constant MiB-sized chunk)
as fast as the server takes it; once nothing could be sent for half a second it prints
``STALLED <bytes sent> <its local port>`` and waits for a line on stdin; then it sends the
rest, reads the response to the close and prints ``DONE <response as hex>``.
"""

from __future__ import annotations

import select
import socket
import sys
import time

MIB = 1024 * 1024


def main(port: int, total: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"PUT /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    frame = memoryview(b"%x\r\n" % MIB + b"u" * MIB + b"\r\n")
    frames = total // MIB
    sent = 0
    sock.setblocking(False)
    offset = 0
    progress = time.monotonic()
    while frames and time.monotonic() - progress < 0.5:
        select.select([], [sock], [], 0.1)
        try:
            n = sock.send(frame[offset:])
        except BlockingIOError:
            continue
        sent += n
        offset += n
        progress = time.monotonic()
        if offset == len(frame):
            offset = 0
            frames -= 1
    print(f"STALLED {sent} {sock.getsockname()[1]}", flush=True)
    sys.stdin.readline()
    sock.setblocking(True)
    if offset:
        sock.sendall(frame[offset:])
        frames -= 1
    for _ in range(frames):
        sock.sendall(frame)
    sock.sendall(b"0\r\n\r\n")
    response = b""
    while True:
        data = sock.recv(65536)
        if not data:
            break
        response += data
    print(f"DONE {response.hex()}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
