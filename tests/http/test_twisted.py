"""The seam to Twisted's internals (``twisted_stream._http._twisted``): the answers written
in place of a stream, the request line, the client address, and that no other module of the
package reaches into Twisted's private attributes."""

from __future__ import annotations

import pathlib
import re

import pytest
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

import twisted_stream
from twisted_stream._http._twisted import (
    REPRESENTATION_HEADERS,
    client_address,
    request_line,
    send_error_page,
    send_refusal,
)

TWISTED_INTERNALS = re.compile(
    r"""[.'"](_disconnected|_inFakeHead|_encoder|startedWriting|abortConnection|channel)\b(?!-)"""
    r"|_GzipEncoder"
)
"""Twisted's private attributes (and the channel), as attribute accesses or getattr names."""


def request_with_representation_headers() -> DummyRequest:
    request = DummyRequest([b""])
    for name in REPRESENTATION_HEADERS:
        request.responseHeaders.setRawHeaders(name, [b"meant-for-the-body"])
    return request


def test_error_page_and_refusal_reset_the_same_headers() -> None:
    """The 500 page and the 503 refusal both drop every header describing the body the
    resource meant to send (one list, one helper), then set their own length and type."""
    for answer in (
        lambda r: send_error_page(r, Failure(ValueError("boom"))),
        lambda r: send_refusal(r, "too many streams", 7),
    ):
        request = request_with_representation_headers()
        answer(request)
        headers = request.responseHeaders
        for name in REPRESENTATION_HEADERS:
            if name in (b"content-length",):
                continue
            assert not headers.hasHeader(name), name
        body = b"".join(request.written)
        assert headers.getRawHeaders(b"content-length") == [b"%d" % len(body)]
        assert request.finished


def test_refusal_is_503_with_retry_after() -> None:
    """The refusal answers 503 with the Retry-After given and says why."""
    request = DummyRequest([b""])
    send_refusal(request, "the site already serves 2 streams", 7)
    assert request.responseCode == 503
    assert request.responseHeaders.getRawHeaders(b"retry-after") == [b"7"]
    assert b"already serves 2 streams" in b"".join(request.written)


def test_error_page_hides_the_traceback_unless_the_site_shows_them() -> None:
    """The 500 page shows the traceback only with the site's displayTracebacks."""

    class Site:
        displayTracebacks = False

    for shown in (False, True):
        request = DummyRequest([b""])
        Site.displayTracebacks = shown
        request.site = Site()
        send_error_page(request, Failure(ValueError("secret detail")))
        assert request.responseCode == 500
        assert (b"secret detail" in b"".join(request.written)) is shown


def test_request_line_and_client_address() -> None:
    """The log line names method, URI and protocol; the client is the peer's host, the last
    X-Forwarded-For hop only when trusted, and "local" on a UNIX socket."""
    request = DummyRequest([b""])
    request.method, request.uri, request.clientproto = b"GET", b"/x?y", b"HTTP/1.1"
    assert request_line(request) == "GET /x?y HTTP/1.1"
    request.client = IPv4Address("TCP", "192.168.1.1", 40000)
    request.requestHeaders.setRawHeaders(b"x-forwarded-for", [b"6.6.6.6, 10.0.0.9"])
    assert client_address(request, False) == "192.168.1.1"
    assert client_address(request, True) == "10.0.0.9"
    request.client = UNIXAddress(b"/run/web.sock")
    assert client_address(request, False) == "local"


@pytest.mark.parametrize(
    "path",
    sorted(pathlib.Path(twisted_stream.__file__).parent.rglob("*.py")),
    ids=lambda p: str(p.relative_to(pathlib.Path(twisted_stream.__file__).parent)),
)
def test_only_the_seam_touches_twisted_internals(path: pathlib.Path) -> None:
    """Twisted's private request and channel attributes are named in ``_http/_twisted.py``
    and nowhere else in the package (but in ``_http/_channel.py``, our ``HTTPChannel``
    subclass, and ``_http/_h1body.py``, its request-body half: those are its own
    attributes; ``test_channel.py`` pins the ones it uses)."""
    if path.parts[-2:] in (
        ("_http", "_twisted.py"),
        ("_http", "_channel.py"),
        ("_http", "_h1body.py"),
    ):
        return
    code = "\n".join(
        line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    code = re.sub(r'"""(.|\n)*?"""', "", code)
    assert not TWISTED_INTERNALS.findall(code), path.name
