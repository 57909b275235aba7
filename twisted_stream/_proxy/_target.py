"""Where a proxied request goes: the upstream URL, checked once, and each request's target
on it (the resource's remaining path segments and the query, as the client sent them)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Upstream:
    """An upstream base URL: ``http://host:port`` or ``https://...``, with an optional base
    path that every forwarded path is put under."""

    url: str
    """The URL as given (for messages and logs)."""
    origin: bytes
    """``scheme://host[:port]``."""
    base_path: bytes
    """The base path without its trailing slash (empty for none)."""
    authority: bytes
    """``host[:port]`` as in the URL (the ``Host`` sent when it is not preserved)."""

    @classmethod
    def parse(cls, url: str | bytes) -> Upstream:
        """Check ``url``; ``ValueError`` naming the problem for anything but an absolute
        ``http``/``https`` URL without query, fragment or credentials."""
        text = url.decode("ascii") if isinstance(url, bytes) else url
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream URL {text!r}: expected http://host[:port][/path]")
        if parts.query or parts.fragment or "#" in text or "?" in text:
            raise ValueError(f"upstream URL {text!r}: a query or fragment cannot be a base")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                f"upstream URL {text!r}: credentials do not go in the URL; give an "
                "Authorization header in headers="
            )
        try:
            parts.port  # noqa: B018 (raises ValueError for a bad port)
        except ValueError as e:
            raise ValueError(f"upstream URL {text!r}: {e}") from None
        return cls(
            url=text,
            origin=f"{parts.scheme}://{parts.netloc}".encode("ascii"),
            base_path=parts.path.rstrip("/").encode("ascii"),
            authority=parts.netloc.encode("ascii"),
        )

    def target(self, path: bytes, consumed: int, uri: bytes) -> bytes:
        """The absolute URL for a request whose raw ``path`` had its first ``consumed``
        segments taken by the resources in front of the proxy, with the query of ``uri`` as
        sent."""
        segments = path[1:].split(b"/") if path.startswith(b"/") else [path]
        rest = segments[consumed:]
        forwarded = b"/" + b"/".join(rest) if rest else b""
        full = self.base_path + forwarded or b"/"
        query = uri.partition(b"?")[2]
        return self.origin + full + (b"?" + query if query else b"")
