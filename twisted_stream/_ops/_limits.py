"""Concurrency limits: refusing a new stream with 503 before it starts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._settings import StreamSettings

if TYPE_CHECKING:
    from ._site import StreamSite


def client_address(request: Any, trust_forwarded_for: bool) -> str:
    """The client a stream counts against: the connection's peer, or with
    ``trust_forwarded_for`` the address the (trusted) proxy appended last to
    ``X-Forwarded-For`` (earlier entries are the client's own claims)."""
    if trust_forwarded_for:
        values = request.requestHeaders.getRawHeaders(b"x-forwarded-for") or []
        hops = [h.strip() for v in values for h in v.split(b",") if h.strip()]
        if hops:
            return str(hops[-1].decode("latin-1"))
    host = getattr(request.getClientAddress(), "host", None)
    return str(host) if host is not None else "local"  # UNIX sockets: one local client


def refusal(site: StreamSite, request: Any, settings: StreamSettings) -> str | None:
    """Why a new stream for ``request`` must be refused, or None if it may start."""
    if settings.max_streams and len(site.active_streams) >= settings.max_streams:
        return f"the site already serves {settings.max_streams} streams"
    if settings.max_streams_per_client:
        client = client_address(request, settings.trust_forwarded_for)
        mine = sum(1 for s in site.active_streams if s.client == client)
        if mine >= settings.max_streams_per_client:
            return f"{client} already has {settings.max_streams_per_client} streams"
    return None


def send_refusal(request: Any, settings: StreamSettings, reason: str) -> None:
    """Answer 503 with ``Retry-After``: the limit is temporary, nothing running is touched."""
    body = f"Service Unavailable: {reason}.\n".encode()
    request.setResponseCode(503)
    headers = request.responseHeaders
    for name in (b"content-encoding", b"etag", b"last-modified", b"content-range"):
        headers.removeHeader(name)
    headers.setRawHeaders(b"retry-after", [b"%d" % settings.retry_after])
    headers.setRawHeaders(b"content-type", [b"text/plain; charset=utf-8"])
    headers.setRawHeaders(b"content-length", [b"%d" % len(body)])
    request.write(body)
    request.finish()
