"""``twisted_stream._demo._site``: the demo site ``twistd streamweb`` serves by default.

Served in-process by a ``StreamSite`` on a free port and fetched with treq (or the raw client
where the test must see bytes before the response ends, or leave early).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet.task import Clock

from twisted_stream import Outcome
from twisted_stream._demo import demo_resource
from twisted_stream._demo._pages import CSV_ROWS, DOWNLOAD_SIZE
from twisted_stream._demo._query import PADDING, query_number, query_size
from twisted_stream._demo._site import DEMO_LINKS
from twisted_stream._ops._shutdown import GracefulShutdown

from ..rawclient import connect, get
from ..waiting import until, within


@pytest.fixture
def demo(server: Any) -> Any:
    server.serve(demo_resource())
    return server


async def fetch(client: Any, url: str) -> tuple[Any, bytes]:
    response = await within(client.get(url))
    return response, await within(response.content())


async def raw_response(port: int, path: str, method: str = "GET") -> tuple[dict[str, str], bytes]:
    """Headers (lower-case names) and body of one request on its own connection, as sent
    (treq's decoding agent drops Content-Length)."""
    raw = await connect(port, get(path, method=method, extra="Connection: close\r\n"))
    await within(raw.closed)
    head, _, body = bytes(raw.received).partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body


@pytest_twisted.ensureDeferred
async def test_index_links_every_demo(demo: Any, client: Any) -> None:
    """/ is an HTML page linking every demo (countdown, CSV, download, clock), and each link
    answers 200."""
    response, body = await fetch(client, demo.url("/"))
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/html; charset=utf-8"]
    page = body.decode()
    hrefs = re.findall(r'href="([^"]+)"', page)
    for link in DEMO_LINKS:
        assert link.href.replace("&", "&amp;") in hrefs
    assert {"/countdown/", "/csv", "/download", "/clock"} <= set(hrefs)
    for href in hrefs:
        head = await within(client.head(demo.url(href.replace("&amp;", "&"))))
        assert head.code == 200, href
        await within(head.content())


@pytest_twisted.ensureDeferred
async def test_event_and_template_demos_are_mounted_and_linked(demo: Any, client: Any) -> None:
    """The events and template demos (modules of their own, listed explicitly) are linked
    from the index and answer at /events and /template."""
    _, body = await fetch(client, demo.url("/"))
    for name in ("events", "template"):
        assert f'href="/{name}"' in body.decode(), name
        head = await within(client.head(demo.url(f"/{name}")))
        assert head.code == 200, name
        await within(head.content())


def test_the_demo_uses_only_the_public_api() -> None:
    """No module of the demo imports a private module of twisted_stream: the demo shows what
    a user can write."""
    import ast
    import pathlib

    import twisted_stream._demo as package

    folder = pathlib.Path(package.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                name = node.module or ""
                if node.level:
                    assert node.level == 1, (path.name, name)  # a sibling in _demo
                else:
                    assert not name.startswith("twisted_stream."), (path.name, name)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("twisted_stream.") for a in node.names)


@pytest_twisted.ensureDeferred
async def test_unknown_paths_are_404(demo: Any, client: Any) -> None:
    """Paths outside the demo answer 404."""
    for path in ("/nowhere", "/countdown/nowhere"):
        response, _ = await fetch(client, demo.url(path))
        assert response.code == 404, path


@pytest.mark.parametrize("path", ["/countdown", "/countdown/"])
@pytest_twisted.ensureDeferred
async def test_countdown_holder_frames_both_ways(demo: Any, client: Any, path: str) -> None:
    """The countdown holder page has an iframe for the non-blocking and for the threaded
    countdown whose links resolve under /countdown/ (with or without the trailing slash) and
    carry the query string on."""
    response, body = await fetch(client, demo.url(path + "?delay=0&count=2"))
    assert response.code == 200
    sources = re.findall(r'<iframe src="([^"]+)"', body.decode())
    base = demo.url(path)
    from urllib.parse import urljoin

    resolved = [urljoin(base, s.replace("&amp;", "&")) for s in sources]
    assert resolved == [
        demo.url("/countdown/stream?delay=0&count=2"),
        demo.url("/countdown/threaded?delay=0&count=2"),
    ]


@pytest.mark.parametrize("kind", ["stream", "threaded"])
@pytest_twisted.ensureDeferred
async def test_countdown_streams_the_launch(demo: Any, client: Any, kind: str) -> None:
    """Both countdowns send the padding first, then Prepare for launch, Liftoff in N..1 and
    Lift off, as HTML in utf-8."""
    response, body = await fetch(client, demo.url(f"/countdown/{kind}?delay=0&count=3"))
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/html; charset=utf-8"]
    text = body.decode()
    assert text.index(PADDING) < text.index("Prepare for launch")
    lines = re.findall(r"(Prepare for launch|Liftoff in \d+|Lift off)", text)
    assert lines == ["Prepare for launch", "Liftoff in 3", "Liftoff in 2", "Liftoff in 1",
                     "Lift off"]  # fmt: skip


@pytest.mark.parametrize("kind", ["stream", "threaded"])
@pytest_twisted.ensureDeferred
async def test_countdown_is_progressive(demo: Any, kind: str) -> None:
    """The first line (after more than a kilobyte of padding) reaches the client while the
    countdown is still waiting; a client leaving then ends the stream."""
    site = demo.site
    delay = 1 if kind == "threaded" else 10  # a thread sleeping is closed when it wakes
    raw = await connect(demo.port, get(f"/countdown/{kind}?delay={delay}&count=1"))
    await until(lambda: b"Prepare for launch" in raw.received, what="the first line")
    body = bytes(raw.received).partition(b"\r\n\r\n")[2]
    assert body.index(b"Prepare for launch") > 1024
    assert b"Liftoff" not in raw.received
    (handle,) = site.active_streams
    raw.transport.loseConnection()
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    await within(handle.source_closed)


@pytest_twisted.ensureDeferred
async def test_csv_rows(demo: Any, client: Any) -> None:
    """/csv?rows=N streams a header and N CSV rows as a text/csv attachment; inline=1 shows
    it as text instead. A million rows is the default."""
    response, body = await fetch(client, demo.url("/csv?rows=5"))
    assert response.headers.getRawHeaders(b"content-type") == [b"text/csv; charset=utf-8"]
    assert response.headers.getRawHeaders(b"content-disposition") == [
        b'attachment; filename="rows.csv"'
    ]
    lines = body.decode().splitlines()
    assert lines[0] == "id,square,hex,label"
    assert lines[1:] == [f'{i},{i * i},{i:x},"row {i}, ""quoted"""' for i in range(1, 6)]
    response, body = await fetch(client, demo.url("/csv?rows=2&inline=1"))
    assert response.headers.getRawHeaders(b"content-type") == [b"text/plain; charset=utf-8"]
    assert response.headers.getRawHeaders(b"content-disposition") is None
    assert len(body.decode().splitlines()) == 3
    assert CSV_ROWS == 1_000_000


@pytest_twisted.ensureDeferred
async def test_download_has_length_filename_and_pattern(demo: Any, client: Any) -> None:
    """/download?size=N sends N bytes of the 0..255 pattern with Content-Length and a
    filename; the default, announced by HEAD without a body, is 4 GiB."""
    headers, body = await raw_response(demo.port, "/download?size=100001")
    assert headers["content-length"] == "100001"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"] == 'attachment; filename="demo-download.bin"'
    assert body == (bytes(range(256)) * 400)[:100001]
    headers, body = await raw_response(demo.port, "/download", method="HEAD")
    assert headers["content-length"] == str(DOWNLOAD_SIZE) and body == b""
    assert DOWNLOAD_SIZE == 4 * 1024**3
    _, body = await fetch(client, demo.url("/download?size=64K"))
    assert body == bytes(range(256)) * 256


@pytest_twisted.ensureDeferred
async def test_clock_is_endless_and_ends_cleanly_at_shutdown(demo: Any, client: Any) -> None:
    """/clock is marked endless: it ticks until shutdown, which ends it cleanly (the client
    sees a complete response)."""
    response = await within(client.get(demo.url("/clock?interval=0.01")))
    received = bytearray()
    done = treq.collect(response, received.extend)
    await until(lambda: received.count(b"UTC<br>") >= 3, what="three ticks")
    (handle,) = demo.site.active_streams
    assert handle.endless
    clock = Clock()
    stopped = GracefulShutdown(demo.site, 1.0, clock=clock).drain()
    clock.advance(1.0)
    await within(stopped)
    await within(done)
    assert handle.outcome is Outcome.COMPLETED


class FakeRequest:
    def __init__(self, **args: str) -> None:
        self.args = {k.encode(): [v.encode()] for k, v in args.items()}


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, 1.0), ({"n": "2.5"}, 2.5), ({"n": "-3"}, 0.0), ({"n": "99"}, 10.0),
     ({"n": "x"}, 1.0), ({"n": "nan"}, 1.0)],
)  # fmt: skip
def test_query_number(given: dict[str, str], expected: float) -> None:
    """Query numbers fall back to the default when missing or malformed and are clamped."""
    assert query_number(FakeRequest(**given), "n", 1.0, 0.0, 10.0) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, 7), ({"s": "1500"}, 1500), ({"s": "2k"}, 2048), ({"s": "3M"}, 3 << 20),
     ({"s": "1GiB"}, 1 << 30), ({"s": "9G"}, 8 << 30), ({"s": "-1"}, 7), ({"s": "lots"}, 7)],
)  # fmt: skip
def test_query_size(given: dict[str, str], expected: int) -> None:
    """Sizes take K, M and G (binary) suffixes, are capped, and default when malformed."""
    assert query_size(FakeRequest(**given), "s", 7, 8 << 30) == expected


