"""The rules of a request head Twisted's parser leaves to the server
(``twisted_stream._http._head``), as pure functions: version, request-target form, Host,
``Content-Length`` magnitude and ``Connection`` options."""

from __future__ import annotations

import pytest

from twisted_stream._http._head import (
    absolute_form,
    content_length_field,
    header_tokens,
    host_problem,
    request_line,
    target_problem,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"GET / HTTP/1.1", b"GET / HTTP/1.1"),
        (b"GET / HTTP/1.0", b"GET / HTTP/1.0"),
        (b"GET / HTTP/1.2", b"GET / HTTP/1.1"),
        (b"GET / HTTP/1.9", b"GET / HTTP/1.1"),
        (b"GET / http/1.2", b"GET / http/1.2"),  # malformed: Twisted's 400
        (b"GET /HTTP/1.2", b"GET /HTTP/1.2"),  # no version: Twisted's 400
        (b"GET / HTTP/01.1", b"GET / HTTP/01.1"),
    ],
)
def test_request_line_serves_a_higher_http1_minor_version_as_http11(
    line: bytes, expected: bytes
) -> None:
    """HTTP/1.0 and 1.1 lines pass as they are; a higher HTTP/1 minor version is read as
    1.1 (RFC 9110 §2.5); anything malformed is left for Twisted to refuse."""
    assert request_line(line) == expected


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/3.0", b"HTTP/0.9"])
def test_request_line_of_another_major_version_is_505(version: bytes) -> None:
    """A request line of any major version but 1 is 505 (RFC 9110 §15.6.6), naming it."""
    status, detail = request_line(b"GET / " + version)  # type: ignore[misc]
    assert status == 505
    assert version.decode()[5:] in detail


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        (b"GET", b"/a?b=c", None),
        (b"GET", b"/", None),
        (b"OPTIONS", b"*", None),
        (b"GET", b"http://example.com/a?b", None),
        (b"GET", b"HTTPS://example.com:8443", None),
        (b"GET", b"http://[::1]:80/x", None),
        (b"GET", b"*", 400),
        (b"GET", b"xadmin", 400),
        (b"GET", b"example.com:80", 400),
        (b"GET", b"ftp://example.com/a", 400),
        (b"GET", b"http:///a", 400),  # no authority
        (b"GET", b"http://u@example.com/", 400),  # userinfo
        (b"GET", b"/a\x7fb", 400),
        (b"GET", b"/a\x80b", 400),
        (b"GET", b"/a\xffb", 400),
        (b"CONNECT", b"example.com:443", 501),
        (b"CONNECT", b"/", 501),
    ],
)
def test_target_problem_allows_each_form_only_where_rfc_9112_does(
    method: bytes, target: bytes, status: int | None
) -> None:
    """Origin-form for any method, absolute-form for http(s) with a valid authority,
    asterisk-form for OPTIONS only; visible ASCII only; CONNECT is 501 (no tunnels)."""
    problem = target_problem(method, target)
    assert (problem[0] if problem else None) == status, problem


@pytest.mark.parametrize(
    ("target", "mapped"),
    [
        (b"http://b/admin", (b"b", b"/admin")),
        (b"http://b:8080?q=1", (b"b:8080", b"/?q=1")),
        (b"https://b", (b"b", b"/")),
        (b"http://b/a#frag", (b"b", b"/a")),
        (b"/admin", None),
        (b"*", None),
    ],
)
def test_absolute_form_maps_to_authority_and_origin_form(
    target: bytes, mapped: tuple[bytes, bytes] | None
) -> None:
    """An absolute-form target gives its authority (the request's host, RFC 9112 §3.2.2)
    and its path and query as origin-form; other forms give None."""
    assert absolute_form(target) == mapped


@pytest.mark.parametrize(
    ("hosts", "version", "status"),
    [
        ([b"a"], b"HTTP/1.1", None),
        ([b"[::1]:8080"], b"HTTP/1.1", None),
        ([b""], b"HTTP/1.1", None),
        (None, b"HTTP/1.0", None),
        (None, b"HTTP/1.1", 400),
        ([b"a", b"a"], b"HTTP/1.1", 400),
        ([b"a b"], b"HTTP/1.0", 400),
        ([b"u@a"], b"HTTP/1.1", 400),
    ],
)
def test_host_problem(hosts: list[bytes] | None, version: bytes, status: int | None) -> None:
    """Exactly one valid Host on HTTP/1.1, at most one (and valid) in any version."""
    problem = host_problem(hosts, version)
    assert (problem[0] if problem else None) == status


def test_content_length_field_is_parsed_without_overflow() -> None:
    """Any field line but ``Content-Length`` is passed on as it is, and so is a plain
    length; leading zeros are dropped (Twisted's ``int()`` raises past 4,300 digits);
    more than 18 significant digits is 413; a value that is not digits is left for
    Twisted's 400."""
    plain = b"Content-Length: 5"
    assert content_length_field(plain) is plain
    assert content_length_field(b"X-Count: " + b"9" * 5000) == b"X-Count: " + b"9" * 5000
    assert content_length_field(b"content-length: " + b"0" * 5000 + b"5") == b"content-length: 5"
    assert content_length_field(b"Content-Length: 000") == b"Content-Length: 0"
    assert content_length_field(b"Content-Length: " + b"9" * 18) == b"Content-Length: " + b"9" * 18
    status, _ = content_length_field(b"Content-Length: 1" + b"0" * 18)  # type: ignore[misc]
    assert status == 413
    status, _ = content_length_field(b"Content-Length: " + b"1" * 4301)  # type: ignore[misc]
    assert status == 413
    assert content_length_field(b"Content-Length: +5") == b"Content-Length: +5"


def test_header_tokens_read_every_line_and_every_comma() -> None:
    """Tokens of every field line, split at commas, trimmed and lower-cased."""
    assert header_tokens([b"Close, TE"]) == {b"close", b"te"}
    assert header_tokens([b"x", b"keep-alive,close"]) == {b"x", b"keep-alive", b"close"}
    assert header_tokens([b" , ,\tUpgrade\t"]) == {b"upgrade"}
    assert header_tokens([]) == frozenset()
