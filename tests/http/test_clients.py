"""Counting open connections per client address."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, UNIXAddress

from twisted_stream._http._clients import ClientConnections, peer_host


def test_connections_are_counted_and_limited_per_client() -> None:
    """``open`` counts up to the limit and refuses (without counting) past it; ``close``
    counts down; 0 means no limit."""
    connections = ClientConnections()
    assert connections.open("a", 2) and connections.open("a", 2)
    assert not connections.open("a", 2)
    assert connections.open("b", 2)
    assert connections.count("a") == 2 and len(connections) == 3
    connections.close("a")
    assert connections.open("a", 2)
    for _ in range(100):
        assert connections.open("c", 0)
    for client in ["a", "a", "b", *["c"] * 100]:
        connections.close(client)
    assert len(connections) == 0 and connections.count("a") == 0


def test_peer_host() -> None:
    """A TCP peer counts by its host; a UNIX socket peer is the one local client."""
    assert peer_host(IPv4Address("TCP", "10.1.2.3", 5)) == "10.1.2.3"
    assert peer_host(UNIXAddress(None)) == "local"