# One look for every page.

PAGES = [
    "/countdown/",
    "/countdown/stream?delay=0&count=1",
    "/countdown/threaded?delay=0&count=1",
    "/events/",
    "/template?rows=1&delay=0",
    "/flow/",
]


def assert_shared_look(page: str, back: bool = True) -> None:
    assert re.search(r'<link rel="stylesheet" href="/style.css"\s*/?>', page), page[:400]
    assert re.search(r'<link rel="icon" href="/favicon.svg"\s*/?>', page), page[:400]
    assert "<style" not in page, "no page has a style of its own"
    has_back = re.search(r'<nav class="back"><a href="/" target="_top">', page) is not None
    assert has_back is back


@pytest.mark.parametrize("path", PAGES)
@pytest_twisted.ensureDeferred
async def test_every_page_shares_one_look(demo: Any, client: Any, path: str) -> None:
    """Every HTML page (the countdown's frames and the template page included) uses the
    one stylesheet and icon and starts with a link back to the index."""
    response, body = await fetch(client, demo.url(path))
    assert response.code == 200
    page = body.decode()
    assert_shared_look(page)
    assert page.index('<nav class="back">') < 3000, "at the top, before the content"


@pytest_twisted.ensureDeferred
async def test_index_and_endless_clock_share_the_look(demo: Any, client: Any) -> None:
    """The index has the stylesheet and icon (and no back link: it is where they lead); the
    endless clock has them and its back link in its first bytes."""
    _, body = await fetch(client, demo.url("/"))
    assert_shared_look(body.decode(), back=False)
    raw = await connect(demo.port, get("/clock?interval=5"))
    await until(lambda: b"</nav>" in raw.received, what="the clock's first bytes")
    assert_shared_look(bytes(raw.received).decode(), back=True)
    raw.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_stylesheet_and_icon(demo: Any, client: Any) -> None:
    """/style.css is CSS giving every page the same width; the icon is an SVG answering at
    /favicon.svg and at /favicon.ico (browsers ask for it); both may be cached."""
    response, css = await fetch(client, demo.url("/style.css"))
    assert response.headers.getRawHeaders(b"content-type") == [b"text/css; charset=utf-8"]
    assert b"max-width: 52em" in css
    assert response.headers.getRawHeaders(b"cache-control") == [b"public, max-age=86400"]
    for path in ("/favicon.svg", "/favicon.ico"):
        response, icon = await fetch(client, demo.url(path))
        assert response.headers.getRawHeaders(b"content-type") == [b"image/svg+xml"]
        assert icon.startswith(b"<svg ")


