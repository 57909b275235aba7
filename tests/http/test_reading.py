"""The read gate: reading stops on the first reason and resumes only when none is left,
and a paused connection is watched for hang-up."""

from __future__ import annotations

import socket
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.testing import StringTransport

from twisted_stream._http._hangup import hangup_watch
from twisted_stream._http._reading import BODY, READ_AHEAD, TWISTED, ReadGate

from ..waiting import until


def test_reading_resumes_only_when_every_reason_is_gone() -> None:
    """Each reason pauses; resuming one reason while another holds keeps reading paused;
    the transport is paused and resumed once each; ``release`` resumes whatever holds."""
    transport = StringTransport()
    calls: list[str] = []
    transport.pauseProducing = lambda: calls.append("pause")  # type: ignore[method-assign]
    transport.resumeProducing = lambda: calls.append("resume")  # type: ignore[method-assign]
    gate = ReadGate(transport, transport, lambda: None)
    gate.pause(READ_AHEAD)
    gate.pauseProducing()  # HTTPChannel's own pause
    gate.pause(BODY)
    assert gate.reasons == READ_AHEAD | TWISTED | BODY
    gate.resumeProducing()
    gate.resume(READ_AHEAD)
    gate.resume(READ_AHEAD)
    assert calls == ["pause"]
    gate.resume(BODY)
    assert calls == ["pause", "resume"]
    gate.pause(BODY)
    gate.pause(TWISTED)
    gate.release()
    assert gate.reasons == 0
    assert calls == ["pause", "resume", "pause", "resume"]


def test_producer_calls_pass_through() -> None:
    """HTTPChannel registers itself on its network producer: the gate passes that on."""
    transport = StringTransport()
    gate = ReadGate(transport, transport, lambda: None)
    producer: Any = object()
    gate.registerProducer(producer, True)
    assert transport.producer is producer
    gate.unregisterProducer()
    assert transport.producer is None
    gate.stopProducing()
    assert transport.producerState == "stopped"
    assert gate.producer is transport


class SocketTransport(StringTransport):
    """A StringTransport standing for a real socket (for its descriptor)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.fileno = sock.fileno  # type: ignore[method-assign]


@pytest_twisted.ensureDeferred
async def test_a_paused_connection_is_watched_for_hangup() -> None:
    """While paused, the socket is watched: the peer closing calls ``on_hangup``; once
    reading resumes it is not watched any more."""
    server, client = socket.socketpair()
    hung_up: list[int] = []
    gate = ReadGate(SocketTransport(server), SocketTransport(server), lambda: hung_up.append(1))
    watch = hangup_watch(reactor)
    assert watch is not None
    before = watch.watched
    gate.pause(READ_AHEAD)
    assert watch.watched == before + 1
    gate.resume(READ_AHEAD)
    assert watch.watched == before
    gate.pause(READ_AHEAD)
    client.close()
    await until(lambda: hung_up == [1], timeout=2, what="the hang-up")
    gate.close()
    assert watch.watched == before
    server.close()
