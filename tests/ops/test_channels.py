"""``--channel-backend``: ``twistd streamweb`` processes sharing the channel ``news`` of the
scale app through a real redis-server (no persistence, a free port): delivery from one
process to the clients of another, ``Last-Event-ID`` resumes across processes, Redis stopped
and started mid-stream, ``--workers 2``, and a server that cannot reach Redis at start."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted

from ..rawclient import RawClient, connect, get, parse_response, raw_get
from ..redis_server import RedisServer, free_port
from ..waiting import until
from .test_plugin_e2e import LOCAL, PROJECT, Twistd, run_twistd, twistd_processes
from .test_workers import open_event_streams, ready_pids, start_workers

APP = "tests.ops.scale_app:resource"


@pytest.fixture
def twistd() -> Iterator[Any]:
    yield from twistd_processes()


async def start_server(twistd: Any, redis: RedisServer) -> tuple[Twistd, int]:
    proc: Twistd = twistd(
        "streamweb", "--app", APP, "--port", LOCAL, "--grace-period", "0.3",
        "--channel-backend", redis.url, cwd=PROJECT,
    )  # fmt: skip
    return proc, await proc.port()


async def publish(port: int, data: str) -> tuple[int, str]:
    """Publish ``data`` through the server on ``port``: (status, the event id or the error)."""
    status, _headers, body = await raw_get(port, f"/publish?data={data}")
    return status, body.decode()


async def subscribe(port: int, last_event_id: str | None = None) -> RawClient:
    """An event stream of ``/events`` on ``port``, once its headers arrived."""
    extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
    client = await connect(port, get("/events", extra=extra))
    await until(lambda: b"\r\n\r\n" in client.received, what="the event stream's headers")
    assert parse_response(bytes(client.received))[0] == 200
    return client


def events(client: RawClient) -> list[tuple[str, str]]:
    """(id, data) of the events received so far (chunk framing never splits an event: each
    is written whole)."""
    text = bytes(client.received).decode("utf-8", "replace")
    return re.findall(r"id: (\S+)\n(?:event: \S+\n)?data: ([^\n]*)\n\n", text)


async def received(client: RawClient, data: str) -> str:
    """The id of the event carrying ``data``, once it arrived."""
    await until(lambda: any(d == data for _, d in events(client)), what=f"event {data!r}")
    return next(i for i, d in events(client) if d == data)


async def joined(port: int, *clients: RawClient, data: str = "probe") -> None:
    """Publish ``data`` through ``port`` until every client got it: each subscription joins
    the channel of its process asynchronously (process-level readiness, with a deadline)."""
    deadline = time.monotonic() + 15
    while not all(events(c) for c in clients):
        assert time.monotonic() < deadline, "no event got through"
        assert (await publish(port, data))[0] == 200
        settle = time.monotonic() + 0.5
        await until(lambda s=settle: all(events(c) for c in clients) or time.monotonic() > s)


def test_redis_unreachable_at_start_is_one_line() -> None:
    """A server whose --channel-backend cannot be reached exits at once with one line naming
    the server and the reason, no traceback."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_twistd(
        "-n", "--pidfile=", "streamweb", "--app", APP, "--port", LOCAL,
        "--channel-backend", url, cwd=PROJECT,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"twistd streamweb: cannot reach the channel backend {url}: " in result.stdout
    assert "Traceback" not in result.stdout


@pytest_twisted.ensureDeferred
async def test_one_channel_across_two_processes(twistd: Any, redis: RedisServer) -> None:
    """An event published through one process reaches a client of the other, with the id
    Redis assigned; a client that saw event 1 through the first and reconnects to the
    second with Last-Event-ID gets exactly the events it missed, then live ones."""
    (one, port1), (two, port2) = (
        await start_server(twistd, redis),
        await start_server(twistd, redis),
    )
    far = await subscribe(port2)
    near = await subscribe(port1)
    await joined(port1, far, near)
    seen = events(near)[-1][0]
    near.transport.loseConnection()  # type: ignore[union-attr]
    missed = [(await publish(port1, data))[1] for data in ("two", "three")]
    assert [await received(far, d) for d in ("two", "three")] == missed
    resumed = await subscribe(port2, seen)
    assert [await received(resumed, d) for d in ("two", "three")] == missed
    live = (await publish(port2, "four"))[1]
    assert await received(resumed, "four") == live
    assert [d for _, d in events(resumed)] == ["two", "three", "four"]  # no duplicate
    for client in (far, resumed):
        client.transport.loseConnection()  # type: ignore[union-attr]
    await one.terminate()
    await two.terminate()


@pytest_twisted.ensureDeferred
async def test_redis_stopped_and_started_mid_stream(twistd: Any, redis: RedisServer) -> None:
    """Redis goes away: the client stays connected and keeps getting heartbeats, publishing
    answers 503 naming Redis. Redis comes back (empty): the client gets a gap event, then
    new events again, on the same connection."""
    (one, port1), (two, port2) = (
        await start_server(twistd, redis),
        await start_server(twistd, redis),
    )
    client = await subscribe(port2)
    await joined(port1, client, data="before")
    redis.stop()
    beats = bytes(client.received).count(b":\n\n")
    await until(lambda: bytes(client.received).count(b":\n\n") >= beats + 3, what="heartbeats")
    status, error = await publish(port1, "lost")
    assert status == 503 and "Redis at redis://127.0.0.1" in error, error
    redis.start()
    deadline = time.monotonic() + 15
    while (await publish(port1, "back"))[0] != 200:  # until the publisher reconnected
        assert time.monotonic() < deadline, "publishing never worked again"
    await received(client, "back")
    text = bytes(client.received).decode()
    assert "event: gap\ndata: \n\n" in text.partition("before")[2]
    assert "lost" not in text
    assert not client.closed.called
    client.transport.loseConnection()  # type: ignore[union-attr]
    await one.terminate()
    await two.terminate()


@pytest_twisted.ensureDeferred
async def test_workers_share_the_channel(twistd: Any, redis: RedisServer) -> None:
    """--workers 2 with --channel-backend: one event published through either worker reaches
    the clients of both."""
    proc, port = await start_workers(twistd, "--channel-backend", redis.url)
    clients = await open_event_streams(port, 1, set(ready_pids(proc).values()))
    await joined(port, *clients)
    sent = (await publish(port, "to-all"))[1]
    assert [await received(c, "to-all") for c in clients] == [sent, sent]
    for client in clients:
        client.transport.loseConnection()  # type: ignore[union-attr]
    await proc.terminate()
