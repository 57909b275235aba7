"""The file source: a binary file read only when the engine asks, in buffer-sized reads.

A :class:`FileSource` follows a layout of literal bytes and file regions (a whole file is
one region; a ``multipart/byteranges`` body alternates part headers and regions), so ranges
stream through the same engine, flow control and teardown as generators. Reads happen on the
reactor thread, like ``static.File``: local disk reads of at most one buffer each.

A region that ends early (the file was truncated while being served) raises
:class:`FileTruncated`; the engine then aborts the connection rather than padding the body.
The file is closed by :meth:`FileSource.close`, which the engine calls exactly once on
completion, client disconnect and error alike.
"""

from __future__ import annotations

import io
import os
import pathlib
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from twisted.python.filepath import FilePath

from .._engine._source import FileBody, ReadResult, SliceDeadline, Source
from .._errors import FileTruncated
from ._gather import Gatherer
from ._mimetypes import DEFAULT_TYPE, guess_type


class FileRegion(NamedTuple):
    """``length`` bytes of the file from ``offset`` in a body layout."""

    offset: int
    length: int


Segment = bytes | FileRegion
"""One piece of a body layout: literal bytes, or a region of the file."""


@dataclass(frozen=True)
class _Rest:
    """The file from its current position to its end, however long that is."""


_Piece = bytes | FileRegion | _Rest


def _file_name(file: object) -> str:
    """A name for messages: the file's ``name`` if it has a usable one."""
    name = getattr(file, "name", None)
    return os.fsdecode(name) if isinstance(name, (str, bytes)) else repr(file)


class FileSource:
    """Reads ``segments`` (literal bytes and file regions) from an open binary ``file``.

    With ``segments=None`` the file is read from its current position to its end.
    """

    def __init__(self, file: BinaryIO, segments: Sequence[Segment] | None = None) -> None:
        self._file: BinaryIO | None = file
        self._pieces: tuple[_Piece, ...] = (_Rest(),) if segments is None else tuple(segments)
        self._index = 0
        self._done = 0
        """Bytes of the current piece already returned."""
        self._position: int | None = None
        """Where the file is positioned, when we know it."""
        self._gather = Gatherer()

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        """Up to about ``limit`` bytes of the layout, or :data:`EOF` once it is all read."""
        gather = self._gather
        gather.begin()
        parts: list[bytes] = []
        size = 0
        while size < limit and self._index < len(self._pieces):
            try:
                data = self._next_piece(limit - size)
            except FileTruncated:
                gather.fail(parts)  # hand over what was read first
                break
            if data is None:
                self._index += 1
                self._done = 0
                continue
            parts.append(data)
            size += len(data)
            if deadline.passed():
                break
        return gather.end(parts)

    def file_body(self) -> FileBody | None:
        """The body as one region of the file when it is exactly that and nothing was read
        yet (a whole file or a single range), so the engine may ``sendfile`` it."""
        pieces = self._pieces
        file = self._file
        if file is None or len(pieces) != 1 or self._index or self._done:
            return None
        (region,) = pieces
        if not isinstance(region, FileRegion):
            return None
        try:
            fileno = file.fileno()
        except (OSError, ValueError):  # not a real file (io.UnsupportedOperation), closed
            return None
        return FileBody(fileno, region.offset, region.length)

    def _next_piece(self, want: int) -> bytes | None:
        """Some bytes of the current piece, or None when it is used up."""
        piece = self._pieces[self._index]
        if isinstance(piece, bytes):
            if self._done or not piece:
                return None
            self._done = len(piece)
            return piece
        if isinstance(piece, FileRegion):
            return self._read_region(piece, want)
        return self._read_rest(want)

    def _read_region(self, region: FileRegion, want: int) -> bytes | None:
        """Read the next bytes of ``region``; raise :class:`FileTruncated` if it ends early."""
        remaining = region.length - self._done
        if remaining <= 0:
            return None
        offset = region.offset + self._done
        file = self._open_file()
        if self._position != offset:
            file.seek(offset)
            self._position = offset
        data = file.read(min(want, remaining))
        if not data:
            raise FileTruncated(
                f"{_file_name(file)} ended at byte {offset}, "
                f"{remaining} bytes before the end of the response"
            )
        self._done += len(data)
        self._position = offset + len(data)
        return data

    def _read_rest(self, want: int) -> bytes | None:
        """Read on from the current position; None at the end of the file."""
        data = self._open_file().read(want)
        if not data:
            return None
        self._done += len(data)
        self._position = None
        return data

    def _open_file(self) -> BinaryIO:
        if self._file is None:
            raise ValueError("read from a closed FileSource")
        return self._file

    def close(self) -> None:
        """Close the file; idempotent, and never raises."""
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except Exception:  # closing must never fail the teardown
                pass


