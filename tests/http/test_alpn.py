"""The protocol a ``StreamSite`` builds per connection (``twisted_stream._http._protocol``):
ALPN offers ``h2`` and ``http/1.1`` and our HTTP/2 connection serves ``h2``; every kind of
stream also works over HTTPS/1.1."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import pytest_twisted
import treq
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThread

from twisted_stream import Outcome, StreamSite
from twisted_stream._http._h2 import StreamH2Connection

from ..waiting import until, within
from .conftest import TLSServer
from .kinds import KINDS, WITH_FINALLY, KindsResource, Recorder
from .tlscert import make_chain


def alpn_selected(port: int, cafile: Path, offered: list[str]) -> str | None:
    """The protocol the server selects from ``offered`` (blocking: run it in a thread)."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(offered)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.selected_alpn_protocol()


@pytest_twisted.ensureDeferred
async def test_alpn_offers_h2_and_http11(tls_server: TLSServer, kinds: StreamSite) -> None:
    """A client offering both gets ``h2``; one offering only ``http/1.1`` gets it."""
    cafile = tls_server.certificate.cert
    assert await deferToThread(alpn_selected, tls_server.port, cafile, ["h2", "http/1.1"]) == "h2"
    assert await deferToThread(alpn_selected, tls_server.port, cafile, ["http/1.1"]) == "http/1.1"


@pytest_twisted.ensureDeferred
async def test_h2_is_served_by_our_connection(
    tls_server: TLSServer, kinds: StreamSite, recorder: Recorder
) -> None:
    """A stream over ``h2`` is carried by our HTTP/2 connection class (the site's
    ``h2_connection``), not Twisted's."""
    assert StreamSite.h2_connection is StreamH2Connection
    client = tls_server.h2_client()
    assert await deferToThread(client.connect) == "h2"
    stream_id = await deferToThread(client.get, "/sync?n=0")
    await deferToThread(client.read_until, lambda: client.responses[stream_id].received > 0)
    request = recorder.streams["sync"][0].request
    assert isinstance(request.channel._conn, StreamH2Connection)  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_kind_completes_over_https11(
    tls_server: TLSServer, kinds: StreamSite, https_client: HTTPClient, kind: str
) -> None:
    """Each kind of response, ours or not, arrives whole over HTTP/1.1 on TLS."""
    n = 40
    response = await within(https_client.get(tls_server.url(f"/{kind}?n={n}")))
    assert response.code == 200
    assert response.version == (b"HTTP", 1, 1)
    assert KINDS[kind].check(await within(treq.content(response)), n)


def read_then_drop(port: int, cafile: Path, path: str, at_least: int) -> None:
    """Send ``GET path`` over HTTPS/1.1, read ``at_least`` bytes, then drop the connection
    (blocking: run it in a thread)."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            received = 0
            while received < at_least:
                data = tls.recv(65536)
                assert data, "the server closed the connection"
                received += len(data)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("kind", WITH_FINALLY)
async def test_client_leaving_closes_every_kind_over_https11(
    tls_server: TLSServer, kinds: StreamSite, recorder: Recorder, kind: str
) -> None:
    """A client dropping its HTTPS/1.1 connection mid-stream closes the source."""
    cafile = tls_server.certificate.cert
    await deferToThread(read_then_drop, tls_server.port, cafile, f"/{kind}?n=0", 32768)
    await until(lambda: recorder.closed[kind] == 1, what=f"the {kind} source to close")
    await until(lambda: recorder.streams[kind][0].outcome is Outcome.CLIENT_GONE, what="the end")


@pytest_twisted.ensureDeferred
async def test_ssl_endpoint_with_extra_cert_chain_sends_the_intermediate(
    recorder: Recorder, tmp_path: Path
) -> None:
    """``ssl:...:certKey=cert.pem:extraCertChain=chain.pem`` (the README's real-chain
    setup) sends the intermediate certificate: a client trusting only the root verifies the
    server and gets ``h2``; without ``extraCertChain`` it cannot verify it."""
    cert = make_chain(tmp_path)
    site = StreamSite(KindsResource(recorder, tmp_path))
    base = f"ssl:0:interface=127.0.0.1:privateKey={cert.key}:certKey={cert.cert}"
    root = cert.trusted
    for description, verifies in ((f"{base}:extraCertChain={cert.chain}", True), (base, False)):
        port = await within(serverFromString(reactor, description).listen(site))
        try:
            number = port.getHost().port
            if verifies:
                assert await deferToThread(alpn_selected, number, root, ["h2"]) == "h2"
            else:
                with pytest.raises(ssl.SSLCertVerificationError):
                    await deferToThread(alpn_selected, number, root, ["h2"])
        finally:
            await port.stopListening()
