"""The start-up lines of ``twistd streamweb`` (``twisted_stream._ops._announce``): the URL to
open for each port, once it listens, and the URLs of the status page and metrics."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol

from twisted_stream._ops._announce import AnnouncingEndpoint, announcements, base_url

from ..waiting import within


@pytest.mark.parametrize(
    ("address", "tls", "url"),
    [
        (IPv4Address("TCP", "127.0.0.1", 8080), False, "http://127.0.0.1:8080"),
        (IPv4Address("TCP", "0.0.0.0", 8080), False, "http://127.0.0.1:8080"),
        (IPv4Address("TCP", "192.0.2.7", 8443), True, "https://192.0.2.7:8443"),
        (IPv6Address("TCP", "::", 8080), False, "http://[::1]:8080"),
        (IPv6Address("TCP", "::1", 8080), True, "https://[::1]:8080"),
        (UNIXAddress("/run/web.sock"), False, None),
    ],
)
def test_base_url(address: Any, tls: bool, url: str | None) -> None:
    """A TCP address gives the URL to open (the loopback address for one listening on
    every interface, brackets for IPv6, https for TLS); a UNIX socket has none."""
    assert base_url(address, tls) == url


def test_announcements() -> None:
    """One line says what is served and where to open it, then one per mounted page; a
    UNIX socket's line says how to reach it with curl."""
    lines = announcements(
        IPv4Address("TCP", "0.0.0.0", 8080),
        False,
        "the demo site",
        {"the status page": "/_status", "the metrics": "/_metrics"},
    )
    assert lines == [
        "serving the demo site: open http://127.0.0.1:8080/ (on every interface)",
        "the status page: http://127.0.0.1:8080/_status",
        "the metrics: http://127.0.0.1:8080/_metrics",
    ]
    (unix,) = announcements(UNIXAddress(b"/run/web.sock"), False, "x", {})
    assert unix == (
        "serving x on the UNIX socket /run/web.sock "
        "(curl --unix-socket /run/web.sock http://localhost/)"
    )


@pytest_twisted.ensureDeferred
async def test_the_real_port_is_announced_once_listening() -> None:
    """Wrapping an endpoint announces the port it really got (``tcp:0`` picks one) once it
    listens, and passes the listening port on."""
    lines: list[str] = []
    endpoint = AnnouncingEndpoint(
        TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"),
        tls=False,
        serving="a test",
        pages={"the status page": "/s"},
        log=lines.append,
    )
    port = await within(endpoint.listen(Factory.forProtocol(Protocol)))
    try:
        number = port.getHost().port
        assert lines == [
            f"serving a test: open http://127.0.0.1:{number}/",
            f"the status page: http://127.0.0.1:{number}/s",
        ]
    finally:
        await port.stopListening()
