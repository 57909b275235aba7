"""``ProxyResource`` end to end (``_proxy/_resource.py``): where requests go, the headers
passed on, dropped and added in each direction, methods and bodies, refused upgrades, and
the connection pool (reused, never after an abort)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from twisted.web.resource import Resource

from twisted_stream import ProxyResource

from ..rawclient import connect, get, parse_response
from ..waiting import until, within
from .conftest import Proxied
from .test_exchange import fetch


def serve_mounted(server: Any, mounts: dict[bytes, ProxyResource]) -> None:
    root = Resource()
    for name, proxy in mounts.items():
        root.putChild(name, proxy)
    server.serve(root)


@pytest_twisted.ensureDeferred
async def test_the_remaining_path_and_the_query_are_forwarded_as_sent(
    proxied: Proxied, server: Any
) -> None:
    """Mounted at ``/api``, the proxy forwards the path segments below it, percent-escapes
    and the query exactly as the client sent them; a base path in the upstream URL goes in
    front; the mount point itself maps to the base."""
    serve_mounted(
        server,
        {
            b"api": ProxyResource(proxied.upstream_url()),
            b"v1": ProxyResource(proxied.upstream_url("/files/")),
        },
    )
    for path, expected in [
        ("/api/a%2Fb/c%20d?q=1&r=%26", b"/a%2Fb/c%20d?q=1&r=%26"),
        ("/api/headers?a=1", b"/headers?a=1"),
        ("/api", b"/"),
        ("/api/", b"/"),
        ("/v1/x/y", b"/files/x/y"),
        ("/v1", b"/files"),
    ]:
        await fetch(server.port, path)
        assert proxied.upstream.requests[-1]["uri"] == expected, path


@pytest_twisted.ensureDeferred
async def test_dot_segments_never_reach_above_the_mount_point(
    proxied: Proxied, server: Any
) -> None:
    """Twisted hands the raw path to the resources as sent (``..`` and ``%2e%2e`` included:
    its Site resolves nothing), so the proxy resolves dot-segments itself: below the mount
    point they are removed before the path goes up; one climbing above it, or a segment
    hiding one (``..%2f``), is answered ``400`` with a one-line plain-text body and never
    reaches the upstream. A ``..`` before the mount point never reaches the proxy."""
    serve_mounted(server, {b"pub": ProxyResource(proxied.upstream_url("/sub"))})
    for path, expected in [
        ("/pub/a/../headers", b"/sub/headers"),
        ("/pub/a/%2E%2e/b/./c", b"/sub/b/c"),
        ("/pub/a/b/..", b"/sub/a/"),
    ]:
        await fetch(server.port, path)
        assert proxied.upstream.requests[-1]["uri"] == expected, path
    seen = len(proxied.upstream.requests)
    for path in [
        "/pub/../secret.txt",
        "/pub/%2e%2e/secret.txt",
        "/pub/a/../../secret.txt",
        "/pub/..%2f..%2fadmin",
        "/pub/..%5csecret.txt",
        "/pub/..;x/secret.txt",
    ]:
        status, headers, body = parse_response(await fetch(server.port, path))
        assert status == 400, path
        assert headers["content-type"] == ["text/plain; charset=utf-8"]
        assert body.startswith(b"400 Bad Request: ") and body.count(b"\n") == 1, body
    status, _, _ = parse_response(await fetch(server.port, "/x/../pub/headers"))
    assert status == 404  # Twisted looked for a child named "x" and found none
    assert len(proxied.upstream.requests) == seen


@pytest_twisted.ensureDeferred
async def test_dot_segments_are_resolved_for_a_proxy_at_the_root(proxied: Proxied) -> None:
    """Mounted at ``/`` with no base path, the proxy resolves dot-segments too and refuses
    a path climbing above ``/`` (``400``), as nginx does."""
    await fetch(proxied.port, "/files/../headers")
    assert proxied.upstream.requests[-1]["uri"] == b"/headers"
    seen = len(proxied.upstream.requests)
    for path in ["/../headers", "/%2e%2e/headers", "/files/../../headers"]:
        status, _, _ = parse_response(await fetch(proxied.port, path))
        assert status == 400, path
    assert len(proxied.upstream.requests) == seen


@pytest_twisted.ensureDeferred
async def test_hop_by_hop_headers_are_dropped_both_ways(proxied: Proxied) -> None:
    """Hop-by-hop request headers (``Connection`` and the fields it names, ``Keep-Alive``,
    ``TE``, ``Proxy-Authorization``...) do not reach the upstream; its hop-by-hop response
    headers (``Connection: X-Hop`` naming ``X-Hop``, ``Keep-Alive``, ``Proxy-Authenticate``)
    do not reach the client; end-to-end headers go through both ways."""
    raw = await fetch(
        proxied.port,
        "/headers",
        "Connection: X-Custom, Keep-Alive\r\nX-Custom: for this hop\r\nKeep-Alive: timeout=5\r\n"
        "TE: trailers\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\n"
        "X-End: kept\r\nCookie: a=b\r\n",
    )
    status, headers, body = parse_response(raw)
    assert status == 200
    received = json.loads(body)["headers"]
    for name in ("x-custom", "keep-alive", "te", "proxy-authorization", "proxy-connection"):
        assert name not in received, name
    assert "connection" not in received
    assert received["x-end"] == ["kept"]
    assert received["cookie"] == ["a=b"]
    for name in ("x-hop", "keep-alive", "proxy-authenticate"):
        assert name not in headers, name
    assert "x-hop" not in ",".join(headers.get("connection", [])).lower()
    assert headers["x-end-to-end"] == ["kept"]


@pytest_twisted.ensureDeferred
async def test_via_and_the_forwarding_headers_are_appended(proxied: Proxied) -> None:
    """``Via`` is appended both ways; ``X-Forwarded-For``, ``-Proto``, ``-Host`` and
    ``Forwarded`` are appended to what earlier proxies sent; the upstream gets its own
    ``Host``."""
    raw = await fetch(
        proxied.port,
        "/headers",
        "X-Forwarded-For: 203.0.113.9\r\nVia: 1.0 edge\r\nForwarded: for=203.0.113.9\r\n",
    )
    _, headers, body = parse_response(raw)
    received = json.loads(body)["headers"]
    host = "127.0.0.1"  # what rawclient.get sends
    assert received["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"]
    assert received["x-forwarded-proto"] == ["http"]
    assert received["x-forwarded-host"] == [host]
    assert received["forwarded"] == [f"for=203.0.113.9, for=127.0.0.1;host={host};proto=http"]
    assert received["via"] == ["1.0 edge, 1.1 twisted_stream"]
    assert received["host"] == [f"127.0.0.1:{proxied.upstream_port}"]
    assert headers["via"] == ["1.1 twisted_stream"]


@pytest_twisted.ensureDeferred
async def test_preserve_host_and_extra_headers(proxied: Proxied, server: Any) -> None:
    """``preserve_host=True`` sends the client's ``Host``; ``headers`` are set on every
    upstream request, replacing the client's."""
    server.serve(
        ProxyResource(
            proxied.upstream_url(),
            preserve_host=True,
            headers={"Authorization": "Bearer upstream-token", b"X-End": b"replaced"},
        )
    )
    raw = await connect(
        server.port,
        b"GET /headers HTTP/1.1\r\nHost: app.example\r\nX-End: mine\r\nConnection: close\r\n\r\n",
    )
    await within(raw.closed)
    received = json.loads(parse_response(bytes(raw.received))[2])["headers"]
    assert received["host"] == ["app.example"]
    assert received["authorization"] == ["Bearer upstream-token"]
    assert received["x-end"] == ["replaced"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest_twisted.ensureDeferred
async def test_methods_and_bodies_are_forwarded(proxied: Proxied, method: str) -> None:
    """Any method reaches the upstream as sent, with the request body byte for byte (with
    a length or chunked from the client)."""
    for framing, body in [
        ("Content-Length: 11\r\n\r\nhello world", b"hello world"),
        (
            "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"hello world",
        ),
    ]:
        request = (
            f"{method} /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{framing}"
        ).encode()
        raw = await connect(proxied.port, request)
        await within(raw.closed)
        status, _, answer = parse_response(bytes(raw.received))
        assert status == 200
        assert answer.startswith(b"%d " % len(body))
        assert proxied.upstream.requests[-1]["method"] == method.encode()


@pytest.mark.parametrize(
    "extra",
    [
        "Connection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n",
        "Connection: Upgrade\r\nUpgrade: h2c, tls/1.3\r\n",
    ],
    ids=["websocket", "tls"],
)
@pytest_twisted.ensureDeferred
async def test_upgrade_requests_get_501_at_once(proxied: Proxied, extra: str) -> None:
    """A request to switch protocols (WebSocket) is answered ``501`` at once with a body
    saying so, never forwarded and never left hanging."""
    status, headers, body = parse_response(await fetch(proxied.port, "/headers", extra))
    assert status == 501
    assert b"not proxied" in body
    assert headers["content-type"] == ["text/plain; charset=utf-8"]
    assert proxied.upstream.requests == []


@pytest_twisted.ensureDeferred
async def test_an_h2c_upgrade_offer_is_ignored(proxied: Proxied) -> None:
    """``Upgrade: h2c`` alone (curl's HTTP/2 offer over plain HTTP) may be ignored: the
    request is proxied over HTTP/1.1, without the ``Upgrade`` header."""
    extra = (
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
    )
    status, _, body = parse_response(await fetch(proxied.port, "/headers", extra))
    assert status == 200
    received = json.loads(body)["headers"]
    assert "upgrade" not in received and "http2-settings" not in received


@pytest_twisted.ensureDeferred
async def test_pooled_connections_are_reused_but_never_after_an_abort(proxied: Proxied) -> None:
    """Requests one after the other share one upstream connection from the pool; a
    response aborted because its client left closes that connection, so the next request
    comes on a new one (and that one is reused again)."""
    for _ in range(3):
        await fetch(proxied.port, "/bytes?size=1000")
    ports = [r["port"] for r in proxied.upstream.requests]
    assert len(set(ports)) == 1, ports

    raw = await connect(proxied.port, get("/endless"))
    await within(raw.received_at_least(200_000))
    raw.transport.abortConnection()  # type: ignore[union-attr]
    await until(lambda: proxied.upstream.closed == ["endless"], what="the upstream's finally")
    aborted = proxied.upstream.requests[-1]["port"]
    assert aborted == ports[0]

    for _ in range(2):
        await fetch(proxied.port, "/bytes?size=1000")
    after = [r["port"] for r in proxied.upstream.requests[-2:]]
    assert after[0] != aborted
    assert after[0] == after[1]


def test_bad_arguments_are_refused_with_value_error() -> None:
    """An upstream URL that is not http(s) with a host, with a query, fragment or
    credentials, a timeout that is not positive, or a header with a line break is refused."""
    for url in ["ftp://host/", "http:///x", "/relative", "http://h/?q=1", "http://u:p@h/"]:
        with pytest.raises(ValueError):
            ProxyResource(url)
    with pytest.raises(ValueError, match="timeout"):
        ProxyResource("http://h", timeout=0)
    with pytest.raises(ValueError, match="connect_timeout"):
        ProxyResource("http://h", connect_timeout=-1)
    with pytest.raises(ValueError, match="invalid header"):
        ProxyResource("http://h", headers={"X-A": "b\r\nX-Injected: c"})
