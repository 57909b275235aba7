"""``examples/``: each example served and fetched as a user would.

The resources are served in-process (by a ``StreamSite``, or by a plain Twisted ``Site``
under a ``Resource`` tree to show they need nothing special); ``existing_service.tac`` runs in
a real ``twistd -ny``. ``test_plugin_e2e`` also runs ``--app examples.countdown:resource``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from examples import big_download, countdown, large_csv, proxy
from twisted_stream import Outcome, State

from .ops.test_plugin_e2e import Body, open_body, twistd_processes
from .rawclient import connect, get
from .waiting import until, within

PROJECT = Path(__file__).resolve().parent.parent
LAUNCH = ["Prepare for launch", "Liftoff in 3", "Liftoff in 2", "Liftoff in 1", "Lift off"]


@pytest.fixture
def twistd() -> Iterator[Any]:
    """Starts twistd processes; kills those left at teardown."""
    yield from twistd_processes()


def launch_lines(body: bytes) -> list[str]:
    return re.findall(r"(Prepare for launch|Liftoff in \d+|Lift off)", body.decode())


async def raw_response(port: int, path: str, method: str = "GET") -> tuple[dict[str, str], bytes]:
    """Headers (lower-case names) and body as sent, one request on its own connection."""
    raw = await connect(port, get(path, method=method, extra="Connection: close\r\n"))
    await within(raw.closed)
    head, _, body = bytes(raw.received).partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body


# countdown.


@pytest_twisted.ensureDeferred
async def test_countdown_holder_and_both_ways(server: Any, client: Any) -> None:
    """The holder page frames /stream and /threaded (passing the query on); both stream
    the whole launch sequence as utf-8 HTML."""
    server.serve(countdown.resource)
    response = await within(client.get(server.url("/?delay=0&count=3")))
    holder = (await within(response.content())).decode()
    frames = [urljoin(server.url("/"), s.replace("&amp;", "&"))
              for s in re.findall(r'<iframe src="([^"]+)"', holder)]  # fmt: skip
    assert frames == [server.url("/stream?delay=0&count=3"),
                      server.url("/threaded?delay=0&count=3")]  # fmt: skip
    for frame in frames:
        response = await within(client.get(frame))
        assert response.headers.getRawHeaders(b"content-type") == [b"text/html; charset=utf-8"]
        assert launch_lines(await within(response.content())) == LAUNCH


@pytest.mark.parametrize("kind", ["stream", "threaded"])
@pytest_twisted.ensureDeferred
async def test_countdown_renders_progressively(server: Any, kind: str) -> None:
    """Over a kilobyte of padding and the first line arrive at once, the next line only
    after the delay: a browser shows the countdown as it happens. A client leaving ends the
    stream (and the threaded generator is closed)."""
    site = server.serve(countdown.resource)
    delay = 1 if kind == "threaded" else 30  # a thread sleeping is closed when it wakes
    raw = await connect(server.port, get(f"/{kind}?delay={delay}&count=3"))
    await until(lambda: b"Prepare for launch" in raw.received, what="the first line")
    body = bytes(raw.received).partition(b"\r\n\r\n")[2]
    assert body.index(b"Prepare for launch") > 1024
    assert b"Liftoff" not in body
    (handle,) = site.active_streams
    raw.transport.loseConnection()
    assert (await within(handle.when_done())).outcome is Outcome.CLIENT_GONE
    await within(handle.source_closed)


@pytest_twisted.ensureDeferred
async def test_countdown_under_a_plain_site_and_resource_tree(client: Any) -> None:
    """The example needs no StreamSite: mounted deep in a Resource tree of a plain
    twisted.web.server.Site, its frame links still resolve and it streams."""
    root = Resource()
    apps = Resource()
    root.putChild(b"apps", apps)
    apps.putChild(b"countdown", countdown.resource)
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    try:
        base = f"http://127.0.0.1:{port.getHost().port}"
        for holder_path in ("/apps/countdown", "/apps/countdown/"):
            response = await within(client.get(base + holder_path + "?delay=0&count=3"))
            holder = (await within(response.content())).decode()
            sources = re.findall(r'<iframe src="([^"]+)"', holder)
            frames = [urljoin(base + holder_path, s.replace("&amp;", "&")) for s in sources]
            assert frames == [f"{base}/apps/countdown/stream?delay=0&count=3",
                              f"{base}/apps/countdown/threaded?delay=0&count=3"]  # fmt: skip
            for frame in frames:
                response = await within(client.get(frame))
                assert launch_lines(await within(response.content())) == LAUNCH
    finally:
        await port.stopListening()


# large_csv.


@pytest_twisted.ensureDeferred
async def test_large_csv_small(server: Any, client: Any) -> None:
    """?rows=N gives a header and N rows of valid CSV as a text/csv attachment."""
    server.serve(large_csv.resource)
    headers, _ = await raw_response(server.port, "/?rows=3", method="HEAD")
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert headers["content-disposition"] == 'attachment; filename="rows.csv"'
    response = await within(client.get(server.url("/?rows=3")))
    text = (await within(response.content())).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["id", "name", "amount", "note"]
    assert rows[1] == ["1", "customer 1", "0.37", 'say "hi"']
    assert len(rows) == 4 and text.endswith("\r\n")


@pytest_twisted.ensureDeferred
async def test_large_csv_million_rows_in_constant_memory(server: Any, client: Any) -> None:
    """A million rows by default. Generation follows the client: while the client does not
    read, the stream pauses with only a bounded amount produced (constant memory); once it
    reads, all 1,000,001 lines arrive."""
    site = server.serve(large_csv.resource)
    raw = await connect(server.port, get("/"))
    await until(lambda: len(raw.received) > 0, what="the first bytes")
    raw.stop_reading()
    (handle,) = site.active_streams
    await until(lambda: handle.state is State.PAUSED, what="the stream to pause")
    produced = handle.bytes_sent
    await until(lambda: handle.state is State.PAUSED and handle.bytes_sent == produced,
                what="nothing more produced")  # fmt: skip
    assert produced < 8 * 1024 * 1024  # of a 42 MB body
    raw.transport.loseConnection()
    await within(handle.when_done())

    response = await within(client.get(server.url("/")))
    count = {"lines": 0, "bytes": 0}

    def feed(chunk: bytes) -> None:
        count["lines"] += chunk.count(b"\n")
        count["bytes"] += len(chunk)

    await within(treq.collect(response, feed), 120)
    assert count["lines"] == 1_000_001
    assert large_csv.ROWS == 1_000_000


# big_download.


@pytest_twisted.ensureDeferred
async def test_big_download_length_filename_and_bytes(server: Any) -> None:
    """?size=N sends exactly N bytes of the documented pattern with Content-Length and a
    filename; HEAD announces the 4 GiB default without sending it."""
    server.serve(big_download.resource)
    headers, body = await raw_response(server.port, "/?size=200000")
    assert headers["content-length"] == "200000"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"] == 'attachment; filename="big-download.bin"'
    assert body == bytes(i % 256 for i in range(200000))
    headers, body = await raw_response(server.port, "/", method="HEAD")
    assert headers["content-length"] == str(4 * 1024**3) and body == b""


@pytest_twisted.ensureDeferred
async def test_big_download_stops_generating_when_the_client_leaves(server: Any) -> None:
    """A client that takes the first megabyte of the 4 GiB download and leaves ends the
    stream: nothing like 4 GiB is ever generated."""
    site = server.serve(big_download.resource)
    raw = await connect(server.port, get("/"))
    await within(raw.received_at_least(1024 * 1024))
    (handle,) = site.active_streams
    raw.transport.loseConnection()
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    assert result.bytes_sent < 64 * 1024 * 1024


# proxy.


@pytest_twisted.ensureDeferred
async def test_proxy_forwards_api_and_serves_its_own_page(server: Any) -> None:
    """``make_root(upstream)`` serves its page at / and forwards /api/... to the upstream
    (here the big download), with its length and bytes, telling the upstream who sent it."""
    seen: list[Any] = []

    class Upstream(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            seen.append(request)
            return big_download.resource.render_GET(request)

    server.serve(Upstream())
    upstream = server.url("")
    server.serve(proxy.make_root(upstream))
    headers, body = await raw_response(server.port, "/api/file?size=70000")
    assert headers["content-length"] == "70000" and headers["via"] == "1.1 twisted_stream"
    assert body == bytes(i % 256 for i in range(70000))
    assert seen[0].uri == b"/file?size=70000"
    assert seen[0].getHeader(b"x-proxied-by") == b"twisted_stream"
    _, page = await raw_response(server.port, "/")
    assert b'href="/api/"' in page
    assert proxy.resource is not None


# existing_service.tac.


@pytest_twisted.ensureDeferred
async def test_existing_service_tac(twistd: Any, client: Any) -> None:
    """twistd -ny examples/existing_service.tac runs the echo server, the periodic task and
    the streaming site together: /ticks streams the task's ticks, the echo server echoes,
    and SIGTERM ends the endless /ticks stream cleanly and exits without a traceback.
    Kind 6 (access-log lines of streams ended at shutdown outside the plugin), the reported
    input: that stream's access-log line is written too (the tac's plain StreamSite logs to
    the twistd log), with the bytes it sent."""
    env = {
        "STREAM_PORT": "tcp:0:interface=127.0.0.1",
        "ECHO_PORT": "tcp:0:interface=127.0.0.1",
        "TICK_SECONDS": "0.05",
        "GRACE_SECONDS": "0.5",
    }
    process = twistd("-y", str(PROJECT / "examples" / "existing_service.tac"), cwd=PROJECT,
                     env=env)  # fmt: skip
    web = int((await process.wait_for(r"StreamSite starting on (\d+)")).group(1))
    echo = int((await process.wait_for(r"EchoFactory starting on (\d+)")).group(1))
    base = f"http://127.0.0.1:{web}"
    status = await within(client.get(base + "/"))
    assert "ticks so far" in (await within(status.content())).decode()
    ticks: Body = await open_body(client, base + "/ticks")
    await until(lambda: ticks.data.count(b"tick ") >= 2, what="two ticks")
    numbers = [int(n) for n in re.findall(rb"tick (\d+)", bytes(ticks.data))]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    raw = await connect(echo, b"ping\n")
    assert await within(raw.received_at_least(5)) == b"ping\n"
    raw.transport.loseConnection()
    await process.terminate()
    await within(ticks.done)  # ended cleanly: a complete response
    assert "ended 1 endless stream(s)" in process.output
    assert f'"GET /ticks HTTP/1.1" 200 {len(ticks.data)} ' in process.output


# Klein.


@pytest_twisted.ensureDeferred
async def test_klein_route_returning_a_streaming_resource(client: Any) -> None:
    """A Klein route may return a twisted_stream resource (Klein renders an IResource)."""
    klein = pytest.importorskip("klein")
    app = klein.Klein()

    @app.route("/countdown/", branch=True)
    def launch(request: Any) -> Any:
        return countdown.resource

    port = reactor.listenTCP(0, Site(app.resource()), interface="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/countdown/stream?delay=0&count=3"
        response = await within(client.get(url))
        assert launch_lines(await within(response.content())) == LAUNCH
    finally:
        await port.stopListening()
