"""A streaming reverse proxy in front of another HTTP server, beside pages of your own.

    python3 -m http.server 9000 &                      # any upstream: an app server, an LLM
    UPSTREAM=http://127.0.0.1:9000 twistd -n streamweb --app examples.proxy:resource
    curl http://localhost:8080/api/                    # the upstream's /, streamed through

Everything below ``/api/`` goes to the upstream (``/api/x?y`` to ``/x?y``) and comes back
streamed with flow control both ways: a client that stops reading pauses the upstream
connection, one that leaves closes it, an upload is streamed up as it arrives, read only as
fast as the upstream takes it (``Expect: 100-continue`` passed on; the site's
``--max-body-size`` applies). ``/`` is a page of this server. The same proxy without any code:
``twistd -n streamweb --proxy /api=http://127.0.0.1:9000`` (or ``--proxy URL`` for all of /).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.web.resource import Resource

from twisted_stream import ProxyResource

UPSTREAM = os.environ.get("UPSTREAM", "http://127.0.0.1:9000")
"""Where ``/api/`` goes: the ``UPSTREAM`` environment variable, else port 9000 here."""

PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Proxy example</title></head><body>
<h1>Proxy example</h1><p>Everything below <a href="/api/">/api/</a> comes from the upstream.</p>
</body></html>
"""


class Page(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return PAGE


def make_root(upstream: str = UPSTREAM) -> Resource:
    """``/`` a page of ours, ``/api/`` the upstream; the upstream is told who asked
    (``X-Forwarded-For``, ``Forwarded``, ``Via``) and which proxy sent it (``headers``)."""
    root = Resource()
    root.putChild(b"", Page())
    root.putChild(
        b"api",
        ProxyResource(upstream, timeout=30.0, headers={"X-Proxied-By": "twisted_stream"}),
    )
    return root


resource = make_root()
