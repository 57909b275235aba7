"""The connection layer byte by byte, on a fake transport and clock: header timeout, head
size limits, framing and Host rules, body limits, read-ahead, the Server header and the
per-client connection limit. (Real sockets: ``test_hostile_clients.py``.)"""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from twisted_stream import StreamSettings, StreamSite
from twisted_stream._http._reading import READ_AHEAD, TWISTED
from twisted_stream._settings import DEFAULT_SETTINGS

from .conn import Conn, Echo, chunked, head

# --- header timeout ---------------------------------------------------------------------


def test_partial_head_gets_408_at_the_header_timeout() -> None:
    """A request head not complete ``header_timeout`` seconds after the connection was made
    gets 408 and the connection closes; a moment before, nothing has happened."""
    conn = Conn(header_timeout=2.0).send(b"GET / HTTP/1.1\r\nHo")
    conn.clock.advance(1.99)
    assert conn.output == b""
    assert not conn.closing
    conn.clock.advance(0.02)
    assert conn.status() == 408
    assert b"Connection: close" in conn.output
    assert conn.closing


def test_trickled_head_is_not_extended_by_each_byte() -> None:
    """A head sent one byte every tenth of a second (slowloris) still gets 408 at the
    timeout: bytes arriving do not reset it, unlike Twisted's idle timeout."""
    conn = Conn(header_timeout=1.0)
    for byte in b"GET / HTTP/1.1\r\nX-Slow: 1":
        if conn.output:
            break
        conn.send(bytes([byte]))
        conn.clock.advance(0.1)
    assert conn.status() == 408
    assert conn.closing


def test_idle_connection_is_closed_without_an_answer() -> None:
    """A connection that sends nothing at all is closed at the header timeout without a
    response (there is no request to answer)."""
    conn = Conn(header_timeout=0.5)
    conn.clock.advance(0.51)
    assert conn.output == b""
    assert conn.closing


def test_head_bytes_waiting_unread_at_the_deadline_count_as_arrived() -> None:
    """The first bytes of a head already in the socket when the header timeout fires (the
    reactor ran the timer before reading them) get 408, not the quiet close of a connection
    that sent nothing."""
    import socket

    ours, peer = socket.socketpair()
    ours.setblocking(False)
    try:
        conn = Conn(header_timeout=0.5)
        conn.transport.getHandle = lambda: ours  # type: ignore[attr-defined]
        peer.sendall(b"G")
        conn.clock.advance(0.51)
        assert conn.status() == 408
        assert conn.closing
    finally:
        ours.close()
        peer.close()


def test_header_timeout_counts_from_the_end_of_the_previous_response() -> None:
    """On a kept-alive connection the timer restarts when a response is done: a second
    head half sent 1.9 s later is still waited for; at 2 s after the response it gets 408."""
    conn = Conn(header_timeout=2.0).send(head("/one"))
    conn.clock.advance(1.5)
    conn.send(b"GET /two HTTP/1.1\r\n")
    conn.clock.advance(0.49)
    assert conn.statuses() == [200]
    conn.clock.advance(0.02)
    assert conn.statuses() == [200, 408]
    assert conn.closing


def test_kept_alive_connection_idle_past_the_timeout_is_closed_quietly() -> None:
    """After a complete exchange, a connection idle for the header timeout is closed with
    no further response; complete heads are never timed out."""
    conn = Conn(header_timeout=1.0).send(head("/one"))
    conn.clock.advance(0.9)
    conn.send(head("/two"))
    conn.clock.advance(0.9)
    assert conn.statuses() == [200, 200]
    assert not conn.closing
    conn.clock.advance(0.2)
    assert conn.statuses() == [200, 200]
    assert conn.closing


def test_header_timeout_zero_is_off() -> None:
    """``header_timeout=0`` sets no deadline for the head (the site's idle timeout, 60 s
    by default, still applies)."""
    conn = Conn(header_timeout=0).send(b"GET / HTTP/1.1\r\n")
    conn.clock.advance(59)
    assert conn.output == b""
    assert not conn.closing


