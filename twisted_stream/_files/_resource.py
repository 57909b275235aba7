"""``FileResource``: serve a file or a directory tree with complete HTTP file semantics.

Compared with ``twisted.web.static.File`` it validates every path segment (traversal,
encoded slashes, NUL bytes, invalid UTF-8, dotfiles, symlinks leaving the root), sets a
metadata ETag, evaluates preconditions in RFC 9110 order, honours ``If-Range``, caps and
coalesces ranges, uses a fixed content-type table, and streams through the engine so the
file is read only while the client is reading. Answers: 400 for a malformed path (NUL byte,
invalid UTF-8), 404 for anything that does not name a servable file, 403 when the file
cannot be opened for lack of permission, 405 for methods other than GET and HEAD.

Symlinks are resolved with ``realpath`` and the resolved path must lie below the root's
(unless ``follow_symlinks``); the file is then opened with ``O_NOFOLLOW`` and everything
(size, ETag) comes from ``fstat`` of the open descriptor, so a file replaced or deleted
after the open is served consistently. Someone who can write inside the root can still
race a directory swap between the check and the open: do not serve trees that untrusted
users write to with ``follow_symlinks=False`` as the only barrier.
"""

from __future__ import annotations

import errno
import html
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote, unquote_to_bytes

from twisted.python.filepath import FilePath
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from .._engine._stream import stream, stream_source
from .._sources._compression import GZIP_ETAG_SUFFIX
from .._sources._file import FileSource
from ._mimetypes import DEFAULT_TYPE, guess_type
from ._preconditions import (
    Conditions,
    ETag,
    Validators,
    Verdict,
    evaluate,
    format_http_date,
    if_range_allows,
    metadata_etag,
    parse_etag_list,
    weak_match,
)
from ._ranges import (
    FileRegion,
    IgnoreRange,
    Satisfiable,
    content_range,
    multipart_layout,
    parse_range,
    unsatisfied_content_range,
)

NAME_MAX = 255
"""Longest path segment, in bytes, as on most filesystems."""
PATH_MAX = 4096
"""Longest path below the root, in bytes."""

_NOT_FOUND_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.EINVAL, errno.ENXIO}
)
_PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


