"""``Mounts`` (``twisted_stream._ops._mounts``): resources at fixed paths in front of a root."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from twisted.web.resource import Resource

from twisted_stream._ops._mounts import Mounts
from twisted_stream._ops._prometheus import MetricsResource
from twisted_stream._ops._status import StatusResource

from ..conftest import leaf
from ..waiting import within


def echo_leaf(label: str) -> Resource:
    """A leaf answering its label and the path it was given."""

    def render(request: Any) -> bytes:
        pre = b"/".join(request.prepath).decode()
        post = b"/".join(request.postpath).decode()
        return f"{label} pre={pre} post={post}".encode()

    return leaf(render)


@pytest_twisted.ensureDeferred
async def test_mounts_in_front_of_a_leaf_root(server: Any, client: Any) -> None:
    """``Mounts`` answers its paths from the mounted resources (longest path first, with
    what lies below them) and hands every other path, whole, to a leaf root such as
    ``FileResource``."""
    root = Mounts(
        echo_leaf("root"),
        {
            "/_metrics": MetricsResource(use_client=False),
            "/admin/status": echo_leaf("status"),
            "/admin": echo_leaf("admin"),
        },
    )
    server.serve(root)

    async def text(path: str) -> str:
        return str(await within((await within(client.get(server.url(path)))).text()))

    assert (await text("/_metrics")).startswith("# HELP twisted_stream_streams_active")
    assert await text("/admin/status") == "status pre=admin/status post="
    assert await text("/admin/status/x") == "status pre=admin/status post=x"
    assert await text("/admin/other") == "admin pre=admin post=other"
    assert await text("/") == "root pre= post="
    assert await text("/files/a/b.txt") == "root pre= post=files/a/b.txt"
    assert await text("/_metricsX") == "root pre= post=_metricsX"


@pytest.mark.filterwarnings("ignore:twisted.web.resource._UnsafeNoResource:DeprecationWarning")
@pytest_twisted.ensureDeferred
async def test_mounts_in_front_of_a_tree(server: Any, client: Any) -> None:
    """With a non-leaf root, unmounted paths resolve through the root's children as
    before, including 404 for missing ones."""
    tree = Resource()
    tree.putChild(b"a", echo_leaf("a"))
    server.serve(Mounts(tree, {"_status": StatusResource()}))
    response = await within(client.get(server.url("/a/b")))
    assert await within(response.text()) == "a pre=a post=b"
    response = await within(client.get(server.url("/missing")))
    assert response.code == 404
    await within(response.content())
    response = await within(client.get(server.url("/_status?json")))
    assert json.loads(await within(response.text()))["active"] == 0


def test_mounts_refuses_the_root_path() -> None:
    """Mounting at ``/`` (or an empty segment) would hide the root: refused."""
    with pytest.raises(ValueError, match="cannot mount"):
        Mounts(Resource(), {"/": Resource()})
    with pytest.raises(ValueError, match="cannot mount"):
        Mounts(Resource(), {"/a//b": Resource()})
