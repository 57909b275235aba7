"""NDJSON: any source of JSON-serialisable objects as application/x-ndjson, one per line."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web.resource import Resource

from twisted_stream import Outcome, stream_for
from twisted_stream._events._ndjson import NDJSONResource, ndjson_converter, stream_ndjson

from ..conftest import leaf
from ..rawclient import connect, get
from ..waiting import until, within
from .test_event_stream import split_response

CLOSE = "Connection: close\r\n"


def serve(server: Any, make: Any, **kwargs: Any) -> list[Any]:
    requests: list[Any] = []

    def render(request: Any) -> Any:
        requests.append(request)
        return stream_ndjson(request, make(), **kwargs)

    server.serve(leaf(render))
    return requests


def test_one_compact_line_per_object() -> None:
    """Each object becomes one line of compact UTF-8 JSON; a newline inside a string is
    escaped, so it never splits the line."""
    convert = ndjson_converter()
    assert convert({"a": 1, "b": [1, 2]}) == b'{"a":1,"b":[1,2]}\n'
    assert convert("two\nlines") == b'"two\\nlines"\n'
    assert convert(None) == b"null\n"
    assert convert({"k": "caf\u00e9"}) == '{"k":"caf\u00e9"}\n'.encode()
    assert convert(b'{"raw":true}\n') == b'{"raw":true}\n'


def test_what_json_cannot_say_is_refused() -> None:
    """NaN, unserialisable objects and a dumps that spans lines raise."""
    convert = ndjson_converter()
    with pytest.raises(ValueError):
        convert(float("nan"))
    with pytest.raises(TypeError):
        convert(object())
    with pytest.raises(ValueError, match="single line"):
        ndjson_converter(lambda o: json.dumps(o, indent=2))({"a": 1})
    dated = ndjson_converter(lambda o: json.dumps(o, default=str))
    assert dated(datetime.date(2024, 1, 2)) == b'"2024-01-02"\n'


@pytest_twisted.ensureDeferred
async def test_exact_body_and_content_type(server: Any) -> None:
    """A generator of objects gives exactly one line per object under
    ``Content-Type: application/x-ndjson``."""
    serve(server, lambda: iter([{"n": 1}, [True, None], "s", 2.5]))
    raw = await connect(server.port, get(extra=CLOSE))
    await within(raw.closed)
    status, headers, body, complete = split_response(bytes(raw.received))
    assert status == b"HTTP/1.1 200 OK"
    assert headers[b"content-type"] == b"application/x-ndjson"
    assert complete
    assert body == b'{"n":1}\n[true,null]\n"s"\n2.5\n'
    assert [json.loads(line) for line in body.splitlines()] == [{"n": 1}, [True, None], "s", 2.5]


@pytest_twisted.ensureDeferred
async def test_lines_go_out_as_they_are_produced(server: Any) -> None:
    """The first line reaches the client while the source still waits for the second."""
    gate: Deferred[object] = Deferred()

    async def objects() -> AsyncIterator[object]:
        yield {"first": True}
        await gate
        yield {"second": True}

    serve(server, objects)
    raw = await connect(server.port, get(extra=CLOSE))
    await until(
        lambda: split_response(bytes(raw.received))[2] == b'{"first":true}\n', what="line 1"
    )
    gate.callback(None)
    await within(raw.closed)
    assert split_response(bytes(raw.received))[2] == b'{"first":true}\n{"second":true}\n'


@pytest_twisted.ensureDeferred
async def test_threaded_source(server: Any) -> None:
    """A blocking generator runs in the thread pool with threaded=True."""

    def blocking() -> Iterator[dict[str, int]]:
        for i in range(3):
            yield {"i": i}

    serve(server, blocking, threaded=True)
    raw = await connect(server.port, get(extra=CLOSE))
    await within(raw.closed)
    assert split_response(bytes(raw.received))[2] == b'{"i":0}\n{"i":1}\n{"i":2}\n'


@pytest_twisted.ensureDeferred
async def test_an_unserialisable_object_fails_the_stream(server: Any) -> None:
    """An object JSON cannot encode fails the stream: 500 if it is the first, an aborted
    connection (no terminator) after what was sent otherwise."""
    requests = serve(server, lambda: iter([object()]))
    raw = await connect(server.port, get(extra=CLOSE))
    await within(raw.closed)
    assert raw.received.startswith(b"HTTP/1.1 500")

    async def later() -> AsyncIterator[object]:
        yield {"ok": 1}
        await deferLater(reactor, 0, lambda: None)
        yield object()

    root = Resource()
    root.putChild(b"later", leaf(lambda r: (requests.append(r), stream_ndjson(r, later()))[1]))
    server.serve(root)
    raw = await connect(server.port, get("/later"))
    await within(raw.closed)
    _, _, body, complete = split_response(bytes(raw.received))
    assert body == b'{"ok":1}\n'
    assert not complete
    handle = stream_for(requests[-1])
    assert handle is not None
    assert (await within(handle.when_done())).outcome is Outcome.SOURCE_FAILED


@pytest_twisted.ensureDeferred
async def test_ndjson_resource(server: Any) -> None:
    """NDJSONResource streams what ``objects(request)`` returns, given as a callable or by
    overriding the method, with a custom ``dumps``."""

    class Sub(NDJSONResource):
        def objects(self, request: Any) -> object:
            return iter([{"path": request.path.decode()}])

    root = Resource()
    root.putChild(
        b"dates",
        NDJSONResource(
            lambda request: iter([datetime.date(2024, 5, 6)]),
            dumps=lambda o: json.dumps(o, default=str),
        ),
    )
    root.putChild(b"sub", Sub())
    server.serve(root)
    raw = await connect(server.port, get("/dates", extra=CLOSE))
    await within(raw.closed)
    assert split_response(bytes(raw.received))[2] == b'"2024-05-06"\n'
    raw = await connect(server.port, get("/sub", extra=CLOSE))
    await within(raw.closed)
    assert split_response(bytes(raw.received))[2] == b'{"path":"/sub"}\n'
