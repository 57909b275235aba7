"""``StreamingResource``: render methods that return sources."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest_twisted
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from twisted_stream import StreamingResource


class Rows(StreamingResource):
    isLeaf = True
    content_type = "text/csv; charset=utf-8"

    def render_GET(self, request: Any) -> Iterator[str]:
        return (f"{i},{i * i}\n" for i in range(3))

    def render_POST(self, request: Any) -> AsyncIterator[str]:
        async def gen() -> AsyncIterator[str]:
            yield "posted"

        return gen()

    def render_PUT(self, request: Any) -> bytes:
        return b"plain bytes"

    def render_DELETE(self, request: Any) -> object:
        request.write(b"by hand")
        request.finish()
        return NOT_DONE_YET


@pytest_twisted.ensureDeferred
async def test_a_returned_generator_is_streamed(server: Any, client: Any) -> None:
    """A generator returned by render_GET is streamed with the class's content type."""
    server.serve(Rows())
    response = await client.get(server.url())
    assert response.headers.getRawHeaders("content-type") == ["text/csv; charset=utf-8"]
    assert await response.text() == "0,0\n1,1\n2,4\n"


@pytest_twisted.ensureDeferred
async def test_async_generators_bytes_and_not_done_yet(server: Any, client: Any) -> None:
    """Async generators stream; bytes and NOT_DONE_YET keep Twisted's meaning."""
    server.serve(Rows())
    assert await (await client.post(server.url())).text() == "posted"
    assert await (await client.put(server.url())).content() == b"plain bytes"
    assert await (await client.delete(server.url())).content() == b"by hand"


@pytest_twisted.ensureDeferred
async def test_head_uses_get_without_iterating(server: Any, client: Any) -> None:
    """HEAD falls back to render_GET (as in Twisted) and the body is not produced."""
    server.serve(Rows())
    response = await client.head(server.url())
    assert response.code == 200
    assert await response.content() == b""


@pytest_twisted.ensureDeferred
async def test_works_under_a_plain_site_and_resource_tree(client: Any) -> None:
    """Mounted as a child in a plain twisted.web Site, it streams the same way."""
    from twisted.internet import reactor
    from twisted.web.server import Site

    root = Resource()
    root.putChild(b"rows", Rows())
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/rows"
        assert await (await client.get(url)).text() == "0,0\n1,1\n2,4\n"
    finally:
        await port.stopListening()
