"""Forms read as they arrive: ``multipart_parts`` (streamed ``multipart/form-data``) and
``read_form`` (``application/x-www-form-urlencoded``), unit by unit and on real sockets."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from twisted_stream import (
    MalformedRequestBody,
    RequestBody,
    StreamingResource,
    StreamSettings,
    multipart_parts,
    read_form,
)
from twisted_stream._http._request_body import attach

from ..conftest import Server
from ..waiting import within
from .conn import Conn, head

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


class Source:
    def want(self, more: bool) -> None:
        pass

    def consumed(self, flow: int) -> None:
        pass

    def send_continue(self) -> None:
        pass

    def refuse(self, error: Any) -> None:
        pass


def form(boundary: bytes, parts: list[tuple[bytes, bytes | None, bytes]]) -> bytes:
    """A multipart/form-data body of ``(name, filename, data)`` parts."""
    out = b""
    for name, filename, data in parts:
        out += b"--" + boundary + b"\r\n"
        out += b'Content-Disposition: form-data; name="' + name + b'"'
        if filename is not None:
            out += b'; filename="' + filename + b'"\r\nContent-Type: application/octet-stream'
        out += b"\r\n\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def streamed(content_type: bytes, buffer_size: int = 65536) -> tuple[DummyRequest, RequestBody]:
    """A request whose body the test feeds by hand."""
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"content-type", [content_type])
    body = RequestBody(Source(), length=None, buffer_size=buffer_size)
    attach(request, body)
    return request, body


def result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def read_parts(request: Any) -> Deferred[list[tuple[Any, ...]]]:
    async def run() -> list[tuple[Any, ...]]:
        found = []
        async for part in multipart_parts(request):
            data = b"".join([chunk async for chunk in part])
            found.append((part.name, part.filename, part.content_type, data))
        return found

    return Deferred.fromCoroutine(run())


@settings(max_examples=100, deadline=None)
@given(
    fields=st.lists(
        st.tuples(
            st.text("abcxyz_", min_size=1, max_size=8),
            st.one_of(st.none(), st.text("abc.txt", min_size=1, max_size=10)),
            st.binary(max_size=3000),
        ),
        min_size=1,
        max_size=5,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=30),
    buffer_size=st.integers(min_value=1, max_value=4096),
)
def test_any_split_of_a_form_gives_the_same_parts(
    fields: list[tuple[str, str | None, bytes]], cuts: list[int], buffer_size: int
) -> None:
    """However the body arrives and whatever the chunk size, the parts come out whole, in
    order, with their names, filenames and data."""
    boundary = b"----b0undary"
    parts = [(n.encode(), None if f is None else f.encode(), d) for n, f, d in fields]
    body_bytes = form(boundary, parts)
    request, body = streamed(b"multipart/form-data; boundary=" + boundary, buffer_size)
    points = sorted({c for c in cuts if c <= len(body_bytes)} | {0, len(body_bytes)})
    for a, b in itertools.pairwise(points):
        body.feed(body_bytes[a:b])
    body.finish()
    found = result(read_parts(request))
    assert [(n, f, d) for n, f, _, d in found] == [(n, f, d) for n, f, d in fields]


def test_a_part_left_unread_is_skipped() -> None:
    """Asking for the next part drops what is left of the current one."""
    request, body = streamed(b"multipart/form-data; boundary=B")
    body.feed(form(b"B", [(b"skip", b"a.bin", b"s" * 100_000), (b"keep", None, b"kept")]))
    body.finish()

    async def run() -> list[Any]:
        out = []
        async for part in multipart_parts(request):
            out.append(part.name)
            if part.name == "keep":
                out.append(await part.read())
        return out

    assert result(Deferred.fromCoroutine(run())) == ["skip", "keep", b"kept"]


@pytest.mark.parametrize(
    "content_type, data, code",
    [
        (b"text/plain", b"x", 415),
        (b"multipart/form-data", b"x", 415),  # no boundary
        (b"multipart/form-data; boundary=B", b"--B\r\nbroken", 400),  # ends early
        (b"multipart/form-data; boundary=B", b"garbage\r\n--X--\r\n", 400),
    ],
)
def test_bad_forms_fail_with_their_status(content_type: bytes, data: bytes, code: int) -> None:
    """A body that is not a multipart form, or does not parse, or ends before its closing
    boundary, fails with ``MalformedRequestBody`` and the status to answer."""
    request, body = streamed(content_type)
    body.feed(data)
    body.finish()
    with pytest.raises(MalformedRequestBody) as raised:
        result(read_parts(request))
    assert raised.value.code == code


def test_read_form_collects_fields() -> None:
    """``read_form`` decodes an urlencoded body into names and their values, in order,
    blank ones kept; another type is a 415; over ``max_size`` a 413."""
    request, body = streamed(b"application/x-www-form-urlencoded; charset=utf-8")
    body.feed(b"a=1&b=%C3%A9t%C3%A9&a=+two&empty=")
    body.finish()
    assert result(read_form(request)) == {"a": ["1", " two"], "b": ["été"], "empty": [""]}
    other, body = streamed(b"text/plain")
    with pytest.raises(MalformedRequestBody) as raised:
        result(read_form(other))
    assert raised.value.code == 415
    big, body = streamed(b"application/x-www-form-urlencoded")
    d = read_form(big, max_size=10)
    body.feed(b"a=" + b"z" * 20)
    with pytest.raises(Exception) as too_large:
        result(d)
    assert getattr(too_large.value, "code", None) == 413


class Uploads(StreamingResource):
    """``POST``: every part's name, filename, size and SHA-256, one line each."""

    isLeaf = True
    stream_body = True

    async def render_POST(self, request: Any) -> bytes:
        lines = []
        async for part in multipart_parts(request):
            digest = hashlib.sha256()
            size = 0
            async for chunk in part:
                digest.update(chunk)
                size += len(chunk)
            lines.append(f"{part.name} {part.filename} {size} {digest.hexdigest()}")
        return ("\n".join(lines) + "\n").encode()


