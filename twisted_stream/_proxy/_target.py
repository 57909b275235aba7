"""Where a proxied request goes: the upstream URL, checked once, and each request's target
on it (the resource's remaining path segments, dot-segments resolved, and the query, as the
client sent them).

A path must not reach above the proxy's mount point, nor above the upstream's base path
(``/pub/../secret`` must not become ``/sub/../secret`` upstream, which most servers resolve
to ``/secret``). So the remaining segments are resolved as RFC 3986 §5.2.4 does, counting
``%2e``/``%2E`` as ``.`` (§6.2.2.2: percent-encoded unreserved characters are the same
characters), and a path whose ``..`` would climb above the mount point is refused with
``400``, as nginx refuses one climbing above ``/``. Segments that upstreams are known to turn
into dot-segments though RFC 3986 does not are refused with ``400`` too (see
:func:`hidden_dot_segment`); other segments are forwarded byte for byte as sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urlsplit

from .._errors import HTTPRefusal

_SEPARATORS = re.compile(rb"[/\\]")
"""What an upstream may take for a path separator once it decoded a segment."""
_DECODINGS = 4
"""Percent-decodings tried on a segment (an upstream decoding twice meets ``%252e``)."""


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
        sent. Raises :class:`~twisted_stream._errors.HTTPRefusal` (``400``) for a path that
        climbs above the mount point or hides a dot-segment (:func:`forwarded_segments`)."""
        segments = path[1:].split(b"/") if path.startswith(b"/") else [path]
        rest = forwarded_segments(segments[consumed:])
        forwarded = b"/" + b"/".join(rest) if rest else b""
        full = self.base_path + forwarded or b"/"
        query = uri.partition(b"?")[2]
        return self.origin + full + (b"?" + query if query else b"")


def forwarded_segments(segments: list[bytes]) -> list[bytes]:
    """The raw path ``segments`` below the mount point with their dot-segments removed (RFC
    3986 §5.2.4; ``%2e`` counts as ``.``): ``.`` goes, ``..`` takes the segment before it
    away, and either one last leaves a trailing slash (``a/b/..`` is ``a/``). Raises
    :class:`~twisted_stream._errors.HTTPRefusal` (``400``) when a ``..`` would climb above
    the first segment, or a segment hides a dot-segment (:func:`hidden_dot_segment`)."""
    kept: list[bytes] = []
    last = len(segments) - 1
    for at, segment in enumerate(segments):
        decoded = unquote_to_bytes(segment)
        if decoded not in (b".", b".."):
            if hidden_dot_segment(segment):
                raise HTTPRefusal(
                    400,
                    "a path segment that hides a dot-segment (an encoded slash or backslash, "
                    "a path parameter or a double encoding) is not forwarded",
                )
            kept.append(segment)
            continue
        if decoded == b"..":
            if not kept:
                raise HTTPRefusal(400, "the path climbs above the proxy's mount point")
            kept.pop()
        if at == last:
            kept.append(b"")
    return kept


def hidden_dot_segment(segment: bytes) -> bool:
    """Whether an upstream could read a ``.`` or ``..`` into raw ``segment`` where RFC 3986
    sees none: once percent-decoded (up to :data:`_DECODINGS` times, as servers that decode
    twice do) and split at ``/`` or ``\\`` (``..%2f..%2fadmin``, ``..%5c``, ``..\\``), or
    before a ``;`` (``..;x``, a path parameter Tomcat and Spring drop)."""
    text = segment
    for _ in range(_DECODINGS):
        for piece in _SEPARATORS.split(text):
            if piece.partition(b";")[0] in (b".", b".."):
                return True
        decoded = unquote_to_bytes(text)
        if decoded == text:
            return False
        text = decoded
    return True  # still percent-encoded after that many decodings: refused, to be safe
