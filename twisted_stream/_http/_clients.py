"""Open connections per client address, for ``max_connections_per_client``."""

from __future__ import annotations

from ._twisted import peer_host

__all__ = ["ClientConnections", "peer_host"]


class ClientConnections:
    """How many connections each client address has open on a site (like nginx's
    ``limit_conn``, counted by the connection's peer: ``X-Forwarded-For`` does not apply)."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def open(self, client: str, limit: int) -> bool:
        """Count a new connection of ``client``; False (and not counted) if it already has
        ``limit`` open. ``limit`` 0 means no limit."""
        count = self._open.get(client, 0)
        if limit and count >= limit:
            return False
        self._open[client] = count + 1
        return True

    def close(self, client: str) -> None:
        """A counted connection of ``client`` has closed."""
        count = self._open.get(client, 0) - 1
        if count > 0:
            self._open[client] = count
        else:
            self._open.pop(client, None)

    def count(self, client: str) -> int:
        """Connections ``client`` has open."""
        return self._open.get(client, 0)

    def __len__(self) -> int:
        """Connections open in all."""
        return sum(self._open.values())
