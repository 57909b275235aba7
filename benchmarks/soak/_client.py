"""The soak's clients: each a kind of stream and a behaviour, kept at ``--streams`` by the
``Driver``, which also asks the server for its own figures."""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

KINDS = {"file": 0.20, "gen": 0.25, "agen": 0.15, "tgen": 0.05, "events": 0.35}
BEHAVIOURS = {"normal": 0.60, "slow": 0.15, "stall": 0.10, "disconnect": 0.15}
FILE_SIZES = {"one.bin": 1 << 20, "two.bin": 2 << 20, "small.bin": 200_000}
STALL_FILE = ("big.bin", 32 << 20)
"""What stalling clients ask for: more than loopback socket buffers (megabytes) hold."""
FILE_READ_RATE = 64_000
"""Bytes per second a normal client reads a file at (a slow link)."""
SLOW_READ_RATE = 8_000
"""Bytes per second a slow client reads at."""
TICK = 0.1


@dataclass
class Tally:
    """What the clients saw."""

    requests: int = 0
    refused: int = 0
    bad_status: Counter[int] = field(default_factory=Counter)
    truncated: int = 0
    ended: Counter[str] = field(default_factory=Counter)
    bytes: int = 0

    @property
    def errors(self) -> int:
        return self.refused + sum(self.bad_status.values()) + self.truncated


def make_client_classes(driver: Driver) -> Any:
    from twisted.internet.protocol import ClientFactory, Protocol

    class SoakClient(Protocol):
        def __init__(self, kind: str, behaviour: str, path: str, rng: random.Random) -> None:
            self.kind = kind
            self.behaviour = behaviour
            self.path = path
            self.head = b""
            self.status = 0
            self.length: int | None = None
            self.chunked = False
            self.tail = b""
            self.body = 0
            self.budget = 0.0
            self.paused = False
            self.left_on_purpose = False
            self.stalled_since: float | None = None
            self.rate = 0.0
            if kind == "file" and behaviour == "normal":
                self.rate = FILE_READ_RATE
            elif behaviour == "slow":
                self.rate = SLOW_READ_RATE
            lifetime = {
                "disconnect": rng.uniform(1, 15),
                "normal": rng.uniform(20, 90) if kind == "events" else None,
                "slow": rng.uniform(20, 90) if kind == "events" else None,
            }.get(behaviour)
            self.leave_at = None if lifetime is None else time.monotonic() + lifetime
            self.reset = rng.random() < 0.5

        def connectionMade(self) -> None:
            driver.open.add(self)
            request = f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            self.transport.write(request.encode())  # type: ignore[union-attr]

        def dataReceived(self, data: bytes) -> None:
            driver.tally.bytes += len(data)
            if not self.status:
                self.head += data
                if b"\r\n\r\n" not in self.head:
                    return
                head, _, data = self.head.partition(b"\r\n\r\n")
                self.head = b""
                lines = head.decode("latin-1").split("\r\n")
                self.status = int(lines[0].split(" ")[1])
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        self.length = int(value)
                    elif name == "transfer-encoding" and "chunked" in value:
                        self.chunked = True
                if self.status != 200:
                    driver.tally.bad_status[self.status] += 1
                if self.behaviour == "stall":
                    self.stalled_since = time.monotonic()
                    self.pause()
            self.body += len(data)
            self.tail = (self.tail + data)[-5:]
            if self.rate:
                self.budget -= len(data)
                if self.budget <= 0:
                    self.pause()

        def pause(self) -> None:
            if not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pauseProducing()  # type: ignore[attr-defined]

        def resume(self) -> None:
            if self.paused and self.transport is not None:
                self.paused = False
                self.transport.resumeProducing()  # type: ignore[attr-defined]

        def tick(self, now: float) -> None:
            if self.rate:
                self.budget = min(self.budget + self.rate * TICK, self.rate * TICK)
                if self.budget > 0 and self.behaviour != "stall":
                    self.resume()
            if self.stalled_since is not None and now - self.stalled_since > 2 * driver.stall:
                # Look again, so the close the stall timeout caused is seen.
                self.stalled_since = None
                self.resume()
            if self.leave_at is not None and now >= self.leave_at:
                self.leave_at = None
                self.left_on_purpose = True
                transport: Any = self.transport
                if self.reset:
                    transport.getHandle().setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                transport.abortConnection()

        def complete(self) -> bool:
            if self.length is not None:
                return self.body == self.length
            if self.chunked:
                return self.tail == b"0\r\n\r\n"
            return False

        def connectionLost(self, reason: Any = None) -> None:
            driver.open.discard(self)
            tally = driver.tally
            if self.left_on_purpose:
                tally.ended["left"] += 1
            elif self.status == 200 and self.complete():
                tally.ended["complete"] += 1
            elif self.behaviour == "stall":
                tally.ended["stalled"] += 1
            elif self.status == 200:
                tally.truncated += 1
                tally.ended["truncated"] += 1
                if len(driver.samples_of_truncation) < 5:
                    driver.samples_of_truncation.append(
                        f"{self.path} {self.behaviour} body={self.body} length={self.length}"
                    )
            else:
                tally.ended["no-response"] += 1
            driver.replace()

    class SoakFactory(ClientFactory):
        def __init__(self, client: SoakClient) -> None:
            self.client = client

        def buildProtocol(self, addr: Any) -> SoakClient:
            return self.client

        def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
            driver.tally.refused += 1
            driver.replace()

    return SoakClient, SoakFactory


class Driver:
    """Keeps ``streams`` clients connected and samples the server."""

    def __init__(self, args: argparse.Namespace, port: int, pid: int) -> None:
        self.args = args
        self.port = port
        self.pid = pid
        self.stall = args.stall_timeout
        self.rng = random.Random(args.seed)
        self.tally = Tally()
        self.open: set[Any] = set()
        self.samples_of_truncation: list[str] = []
        self.stopping = False
        self.client_class, self.factory_class = make_client_classes(self)

    def pick(self, table: dict[str, float]) -> str:
        return self.rng.choices(list(table), list(table.values()))[0]

    def new_client(self) -> None:
        from twisted.internet import reactor

        kind, behaviour = self.pick(KINDS), self.pick(BEHAVIOURS)
        if kind == "file":
            path = "/files/" + self.rng.choice(list(FILE_SIZES))
        elif kind == "events":
            path = "/events"
        else:
            every = 0.5 if kind != "tgen" else 0.05
            size = self.rng.randrange(40, 160) * 4096
            path = f"/{kind}?bytes={size}&every={every}"
        if behaviour == "stall":
            # Only a fast stream fills the socket buffers (megabytes on loopback) soon enough
            # for the stall timeout to apply while the client looks away.
            kind, path = "file", "/files/" + STALL_FILE[0]
        client = self.client_class(kind, behaviour, path, self.rng)
        self.tally.requests += 1
        reactor.connectTCP("127.0.0.1", self.port, self.factory_class(client), timeout=30)

    def replace(self) -> None:
        if not self.stopping:
            self.new_client()

    def tick(self) -> None:
        now = time.monotonic()
        for client in list(self.open):
            client.tick(now)

    def server_state(self) -> dict[str, Any]:
        """The server's own counts (``/_soak``), fetched with a blocking socket."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(b"GET /_soak HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while True:
                got = sock.recv(65536)
                if not got:
                    break
                data += got
        result: dict[str, Any] = json.loads(data.partition(b"\r\n\r\n")[2])
        return result
