"""Pieces the two Twisted servers share: a leaf resource from a function, and the launch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.web.resource import Resource


class Leaf(Resource):
    """A leaf resource whose ``GET`` is ``render(request)``."""

    isLeaf = True

    def __init__(self, render: Callable[[Any], Any]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._render = render

    def render_GET(self, request: Any) -> Any:
        return self._render(request)


def ping(request: Any) -> bytes:
    request.setHeader(b"content-type", b"text/plain")
    return b"pong\n"


def query(request: Any) -> Callable[[str], str | None]:
    """A getter of ``request``'s query parameters."""

    def get(name: str) -> str | None:
        values = request.args.get(name.encode())
        return values[0].decode() if values else None

    return get


def listen_and_run(site: Any, port: int) -> None:
    """Serve ``site`` on 127.0.0.1:``port`` until SIGTERM/SIGINT stop the reactor."""
    from twisted.internet import reactor

    reactor.listenTCP(port, site, backlog=4096, interface="127.0.0.1")
    reactor.run()
