"""What the live demos (flow control, uploads) share: one page per visitor, known by a
random id the page is served with, whose transfer the server watches and reports; at most
:data:`MAX_WATCHED` pages at once (more are answered 503), stale ones forgotten."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Request

from twisted_stream import Event

from ._query import page

MAX_WATCHED = 64
"""The most visitors' pages watched at once."""


class Watch(Protocol):
    """One visitor's transfer as the server sees it."""

    def stale(self, now: float) -> bool:
        """Whether it may be forgotten (``now``: ``time.monotonic()``)."""

    def state(self) -> dict[str, Any]:
        """The server's view of it now, as a JSON object."""


W = TypeVar("W", bound=Watch)


def page_id(request: Request) -> str:
    """The ``id`` query argument: the page a data or state request belongs to."""
    raw: bytes = (request.args or {}).get(b"id", [b""])[0]
    return raw.decode("ascii", "replace")


def admit(request: Request, watched: dict[str, W], make: Callable[[], W]) -> str | None:
    """Forget stale pages, then watch a new one and return its id; None (the response set
    to 503 with ``Retry-After``) when :data:`MAX_WATCHED` pages are watched already."""
    now = time.monotonic()
    for key in [k for k, entry in watched.items() if entry.stale(now)]:
        del watched[key]
    if len(watched) >= MAX_WATCHED:
        request.setResponseCode(503)
        request.setHeader(b"retry-after", b"10")
        return None
    key = secrets.token_urlsafe(12)
    watched[key] = make()
    return key


def state_reports(
    watched: dict[str, W],
    key: str,
    interval: float,
    what: str,
    ended: Callable[[dict[str, Any]], bool],
    given_up: Callable[[W, float], bool] = lambda entry, waited: False,
) -> Iterator[object]:
    """Events for the page ``key``: its state every ``interval`` seconds until a report
    is ``ended`` (then the page is forgotten), or a ``gone`` event when there is no such
    page or it was ``given_up`` on after the seconds waited so far."""
    from twisted.internet import reactor

    waited = 0.0
    while True:
        entry = watched.get(key)
        if entry is None or given_up(entry, waited):
            yield Event(json.dumps({"error": f"no such {what}"}), event="gone")
            return
        report = entry.state()
        yield Event(json.dumps(report))
        if ended(report):
            watched.pop(key, None)
            return
        waited += interval
        wait: Deferred[None] = deferLater(reactor, interval, lambda: None)
        yield wait


def busy_page(title: str) -> bytes:
    """The page of a visitor :func:`admit` turned away."""
    body = f"<h1>{title}</h1><p>Too many visitors: try again in a moment.</p>"
    return page(title, body).encode("utf-8")


class _Root(Resource):
    """``/name`` redirects to ``/name/``, so the page's relative links resolve below it."""

    def render_GET(self, request: Request) -> bytes:
        query = request.uri.partition(b"?")[2]
        location = request.path.rsplit(b"/", 1)[-1] + b"/" + (b"?" + query if query else b"")
        request.setResponseCode(301)
        request.setHeader(b"location", location)
        return b""


def demo_tree(page: Resource, data: Resource, state: Resource) -> Resource:
    """A demo's resource: its page at ``./``, ``data`` and ``state`` below it."""
    root = _Root()  # type: ignore[no-untyped-call]
    root.putChild(b"", page)
    root.putChild(b"data", data)
    root.putChild(b"state", state)
    return root