class _HTTPError(Exception):
    """Answer with ``code`` and a short plain-text body."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error_for(error: OSError) -> _HTTPError:
    """The answer for a failed filesystem call: 404, 403, or 500 for real I/O errors."""
    if isinstance(error, PermissionError) or error.errno in _PERMISSION_ERRNOS:
        return _HTTPError(403, "Forbidden")
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return _HTTPError(404, "Not Found")
    if error.errno in _NOT_FOUND_ERRNOS:
        return _HTTPError(404, "Not Found")
    return _HTTPError(500, "Internal Server Error")


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


def _segment_name(raw: bytes, dotfiles: bool) -> str:
    """The file name a URL path segment names; raise :class:`_HTTPError` if it names none."""
    if b"\x00" in raw:
        raise _HTTPError(400, "Bad Request: NUL byte in path")
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _HTTPError(400, "Bad Request: path is not valid UTF-8") from None
    if (
        name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or len(raw) > NAME_MAX
        or (name.startswith(".") and not dotfiles)
    ):
        raise _HTTPError(404, "Not Found")
    return name


def _within(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or below it (both resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _has_dot_component(path: str, root: str) -> bool:
    """True when ``path`` (below ``root``) goes through a dotfile or dot-directory."""
    relative = os.path.relpath(path, root)
    return relative != "." and any(part.startswith(".") for part in relative.split(os.sep))


@dataclass(frozen=True)
class _Target:
    """What a request path resolved to."""

    path: str
    """The resolved path on disk."""
    name: str
    """The name the client asked for (it picks the content type)."""
    info: os.stat_result
    trailing_slash: bool


@implementer(IResource)
class FileResource(Resource):
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

    def getChild(self, path: bytes, request: Any) -> Resource:
        """A leaf: :meth:`render` handles the whole remaining path itself."""
        return self

    # --- rendering ----------------------------------------------------------------------

    def render(self, request: Any) -> bytes | int:
        """Answer GET and HEAD for the path below this resource."""
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return self._error(request, _HTTPError(405, "Method Not Allowed"))
        try:
            target = self._resolve(list(request.postpath))
            if stat.S_ISDIR(target.info.st_mode):
                return self._render_directory(request, target)
            return self._render_file(request, target)
        except _HTTPError as error:
            return self._error(request, error)

    def _error(self, request: Any, error: _HTTPError) -> bytes:
        """A short plain-text error answer."""
        request.setResponseCode(error.code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return error.message.encode("utf-8") + b"\n"

    # --- path resolution ----------------------------------------------------------------

    def _resolve(self, segments: list[bytes]) -> _Target:
        """Check every segment and resolve them below the root."""
        root = os.path.realpath(self.path)
        if segments in ([], [b""]) and os.path.isfile(root):
            # A single-file resource answers its own URL, with or without a final slash.
            info = self._stat(root)
            return _Target(root, os.path.basename(self.path), info, trailing_slash=False)
        trailing_slash = bool(segments) and segments[-1] == b""
        if trailing_slash:
            segments = segments[:-1]
        names = [_segment_name(raw, self.dotfiles) for raw in segments]
        if sum(len(raw) + 1 for raw in segments) > PATH_MAX:
            raise _HTTPError(404, "Not Found")
        resolved = self._resolve_below(root, os.path.join(root, *names))
        info = self._stat(resolved)
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            raise _HTTPError(404, "Not Found")
        if stat.S_ISREG(info.st_mode) and trailing_slash:
            raise _HTTPError(404, "Not Found")
        name = names[-1] if names else os.path.basename(root)
        return _Target(resolved, name, info, trailing_slash)

    @staticmethod
    def _stat(path: str) -> os.stat_result:
        """``os.stat`` with its errors turned into answers."""
        try:
            return os.stat(path)
        except OSError as error:
            raise _error_for(error) from None

    def _resolve_below(self, root: str, path: str) -> str:
        """Resolve symlinks in ``path``; refuse escapes from ``root`` and hidden targets."""
        resolved = os.path.realpath(path)
        inside = _within(resolved, root)
        if not inside and not self.follow_symlinks:
            raise _HTTPError(404, "Not Found")
        if inside and not self.dotfiles and _has_dot_component(resolved, root):
            raise _HTTPError(404, "Not Found")
        return resolved

    # --- files --------------------------------------------------------------------------

    def _open(self, path: str) -> tuple[BinaryIO, os.stat_result]:
        """Open a regular file and stat the open descriptor (not the path, which may change)."""
        try:
            file = _open_file(path)
        except OSError as error:
            raise _error_for(error) from None
        try:
            info = os.fstat(file.fileno())
        except BaseException:
            file.close()
            raise
        if not stat.S_ISREG(info.st_mode):
            file.close()
            raise _HTTPError(404, "Not Found")
        return file, info

    def _render_file(self, request: Any, target: _Target) -> bytes | int:
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
        self, request: Any, file: BinaryIO, info: os.stat_result, content_type: str
    ) -> bytes | int:
        """Preconditions, then 304, 412, 416, 206 or 200 for an open file."""
        method = request.method.decode("ascii")
        size = info.st_size
        current = Validators(
            metadata_etag(info.st_mtime_ns, size, info.st_ino), info.st_mtime_ns // 10**9
        )
        self._set_common_headers(request)
        request.setHeader(b"etag", str(current.etag).encode("latin-1"))
        verdict = evaluate(method, _conditions(request), current)
        if verdict is Verdict.PROCEED and _revalidates_gzip_form(request, current.etag):
            # The client holds the gzip form (see _compression.gzip_etag) of this version.
            gzip_tag = ETag(current.etag.opaque + GZIP_ETAG_SUFFIX, current.etag.weak)
            request.setHeader(b"etag", str(gzip_tag).encode("latin-1"))
            request.responseHeaders.addRawHeader(b"vary", b"Accept-Encoding")
            verdict = Verdict.NOT_MODIFIED
        if verdict is Verdict.NOT_MODIFIED:
            file.close()
            request.setResponseCode(304)
            request.finish()
            return NOT_DONE_YET
        if verdict is Verdict.PRECONDITION_FAILED:
            file.close()
            return self._error(request, _HTTPError(412, "Precondition Failed"))
        request.setHeader(b"last-modified", format_http_date(current.last_modified).encode())
        request.setHeader(b"accept-ranges", b"bytes")
        outcome = parse_range(self._range_header(request, current), size)
        if isinstance(outcome, IgnoreRange):
            request.setHeader(b"content-type", content_type.encode("latin-1"))
            source = FileSource(file, [FileRegion(0, size)])
            return stream_source(request, source, content_length=size)
        if isinstance(outcome, Satisfiable):
            return self._answer_ranges(request, file, outcome, size, content_type)
        file.close()
        request.setHeader(b"content-range", unsatisfied_content_range(size).encode())
        return self._error(request, _HTTPError(416, "Range Not Satisfiable"))

    def _range_header(self, request: Any, current: Validators) -> str | None:
        """The Range header to honour: GET only (RFC 9110 §14.2), and only if If-Range allows."""
        if request.method != b"GET":
            return None
        value = _header(request, b"range")
        if value is None or not if_range_allows(_header(request, b"if-range"), current):
            return None
        return value

    def _answer_ranges(
        self, request: Any, file: BinaryIO, outcome: Satisfiable, size: int, content_type: str
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

    def _set_common_headers(self, request: Any) -> None:
        """Headers of every file and listing answer, 304 included."""
        if self.cache_control is not None:
            request.setHeader(b"cache-control", self.cache_control.encode("latin-1"))
        for name, value in self.headers:
            request.setHeader(name, value)
        request.setHeader(b"x-content-type-options", b"nosniff")

    # --- directories --------------------------------------------------------------------

    def _render_directory(self, request: Any, target: _Target) -> bytes | int:
        """Redirect to the slash form, serve the index file, or list the directory."""
        if not target.trailing_slash:
            return self._redirect_to_slash(request)
        if self.index is not None:
            index = self._index_target(target)
            if index is not None:
                return self._render_file(request, index)
        if not self.listing:
            raise _HTTPError(404, "Not Found")
        try:
            entries = _scan_directory(target.path)
        except OSError as error:
            raise _error_for(error) from None
        self._set_common_headers(request)
        at_root = target.path == os.path.realpath(self.path)
        listing = _Listing(entries, _display_path(request), self, at_root)
        return stream(request, listing, content_type="text/html; charset=utf-8")

    def _index_target(self, directory: _Target) -> _Target | None:
        """The index file of a directory, if it has a servable one."""
        assert self.index is not None
        root = os.path.realpath(self.path)
        try:
            path = self._resolve_below(root, os.path.join(directory.path, self.index))
            info = os.stat(path)
        except (_HTTPError, OSError):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        return _Target(path, self.index, info, False)

    def _redirect_to_slash(self, request: Any) -> bytes:
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

    def _listable(self, entry: os.DirEntry[bytes], root: str) -> bool:
        """True when a directory entry would be served, so a listing shows it."""
        try:
            _segment_name(entry.name, self.dotfiles)
            if entry.is_symlink():
                self._resolve_below(root, os.fsdecode(entry.path))
        except _HTTPError:
            return False
        return True


def _revalidates_gzip_form(request: Any, etag: ETag) -> bool:
    """Whether a GET/HEAD ``If-None-Match`` names the gzip form of the ``etag`` version."""
    value = _header(request, b"if-none-match")
    if value is None or request.method not in (b"GET", b"HEAD"):
        return False
    gzip_tag = ETag(etag.opaque + GZIP_ETAG_SUFFIX, etag.weak)
    return any(weak_match(tag, gzip_tag) for tag in parse_etag_list(value).tags)


def _header(request: Any, name: bytes) -> str | None:
    """All values of a request header joined by commas (RFC 9110 §5.3), as text."""
    values = request.requestHeaders.getRawHeaders(name)
    if not values:
        return None
    return b", ".join(values).decode("latin-1")


def _conditions(request: Any) -> Conditions:
    """The conditional headers of ``request``."""
    return Conditions(
        if_match=_header(request, b"if-match"),
        if_unmodified_since=_header(request, b"if-unmodified-since"),
        if_none_match=_header(request, b"if-none-match"),
        if_modified_since=_header(request, b"if-modified-since"),
    )


def _display_path(request: Any) -> str:
    """The request path as text, for a listing's title."""
    path = request.uri.partition(b"?")[0]
    return unquote_to_bytes(path).decode("utf-8", "replace")


