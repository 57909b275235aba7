"""The HTML directory listing of ``FileResource``: sorted, with sizes and modification times.

Like nginx's ``autoindex`` and Go's ``http.FileServer``, the listing is sorted (directories
first, then by name, case-insensitively), so the whole directory is read before the first
entry goes out; it is read in batches between which the engine lets other connections run,
and each entry is kept as its name, size and time only (about 150 bytes). Entries that would
not be served are left out: hidden names, symlinks leading out of the root or nowhere, and
anything that is neither a regular file nor a directory (FIFOs, sockets, devices).
"""

from __future__ import annotations

import html
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from .._format import format_bytes
from .._types import StreamRequest
from ._paths import Paths

READ_BATCH = 256
"""Directory entries read (and stat-ed) per pull of the listing."""
WRITE_BATCH = 100
"""Rows sent per pull once the directory is read and sorted."""

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}"
    "td.size,th.size{text-align:right;font-variant-numeric:tabular-nums}"
    "td.time{font-variant-numeric:tabular-nums;color:#555}"
)


@dataclass(frozen=True, slots=True)
class Entry:
    """What a listing shows of one directory entry."""

    name: bytes
    is_dir: bool
    size: int
    mtime: float

    def sort_key(self) -> tuple[bool, str, bytes]:
        """Directories first, then by name ignoring case (ties: by the exact bytes)."""
        return (not self.is_dir, self.name.decode("utf-8", "replace").casefold(), self.name)


def servable_entry(entry: os.DirEntry[bytes], paths: Paths, root: str) -> Entry | None:
    """``entry`` as the listing shows it, or None when it would not be served: hidden or
    escaping (:meth:`~._paths.Paths.listable`), a dangling symlink, or neither a regular
    file nor a directory."""
    if not paths.listable(entry, root):
        return None
    try:
        info = entry.stat()  # follows a symlink: what a request would be served
    except OSError:
        return None
    if stat.S_ISDIR(info.st_mode):
        return Entry(entry.name, True, 0, info.st_mtime)
    if stat.S_ISREG(info.st_mode):
        return Entry(entry.name, False, info.st_size, info.st_mtime)
    return None


class Listing:
    """An HTML directory listing, as a source of ``str`` chunks for the engine.

    The head goes first (without touching the directory, so HEAD never reads it); then the
    directory is read :data:`READ_BATCH` entries per pull (each pull gives an empty chunk,
    so the engine's slices keep the reactor responsive), sorted, and sent
    :data:`WRITE_BATCH` rows per pull. Every name is percent-encoded in its link and
    HTML-escaped in its text. The directory handle is closed once read, or by
    :meth:`close`, which the engine calls on every ending.
    """

    def __init__(
        self,
        entries: Iterator[os.DirEntry[bytes]],
        title: str,
        paths: Paths,
        at_root: bool,
    ) -> None:
        self._entries = entries
        self._title = html.escape(title)
        self._paths = paths
        self._root = paths.real_root()
        self._at_root = at_root
        self._read: list[Entry] = []
        self._sorted: list[Entry] | None = None
        self._sent = 0
        self._started = False
        self._ended = False

    def __iter__(self) -> Listing:
        return self

    def __next__(self) -> str:
        if not self._started:
            self._started = True
            return self._head()
        if self._ended:
            raise StopIteration
        if self._sorted is None:
            return self._read_batch()
        if self._sent < len(self._sorted):
            rows = self._sorted[self._sent : self._sent + WRITE_BATCH]
            self._sent += len(rows)
            return "".join(entry_html(entry) for entry in rows)
        self._ended = True
        return "</tbody>\n</table>\n</body>\n</html>\n"

    def _read_batch(self) -> str:
        for _ in range(READ_BATCH):
            try:
                entry = next(self._entries)
            except StopIteration:
                self.close()
                self._sorted = sorted(self._read, key=Entry.sort_key)
                self._read = []
                break
            shown = servable_entry(entry, self._paths, self._root)
            if shown is not None:
                self._read.append(shown)
        return ""

    def _head(self) -> str:
        parent = (
            ""
            if self._at_root
            else '<tr><td><a href="../">../</a></td><td class="size"></td>'
            '<td class="time"></td></tr>\n'
        )
        return (
            '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>Index of {self._title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>Index of {self._title}</h1>\n<table>\n"
            '<thead><tr><th>Name</th><th class="size">Size</th><th>Last modified (UTC)</th>'
            f"</tr></thead>\n<tbody>\n{parent}"
        )

    def close(self) -> None:
        """Release the directory handle; idempotent."""
        close = getattr(self._entries, "close", None)
        if close is not None:
            close()


def entry_html(entry: Entry) -> str:
    """One table row: the percent-encoded link and the HTML-escaped name, the size for
    people (exact bytes in its ``title`` and ``data-bytes``; none for a directory) and the
    modification time in UTC."""
    slash = "/" if entry.is_dir else ""
    href = html.escape("./" + quote(entry.name, safe="") + slash)
    text = html.escape(entry.name.decode("utf-8", "replace") + slash)
    if entry.is_dir:
        size = '<td class="size">-</td>'
    else:
        size = (
            f'<td class="size" data-bytes="{entry.size}" title="{entry.size:,} bytes">'
            f"{format_bytes(entry.size)}</td>"
        )
    when = time.gmtime(entry.mtime)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", when)
    shown = time.strftime("%Y-%m-%d %H:%M", when)
    return (
        f'<tr><td><a href="{href}">{text}</a></td>{size}'
        f'<td class="time"><time datetime="{stamp}">{shown}</time></td></tr>\n'
    )


def display_path(request: StreamRequest) -> str:
    """The request path as text, for a listing's title."""
    path = request.uri.partition(b"?")[0]
    return unquote_to_bytes(path).decode("utf-8", "replace")
