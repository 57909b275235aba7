"""Streaming Jinja2 templates (``twisted_stream._events._jinja``); skipped without Jinja2."""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from twisted_stream import Outcome
from twisted_stream._events._jinja import _grouped, stream_template

from ..conftest import Served, leaf, serve_streams
from ..rawclient import connect, get
from ..waiting import settled_pause, until, within

PAGES = {
    "base.html": (
        "<html><title>{% block title %}{% endblock %}</title>"
        "<body>{% block body %}{% endblock %}</body></html>"
    ),
    "rows.html": (
        '{% extends "base.html" %}{% block title %}{{ title }}{% endblock %}'
        "{% block body %}<table>{% for row in rows %}"
        "<tr><td>{{ loop.index }}</td><td>{{ row }}</td></tr>{% endfor %}</table>"
        '{% include "footer.html" %}{% endblock %}'
    ),
    "footer.html": "<p>{{ title | upper }}</p>",
}


@pytest.fixture
def jinja2() -> Any:
    return pytest.importorskip("jinja2")


@pytest.fixture
def env(jinja2: Any) -> Any:
    return jinja2.Environment(loader=jinja2.DictLoader(PAGES), autoescape=True)


def serve(server: Any, template: Any, make_context: Any, **kwargs: Any) -> Served:
    return serve_streams(
        server, lambda request: stream_template(request, template, make_context(), **kwargs)
    )


@pytest.mark.parametrize("buffer", [0, 1, 5])
@pytest.mark.parametrize("threaded", [False, True])
@pytest_twisted.ensureDeferred
async def test_output_equals_render(
    server: Any, client: Any, env: Any, buffer: int, threaded: bool
) -> None:
    """The streamed page equals Jinja's render(), with inheritance, includes, autoescape
    and a generator in the context, whatever the buffering and thread mode."""

    def context() -> dict[str, Any]:
        return {"title": "Tom & Jerry", "rows": (f"<row {i}>" for i in range(50))}

    serve(server, env.get_template("rows.html"), context, buffer=buffer, threaded=threaded)
    response = await client.get(server.url())
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    body = await within(response.content())
    expected = env.get_template("rows.html").render(**context())
    assert body == expected.encode()
    assert b"Tom &amp; Jerry" in body and b"&lt;row 49&gt;" in body


def test_grouping_matches_jinja_enable_buffering(env: Any) -> None:
    """Pieces are grouped exactly like TemplateStream.enable_buffering(size)."""
    template = env.from_string(
        "{% for i in range(7) %}<{{ i }}>{% if i % 2 %}{% endif %}{% endfor %}end"
    )
    for size in (2, 3, 5):
        jinja_stream = template.stream()
        jinja_stream.enable_buffering(size)
        assert list(_grouped(template.generate(), size, {})) == list(jinja_stream)
    assert list(_grouped(template.generate(), 0, {})) == list(template.generate())


@pytest_twisted.ensureDeferred
async def test_template_by_name(server: Any, client: Any, env: Any) -> None:
    """A template name is looked up in ``environment``; the content type is kept."""

    def render(request: Any) -> Any:
        request.setHeader(b"content-type", b"text/plain; charset=latin-1")
        return stream_template(request, "footer.html", {"title": "caf\xe9"}, environment=env)

    server.serve(leaf(render))
    response = await client.get(server.url())
    assert response.headers.getRawHeaders("content-type") == ["text/plain; charset=latin-1"]
    assert await within(response.content()) == "<p>CAF\xc9</p>".encode("latin-1")


def test_bad_arguments(env: Any) -> None:
    """A name without an environment, or something that is no template, is refused."""
    with pytest.raises(TypeError, match="environment"):
        stream_template(None, "footer.html")
    with pytest.raises(TypeError, match=r"jinja2\.Template"):
        stream_template(None, object())


