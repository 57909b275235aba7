"""Where a proxied request goes (``_proxy/_target.py``)."""

from __future__ import annotations

import pytest

from twisted_stream._errors import HTTPRefusal
from twisted_stream._proxy._target import Upstream, forwarded_segments, hidden_dot_segment


@pytest.mark.parametrize(
    ("base", "path", "consumed", "uri", "target"),
    [
        ("http://up:9000", b"/a/b", 0, b"/a/b?x=1", b"http://up:9000/a/b?x=1"),
        ("http://up:9000/", b"/api/a/b", 1, b"/api/a/b", b"http://up:9000/a/b"),
        ("http://up/v1/", b"/api/a%2Fb", 1, b"/api/a%2Fb?", b"http://up/v1/a%2Fb"),
        ("http://up/v1", b"/api", 1, b"/api", b"http://up/v1"),
        ("http://up", b"/api", 1, b"/api?q", b"http://up/?q"),
        ("https://[::1]:8443", b"/", 0, b"/", b"https://[::1]:8443/"),
    ],
)
def test_targets(base: str, path: bytes, consumed: int, uri: bytes, target: bytes) -> None:
    """The remaining raw segments go under the base path, the query as sent; an empty path
    becomes ``/``."""
    assert Upstream.parse(base).target(path, consumed, uri) == target


def test_the_upstream_keeps_its_authority_and_url() -> None:
    """The authority (the ``Host`` sent when not preserved) and the URL as given."""
    upstream = Upstream.parse(b"http://Example.org:81/base/")
    assert (upstream.authority, upstream.base_path, upstream.url) == (
        b"Example.org:81",
        b"/base",
        "http://Example.org:81/base/",
    )


@pytest.mark.parametrize(
    "url",
    ["ftp://h/", "http://", "h:80", "http://h/?a", "http://h/#f", "http://u@h/", "http://h:x/"],
)
def test_bad_upstream_urls(url: str) -> None:
    """Anything but an absolute http(s) URL with a host and no query, fragment, credentials
    or bad port is refused with a message naming it."""
    with pytest.raises(ValueError, match="upstream URL"):
        Upstream.parse(url)


@pytest.mark.parametrize(
    ("path", "target"),
    [
        (b"/pub/a/../b", b"http://up/sub/b"),
        (b"/pub/a/./b", b"http://up/sub/a/b"),
        (b"/pub/a/%2e%2E/b", b"http://up/sub/b"),
        (b"/pub/a/%2E/b", b"http://up/sub/a/b"),
        (b"/pub/a/b/..", b"http://up/sub/a/"),
        (b"/pub/a/.", b"http://up/sub/a/"),
        (b"/pub/a/..", b"http://up/sub/"),
        (b"/pub/.", b"http://up/sub/"),
        (b"/pub//..", b"http://up/sub/"),
        (b"/pub/.../.hidden/x.", b"http://up/sub/.../.hidden/x."),
        (b"/pub/%2F/q", b"http://up/sub/%2F/q"),
        (b"/pub/group%2Fproject", b"http://up/sub/group%2Fproject"),
        (b"/pub/x;v=1/%2e%2ex", b"http://up/sub/x;v=1/%2e%2ex"),
    ],
)
def test_dot_segments_are_resolved_below_the_mount_point(path: bytes, target: bytes) -> None:
    """``.`` and ``..`` (``%2e``/``%2E`` too) are removed as RFC 3986 §5.2.4 does, a last one
    leaving a trailing slash; other segments (``...``, dotfiles, encoded slashes without a
    dot-segment next to them, path parameters) go on byte for byte."""
    assert Upstream.parse("http://up/sub").target(path, 1, path) == target


@pytest.mark.parametrize(
    "path",
    [
        b"/pub/..",
        b"/pub/../secret.txt",
        b"/pub/%2e%2e/secret.txt",
        b"/pub/.%2E/secret.txt",
        b"/pub/a/../../secret.txt",
        b"/pub/./../x",
    ],
)
def test_a_path_climbing_above_the_mount_point_is_refused(path: bytes) -> None:
    """A ``..`` with nothing left below the mount point to remove is a ``400``, whether the
    upstream has a base path or not (nginx refuses a path climbing above ``/`` so)."""
    for base in ("http://up/sub", "http://up"):
        with pytest.raises(HTTPRefusal, match="climbs above") as caught:
            Upstream.parse(base).target(path, 1, path)
        assert caught.value.code == 400
    with pytest.raises(HTTPRefusal):
        Upstream.parse("http://up").target(path[4:], 0, path[4:])  # mounted at /


@pytest.mark.parametrize(
    "segment",
    [
        b"..%2f..%2fadmin",
        b"..%2F",
        b"%2e%2e%2fadmin",
        b"a%2f..",
        b"..%5c..%5cadmin",
        b"..\\admin",
        b"..;jsessionid=1",
        b".;x",
        b"%2e%2e;x",
        b"%252e%252e",
        b"%252e%252e%252fadmin",
        b"%25252525252e",
    ],
)
def test_segments_hiding_a_dot_segment_are_refused(segment: bytes) -> None:
    """A segment an upstream could turn into ``.`` or ``..`` (decoding ``%2f``/``%5c`` into
    separators, dropping a ``;`` path parameter, decoding twice) is a ``400``, even where the
    resolved path would stay below the mount point."""
    assert hidden_dot_segment(segment)
    with pytest.raises(HTTPRefusal, match="hides a dot-segment") as caught:
        forwarded_segments([b"a", b"b", segment, b"c"])
    assert caught.value.code == 400


@pytest.mark.parametrize(
    "segment", [b"a%2fb", b"%2F", b"x..y", b"..x", b"...", b"a;b", b"%25", b"%2541", b""]
)
def test_ordinary_segments_hide_no_dot_segment(segment: bytes) -> None:
    """Encoded slashes between names (``group%2Fproject``, RabbitMQ's ``%2F`` vhost), names
    with dots in them, path parameters and encoded percent signs are forwarded."""
    assert not hidden_dot_segment(segment)
