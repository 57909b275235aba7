"""The headers a reverse proxy passes on, drops and adds (``_proxy/_headers.py``, pure)."""

from __future__ import annotations

import pytest
from twisted.web.http_headers import Headers

from twisted_stream._proxy._headers import (
    Downstream,
    downstream_response_headers,
    forwarded_element,
    header_bytes,
    protocol_version,
    upstream_request_headers,
)


def as_dict(headers: Headers) -> dict[bytes, list[bytes]]:
    return {name.lower(): list(values) for name, values in headers.getAllRawHeaders()}


CLIENT = Downstream(address="192.0.2.7", host=b"app.example:8080", scheme="https")


def test_request_headers_drop_hop_by_hop_framing_and_connection_named_fields() -> None:
    """Hop-by-hop fields, the fields ``Connection`` names (any case), the client's framing
    (``Content-Length``, ``Host``, ``Expect``) are not sent upstream; the rest is."""
    incoming = Headers(
        {
            b"Connection": [b"close, X-Named", b"x-other"],
            b"X-Named": [b"a"],
            b"X-Other": [b"b"],
            b"Keep-Alive": [b"timeout=5"],
            b"Transfer-Encoding": [b"chunked"],
            b"Content-Length": [b"5"],
            b"Expect": [b"100-continue"],
            b"Host": [b"app.example:8080"],
            b"Upgrade": [b"h2c"],
            b"TE": [b"trailers"],
            b"Accept": [b"*/*"],
        }
    )
    sent = as_dict(
        upstream_request_headers(
            incoming, CLIENT, protocol=b"HTTP/1.1", host=None, extra={}, expect_continue=False
        )
    )
    assert sent[b"accept"] == [b"*/*"]
    for name in (
        b"connection",
        b"x-named",
        b"x-other",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"expect",
        b"host",
        b"upgrade",
        b"te",
    ):
        assert name not in sent, name


def test_request_headers_add_via_and_forwarding_fields_after_earlier_ones() -> None:
    """``Via``, ``X-Forwarded-*`` and ``Forwarded`` get our entry after the earlier hops';
    a preserved ``Host``, ``Expect: 100-continue`` and extra headers are set."""
    incoming = Headers(
        {
            b"X-Forwarded-For": [b"203.0.113.1", b"198.51.100.2"],
            b"Via": [b"2 cdn"],
            b"Authorization": [b"client"],
        }
    )
    sent = as_dict(
        upstream_request_headers(
            incoming,
            CLIENT,
            protocol=b"HTTP/2",
            host=b"app.example:8080",
            extra={b"authorization": b"Bearer upstream"},
            expect_continue=True,
        )
    )
    assert sent[b"x-forwarded-for"] == [b"203.0.113.1, 198.51.100.2, 192.0.2.7"]
    assert sent[b"via"] == [b"2 cdn, 2 twisted_stream"]
    assert sent[b"x-forwarded-proto"] == [b"https"]
    assert sent[b"x-forwarded-host"] == [b"app.example:8080"]
    assert sent[b"forwarded"] == [b'for=192.0.2.7;host="app.example:8080";proto=https']
    assert sent[b"host"] == [b"app.example:8080"]
    assert sent[b"expect"] == [b"100-continue"]
    assert sent[b"authorization"] == [b"Bearer upstream"]


@pytest.mark.parametrize(
    ("client", "element"),
    [
        (Downstream("2001:db8::1", b"h", "http"), b'for="[2001:db8::1]";host=h;proto=http'),
        (Downstream(None, None, "http"), b"for=unknown;proto=http"),
        (Downstream("192.0.2.1", b'a"b', "http"), b'for=192.0.2.1;host="a\\"b";proto=http'),
    ],
)
def test_forwarded_elements_quote_what_is_not_a_token(client: Downstream, element: bytes) -> None:
    """RFC 7239: IPv6 nodes in brackets and quoted, no address is ``unknown``, values that
    are not tokens are quoted-strings with escapes."""
    assert forwarded_element(client) == element