def test_a_clear_error_without_jinja2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Jinja2 the module imports, and streaming a template says what to install."""
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(ImportError, match=r"twisted_stream\[jinja2\]"):
        stream_template(None, "page.html")


@pytest_twisted.ensureDeferred
async def test_rows_arrive_while_a_blocking_context_generator_waits(
    server: Any, client: Any, env: Any
) -> None:
    """threaded=True: the rows rendered so far reach the client while the context
    generator blocks for the next one."""
    gate = threading.Event()

    def rows() -> Iterator[str]:
        yield "first"
        gate.wait(10)
        yield "second"

    serve(
        server,
        env.get_template("rows.html"),
        lambda: {"title": "t", "rows": rows()},
        threaded=True,
        buffer=1,
    )
    response = await client.get(server.url())
    got: list[bytes] = []

    def collect(data: bytes) -> None:
        got.append(data)

    body = treq.collect(response, collect)
    await until(lambda: b"first</td></tr>" in b"".join(got), what="the first row")
    assert b"second" not in b"".join(got)
    gate.set()
    await within(body)
    assert b"<td>2</td><td>second</td></tr></table><p>T</p>" in b"".join(got)


def endless(pulled: list[int], events: list[str]) -> Iterator[str]:
    try:
        while True:
            pulled[0] += 1
            yield "x" * 1000
    finally:
        events.append("finally")


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_stops_the_template(server: Any, env: Any) -> None:
    """Nothing is rendered (no context item pulled) while the client does not read; when
    it leaves, the context generator is closed."""
    pulled = [0]
    events: list[str] = []
    served = serve(
        server,
        env.get_template("rows.html"),
        lambda: {"title": "t", "rows": endless(pulled, events)},
    )
    raw = await connect(server.port, get())
    raw.stop_reading()
    handle = await served.first()
    at_pause = await settled_pause(handle, lambda: pulled[0])
    raw.resume_reading()
    await until(lambda: pulled[0] > at_pause + 100, what="rendering to resume")
    assert raw.transport is not None
    raw.transport.abortConnection()  # type: ignore[attr-defined]
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    await within(handle.source_closed)
    assert events == ["finally"]


@pytest.mark.parametrize("threaded", [False, True])
@pytest_twisted.ensureDeferred
async def test_disconnect_closes_the_context_generators(
    server: Any, env: Any, threaded: bool
) -> None:
    """A client leaving mid-page closes the template and its context generators."""
    pulled = [0]
    events: list[str] = []
    served = serve(
        server,
        env.get_template("rows.html"),
        lambda: {"title": "t", "rows": endless(pulled, events)},
        threaded=threaded,
    )
    raw = await connect(server.port, get())
    await within(raw.received_at_least(20000))
    handle = await served.first()
    assert raw.transport is not None
    raw.transport.loseConnection()
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    await within(handle.source_closed)
    assert events == ["finally"]


@pytest_twisted.ensureDeferred
async def test_an_unconsumed_context_generator_is_closed_at_the_end(
    server: Any, client: Any, env: Any
) -> None:
    """A context generator the template did not exhaust is closed when the page ends."""
    unused = endless([0], [])
    template = env.from_string("{{ title }}")
    serve(server, template, lambda: {"title": "only", "rows": unused})
    response = await client.get(server.url())
    assert await within(response.content()) == b"only"
    await until(
        lambda: inspect.getgeneratorstate(unused) == inspect.GEN_CLOSED,
        what="the generator to be closed",
    )


@pytest_twisted.ensureDeferred
async def test_an_async_environment_awaits_deferreds(
    server: Any, client: Any, jinja2: Any
) -> None:
    """With enable_async, context async generators and functions returning Deferreds are
    awaited on the reactor, and the output still equals the expected page."""
    env = jinja2.Environment(enable_async=True, autoescape=True)
    template = env.from_string(
        "<ul>{% for row in rows %}<li>{{ row }}</li>{% endfor %}</ul><p>{{ later() }}</p>"
    )
    events: list[str] = []

    async def rows() -> AsyncIterator[str]:
        try:
            for i in range(3):
                await deferLater(reactor, 0.001, lambda: None)
                yield f"<{i}>"
        finally:
            events.append("finally")

    def later() -> Deferred[str]:
        return deferLater(reactor, 0.001, lambda: "done & dusted")

    serve(server, template, lambda: {"rows": rows(), "later": later})
    response = await client.get(server.url())
    body = await within(response.content())
    assert body == (
        b"<ul><li>&lt;0&gt;</li><li>&lt;1&gt;</li><li>&lt;2&gt;</li></ul><p>done &amp; dusted</p>"
    )
    assert events == ["finally"]


@pytest_twisted.ensureDeferred
async def test_a_template_error_mid_page_truncates_it(server: Any, client: Any, env: Any) -> None:
    """An error raised while rendering, after some output, gives an incomplete body."""
    from twisted.web._newclient import ResponseFailed
    from twisted.web.client import PotentialDataLoss

    def rows() -> Iterator[str]:
        yield "x" * 100000
        raise RuntimeError("row source failed")

    serve(server, env.get_template("rows.html"), lambda: {"title": "t", "rows": rows()})
    response = await client.get(server.url())
    assert response.code == 200
    with pytest.raises((ResponseFailed, PotentialDataLoss)):
        await within(response.content())
