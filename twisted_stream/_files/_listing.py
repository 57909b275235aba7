"""The HTML directory listing of ``FileResource``, produced one entry at a time."""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from urllib.parse import quote, unquote_to_bytes

from .._types import StreamRequest
from ._paths import Paths


class Listing:
    """An HTML directory listing produced one entry at a time (never built in memory).

    Entries come in directory order (sorting would need them all at once); those that would
    not be served (:meth:`~._paths.Paths.listable`) are left out. Every name is
    percent-encoded in its link and HTML-escaped in its text. The directory handle is
    closed at the end or by :meth:`close`, which the engine calls on every ending.
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
        self._parent = "" if at_root else '<li><a href="../">../</a></li>\n'
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
        for entry in self._entries:
            if self._paths.listable(entry, self._root):
                return entry_html(entry)
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


def entry_html(entry: os.DirEntry[bytes]) -> str:
    """One list item: the percent-encoded link and the HTML-escaped name."""
    try:
        is_dir = entry.is_dir()
    except OSError:
        is_dir = False
    slash = "/" if is_dir else ""
    href = html.escape("./" + quote(entry.name, safe="") + slash)
    text = html.escape(entry.name.decode("utf-8", "replace") + slash)
    return f'<li><a href="{href}">{text}</a></li>\n'


def display_path(request: StreamRequest) -> str:
    """The request path as text, for a listing's title."""
    path = request.uri.partition(b"?")[0]
    return unquote_to_bytes(path).decode("utf-8", "replace")
