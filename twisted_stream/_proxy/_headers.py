"""The header fields a reverse proxy passes on, drops and adds (RFC 9110 §7.6, RFC 7239).

Pure functions over ``Headers``: nothing here touches a request or a connection.

- Hop-by-hop fields (RFC 9110 §7.6.1: ``Connection`` and the fields it names,
  ``Proxy-Connection``, ``Keep-Alive``, ``TE``, ``Transfer-Encoding``, ``Upgrade``; with
  ``Trailer`` and ``Proxy-Authenticate``/``Proxy-Authorization``, which concern one hop too)
  are dropped in both directions.
- ``Via`` (§7.6.3) is appended in both directions; ``X-Forwarded-For`` and ``Forwarded``
  (RFC 7239) are appended to the request, keeping what earlier proxies added (the upstream
  decides how many hops it trusts; it reads them from the right); a ``Forwarded`` whose
  quoted-strings do not close is replaced, as it would swallow our element.
  ``X-Forwarded-Proto`` and ``-Host`` are set, not appended: they hold one value by
  convention and their consumers read the first (Django's ``SECURE_PROXY_SSL_HEADER``), so
  a client's own ``X-Forwarded-Proto: https`` would be believed.
- A NUL in a response field value is replaced with SP (RFC 9110 §5.5; Twisted's client
  passes it, its server writes it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from twisted.web.http_headers import Headers

from .._http._head import header_tokens

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
"""Fields that describe one connection, never forwarded (RFC 9110 §7.6.1, and RFC 7230's
list before it)."""

VIA_PSEUDONYM = "twisted_stream"
"""The ``received-by`` of our ``Via`` entries (a pseudonym: the host is not disclosed)."""

FRAMING = frozenset({b"content-length", b"host", b"expect"})
"""Request fields set by the client of the upstream connection itself: ``Content-Length``
(from the body producer), ``Host`` (the upstream's, unless preserved) and ``Expect`` (only
when the body is streamed)."""

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_QUOTES_CLOSED = re.compile(rb'(?:[^"\\]|"(?:[^"\\]|\\.)*")*', re.DOTALL)
"""A field value whose every quoted-string is closed."""


@dataclass(frozen=True)
class Downstream:
    """Who sent the request we forward: the client's address (None when it has none, as on
    a UNIX socket), the ``Host`` it asked for, and ``http`` or ``https``."""

    address: str | None
    host: bytes | None
    scheme: str


def connection_tokens(headers: Headers) -> frozenset[bytes]:
    """The lower-cased tokens of ``headers``' ``Connection`` fields."""
    return header_tokens(headers.getRawHeaders(b"connection", []))


def end_to_end(
    headers: Headers, named: Iterable[bytes], also: Iterable[bytes] = ()
) -> list[tuple[bytes, list[bytes]]]:
    """``headers`` without the hop-by-hop fields, those ``named`` by ``Connection``, and
    ``also``; as ``(name, values)`` in their order."""
    drop = HOP_BY_HOP | frozenset(named) | frozenset(also)
    return [
        (name, list(values))
        for name, values in headers.getAllRawHeaders()
        if name.lower() not in drop
    ]


def protocol_version(protocol: bytes) -> str:
    """``received-protocol`` of a ``Via`` entry: ``HTTP/1.1`` -> ``1.1``, ``HTTP/2`` ->
    ``2``; another protocol keeps its name (RFC 9110 §7.6.3)."""
    text = protocol.decode("latin-1")
    name, _, version = text.partition("/")
    return version if name.upper() == "HTTP" and version else text


def via_entry(protocol: bytes) -> bytes:
    """Our ``Via`` entry for a message received with ``protocol`` (``HTTP/1.1``)."""
    return f"{protocol_version(protocol)} {VIA_PSEUDONYM}".encode("latin-1")


def appended(headers: Headers, name: bytes, value: bytes) -> None:
    """Append ``value`` to the comma-separated field ``name`` (one line)."""
    values = [v for v in headers.getRawHeaders(name, []) if v.strip()]
    headers.setRawHeaders(name, [b", ".join([*values, value])])


