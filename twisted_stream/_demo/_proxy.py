"""``/proxied/``: the demo again, through a :class:`~twisted_stream.ProxyResource` in front of
this same server (over plain HTTP, on the port the browser used).

``/proxied/download?size=1G`` is fetched by the proxy from ``/download?size=1G``: the
download, the event stream and the flow page keep their flow control end to end, which
the status page shows as two streams per download (the proxied one and the upstream one).
"""

from __future__ import annotations

from html import escape

from twisted.web import pages
from twisted.web.resource import IResource
from twisted.web.server import Request

from twisted_stream import ProxyResource, StreamingResource

from ._query import HTML, page

PROXIED_PAGES = [
    ("download?size=1G", "A 1 GiB download", "with its Content-Length, at the speed you read"),
    ("csv?rows=200&inline=1", "CSV, 200 rows", "a chunked response, relayed as it is produced"),
    ("countdown/stream?delay=0.5", "Countdown", "each line relayed the moment it is sent"),
    ("clock", "Clock", "an endless response: leave the page and both streams end"),
]


class ThroughProxy(StreamingResource):
    """``/proxied/``: an index of the proxied pages; ``/proxied/<path>`` is ``/<path>``
    fetched through a ``ProxyResource`` to this server (one per port it listens on)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._proxies: dict[tuple[str, int], ProxyResource] = {}

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return self
        host = request.getHost()
        port = getattr(host, "port", None)
        if path == b"proxied" or request.isSecure() or not isinstance(port, int):
            return pages.notFound(
                "Not proxied", "The proxy demo goes through plain HTTP to this server, once."
            )
        key = (str(getattr(host, "host", "127.0.0.1")), port)
        proxy = self._proxies.get(key)
        if proxy is None:
            proxy = self._proxies[key] = ProxyResource(f"http://{key[0]}:{key[1]}", timeout=10.0)
        # Twisted has taken ``path`` into prepath already; give it back so the proxy
        # forwards it (it forwards what lies below where it stands).
        assert request.prepath is not None and request.postpath is not None
        request.prepath.pop()
        request.postpath.insert(0, path)
        return proxy

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", HTML.encode("ascii"))
        items = "\n".join(
            f'<li><a href="/proxied/{escape(href)}">{escape(title)}</a>: {escape(text)}</li>'
            for href, title, text in PROXIED_PAGES
        )
        body = (
            "<h1>Through the proxy</h1>\n"
            "<p>These pages come from this server through a <code>ProxyResource</code> in "
            "front of it, as <code>twistd streamweb --proxy /api=http://app:8000</code> "
            "sets up for another server. The upstream is read only as fast as your browser "
            "reads, and leaving a page ends both streams at once.</p>\n"
            f'<ul class="demos">\n{items}\n</ul>'
        )
        return page("Through the proxy", body).encode("utf-8")


def proxied_demo() -> ThroughProxy:
    """The ``/proxied/`` resource."""
    return ThroughProxy()