class PathSource:
    """A file named by a path, opened on the first read (never opened for HEAD).

    A regular file is served up to the size it had when opened (a file that shrinks raises
    :class:`FileTruncated`, one that grows is cut at that size); anything else, and files
    whose size is 0 (``/proc`` files claim that), is read to its end.
    """

    def __init__(self, path: str | bytes) -> None:
        self._path = path
        self._source: FileSource | None = None
        self._closed = False

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        """Open the file if needed, then read from it."""
        if self._source is None:
            if self._closed:
                raise ValueError("read from a closed PathSource")
            self._source = self._open()
        return self._source.read(limit, deadline)

    def file_body(self) -> FileBody | None:
        """Open the file if needed; the body as one region of it when it is a regular file
        of known size and nothing was read yet."""
        if self._source is None:
            if self._closed:
                return None
            self._source = self._open()
        return self._source.file_body()

    def _open(self) -> FileSource:
        file = open(self._path, "rb", buffering=0)  # closed by close()
        try:
            info = os.fstat(file.fileno())
        except BaseException:
            file.close()
            raise
        if stat.S_ISREG(info.st_mode) and info.st_size:
            return FileSource(file, [FileRegion(0, info.st_size)])
        return FileSource(file)  # pipes, devices, /proc files (which claim size 0)

    def close(self) -> None:
        """Close the file if it was opened; idempotent."""
        self._closed = True
        if self._source is not None:
            self._source.close()


def _is_binary_file(obj: object) -> bool:
    """True for open binary file objects (never text files)."""
    if isinstance(obj, io.TextIOBase):
        return False
    if isinstance(obj, (io.BufferedIOBase, io.RawIOBase)):
        return True
    mode = getattr(obj, "mode", None)
    return (
        callable(getattr(obj, "read", None))
        and isinstance(mode, str)
        and "b" in mode
        and "t" not in mode
    )


def file_source(obj: object) -> Source | None:
    """The file source for a ``pathlib`` path, a ``FilePath`` or a binary file object.

    None for anything else (a ``str`` is text to send, never a path). A file object is read
    from its current position to its end and closed when the stream ends.
    """
    if isinstance(obj, pathlib.PurePath):
        return PathSource(os.fspath(obj))
    if isinstance(obj, FilePath):
        return PathSource(obj.path)
    if _is_binary_file(obj):
        file: BinaryIO = obj  # type: ignore[assignment]
        return FileSource(file)
    return None


def file_content_type(obj: object) -> str | None:
    """The ``Content-Type`` of a file source, as ``FileResource`` would serve it: from the
    fixed table by the name of the path, ``FilePath`` or file object (its ``name``), else
    ``application/octet-stream``; never the site's default ``text/html``. None for a source
    that is not a file."""
    if isinstance(obj, pathlib.PurePath):
        return guess_type(obj.name)
    if isinstance(obj, FilePath):
        return guess_type(obj.basename())
    if _is_binary_file(obj):
        name = getattr(obj, "name", None)
        return guess_type(os.fsdecode(name)) if isinstance(name, (str, bytes)) else DEFAULT_TYPE
    return None


def path_length(obj: object) -> int | None:
    """The size of the regular file a ``pathlib`` path or ``FilePath`` names, for its
    ``Content-Length``; None for anything else, a missing file, or a size of 0 (``/proc``
    files claim that). :class:`PathSource` serves exactly the size it finds when it opens
    the file, so a file replaced in between ends the stream short rather than wrong."""
    path: str | bytes
    if isinstance(obj, FilePath):
        path = obj.path
    elif isinstance(obj, pathlib.PurePath):
        path = os.fspath(obj)
    else:
        return None  # a str is text to send, never a path
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) and info.st_size else None
