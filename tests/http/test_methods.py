"""``twisted_stream._http._methods``: which methods a resource answers, and how the others are
refused, for every resource the project ships.

Each test is of Kind 5 of issue 11 (method handling): a 405 carries an ``Allow`` listing
exactly the methods that work, HEAD is answered only where GET is (never a 500), and
OPTIONS is answered with ``Allow``. The end-to-end cases use raw sockets: the status line and
headers are what is checked.
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import pytest_twisted
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.template import Element, XMLString

from twisted_stream import (
    ElementResource,
    EventStreamResource,
    FileResource,
    MetricsResource,
    Mounts,
    NDJSONResource,
    StatusResource,
    StreamingResource,
)
from twisted_stream._demo import demo_resource
from twisted_stream._http._methods import allowed_methods

from ..rawclient import raw_get

GET_ONLY = "GET, HEAD, OPTIONS"
POST_ONLY = "OPTIONS, POST"
EVERY_METHOD = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


class PostOnly(StreamingResource):
    isLeaf = True

    def render_POST(self, request: Request) -> bytes:
        return b"posted\n"


class GetAndPost(StreamingResource):
    isLeaf = True

    def render_GET(self, request: Request) -> object:
        return iter([b"got\n"])

    def render_POST(self, request: Request) -> bytes:
        return b"posted\n"


class OwnHead(StreamingResource):
    isLeaf = True

    def render_HEAD(self, request: Request) -> bytes:
        request.setHeader(b"x-head", b"own")
        return b""


class Dispatches(StreamingResource):
    isLeaf = True
    allowedMethods = (b"GET", b"PROPFIND")

    def render_GET(self, request: Request) -> bytes:
        return b"got\n"


def test_allowed_methods_of_a_post_only_resource() -> None:
    """Kind 5 (method handling): a resource with only ``render_POST`` allows POST and
    OPTIONS; Twisted's inherited ``Resource.render_HEAD`` (which calls the missing
    ``render_GET``) does not count, though Twisted advertises ``Allow: HEAD, POST``."""
    assert allowed_methods(PostOnly()) == (b"OPTIONS", b"POST")


def test_allowed_methods_with_get_own_head_and_an_explicit_list() -> None:
    """Kind 5 (method handling): GET brings HEAD; a ``render_HEAD`` of the resource's own
    counts without GET; Twisted's ``allowedMethods`` attribute is honoured as given."""
    assert allowed_methods(GetAndPost()) == (b"GET", b"HEAD", b"OPTIONS", b"POST")
    assert allowed_methods(OwnHead()) == (b"HEAD", b"OPTIONS")
    assert allowed_methods(Dispatches()) == (b"GET", b"PROPFIND")


class _Page(Element):
    loader = XMLString("<p>page</p>")


def shipped_resources(tmp_path: pathlib.Path) -> Mounts:
    """Every kind of resource the library ships, mounted on one site (Mounts included)."""
    (tmp_path / "notes.txt").write_bytes(b"notes\n")
    root = Resource()
    root.putChild(b"streaming", GetAndPost())
    root.putChild(b"post-only", PostOnly())
    root.putChild(b"own-head", OwnHead())
    root.putChild(b"events", EventStreamResource(lambda request, last_id: iter(["one"])))
    root.putChild(b"ndjson", NDJSONResource(lambda request: iter([{"a": 1}])))
    root.putChild(b"template", ElementResource(lambda request: _Page()))
    mounts = {
        "/files": FileResource(tmp_path, listing=True),
        "/metrics": MetricsResource(),
        "/status": StatusResource(),
    }
    return Mounts(root, mounts)


SHIPPED = [
    ("/streaming", "GET, HEAD, OPTIONS, POST"),
    ("/post-only", POST_ONLY),
    ("/own-head", "HEAD, OPTIONS"),
    ("/events", GET_ONLY),
    ("/ndjson", GET_ONLY),
    ("/template", GET_ONLY),
    ("/files/notes.txt", GET_ONLY),
    ("/files/", GET_ONLY),
    ("/metrics", GET_ONLY),
    ("/status", GET_ONLY),
]