# --- head size --------------------------------------------------------------------------

LIMIT = 300


@settings(max_examples=150, deadline=None)
@given(
    line=st.integers(LIMIT - 40, LIMIT + 40),
    fields=st.lists(st.integers(1, 120), max_size=6),
    cut=st.lists(st.integers(1, 400), max_size=8),
)
def test_head_size_limits(line: int, fields: list[int], cut: list[int]) -> None:
    """``max_header_size`` bounds the request line and the head's lines together (line ends
    not counted, as Twisted's ``totalHeadersSize``): a request line over it gets 414, a head
    over it 431, anything else is served, however the bytes are split into reads."""
    first = b"GET /" + b"a" * (line - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    lines = [first, b"Host: a"] + [b"X-%d: %s" % (i, b"v" * n) for i, n in enumerate(fields)]
    raw = b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    conn = Conn(max_header_size=LIMIT)
    at = 0
    for size in cut:
        conn.send(raw[at : at + size])
        at += size
    conn.send(raw[at:])
    if len(first) > LIMIT:
        expected = 414
    elif sum(map(len, lines)) > LIMIT:
        expected = 431
    else:
        expected = 200
    assert conn.status() == expected
    assert conn.closing == (expected != 200)


def test_too_many_header_fields_get_431() -> None:
    """More header fields than Twisted's ``maxHeaders`` get 431 (not Twisted's 400)."""
    fields = "".join(f"X-{i}: 1\r\n" for i in range(510))
    conn = Conn(max_header_size=1 << 20).send(head(headers="Host: a\r\n" + fields))
    assert conn.status() == 431


# --- framing and Host -------------------------------------------------------------------

HEADER = st.sampled_from(
    [
        ("Host", "a"),
        ("Host", "a.example:8080"),
        ("Host", "[::1]:80"),
        ("Host", ""),
        ("Host", "a b"),
        ("Host", "a/b"),
        ("Host", "a@b"),
        ("Content-Length", "5"),
        ("Content-Length", "0"),
        ("Content-Length", "abc"),
        ("Content-Length", "-1"),
        ("Content-Length", "+5"),
        ("Content-Length", "5, 5"),
        ("Transfer-Encoding", "chunked"),
        ("Transfer-Encoding", "Chunked"),
        ("Transfer-Encoding", "gzip"),
        ("Transfer-Encoding", "gzip, chunked"),
        ("Transfer-Encoding", "chunked, chunked"),
        ("Transfer-Encoding", "identity"),
        ("X-Other", "1"),
    ]
)
VALID_HOSTS = {"a", "a.example:8080", "[::1]:80", ""}


def expected_status(version: str, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    """What RFC 9112 asks for (with Twisted's header-by-header order): the status, and the
    body to send after the head."""
    body: bytes = b""
    length_seen = False
    for name, value in headers:
        if name == "Content-Length":
            if not value.isdigit() or length_seen:
                return 400, b""
            length_seen, body = True, b"x" * int(value)
        elif name == "Transfer-Encoding" and value != "identity":  # identity: checked last
            codings = [c.strip().lower() for c in value.split(",")]
            if any(c != "chunked" for c in codings):
                return 501, b""
            if len(codings) != 1 or length_seen:
                return 400, b""
            length_seen, body = True, chunked(b"hello", 2)
    codings = [value for name, value in headers if name == "Transfer-Encoding"]
    if "identity" in codings:
        return (400 if length_seen else 501), b""
    hosts = [value for name, value in headers if name == "Host"]
    if (not hosts and version == "1.1") or len(hosts) > 1:
        return 400, b""
    if hosts and hosts[0] not in VALID_HOSTS:
        return 400, b""
    return 200, body


@settings(max_examples=300, deadline=None)
@given(version=st.sampled_from(["1.0", "1.1"]), headers=st.lists(HEADER, max_size=5))
def test_framing_and_host_rules(version: str, headers: list[tuple[str, str]]) -> None:
    """Host (RFC 9112 §3.2: exactly one for HTTP/1.1, at most one and valid in any version),
    Content-Length and Transfer-Encoding (400 for a bad or second length, 501 for a coding
    we do not decode, 400 when chunked is not alone): each error is answered with its status
    and closes the connection, and a pipelined request behind it is never parsed."""
    status, body = expected_status(version, headers)
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers)
    conn = Conn().send(head("/first", version=version, headers=fields) + body)
    conn.send(head("/second"))
    if status != 200:
        assert conn.status() == status
        assert conn.closing
        assert b"/second" not in conn.output
        return
    sent = len(b"hello") if b"\r\n" in body else len(body)
    assert b"GET /first %d\n" % sent in conn.output
    assert conn.statuses() == ([200, 200] if version == "1.1" else [200])


def test_malformed_chunked_body_gets_400_and_nothing_after_it_is_parsed() -> None:
    """A chunked body with a bad chunk size is a 400; what follows is not a request."""
    conn = Conn().send(
        head("/", method="POST", headers="Host: a\r\nTransfer-Encoding: chunked\r\n")
        + b"zz\r\nhello\r\n0\r\n\r\n"
        + head("/second")
    )
    assert conn.status() == 400
    assert conn.closing
    assert b"/second" not in conn.output


def test_http10_without_host_is_served() -> None:
    """HTTP/1.0 has no Host header: such a request is served."""
    conn = Conn().send(b"GET /old HTTP/1.0\r\n\r\n")
    assert conn.status() == 200
    assert b"GET /old 0\n" in conn.output


# --- request line, target, trailers, Connection ------------------------------------------

NEXT = head("/next")


class Tree(Resource):
    """``/admin`` answers ``admin HOST URI``; anything else is 404."""

    def __init__(self) -> None:
        super().__init__()

        class Admin(Resource):
            isLeaf = True

            def render(self, request: Any) -> bytes:
                return b"admin %s %s\n" % (request.getRequestHostname(), request.uri)

        self.putChild(b"admin", Admin())


@pytest.mark.parametrize(
    ("target", "status"),
    [("xadmin", 400), (".admin", 400), ("*", 400), ("b:80", 400), ("/a\x7fb", 400)],
)
def test_a_target_not_in_origin_form_is_refused_not_routed(target: str, status: int) -> None:
    """A request-target that is neither a path, nor an absolute URI, nor ``*`` with OPTIONS
    (RFC 9112 §3.2), or that holds a byte outside visible ASCII, is 400 and closes: Twisted
    alone serves ``GET xadmin`` from ``/admin`` while ``request.path`` says ``xadmin``."""
    conn = Conn(Tree()).send(head(target) + NEXT)
    assert conn.status() == status
    assert b"admin" not in conn.output.partition(b"\r\n\r\n")[2]
    assert conn.closing


def test_an_absolute_form_target_is_routed_by_its_path_with_its_own_host() -> None:
    """``GET http://b/admin`` with ``Host: a`` is served by ``/admin``, its host is ``b``
    (RFC 9112 §3.2.2: the target's authority, not ``Host``) and its URI ``/admin``."""
    conn = Conn(Tree()).send(head("http://b:8080/admin?x=1"))
    assert conn.status() == 200
    assert conn.output.endswith(b"admin b /admin?x=1\n")


def test_options_asterisk_is_served() -> None:
    """``OPTIONS *`` (asterisk-form) reaches the root resource."""
    assert Conn().send(head("*", method="OPTIONS")).status() == 200


def test_connect_is_501_whatever_the_resource() -> None:
    """CONNECT asks for a tunnel, which no resource can give: 501 at the channel even for
    a resource that answers every method (a 2xx would tell a front end the connection is a
    tunnel now, while we read it as HTTP)."""
    conn = Conn().send(head("b:443", method="CONNECT", headers="Host: b:443\r\n") + NEXT)
    assert conn.status() == 501
    assert b"CONNECT b:443 0" not in conn.output  # what the resource would answer
    assert conn.closing


def test_a_higher_http1_minor_version_is_served_as_11_and_http2_is_505() -> None:
    """``HTTP/1.2`` is served as HTTP/1.1 (RFC 9110 §2.5); ``HTTP/2.0`` on a request line
    is 505 (§15.6.6), not Twisted's 400."""
    conn = Conn().send(head("/one", version="1.2") + head("/two"))
    assert conn.statuses() == [200, 200]
    assert conn.output.startswith(b"HTTP/1.1 200 ")
    conn = Conn().send(head("/one", version="2.0") + NEXT)
    assert conn.status() == 505
    assert conn.closing


def test_a_content_length_of_thousands_of_digits_is_answered() -> None:
    """A ``Content-Length`` over 4,300 digits gets 413 (Twisted's ``int()`` raised out of the
    parser: no answer, a traceback per request); the same value as leading zeros before a
    small length is that length."""
    conn = Conn().send(
        head("/", method="POST", headers="Host: a\r\nContent-Length: " + "1" * 4301 + "\r\n")
    )
    assert conn.status() == 413
    assert conn.closing
    conn = Conn().send(
        head("/", method="POST", headers="Host: a\r\nContent-Length: " + "0" * 5000 + "5\r\n")
        + b"hello"
    )
    assert conn.status() == 200
    assert conn.output.endswith(b"POST / 5\n")


def test_a_value_error_out_of_twisteds_parser_is_answered_400(
    monkeypatch: pytest.MonkeyPatch, logged_lines: list[str]
) -> None:
    """Whatever input makes Twisted's head parsing raise ``ValueError`` (as ``int()`` did on a
    4,301-digit length) is answered 400 and logged as one line, not a traceback with no
    answer."""

    def parse_cookies(self: Any) -> None:
        raise ValueError("a value no parser expected")

    monkeypatch.setattr(Request, "parseCookies", parse_cookies)
    conn = Conn().send(head("/") + NEXT)
    assert conn.status() == 400
    assert conn.closing
    assert any("a value no parser expected" in line for line in logged_lines)
    assert not any("Traceback" in line for line in logged_lines)


SMUGGLED = (
    head("/", method="POST", headers="Host: a\r\nTransfer-Encoding: chunked\r\n")
    + b"0\r\nX: a\n\r\n"
    + head("/victim", method="POST", headers="Host: a\r\nContent-Length: 35\r\n")
    + head("/smuggled")
)


@pytest.mark.parametrize("body", ["buffered", "streamed"])
def test_a_bare_lf_in_the_trailer_section_is_400_and_nothing_is_smuggled(body: str) -> None:
    """A trailer line holding a bare LF, which ends the body earlier for a front end that
    takes a bare LF as a line end (RFC 9112 §2.2), is 400 and closes: the next request's
    head is not read as trailers, and the request hidden in its body is never answered.
    Buffered and streamed bodies alike."""
    from .test_h1body import Upload

    resource = Echo() if body == "buffered" else Upload()
    conn = Conn(resource).send(SMUGGLED.replace(b"POST / ", b"PUT / ", 1))
    assert conn.status() == 400
    assert b"smuggled" not in conn.output
    assert conn.closing


@pytest.mark.parametrize(
    "connection",
    [
        ["close, TE"],
        ["close,Upgrade"],
        ["keep-alive,close"],
        ["x", "close"],
        ["CLOSE"],
    ],
)
def test_connection_close_anywhere_in_the_field_closes(connection: list[str]) -> None:
    """A ``close`` option in any ``Connection`` line, among comma-separated others (RFC 9110
    §7.6.1), ends the connection after the response, which says ``Connection: close``; the
    request pipelined behind it is not answered (RFC 9112 §9.6)."""
    fields = "".join(f"Connection: {value}\r\n" for value in connection)
    conn = Conn().send(head("/first", headers="Host: a\r\n" + fields) + NEXT)
    assert conn.statuses() == [200]
    assert b"Connection: close" in conn.output
    assert b"/next" not in conn.output
    assert conn.closing


# --- body limits ------------------------------------------------------------------------


class Counting(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.rendered = 0

    def render(self, request: Any) -> bytes:
        self.rendered += 1
        return b"%d\n" % len(request.content.read())


class Recording(io.BytesIO):
    """A request's content file that remembers the most it ever held."""

    largest = 0

    def write(self, data: Any) -> int:
        written = super().write(data)
        Recording.largest = max(Recording.largest, self.tell())
        return written


def test_declared_body_over_the_limit_gets_413_before_the_body_is_read() -> None:
    """A Content-Length over ``max_body_size`` is refused with 413 as soon as the head is
    in: no ``100 Continue`` is sent, the resource never runs, the body is never stored."""
    resource = Counting()
    conn = Conn(resource, max_body_size=1000)
    expect = "Host: a\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n"
    conn.send(head("/", method="PUT", headers=expect))
    assert conn.status() == 413
    assert b"100 Continue" not in conn.output
    assert conn.closing
    conn.send(b"x" * 1001)
    assert resource.rendered == 0


def test_chunked_body_passing_the_limit_is_cut_with_413() -> None:
    """A chunked body is cut with 413 when it passes ``max_body_size``: the resource never
    runs and the content file never holds more than the limit."""
    resource = Counting()
    site = StreamSite(resource, settings=StreamSettings(max_body_size=5000))
    site.getContentFile = lambda length: Recording()  # type: ignore[attr-defined]
    Recording.largest = 0
    conn = Conn(site=site)
    conn.send(head("/", method="POST", headers="Host: a\r\nTransfer-Encoding: chunked\r\n"))
    conn.send(chunked(b"y" * 20_000, 700)[:-5])
    assert conn.status() == 413
    assert conn.closing
    assert resource.rendered == 0
    assert 0 < Recording.largest <= 5000


def test_bodies_up_to_the_limit_are_served() -> None:
    """Bodies of exactly ``max_body_size`` bytes, chunked or with a length, are served; with
    ``max_body_size=0`` there is no limit."""
    conn = Conn(max_body_size=3000)
    conn.send(
        head("/", method="POST", headers="Host: a\r\nContent-Length: 3000\r\n") + b"z" * 3000
    )
    conn.send(head("/", method="POST", headers="Host: a\r\nTransfer-Encoding: chunked\r\n"))
    conn.send(chunked(b"z" * 3000, 512))
    assert conn.statuses() == [200, 200]
    assert conn.output.count(b"POST / 3000\n") == 2
    unlimited = Conn(max_body_size=0)
    unlimited.send(head("/", method="POST", headers="Host: a\r\nContent-Length: 2000000\r\n"))
    unlimited.send(b"z" * 2_000_000)
    assert b"POST / 2000000\n" in unlimited.output


def test_a_request_may_carry_its_own_body_limit() -> None:
    """``body_limit`` is decided per request: a request with its own ``max_body_size``
    (what a resource's limit becomes for streamed bodies) overrides the site's."""

    class Small(Request):
        max_body_size = 10

    site = StreamSite(Echo(), settings=StreamSettings(max_body_size=1000))
    site.requestFactory = Small
    conn = Conn(site=site)
    conn.send(head("/", method="POST", headers="Host: a\r\nContent-Length: 11\r\n"))
    assert conn.status() == 413


# --- read-ahead -------------------------------------------------------------------------


class Held(Resource):
    """Leaves every request open until the test finishes it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Any] = []

    def render(self, request: Any) -> Any:
        self.requests.append(request)
        return NOT_DONE_YET


def test_read_ahead_past_the_bound_pauses_reading_whatever_the_write_side() -> None:
    """Input behind a request being answered is read up to ``max_read_ahead`` bytes; past
    it reading stops, also while the transport has paused the channel for writing (where
    Twisted skips its own check), and it resumes once the response is done and the buffered
    requests are answered."""
    resource = Held()
    conn = Conn(resource, max_read_ahead=1000)
    conn.send(head("/slow"))
    assert len(resource.requests) == 1
    conn.channel.pauseProducing()  # the transport's send buffer is full
    conn.send(head("/next") * 10)
    assert conn.transport.producerState == "producing"
    conn.send(head("/next") * 40)
    assert conn.transport.producerState == "paused"
    assert conn.channel._reading().reasons == READ_AHEAD
    conn.channel.resumeProducing()  # the send buffer drained: still over the bound
    assert conn.transport.producerState == "paused"
    resource.requests[0].finish()
    assert len(resource.requests) == 2  # the next buffered request is being answered
    assert conn.transport.producerState == "paused"  # the rest is still over the bound
    while len(resource.requests) < 51:
        resource.requests[-1].finish()
    resource.requests[-1].finish()
    assert conn.transport.producerState == "producing"
    assert conn.channel._reading().reasons == 0


def test_twisted_pause_and_read_ahead_combine() -> None:
    """Reading resumes only when neither Twisted's own pause (write side blocked while no
    request is handled) nor the read-ahead bound holds it."""
    conn = Conn()
    gate = conn.channel._reading()
    gate.pause(READ_AHEAD)
    conn.channel.pauseProducing()
    assert gate.reasons == READ_AHEAD | TWISTED
    conn.channel.resumeProducing()
    assert conn.transport.producerState == "paused"
    gate.resume(READ_AHEAD)
    assert conn.transport.producerState == "producing"


# --- Server header ----------------------------------------------------------------------


class OwnServer(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        request.setHeader(b"server", b"mine")
        return b"ok"


def test_server_header() -> None:
    """Responses say ``Server: twisted_stream`` (not Twisted's name and version), or the
    configured ``server_header``, or nothing when it is empty; a resource's own stays."""
    assert b"\r\nServer: twisted_stream\r\n" in Conn().send(head()).output
    assert b"TwistedWeb" not in Conn().send(head()).output
    assert b"\r\nServer: edge/1\r\n" in Conn(server_header="edge/1").send(head()).output
    assert b"\r\nServer:" not in Conn(server_header="").send(head()).output
    assert b"\r\nServer: mine\r\n" in Conn(OwnServer()).send(head()).output
    assert b"\r\nServer: twisted_stream\r\n" in Conn().send(b"GET / HTTP/1.1\r\n\r\n").output


# --- connections per client -------------------------------------------------------------


def test_connections_per_client_are_limited() -> None:
    """With ``max_connections_per_client=2`` a client's third open connection gets 503 with
    ``Retry-After`` for its first request and closes; other clients are not affected, and
    once one of the first two closes the client may connect again."""
    site = StreamSite(Echo(), settings=StreamSettings(max_connections_per_client=2, retry_after=7))
    first, second, third = (Conn(site=site) for _ in range(3))
    other = Conn(site=site, peer=IPv4Address("TCP", "10.0.0.8", 1))
    third.send(head())
    assert third.status() == 503
    assert b"\r\nRetry-After: 7\r\n" in third.output
    assert third.closing
    for conn in (first, second, other):
        assert conn.send(head()).status() == 200
    third.lose()
    first.lose()
    assert site.connections.count("10.0.0.7") == 1
    assert Conn(site=site).send(head()).status() == 200


def test_connections_are_not_limited_by_default() -> None:
    """``max_connections_per_client`` is off by default (and nothing is counted then)."""
    site = StreamSite(Echo())
    conns = [Conn(site=site) for _ in range(20)]
    assert all(conn.send(head()).status() == 200 for conn in conns)
    assert len(site.connections) == 0


# --- what the subclass relies on --------------------------------------------------------


def test_the_twisted_internals_the_channel_relies_on_are_there() -> None:
    """``StreamHTTPChannel`` reads and sets these of Twisted's ``HTTPChannel`` (and of its
    decoders and ``Headers``): an upgrade that renames one fails here, not in production."""
    import inspect

    from twisted.web.http import HTTPChannel, _ChunkedTransferDecoder, _IdentityTransferDecoder
    from twisted.web.http_headers import Headers

    source = inspect.getsource(HTTPChannel)
    for name in [
        "self._dataBuffer",
        "self._handlingRequest",
        "self._transferDecoder",
        "self._version",
        "self._networkProducer",
        "self._receivedHeaderSize",
        "self._receivedHeaderCount",
        "self._savedTimeOut",
        "self.__header",
        "def _respondToBadRequestAndDisconnect",
        "self._respondToBadRequestAndDisconnect()",
        "self.setTimeout(self._savedTimeOut)",
        "self.resetTimeout()",
    ]:
        assert name in source, name
    for decoder in (
        _ChunkedTransferDecoder(print, print),
        _IdentityTransferDecoder(1, print, print),
    ):
        assert decoder.dataCallback is print and decoder.finishCallback is print
    headers = Headers()
    headers.setRawHeaders(b"server", [b"x"])
    assert headers._rawHeaders == {b"Server": [b"x"]}
    conn = Conn().send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Part")
    assert conn.channel._buffer == b"X-Part"
    assert conn.channel._HTTPChannel__header == b"Host: a"


@pytest.mark.parametrize(
    ("size_line", "limit", "status"),
    [
        (b"200000", DEFAULT_SETTINGS.max_body_size, 413),
        (b"ffffffffffffffffffffffff", DEFAULT_SETTINGS.max_body_size, 413),
        (b"ffffffffffffffffffffffff", 0, 400),
    ],
)
def test_a_chunk_size_past_the_limit_is_refused_before_its_bytes(
    size_line: bytes, limit: int, status: int
) -> None:
    """A buffered chunked body whose chunk-size line takes it past ``max_body_size`` is
    answered 413 as soon as the line is parsed, without waiting for the chunk's bytes; a
    size larger than any file is 400 even without a limit. The resource never runs."""
    resource = Counting()
    conn = Conn(resource, max_body_size=limit)
    conn.send(head("/", method="POST", headers="Host: a\r\nTransfer-Encoding: chunked\r\n"))
    conn.send(b"3\r\nabc\r\n" + size_line + b"\r\n")
    assert conn.status() == status
    assert conn.closing
    assert resource.rendered == 0


def test_status_lines_use_rfc_9110_reason_phrases() -> None:
    """A resource that sets a status whose Twisted phrase is outdated (408, 413, 414, 416,
    504, 505) is sent with RFC 9110's phrase; a phrase the application chose stays."""

    class Status(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            code = int(request.args[b"code"][0])
            if b"own" in request.args:
                request.setResponseCode(code, b"Mine")
            else:
                request.setResponseCode(code)
            return b""

    expected = {
        408: b"Request Timeout",
        413: b"Content Too Large",
        414: b"URI Too Long",
        416: b"Range Not Satisfiable",
        504: b"Gateway Timeout",
        505: b"HTTP Version Not Supported",
    }
    for code, phrase in expected.items():
        conn = Conn(Status())
        conn.send(head(f"/?code={code}", headers="Host: a\r\n"))
        assert conn.output.startswith(b"HTTP/1.1 %d %s\r\n" % (code, phrase))
    conn = Conn(Status())
    conn.send(head("/?code=413&own=1", headers="Host: a\r\n"))
    assert conn.output.startswith(b"HTTP/1.1 413 Mine\r\n")
