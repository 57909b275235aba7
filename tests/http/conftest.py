"""Fixtures for the HTTPS and HTTP/2 tests: a certificate the tests make, a site listening
with TLS on 127.0.0.1, and HTTP/2 clients that are closed afterwards."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.ssl import Certificate as Certificate_
from twisted.internet.ssl import PrivateCertificate
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.resource import Resource

from twisted_stream import StreamSite

from .h2client import H2Client
from .kinds import KindsResource, Recorder
from .tlscert import Certificate, make_certificate


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


class TLSServer:
    """A site listening with TLS (ALPN offers ``h2`` and ``http/1.1``) on 127.0.0.1."""

    def __init__(self, certificate: Certificate) -> None:
        self.certificate = certificate
        self.ports: list[Any] = []
        self.site: StreamSite | None = None
        self.clients: list[H2Client] = []

    def serve(self, resource: Resource, **site_kwargs: Any) -> StreamSite:
        site = StreamSite(resource, **site_kwargs)
        options = PrivateCertificate.loadPEM(self.certificate.pem()).options()
        self.ports.append(reactor.listenSSL(0, site, options, interface="127.0.0.1"))
        self.site = site
        return site

    @property
    def port(self) -> int:
        return int(self.ports[-1].getHost().port)

    def url(self, path: str = "/") -> str:
        return f"https://localhost:{self.port}{path}"

    def h2_client(self, **kwargs: Any) -> H2Client:
        """An HTTP/2 client of this server (connect it in a thread); closed after the test."""
        client = H2Client(self.port, self.certificate.cert, **kwargs)
        self.clients.append(client)
        return client


@pytest.fixture
def tls_server(certificate: Certificate) -> Generator[TLSServer, None, None]:
    srv = TLSServer(certificate)
    yield srv
    for client in srv.clients:
        client.close()
    for port in srv.ports:
        pytest_twisted.blockon(port.stopListening())


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def kinds(tls_server: TLSServer, recorder: Recorder, tmp_path: Path) -> StreamSite:
    """Serve every kind of stream (``/<kind>?n=N``) on ``tls_server``."""
    return tls_server.serve(KindsResource(recorder, tmp_path))


@pytest.fixture
def https_client(certificate: Certificate) -> Generator[HTTPClient, None, None]:
    """A treq client (HTTP/1.1 over TLS: Twisted's Agent offers no HTTP/2) trusting the
    test certificate."""
    policy = BrowserLikePolicyForHTTPS(
        trustRoot=Certificate_.loadPEM(certificate.cert.read_bytes())
    )
    pool = HTTPConnectionPool(reactor, persistent=False)
    yield HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))
    pytest_twisted.blockon(pool.closeCachedConnections())