async def check_methods(port: int, path: str, allow: str, *, endless: bool = False) -> None:
    """Every method on ``path``: the allowed ones answer (HEAD without a body), OPTIONS
    answers 200 with ``Allow``, the others 405 with the same ``Allow``. An ``endless``
    resource is not sent a GET."""
    allowed = allow.split(", ")
    for method in EVERY_METHOD:
        if endless and method == "GET":
            continue
        status, headers, body = await raw_get(port, path, method=method)
        if method == "OPTIONS":
            assert (status, headers["allow"], body) == (200, [allow], b""), path
            assert headers["content-length"] == ["0"]
        elif method in allowed:
            assert status < 400, (path, method, status)
            if method == "HEAD":
                assert body == b"", path
        else:
            assert (status, headers["allow"]) == (405, [allow]), (path, method)
            assert headers["content-type"] == ["text/plain; charset=utf-8"]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(("path", "allow"), SHIPPED)
async def test_every_shipped_resource_answers_methods_exactly(
    server: Any, tmp_path: pathlib.Path, path: str, allow: str
) -> None:
    """Kind 5 (method handling): StreamingResource subclasses, FileResource (files and
    listings), EventStreamResource, NDJSONResource, ElementResource, MetricsResource and
    StatusResource, behind Mounts: 405 with an exact Allow for every other method (PUT,
    DELETE and PATCH too, where Twisted answers 501), OPTIONS answered, HEAD only with
    GET."""
    server.serve(shipped_resources(tmp_path))
    await check_methods(server.port, path, allow)


DEMO = [
    ("/", GET_ONLY),
    ("/countdown/", GET_ONLY),
    ("/countdown/stream?delay=0&count=1", GET_ONLY),
    ("/countdown/threaded?delay=0&count=1", GET_ONLY),
    ("/csv?rows=1", GET_ONLY),
    ("/events", GET_ONLY),
    ("/events/", GET_ONLY),
    ("/events/click", POST_ONLY),
    ("/template?rows=1&delay=0", GET_ONLY),
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(("path", "allow"), DEMO)
async def test_every_demo_page_answers_methods_exactly(server: Any, path: str, allow: str) -> None:
    """Kind 5 (method handling): every page of the demo site answers as the library's
    resources do."""
    server.serve(demo_resource())
    await check_methods(server.port, path, allow)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path", ["/download", "/clock", "/events/clock", "/events/counter"])
async def test_endless_and_huge_demo_pages(server: Any, path: str) -> None:
    """Kind 5 (method handling): the demo's 4 GiB download and its endless streams answer
    HEAD with headers only (nothing generated) and OPTIONS, and refuse the rest with 405."""
    server.serve(demo_resource())
    await check_methods(server.port, path, GET_ONLY, endless=True)


@pytest_twisted.ensureDeferred
async def test_the_status_feed(server: Any, tmp_path: pathlib.Path) -> None:
    """Kind 5 (method handling): the status page's endless event feed (``?events``) answers
    like the page."""
    server.serve(shipped_resources(tmp_path))
    await check_methods(server.port, "/status?events", GET_ONLY, endless=True)


@pytest_twisted.ensureDeferred
async def test_head_of_the_demo_click_is_405_not_500(server: Any) -> None:
    """Kind 5 (method handling), the reported input: ``curl -I /events/click`` (a resource
    with only ``render_POST``) answered 500 with ``AttributeError: ... render_GET`` while
    advertising ``Allow: HEAD, POST``; it is a 405 listing what works."""
    server.serve(demo_resource())
    status, headers, body = await raw_get(server.port, "/events/click", method="HEAD")
    assert (status, headers["allow"], body) == (405, [POST_ONLY], b"")
    status, headers, _ = await raw_get(server.port, "/events/click", method="GET")
    assert (status, headers["allow"]) == (405, [POST_ONLY])
    status, _, body = await raw_get(server.port, "/events/click", method="POST")
    assert (status, body) == (200, b"1\n")


@pytest_twisted.ensureDeferred
async def test_own_head_is_called(server: Any) -> None:
    """Kind 5 (method handling): a resource's own ``render_HEAD`` answers HEAD (with no GET
    at all), and GET is refused."""
    server.serve(OwnHead())
    status, headers, _ = await raw_get(server.port, "/", method="HEAD")
    assert (status, headers["x-head"]) == (200, ["own"])
    status, headers, _ = await raw_get(server.port, "/", method="GET")
    assert (status, headers["allow"]) == (405, ["HEAD, OPTIONS"])
