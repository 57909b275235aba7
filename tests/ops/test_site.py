"""``StreamSite``: the registry of active streams."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.defer import Deferred

from twisted_stream import stream, stream_for

from ..conftest import leaf
from ..waiting import until, within


@pytest_twisted.ensureDeferred
async def test_active_streams_are_tracked_until_they_end(server: Any, client: Any) -> None:
    """A running stream is in site.active_streams and leaves it when it ends."""
    gate: Deferred[bytes] = Deferred()
    handles: list[Any] = []

    def render(request: Any) -> Any:
        result = stream(request, iter([b"a", gate]))
        handles.append(stream_for(request))
        return result

    site = server.serve(leaf(render))
    response = client.get(server.url())
    await until(lambda: bool(handles))
    assert site.active_streams == {handles[0]}
    gate.callback(b"b")
    assert await (await within(response)).content() == b"ab"
    await within(handles[0].when_done())
    assert site.active_streams == set()


@pytest_twisted.ensureDeferred
async def test_ended_streams_and_their_requests_are_freed(server: Any, client: Any) -> None:
    """Nothing global keeps a finished stream or its request alive."""
    import gc
    import weakref

    refs: list[weakref.ref[Any]] = []

    def render(request: Any) -> Any:
        result = stream(request, iter([b"a"]))
        refs.append(weakref.ref(stream_for(request)))
        refs.append(weakref.ref(request))
        return result

    server.serve(leaf(render))
    for _ in range(3):
        assert await (await client.get(server.url())).content() == b"a"
    await client._agent._pool.closeCachedConnections()
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)
