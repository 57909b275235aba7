"""``/proxied/`` of the demo (``_demo/_proxy.py``): the demo's own pages through a
ProxyResource in front of the same server."""

from __future__ import annotations

import re
from typing import Any

import pytest_twisted

from twisted_stream import Outcome
from twisted_stream._demo import demo_resource
from twisted_stream._demo._pages import pattern_bytes

from ..rawclient import connect, get
from ..waiting import until, within
from .test_demo import fetch, raw_response


@pytest_twisted.ensureDeferred
async def test_the_proxied_index_links_pages_that_come_through_the_proxy(
    server: Any, client: Any
) -> None:
    """``/proxied/`` lists pages under itself; each answers 200 through the proxy, and a
    download arrives byte for byte with its length and a ``Via`` saying it was proxied."""
    server.serve(demo_resource())
    _response, body = await fetch(client, server.url("/proxied/"))
    hrefs = [
        h.replace("&amp;", "&") for h in re.findall(r'href="(/proxied/[^"]+)"', body.decode())
    ]
    assert len(hrefs) >= 3
    for href in hrefs:
        head = await within(client.head(server.url(href)))
        assert head.code == 200, href
        await within(head.content())
    headers, data = await raw_response(server.port, "/proxied/download?size=300000")
    assert headers["content-length"] == "300000" and headers["via"] == "1.1 twisted_stream"
    assert data == b"".join(pattern_bytes(300_000))


@pytest_twisted.ensureDeferred
async def test_leaving_a_proxied_page_ends_both_streams(server: Any) -> None:
    """Leaving the endless clock seen through the proxy ends the proxied stream and the
    clock behind it; the proxy never proxies itself twice."""
    site = server.serve(demo_resource())
    raw = await connect(server.port, get("/proxied/clock?interval=0.05"))
    await until(lambda: len(site.active_streams) == 2, what="both streams")
    streams = list(site.active_streams)
    await within(raw.received_at_least(3000))
    raw.transport.abortConnection()  # type: ignore[union-attr]
    for handle in streams:
        assert (await within(handle.when_done())).outcome is Outcome.CLIENT_GONE
    headers, body = await raw_response(server.port, "/proxied/proxied/clock")
    assert b"Not proxied" in body and not headers.get("via")