def test_response_headers_drop_hop_by_hop_and_append_via() -> None:
    """A response's hop-by-hop fields and those its ``Connection`` named are dropped, its
    length is left to the stream unless kept (HEAD), and ``Via`` gets our entry."""
    upstream = Headers(
        {
            b"X-Hop": [b"1"],
            b"Proxy-Authenticate": [b"Basic"],
            b"Trailer": [b"X-Checksum"],
            b"Content-Length": [b"10"],
            b"Via": [b"1.0 inner"],
            b"Set-Cookie": [b"a=1", b"b=2"],
        }
    )
    relayed = dict(
        downstream_response_headers(upstream, {b"x-hop"}, protocol=b"HTTP/1.0", keep_length=False)
    )
    assert relayed == {b"Set-Cookie": [b"a=1", b"b=2"], b"Via": [b"1.0 inner, 1.0 twisted_stream"]}
    kept = dict(
        downstream_response_headers(upstream, set(), protocol=b"HTTP/1.1", keep_length=True)
    )
    assert kept[b"Content-Length"] == [b"10"]


def test_protocol_versions_and_header_checks() -> None:
    """``Via``'s received-protocol drops the ``HTTP/`` name only; extra headers must be
    tokens without control characters in their values."""
    assert [protocol_version(p) for p in (b"HTTP/1.1", b"HTTP/2", b"SPDY/3")] == [
        "1.1",
        "2",
        "SPDY/3",
    ]
    assert header_bytes({"X-A": "1", b"x-b": b"2"}) == {b"x-a": b"1", b"x-b": b"2"}
    for bad in ({"X A": "1"}, {"X-A": "1\n2"}, {"": "1"}, {"X-A": "\x00"}):
        with pytest.raises(ValueError):
            header_bytes(bad)


def test_forwarding_fields_a_client_could_spoof_are_set_not_appended() -> None:
    """A client's own ``X-Forwarded-Proto: https`` and ``X-Forwarded-Host`` are replaced by
    ours (their consumers read the first value, so appending would let a plain-http client
    pass for a secure one); ``X-Forwarded-For`` and a well-formed ``Forwarded`` are appended
    to; a ``Forwarded`` with an unclosed quoted-string, which would swallow our element, is
    replaced."""
    incoming = Headers(
        {
            b"x-forwarded-proto": [b"https"],
            b"x-forwarded-host": [b"evil"],
            b"x-forwarded-for": [b"6.6.6.6"],
            b"forwarded": [b"for=6.6.6.6;proto=https"],
        }
    )
    client = Downstream(address="192.0.2.7", host=b"front", scheme="http")

    def sent(incoming: Headers) -> dict[bytes, list[bytes]]:
        headers = upstream_request_headers(
            incoming, client, protocol=b"HTTP/1.1", host=None, extra={}, expect_continue=False
        )
        return {name.lower(): values for name, values in headers.getAllRawHeaders()}

    out = sent(incoming)
    assert out[b"x-forwarded-proto"] == [b"http"]
    assert out[b"x-forwarded-host"] == [b"front"]
    assert out[b"x-forwarded-for"] == [b"6.6.6.6, 192.0.2.7"]
    assert out[b"forwarded"] == [b"for=6.6.6.6;proto=https, for=192.0.2.7;host=front;proto=http"]
    incoming.setRawHeaders(b"forwarded", [b'for=6.6.6.6;proto=https, for="1.2.3.4'])
    assert sent(incoming)[b"forwarded"] == [b"for=192.0.2.7;host=front;proto=http"]


def test_a_nul_in_a_response_field_value_is_relayed_as_a_space() -> None:
    """RFC 9110 §5.5: a NUL in a field value is replaced with SP before forwarding."""
    relayed = dict(
        downstream_response_headers(
            Headers({b"x-a": [b"a\x00b"]}), (), protocol=b"HTTP/1.1", keep_length=False
        )
    )
    assert relayed[b"X-A"] == [b"a b"]
