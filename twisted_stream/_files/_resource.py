"""``FileResource``: serve a file or a directory tree with complete HTTP file semantics.

Compared with ``twisted.web.static.File`` it validates every path segment (traversal,
encoded slashes, NUL bytes, invalid UTF-8, dotfiles, symlinks leaving the root), sets a
metadata ETag, evaluates preconditions in RFC 9110 order, honours ``If-Range``, caps and
coalesces ranges, uses a fixed content-type table, and streams through the engine so the
file is read only while the client is reading. Answers: 400 for a malformed path (NUL byte,
invalid UTF-8), 404 for anything that does not name a servable file, 403 when the file
cannot be opened for lack of permission, 405 for methods other than GET and HEAD (OPTIONS is
answered with ``Allow``).

Which file a path names is decided by :mod:`._paths` (symlinks resolved with ``realpath``
must stay below the root unless ``follow_symlinks``); the file is then opened with
``O_NOFOLLOW`` and everything (size, ETag) comes from ``fstat`` of the open descriptor, so a
file replaced or deleted after the open is served consistently. Someone who can write inside
the root can still race a directory swap between the check and the open: do not serve trees
that untrusted users write to with ``follow_symlinks=False`` as the only barrier.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import stat
import time
from collections.abc import Iterator, Mapping
from typing import BinaryIO
from urllib.parse import quote, unquote_to_bytes

from twisted.python.filepath import FilePath
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from .._errors import HTTPRefusal
from .._http._methods import MethodsResource
from .._settings import settings_for
from .._sources._compression import GZIP_ETAG_SUFFIX, Encoding, add_vary, choose_encoding
from .._sources._file import FileRegion, FileSource
from .._sources._mimetypes import DEFAULT_TYPE, guess_type
from .._sources._stream import stream, stream_source
from .._types import StreamRequest
from ._listing import Listing, display_path
from ._paths import Paths, Target, refusal_for
from ._preconditions import (
    Conditions,
    ETag,
    Validators,
    Verdict,
    evaluate,
    format_http_date,
    if_range_allows,
    metadata_etag,
    parse_http_date,
    validators_at,
)
from ._ranges import (
    IgnoreRange,
    Satisfiable,
    content_range,
    multipart_layout,
    parse_range,
    unsatisfied_content_range,
)


def _open_file(path: str) -> BinaryIO:
    """Open ``path`` for reading without following a final symlink or blocking on a FIFO.

    Module-level so tests can simulate a refusal (tests run as root, which reads anything).
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    return os.fdopen(fd, "rb", buffering=0)


def _scan_directory(path: str) -> Iterator[os.DirEntry[bytes]]:
    """Start listing ``path`` lazily (bytes names: undecodable names survive).

    Module-level so tests can simulate a refusal.
    """
    return os.scandir(os.fsencode(path))