class _Listing:
    """An HTML directory listing produced one entry at a time (never built in memory).

    Entries come in directory order (sorting would need them all at once). Every name is
    percent-encoded in its link and HTML-escaped in its text. The directory handle is
    closed at the end or by :meth:`close`, which the engine calls on every ending.
    """

    def __init__(
        self,
        entries: Iterator[os.DirEntry[bytes]],
        title: str,
        resource: FileResource,
        at_root: bool,
    ) -> None:
        self._entries = entries
        self._title = html.escape(title)
        self._resource = resource
        self._root = os.path.realpath(resource.path)
        self._parent = "" if at_root else '<li><a href="../">../</a></li>\n'
        self._started = False
        self._ended = False

    def __iter__(self) -> _Listing:
        return self

    def __next__(self) -> str:
        if not self._started:
            self._started = True
            return self._head()
        if self._ended:
            raise StopIteration
        for entry in self._entries:
            if self._resource._listable(entry, self._root):
                return _entry_html(entry)
        self._ended = True
        self.close()
        return "</ul>\n</body>\n</html>\n"

    def _head(self) -> str:
        return (
            '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
            f"<title>Index of {self._title}</title>\n</head>\n<body>\n"
            f"<h1>Index of {self._title}</h1>\n<ul>\n{self._parent}"
        )

    def close(self) -> None:
        """Release the directory handle; idempotent."""
        close = getattr(self._entries, "close", None)
        if close is not None:
            close()


def _entry_html(entry: os.DirEntry[bytes]) -> str:
    """One list item: the percent-encoded link and the HTML-escaped name."""
    try:
        is_dir = entry.is_dir()
    except OSError:
        is_dir = False
    slash = "/" if is_dir else ""
    href = html.escape("./" + quote(entry.name, safe="") + slash)
    text = html.escape(entry.name.decode("utf-8", "replace") + slash)
    return f'<li><a href="{href}">{text}</a></li>\n'
