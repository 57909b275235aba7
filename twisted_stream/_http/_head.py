"""The rules of a request head that Twisted's parsers leave to their server.

Twisted's ``HTTPChannel`` checks a request line's syntax and each field line's, and nothing
of what they mean together (nor does the h2 library check more of ``:path`` than that it is
not empty). Each function here is one rule of RFC 9112/9110 checked on a head, as a pure
function the HTTP/1.x channel (:mod:`._channel`) calls, and the HTTP/2 stream
(:mod:`._h2body`) for the target; each returns a problem as ``(status, detail)``, or None
when the head passes:

- :func:`request_line`, the request line's ``HTTP-version`` (RFC 9110 §2.5, §15.6.6):
  HTTP/1.x of a higher minor version is served as HTTP/1.1; another major version is 505.
- :func:`target_problem` and :func:`absolute_form`, the ``request-target`` (RFC 9112 §3.2):
  origin-form (``/path?query``) for every method, absolute-form (``http://host/path``)
  mapped to origin-form with its authority as ``Host``, asterisk-form for ``OPTIONS`` only;
  visible ASCII only; ``CONNECT`` (authority-form: a tunnel, which a resource cannot give)
  is 501. A target that is none of these is 400, never routed: Twisted would route
  ``xadmin`` as ``/admin`` (it drops the first byte of any target).
- :func:`host_problem`, the ``Host`` field (RFC 9112 §3.2): exactly one on HTTP/1.1, at most
  one in any version, and a valid ``uri-host [":" port]``.
- :func:`content_length_field`, a ``Content-Length`` field line with no more significant
  digits than a length can have (RFC 9112 §8.6: parse large numerals without overflow):
  past 18, 413; leading zeros are dropped before Twisted's ``int()`` (which raises past
  4,300 digits, out of the parser, with no answer).
- :func:`header_tokens`, the options of ``Connection`` fields (RFC 9110 §7.6.1): every field
  line, comma-separated, case-insensitive (Twisted reads the first line, split at spaces, so
  ``close, TE`` kept the connection open).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

Problem = tuple[int, str]
"""A refused head: the status to answer and what was wrong, for the log and the body."""

_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_VISIBLE = re.compile(rb"[\x21-\x7e]+")
_ABSOLUTE = re.compile(rb"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)(.*)", re.DOTALL)
_HOST = re.compile(rb"(?:\[[0-9A-Za-z:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
"""``uri-host [ ":" port ]`` of RFC 3986 (an IP literal, or a registered name or IPv4
address); empty is allowed (RFC 9110 §7.2)."""

_CONTENT_LENGTH = b"content-length:"
MAX_LENGTH_DIGITS = 18
"""Significant digits of the largest ``Content-Length`` taken as a number (under 2**63)."""


def request_line(line: bytes) -> bytes | Problem:
    """The request ``line`` (``method SP target SP version``) as Twisted should parse it.

    Returns ``line`` itself when its version is HTTP/1.0 or HTTP/1.1 (or it is malformed:
    Twisted answers that 400), the line with ``HTTP/1.1`` in place of a higher HTTP/1 minor
    version (RFC 9110 §2.5: served as the highest minor version implemented), or 505 for
    another major version (HTTP/2 has no request line, HTTP/0.x none of ours).
    """
    version = line[-8:]
    if version == b"HTTP/1.1" or version == b"HTTP/1.0" or line[-9:-8] != b" ":
        return line
    found = _VERSION.fullmatch(version)
    if found is None:
        return line
    if found.group(1) == b"1":
        return line[:-8] + b"HTTP/1.1"
    return 505, f"HTTP/{found.group(1).decode()}.{found.group(2).decode()} is not supported"


def target_problem(method: bytes, target: bytes, *, absolute: bool = True) -> Problem | None:
    """Whether ``method`` may ask for ``target`` in the form it has (RFC 9112 §3.2); an
    absolute-form target passes here, and is mapped by :func:`absolute_form`, unless
    ``absolute`` is false (HTTP/2's ``:path``: origin-form or ``*`` only, RFC 9113 §8.3.1)."""
    if method == b"CONNECT":
        return 501, "CONNECT is not supported: this server makes no tunnels"
    if not _VISIBLE.fullmatch(target):
        return 400, "the request target has a byte that is not visible ASCII"
    if target[:1] == b"/":
        return None
    if target == b"*":
        return None if method == b"OPTIONS" else (400, "'*' is a target for OPTIONS only")
    found = _ABSOLUTE.fullmatch(target) if absolute else None
    if found is None:
        return 400, "the request target is neither a path nor an absolute http(s) URI"
    if found.group(1).lower() not in (b"http", b"https"):
        return 400, "an absolute request target must be an http or https URI"
    if not found.group(2) or not _HOST.fullmatch(found.group(2)):
        return 400, "the authority of the absolute request target is not a valid host"
    return None


def absolute_form(target: bytes) -> tuple[bytes, bytes] | None:
    """``(authority, origin-form)`` of an absolute-form ``target`` that passed
    :func:`target_problem` (``http://a:8080?q`` is ``(b"a:8080", b"/?q")``); None for
    any other form. The server MUST then take the host from it, not from ``Host`` (RFC
    9112 §3.2.2)."""
    if target[:1] == b"/":
        return None
    found = _ABSOLUTE.fullmatch(target)
    if found is None:
        return None
    path = found.group(3).partition(b"#")[0]
    return found.group(2), path if path[:1] == b"/" else b"/" + path


def host_problem(hosts: list[bytes] | None, version: bytes) -> Problem | None:
    """Whether the ``Host`` field lines ``hosts`` (None: there are none) are what RFC 9112
    §3.2 asks of a request of ``version``."""
    if hosts is None:
        if version == b"HTTP/1.1":
            return 400, "an HTTP/1.1 request needs a Host header"
        return None
    if len(hosts) != 1:
        return 400, "more than one Host header"
    if not _HOST.fullmatch(hosts[0]):
        return 400, "the Host header is not a valid host"
    return None


def content_length_field(line: bytes) -> Problem | bytes:
    """A field ``line`` as Twisted may parse it: a ``Content-Length`` line with its leading
    zeros dropped, or 413 past :data:`MAX_LENGTH_DIGITS` significant digits; any other line
    as it is (a value that is not digits is Twisted's 400)."""
    if line[:15].lower() != _CONTENT_LENGTH:
        return line
    value = line[15:].strip(b" \t")
    if not value.isdigit() or (value[:1] != b"0" and len(value) <= MAX_LENGTH_DIGITS):
        return line
    significant = value.lstrip(b"0") or b"0"
    if len(significant) > MAX_LENGTH_DIGITS:
        return 413, f"the declared body length has {len(significant)} digits"
    return line[:15] + b" " + significant


def header_tokens(values: Iterable[bytes]) -> frozenset[bytes]:
    """The lower-cased tokens of comma-separated field values, over every field line
    (``Connection: close, TE`` and ``Connection: x`` + ``Connection: close`` both hold
    ``close``)."""
    return frozenset(
        token.strip(b" \t").lower()
        for value in values
        for token in value.split(b",")
        if token.strip(b" \t")
    )