BAD_FORM = (
    head(
        "/",
        method="POST",
        headers="Host: a\r\nContent-Type: multipart/form-data; boundary=B\r\n"
        "Content-Length: 9\r\n",
    )
    + b"--B\r\nbad!"
)
"""A multipart POST whose body breaks off after its first boundary."""


def test_a_malformed_form_is_answered_400() -> None:
    """A resource that lets ``MalformedRequestBody`` through answers its status (400)."""
    conn = Conn(Uploads())
    conn.send(BAD_FORM)
    assert conn.status() == 400


def test_without_python_multipart_a_form_is_answered_500_saying_why(
    monkeypatch: pytest.MonkeyPatch, logged_lines: list[str]
) -> None:
    """Without python-multipart, ``multipart_parts`` raises an ``ImportError`` that is a
    ``RequestBodyError`` with code 500: the client gets a 500 whose plain-text body says
    forms cannot be parsed here and names the ``multipart`` extra; the log says what to
    install."""
    monkeypatch.setitem(sys.modules, "python_multipart", None)  # import fails
    conn = Conn(Uploads())
    conn.send(BAD_FORM)
    assert conn.status() == 500
    response_head, _, body = conn.output.partition(b"\r\n\r\n")
    assert b"\r\nContent-Type: text/plain; charset=utf-8" in response_head
    assert body.startswith(b"500 Internal Server Error: this server cannot parse")
    assert b"'multipart' extra" in body
    assert any("pip install 'twisted_stream[multipart]'" in line for line in logged_lines)
    with pytest.raises(ImportError):
        multipart_parts(DummyRequest([b""]))


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest_twisted.ensureDeferred
async def test_a_200_mb_file_part_and_two_fields_in_constant_memory(server: Server) -> None:
    """A multipart upload of two small fields and a 200 MB file part (a client in its own
    process, Content-Length given) is parsed as it arrives: every part comes out whole (its
    size and digest), and the server's RSS grows by less than 16 MiB."""
    server.serve(Uploads(), settings=StreamSettings(max_body_size=0))
    before = rss_mib()
    peak = [before]
    watch = LoopingCall(lambda: peak.append(rss_mib()))
    watch.start(0.05)
    script = (
        "import socket, sys\n"
        "b = b'----form'\n"
        "block = bytes(range(256)) * 4096\n"
        "head = (b'--' + b + b'\\r\\nContent-Disposition: form-data; name=\"title\"\\r\\n\\r\\n'"
        " b'holiday\\r\\n--' + b + b'\\r\\nContent-Disposition: form-data; name=\"tags\"'"
        " b'\\r\\n\\r\\nsea,sun\\r\\n--' + b + b'\\r\\nContent-Disposition: form-data; '"
        ' b\'name="file"; filename="big.bin"\\r\\n\\r\\n\')\n'
        "tail = b'\\r\\n--' + b + b'--\\r\\n'\n"
        "size = 200 * len(block)\n"
        "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
        "s.sendall(b'POST / HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n'"
        " b'Content-Type: multipart/form-data; boundary=' + b + b'\\r\\n'"
        " b'Content-Length: %d\\r\\n\\r\\n' % (len(head) + size + len(tail)) + head)\n"
        "for _ in range(200):\n"
        "    s.sendall(block)\n"
        "s.sendall(tail)\n"
        "out = b''\n"
        "while True:\n"
        "    d = s.recv(65536)\n"
        "    if not d:\n"
        "        break\n"
        "    out += d\n"
        "sys.stdout.write(out.decode())\n"
    )

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, str(server.port)],
            capture_output=True,
            timeout=120,
            cwd=ROOT,
            check=True,
        )
        return done.stdout.decode()

    try:
        response = await within(deferToThread(run), 120)
    finally:
        watch.stop()
    digest = hashlib.sha256()
    for _ in range(200):
        digest.update(bytes(range(256)) * 4096)
    lines = response.split("\r\n\r\n", 1)[1].splitlines()
    assert lines[0].startswith("title None 7 ") and lines[1].startswith("tags None 7 ")
    assert lines[2] == f"file big.bin {200 * MIB} {digest.hexdigest()}"
    assert max(peak) - before < 16, f"RSS grew by {max(peak) - before:.1f} MiB"
