"""``redis://`` URLs and the blocking startup check."""

from __future__ import annotations

import pytest

from twisted_stream._backends._redis_address import RedisAddress, check_reachable

from ..redis_server import RedisServer, free_port


def test_urls_parse_with_defaults_and_credentials() -> None:
    """Host, port (6379), database (0), user and password come from the URL; the text form
    leaves the password out."""
    assert RedisAddress.parse("redis://cache") == RedisAddress("cache", 6379, 0)
    parsed = RedisAddress.parse("redis://me:s%40cret@10.0.0.5:7000/3")
    assert parsed == RedisAddress("10.0.0.5", 7000, 3, "me", "s@cret")
    assert str(parsed) == "redis://10.0.0.5:7000/3"
    assert parsed.setup_commands() == [("AUTH", "me", "s@cret"), ("SELECT", "3")]
    assert RedisAddress.parse("redis://:pw@h").setup_commands() == [("AUTH", "pw")]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h:1/0", "not a redis:// URL"),
        ("redis://", "names no host"),
        ("redis://h:99999", "not a redis:// URL"),
        ("redis://h/zero", "is not a number"),
        ("redis://h/0?x=1", "query"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, says: str) -> None:
    """A malformed URL is a ValueError naming the problem."""
    with pytest.raises(ValueError, match=says):
        RedisAddress.parse(url)


def test_the_startup_check(redis: RedisServer) -> None:
    """check_reachable passes against a running server, and raises OSError for a port with
    nothing listening and for a database the server does not have."""
    check_reachable(RedisAddress.parse(redis.url))
    with pytest.raises(OSError):
        check_reachable(RedisAddress("127.0.0.1", free_port()))
    with pytest.raises(OSError, match="SELECT failed"):
        check_reachable(RedisAddress("127.0.0.1", redis.port, 999))