def _forwarded_value(value: str) -> str:
    """A token, or a quoted-string (RFC 7239 §4)."""
    if _TOKEN.fullmatch(value.encode("latin-1", "replace")):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _forwarded_node(address: str | None) -> str:
    """``for=`` of RFC 7239 §6: an IPv6 address in brackets, ``unknown`` for none."""
    if address is None:
        return "unknown"
    try:
        if isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address):
            return f"[{address}]"
    except ValueError:
        pass
    return address


def forwarded_element(client: Downstream) -> bytes:
    """Our element of the ``Forwarded`` field: ``for=...;host=...;proto=...``."""
    parts = [f"for={_forwarded_value(_forwarded_node(client.address))}"]
    if client.host:
        parts.append(f"host={_forwarded_value(client.host.decode('latin-1'))}")
    parts.append(f"proto={client.scheme}")
    return ";".join(parts).encode("latin-1")


def upstream_request_headers(
    incoming: Headers,
    client: Downstream,
    *,
    protocol: bytes,
    host: bytes | None,
    extra: Mapping[bytes, bytes],
    expect_continue: bool,
) -> Headers:
    """The fields to send upstream for a request that arrived with ``incoming`` over
    ``protocol``: the end-to-end ones, ``Host`` set to ``host`` when given (else the client
    of the upstream connection sets the upstream's), ``Expect: 100-continue`` when
    ``expect_continue``, ``Via`` and the forwarding fields appended, then ``extra`` set
    (replacing the client's)."""
    named = connection_tokens(incoming)
    outgoing = Headers()
    for name, values in end_to_end(incoming, named, FRAMING):
        outgoing.setRawHeaders(name, values)
    if host is not None:
        outgoing.setRawHeaders(b"host", [host])
    if expect_continue:
        outgoing.setRawHeaders(b"expect", [b"100-continue"])
    appended(outgoing, b"via", via_entry(protocol))
    appended(outgoing, b"x-forwarded-for", (client.address or "unknown").encode("latin-1"))
    outgoing.setRawHeaders(b"x-forwarded-proto", [client.scheme.encode("ascii")])
    if client.host:
        outgoing.setRawHeaders(b"x-forwarded-host", [client.host])
    else:
        outgoing.removeHeader(b"x-forwarded-host")
    if not all(_QUOTES_CLOSED.fullmatch(v) for v in outgoing.getRawHeaders(b"forwarded", [])):
        outgoing.removeHeader(b"forwarded")
    appended(outgoing, b"forwarded", forwarded_element(client))
    for name, value in extra.items():
        outgoing.setRawHeaders(name, [value])
    return outgoing


def downstream_response_headers(
    upstream: Headers, named: Iterable[bytes], *, protocol: bytes, keep_length: bool
) -> list[tuple[bytes, list[bytes]]]:
    """The fields to relay of an upstream response received over ``protocol``: the
    end-to-end ones (``Content-Length`` only if ``keep_length``: a HEAD answer's; the body's
    length is otherwise declared by the stream) and ``Via`` appended."""
    also = () if keep_length else (b"content-length",)
    relayed = end_to_end(upstream, named, also)
    via = [v for v in upstream.getRawHeaders(b"via", []) if v.strip()]
    relayed = [
        (name, [v.replace(b"\x00", b" ") for v in values] if _has_nul(values) else values)
        for name, values in relayed
        if name.lower() != b"via"
    ]
    relayed.append((b"Via", [b", ".join([*via, via_entry(protocol)])]))
    return relayed


def header_bytes(headers: Mapping[str | bytes, str | bytes]) -> dict[bytes, bytes]:
    """``{name: value}`` as bytes with lower-cased names (``str`` is latin-1);
    ``ValueError`` for a name that is not a token or a value with control characters."""
    found: dict[bytes, bytes] = {}
    for name, value in headers.items():
        raw_name = name.encode("latin-1") if isinstance(name, str) else name
        raw_value = value.encode("latin-1") if isinstance(value, str) else value
        if not _TOKEN.fullmatch(raw_name) or _CONTROL.search(raw_value):
            raise ValueError(f"invalid header {name!r}: {value!r}")
        found[raw_name.lower()] = raw_value
    return found


def _has_nul(values: list[bytes]) -> bool:
    return any(b"\x00" in value for value in values)