@pytest_twisted.ensureDeferred
async def test_index_links_status_and_metrics_when_mounted(server: Any, client: Any) -> None:
    """The index links the status page and the metrics at the paths given, and only
    then."""
    server.serve(demo_resource(status="/_status", metrics="/ops/metrics"))
    _, body = await fetch(client, server.url("/"))
    page = body.decode()
    assert 'href="/_status"' in page and 'href="/ops/metrics"' in page
    server.serve(demo_resource(status="/_status"))
    _, body = await fetch(client, server.url("/"))
    assert 'href="/_status"' in body.decode() and "metrics" not in body.decode().lower()
    server.serve(demo_resource())
    _, body = await fetch(client, server.url("/"))
    assert "This server" not in body.decode()


@pytest.mark.parametrize("path", ["/download?size=1000", "/csv?rows=3"])
@pytest_twisted.ensureDeferred
async def test_generated_downloads_say_they_ignore_ranges(demo: Any, path: str) -> None:
    """Generated downloads answer a Range request with the whole body (200) and say
    ``Accept-Ranges: none`` (RFC 9110 section 14.3), so clients do not try to resume."""
    raw = await connect(demo.port, get(path, version="1.0", extra="Range: bytes=10-19\r\n"))
    await within(raw.closed)
    head, _, body = bytes(raw.received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ")
    assert b"\r\naccept-ranges: none" in head.lower()
    assert len(body) > 10
