"""``StreamingResource`` render methods that answer later (``async def``, a returned
Deferred): what they give is sent when they are done, failures are answered, a client that
leaves cancels them. Byte by byte on a fake transport (``tests/http/conn.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.web.server import NOT_DONE_YET

from twisted_stream import MalformedRequestBody, StreamingResource

from ..conftest import logged_text
from ..http.conn import Conn, head


class Later(StreamingResource):
    """``GET /<case>``: each case answers later in its own way."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.waiting: Deferred[Any] = Deferred()
        self.cleaned: list[str] = []

    def render_GET(self, request: Any) -> Any:
        return getattr(self, "case_" + request.postpath[0].decode())(request)

    async def case_bytes(self, request: Any) -> bytes:
        return b"done\n"

    async def case_none(self, request: Any) -> None:
        request.setResponseCode(204)

    async def case_source(self, request: Any) -> Iterator[bytes]:
        return iter([b"a", b"b", b"c"])

    def case_deferred(self, request: Any) -> Deferred[Any]:
        return self.waiting

    async def case_fails(self, request: Any) -> bytes:
        raise ValueError("broken")

    async def case_fails_late(self, request: Any) -> bytes:
        request.write(b"partial")
        raise ValueError("broken after the headers")

    async def case_malformed(self, request: Any) -> bytes:
        raise MalformedRequestBody("bad form", 0)

    async def case_itself(self, request: Any) -> int:
        request.write(b"by hand\n")
        request.finish()
        return NOT_DONE_YET

    async def case_waits(self, request: Any) -> bytes:
        try:
            await self.waiting
        except CancelledError:
            self.cleaned.append("cancelled")
            raise
        finally:
            self.cleaned.append("finally")
        return b"never\n"


def get(case: str, resource: Later | None = None) -> Conn:
    return Conn(resource or Later()).send(head("/" + case))


def test_bytes_are_sent_with_a_length() -> None:
    """An ``async def`` returning bytes answers them with a ``Content-Length``."""
    conn = get("bytes")
    assert conn.status() == 200
    assert b"Content-Length: 5\r\n" in conn.output and conn.output.endswith(b"done\n")


def test_none_is_an_empty_body() -> None:
    """Returning None answers an empty body (with the status the handler set)."""
    conn = get("none")
    assert conn.status() == 204


def test_a_returned_source_is_streamed() -> None:
    """Returning a source (an iterator here) streams it, as a plain return would."""
    conn = get("source")
    assert conn.status() == 200
    assert b"Transfer-Encoding: chunked" in conn.output
    assert conn.output.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")  # coalesced


def test_a_returned_deferred_answers_when_it_fires() -> None:
    """A plain method returning a Deferred answers with its result once it fires."""
    resource = Later()
    conn = get("deferred", resource)
    assert conn.output == b""
    resource.waiting.callback(b"later\n")
    assert conn.status() == 200 and conn.output.endswith(b"later\n")


def test_a_failure_is_a_500_and_logged(logged: list[dict[str, Any]]) -> None:
    """A handler that raises before anything was sent gets a 500, logged once."""
    conn = get("fails")
    assert conn.status() == 500
    assert [t for t in logged_text(logged) if "broken" in t] == [
        "rendering {request} [ValueError: broken]"
    ]


def test_a_failure_after_the_headers_aborts(logged: list[dict[str, Any]]) -> None:
    """A handler that raises after its headers went out aborts the connection (the client
    sees a short body), logged once."""
    conn = get("fails_late")
    assert conn.statuses() == [200]
    assert conn.transport.disconnecting or conn.transport.disconnected
    assert len([t for t in logged_text(logged) if "broken after" in t]) == 1


def test_a_request_body_error_is_answered_with_its_status(
    logged: list[dict[str, Any]],
) -> None:
    """A request-body error the handler lets through is answered with its status (400
    here), not logged as a failure."""
    conn = get("malformed")
    assert conn.status() == 400
    assert b"bad form" in conn.output
    assert logged == []


def test_a_handler_may_answer_by_itself() -> None:
    """Returning ``NOT_DONE_YET`` leaves the request to the handler, which answered it."""
    conn = get("itself")
    assert conn.status() == 200 and b"by hand\n" in conn.output


def test_a_client_that_leaves_cancels_the_handler(logged: list[dict[str, Any]]) -> None:
    """When the client leaves, the handler's Deferred is cancelled: ``CancelledError``
    where it awaits, its ``finally`` runs, nothing is written or logged."""
    resource = Later()
    conn = get("waits", resource)
    conn.lose()
    assert resource.cleaned == ["cancelled", "finally"]
    assert conn.output == b""
    assert logged == []