@implementer(IResource)
class FileResource(MethodsResource):
    """Serve the file at ``path``, or the tree below the directory at ``path``.

    - ``listing``: list directories that have no index file (off: 404).
    - ``dotfiles``: serve names starting with ``.`` (off: 404, and hidden from listings).
    - ``follow_symlinks``: follow symlinks that lead outside the root (off: 404).
    - ``default_type``: content type for unknown extensions.
    - ``headers``: extra response headers for every file and listing.
    - ``cache_control``: a ``Cache-Control`` value for every file and listing.
    - ``index``: file served for a directory (None: never).
    """

    isLeaf = True

    def __init__(
        self,
        path: str | os.PathLike[str] | FilePath[str],
        *,
        listing: bool = False,
        dotfiles: bool = False,
        follow_symlinks: bool = False,
        default_type: str = DEFAULT_TYPE,
        headers: Mapping[str, str] | None = None,
        cache_control: str | None = None,
        index: str | None = "index.html",
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        # Absolute now: a daemon may change its working directory later.
        self.path = os.path.abspath(path.path if isinstance(path, FilePath) else os.fspath(path))
        self.listing = listing
        self.dotfiles = dotfiles
        self.follow_symlinks = follow_symlinks
        self.default_type = default_type
        self.headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in (headers or {}).items()
        ]
        self.cache_control = cache_control
        self.index = index

    def getChild(self, path: bytes, request: Request) -> Resource:
        """A leaf: :meth:`render` handles the whole remaining path itself."""
        return self

    # --- rendering ----------------------------------------------------------------------

    def render_GET(self, request: Request) -> bytes | int:
        """Answer GET (and HEAD) for the path below this resource."""
        try:
            target = self._paths().resolve(list(request.postpath or []))
            if stat.S_ISDIR(target.info.st_mode):
                return self._render_directory(request, target)
            return self._render_file(request, target)
        except HTTPRefusal as error:
            return self._error(request, error)

    def render_HEAD(self, request: Request) -> bytes | int:
        """The headers GET would send, without the body."""
        return self.render_GET(request)

    def _error(self, request: StreamRequest, error: HTTPRefusal) -> bytes:
        """A short plain-text error answer."""
        request.setResponseCode(error.code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return error.message.encode("utf-8") + b"\n"

    def _paths(self) -> Paths:
        """The path-safety rules of this resource (read per request: its attributes may be
        changed after construction)."""
        return Paths(self.path, dotfiles=self.dotfiles, follow_symlinks=self.follow_symlinks)

    # --- files --------------------------------------------------------------------------

    def _open(self, path: str) -> tuple[BinaryIO, os.stat_result]:
        """Open a regular file and stat the open descriptor (not the path, which may change)."""
        try:
            file = _open_file(path)
        except OSError as error:
            raise refusal_for(error) from None
        try:
            info = os.fstat(file.fileno())
        except BaseException:
            file.close()
            raise
        if not stat.S_ISREG(info.st_mode):
            file.close()
            raise HTTPRefusal(404, "Not Found")
        return file, info

    def _render_file(self, request: StreamRequest, target: Target) -> bytes | int:
        """Open the file and answer; the file is closed on every path out of here."""
        file, info = self._open(target.path)
        try:
            return self._answer_file(
                request, file, info, guess_type(target.name, self.default_type)
            )
        except BaseException:
            file.close()
            raise

    def _answer_file(
        self, request: StreamRequest, file: BinaryIO, info: os.stat_result, content_type: str
    ) -> bytes | int:
        """Preconditions, then 304, 412, 416, 206 or 200 for an open file.

        The validators are those of the representation this request selects: the gzip form
        (its own ETag) when the full response would be gzipped, else the file as it is.
        ``If-Range`` and ranges always refer to the file as it is (ranges are never gzipped).
        """
        method = request.method.decode("ascii")
        size = info.st_size
        identity = validators_at(
            metadata_etag(info.st_mtime_ns, size, info.st_ino),
            info.st_mtime_ns,
            _message_date(request),
        )
        self._set_common_headers(request)
        encoding = choose_encoding(request, settings_for(request), content_type)
        if encoding is not Encoding.FIXED:
            add_vary(request.responseHeaders)  # on every answer, 304 and errors included
        outcome = parse_range(self._range_header(request, identity), size)
        selected = identity
        if encoding is Encoding.GZIP and isinstance(outcome, IgnoreRange):
            gzip_tag = ETag(identity.etag.opaque + GZIP_ETAG_SUFFIX, identity.etag.weak)
            selected = dataclasses.replace(identity, etag=gzip_tag)
        request.setHeader(b"etag", str(selected.etag).encode("latin-1"))
        verdict = evaluate(method, _conditions(request), selected)
        if verdict is Verdict.NOT_MODIFIED:
            file.close()
            request.setResponseCode(304)
            request.finish()
            return NOT_DONE_YET
        if verdict is Verdict.PRECONDITION_FAILED:
            file.close()
            return self._error(request, HTTPRefusal(412, "Precondition Failed"))
        # The identity tag: gzip, when chosen, turns it into the gzip one (maybe_compress).
        request.setHeader(b"etag", str(identity.etag).encode("latin-1"))
        request.setHeader(b"last-modified", format_http_date(identity.last_modified).encode())
        request.setHeader(b"accept-ranges", b"bytes")
        if isinstance(outcome, IgnoreRange):
            request.setHeader(b"content-type", content_type.encode("latin-1"))
            source = FileSource(file, [FileRegion(0, size)])
            return stream_source(request, source, content_length=size)
        if isinstance(outcome, Satisfiable):
            return self._answer_ranges(request, file, outcome, size, content_type)
        file.close()
        request.setHeader(b"content-range", unsatisfied_content_range(size).encode())
        return self._error(request, HTTPRefusal(416, "Range Not Satisfiable"))

    def _range_header(self, request: StreamRequest, current: Validators) -> str | None:
        """The Range header to honour: GET only (RFC 9110 §14.2), and only if If-Range allows."""
        if request.method != b"GET":
            return None
        value = _header(request, b"range")
        if value is None or not if_range_allows(_header(request, b"if-range"), current):
            return None
        return value

    def _answer_ranges(
        self,
        request: StreamRequest,
        file: BinaryIO,
        outcome: Satisfiable,
        size: int,
        content_type: str,
    ) -> int:
        """206 with one range, or a multipart/byteranges body for several."""
        request.setResponseCode(206)
        if len(outcome.ranges) == 1:
            (only,) = outcome.ranges
            request.setHeader(b"content-type", content_type.encode("latin-1"))
            request.setHeader(b"content-range", content_range(only, size).encode())
            source = FileSource(file, [FileRegion(only.start, only.length)])
            return stream_source(request, source, content_length=only.length)
        boundary = secrets.token_hex(16)
        layout = multipart_layout(outcome.ranges, content_type, size, boundary)
        request.setHeader(
            b"content-type", f"multipart/byteranges; boundary={boundary}".encode("ascii")
        )
        source = FileSource(file, layout.segments)
        return stream_source(request, source, content_length=layout.length)

    def _set_common_headers(self, request: StreamRequest) -> None:
        """Headers of every file and listing answer, 304 included."""
        if self.cache_control is not None:
            request.setHeader(b"cache-control", self.cache_control.encode("latin-1"))
        for name, value in self.headers:
            request.setHeader(name, value)
        request.setHeader(b"x-content-type-options", b"nosniff")

    # --- directories --------------------------------------------------------------------

    def _render_directory(self, request: StreamRequest, target: Target) -> bytes | int:
        """Redirect to the slash form, serve the index file, or list the directory."""
        if not target.trailing_slash:
            return self._redirect_to_slash(request)
        paths = self._paths()
        if self.index is not None:
            index = paths.index(target, self.index)
            if index is not None:
                return self._render_file(request, index)
        if not self.listing:
            raise HTTPRefusal(404, "Not Found")
        try:
            entries = _scan_directory(target.path)
        except OSError as error:
            raise refusal_for(error) from None
        self._set_common_headers(request)
        at_root = target.path == paths.real_root()
        listing = Listing(entries, display_path(request), paths, at_root)
        return stream(request, listing, content_type="text/html; charset=utf-8")

    def _redirect_to_slash(self, request: StreamRequest) -> bytes:
        """301 to the same path with a slash, as a relative reference (no open redirect)."""
        path, _, query = request.uri.partition(b"?")
        last = unquote_to_bytes(path.rsplit(b"/", 1)[-1])
        location = (
            "./" + quote(last, safe="") + "/" + ("?" + query.decode("latin-1") if query else "")
        )
        request.setResponseCode(301)
        request.setHeader(b"location", location.encode("latin-1"))
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Moved Permanently\n"


def _message_date(request: StreamRequest) -> int:
    """The response's ``Date`` in seconds since the epoch (RFC 9110 §6.6.1): the one
    ``twisted.web.server.Request`` set when the request arrived, or now, then set."""
    value = request.responseHeaders.getRawHeaders(b"date", [None])[-1]
    date = parse_http_date(value.decode("latin-1")) if value else None
    if date is None:
        date = int(time.time())
        request.setHeader(b"date", format_http_date(date).encode("ascii"))
    return date


def _header(request: StreamRequest, name: bytes) -> str | None:
    """All values of a request header joined by commas (RFC 9110 §5.3), as text."""
    values = request.requestHeaders.getRawHeaders(name)
    if not values:
        return None
    return b", ".join(values).decode("latin-1")


def _conditions(request: StreamRequest) -> Conditions:
    """The conditional headers of ``request``."""
    return Conditions(
        if_match=_header(request, b"if-match"),
        if_unmodified_since=_header(request, b"if-unmodified-since"),
        if_none_match=_header(request, b"if-none-match"),
        if_modified_since=_header(request, b"if-modified-since"),
    )
