"""Where a Redis server is: ``redis://`` URLs, and a blocking reachability check for startup.

The URL form is the one Redis clients share (IANA's ``redis`` scheme):
``redis://[[username]:password@]host[:port][/db]``, port 6379 and database 0 by default.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 6379


@dataclass(frozen=True)
class RedisAddress:
    """A parsed ``redis://`` URL."""

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        """The address in ``url``; ``ValueError`` naming what is wrong with it."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise ValueError(f"{url!r} is not a redis:// URL: {e}") from None
        if parts.scheme != "redis":
            raise ValueError(f"{url!r} is not a redis:// URL (redis://host:port/db)")
        if not parts.hostname:
            raise ValueError(f"{url!r} names no host (redis://host:port/db)")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"{url!r}: the database {path!r} is not a number")
        if parts.query or parts.fragment:
            raise ValueError(f"{url!r}: a query or fragment is not understood")
        return cls(
            host=parts.hostname,
            port=port if port is not None else DEFAULT_PORT,
            db=int(path) if path else 0,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    def __str__(self) -> str:
        """The URL without its password (for messages and logs)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{host}:{self.port}/{self.db}"

    def setup_commands(self) -> list[tuple[str, ...]]:
        """The commands a new connection sends before any other: ``AUTH``, ``SELECT``."""
        commands: list[tuple[str, ...]] = []
        if self.password is not None:
            if self.username:
                commands.append(("AUTH", self.username, self.password))
            else:
                commands.append(("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", str(self.db)))
        return commands


def _command(*args: str) -> bytes:
    """``args`` as a RESP array of bulk strings (the Redis protocol's request form)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def check_reachable(address: RedisAddress, timeout: float = 3.0) -> None:
    """Connect to ``address``, authenticate, select the database and ``PING``, blocking for at
    most about ``timeout`` seconds; ``OSError`` with a one-line reason when that fails.

    Used once at startup, before the reactor runs, so that a server that cannot reach its
    channel backend ends with one line instead of serving without it.
    """
    commands = [*address.setup_commands(), ("PING",)]
    with socket.create_connection((address.host, address.port), timeout=timeout) as sock:
        sock.sendall(b"".join(_command(*c) for c in commands))
        received = b""
        for command in commands:
            while b"\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    raise OSError("the server closed the connection")
                received += chunk
            line, _, received = received.partition(b"\r\n")
            if line.startswith(b"-"):
                reason = line[1:].decode("utf-8", "replace")
                raise OSError(f"{command[0]} failed: {reason}")
