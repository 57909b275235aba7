"""Where a proxied request goes (``_proxy/_target.py``)."""

from __future__ import annotations

import pytest

from twisted_stream._proxy._target import Upstream


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
