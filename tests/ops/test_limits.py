"""Concurrency limits (``twisted_stream._ops._limits``): 503 with Retry-After."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.web.test.requesthelper import DummyRequest

from twisted_stream import Outcome, StreamSettings, stream, stream_for
from twisted_stream._http._twisted import client_address

from ..conftest import leaf
from ..waiting import until, within


def gated_site(server: Any, settings: StreamSettings) -> tuple[list[Deferred[bytes]], list[Any]]:
    gates: list[Deferred[bytes]] = []
    handles: list[Any] = []

    def render(request: Any) -> Any:
        gate: Deferred[bytes] = Deferred()
        gates.append(gate)
        result = stream(request, iter([b"start;", gate]))
        handles.append(stream_for(request))
        return result

    server.serve(leaf(render), settings=settings)
    return gates, handles


@pytest_twisted.ensureDeferred
async def test_beyond_max_streams_new_requests_get_503(server: Any, client: Any) -> None:
    """With max_streams=2, a third concurrent stream gets 503 + Retry-After; the two running
    streams complete undisturbed and a later request is served again."""
    gates, handles = gated_site(server, StreamSettings(max_streams=2, retry_after=7))
    first = client.get(server.url())
    second = client.get(server.url())
    await until(lambda: len(handles) == 2, what="two streams")
    refused = await within(client.get(server.url()))
    assert refused.code == 503
    assert refused.headers.getRawHeaders("retry-after") == ["7"]
    assert "already serves 2 streams" in await refused.text()
    assert handles[2].outcome is Outcome.REJECTED
    assert handles[2].bytes_sent == 0
    for gate in gates[:2]:
        gate.callback(b"end")
    for pending in (first, second):
        response = await within(pending)
        assert await response.content() == b"start;end"
    again = client.get(server.url())
    await until(lambda: len(gates) == 4)
    gates[3].callback(b"end")
    assert (await within(again)).code == 200
    assert server.site.metrics.ended[Outcome.REJECTED] == 1


@pytest_twisted.ensureDeferred
async def test_per_client_limit(server: Any, client: Any) -> None:
    """max_streams_per_client counts streams per client address."""
    gates, handles = gated_site(server, StreamSettings(max_streams_per_client=1))
    first = client.get(server.url())
    await until(lambda: len(handles) == 1)
    refused = await within(client.get(server.url()))
    assert refused.code == 503
    assert "127.0.0.1 already has 1 streams" in await refused.text()
    gates[0].callback(b"end")
    assert (await within(first)).code == 200


def test_client_address_trusts_forwarded_for_only_when_told() -> None:
    """X-Forwarded-For is ignored unless trusted; then its last hop is the client."""
    request = DummyRequest([b""])
    request.client = IPv4Address("TCP", "192.168.1.1", 40000)
    request.requestHeaders.setRawHeaders(b"x-forwarded-for", [b"6.6.6.6, 10.0.0.9"])
    assert client_address(request, False) == "192.168.1.1"
    assert client_address(request, True) == "10.0.0.9"
