"""Directory listings (``twisted_stream._files._listing``): sorted with directories first, sizes
and modification times, only entries that would be served, and the directory read in
batches and closed on every ending."""

from __future__ import annotations

import os
import pathlib
import re
import socket
from typing import Any

import pytest
import pytest_twisted
import treq

from twisted_stream import FileResource
from twisted_stream._files._listing import READ_BATCH, Entry, Listing, entry_html
from twisted_stream._files._paths import Paths

from ..waiting import within

ROW = re.compile(
    r'<tr><td><a href="([^"]*)">([^<]*)</a></td><td class="size"[^>]*>([^<]*)</td>'
    r'<td class="time">(?:<time datetime="([^"]*)">([^<]*)</time>)?</td></tr>'
)


def rows(page: str) -> list[tuple[str, str, str, str, str]]:
    """(href, name, size, ISO time, shown time) of each row of a listing page."""
    return [tuple(found) for found in ROW.findall(page)]  # type: ignore[misc]


def listing_of(path: pathlib.Path, at_root: bool = True, **paths: Any) -> str:
    """The whole listing of the directory ``path``, served below ``path`` itself."""
    entries = os.scandir(os.fsencode(path))
    return "".join(Listing(entries, "/", Paths(str(path), **paths), at_root=at_root))


def test_entries_are_sorted_directories_first_then_by_name(tmp_path: pathlib.Path) -> None:
    """Directories come first, then files; each group by name ignoring case, as nginx's
    autoindex puts directories first and Go's FileServer sorts by name."""
    for name in ["b.txt", "A.txt", "c.txt", "_under.txt", "10.txt", "9.txt"]:
        (tmp_path / name).write_bytes(b"x")
    for name in ["zeta", "Alpha", "beta"]:
        (tmp_path / name).mkdir()
    names = [row[1] for row in rows(listing_of(tmp_path))]
    assert names == [
        "Alpha/",
        "beta/",
        "zeta/",
        "10.txt",
        "9.txt",
        "_under.txt",
        "A.txt",
        "b.txt",
        "c.txt",
    ]


def test_rows_show_sizes_for_people_and_modification_times(tmp_path: pathlib.Path) -> None:
    """A file's row shows its size for people (exact bytes in ``title`` and ``data-bytes``)
    and its modification time in UTC; a directory's size is ``-``."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(60_102_921)  # sparse: no 60 MB written
    (tmp_path / "small.txt").write_bytes(b"hello")
    (tmp_path / "dir").mkdir()
    stamp = 1_700_000_000  # 2023-11-14 22:13:20 UTC
    for name in ("big.bin", "small.txt", "dir"):
        os.utime(tmp_path / name, (stamp, stamp))
    page = listing_of(tmp_path)
    found = {row[1]: row[2:] for row in rows(page)}
    assert found["dir/"] == ("-", "2023-11-14T22:13:20Z", "2023-11-14 22:13")
    assert found["big.bin"] == ("60.1 MB", "2023-11-14T22:13:20Z", "2023-11-14 22:13")
    assert found["small.txt"][0] == "5 B"
    assert 'data-bytes="60102921" title="60,102,921 bytes"' in page
    assert "<th>Last modified (UTC)</th>" in page


def test_entries_that_cannot_be_served_are_left_out(tmp_path: pathlib.Path) -> None:
    """FIFOs, sockets, dangling symlinks, symlinks out of the root and hidden names are not
    listed (a request for them would be a 404); symlinks inside the root are, as what they
    point to."""
    top = tmp_path / "top"
    top.mkdir()
    (top / "file.txt").write_bytes(b"12345")
    (top / "dir").mkdir()
    os.mkfifo(top / "fifo")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(top / "socket"))
        (top / "dangling").symlink_to(top / "missing")
        (top / "escape").symlink_to(tmp_path)
        (top / "link-to-file").symlink_to(top / "file.txt")
        (top / "link-to-dir").symlink_to(top / "dir")
        (top / ".hidden").write_bytes(b"x")
        names = {row[1]: row[2] for row in rows(listing_of(top))}
    assert names == {"dir/": "-", "link-to-dir/": "-", "file.txt": "5 B", "link-to-file": "5 B"}


def test_device_files_are_left_out(tmp_path: pathlib.Path) -> None:
    """A device node (a character device like ``/dev/null``) is not listed; skipped where
    the test may not create one."""
    try:
        os.mknod(tmp_path / "null", 0o600 | 0o020000, os.makedev(1, 3))
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot create a device node here: {e}")
    (tmp_path / "file").write_bytes(b"")
    assert [row[1] for row in rows(listing_of(tmp_path))] == ["file"]


class Entries:
    """A directory handle counting the entries taken and its closing."""

    def __init__(self, path: pathlib.Path) -> None:
        self._it = os.scandir(os.fsencode(path))
        self.consumed = 0
        self.closed = 0

    def __iter__(self) -> Entries:
        return self

    def __next__(self) -> os.DirEntry[bytes]:
        entry = next(self._it)
        self.consumed += 1
        return entry

    def close(self) -> None:
        self.closed += 1
        self._it.close()


def test_the_directory_is_read_in_batches_and_closed(tmp_path: pathlib.Path) -> None:
    """The head goes out before any entry is read; each later pull reads at most
    ``READ_BATCH`` entries (giving an empty chunk, so the engine can let others run); the
    handle is closed as soon as the directory is read, and by ``close`` if the stream ends
    earlier."""
    count = READ_BATCH * 2 + 10
    for i in range(count):
        (tmp_path / f"f{i:04d}").write_bytes(b"")
    entries = Entries(tmp_path)
    listing = Listing(entries, "/", Paths(str(tmp_path)), at_root=True)
    assert "Index of /" in next(listing)
    assert entries.consumed == 0
    assert next(listing) == ""
    assert entries.consumed == READ_BATCH
    rest = "".join(listing)
    assert entries.consumed == count and entries.closed >= 1
    assert rest.count("<tr>") == count and rest.endswith("</html>\n")

    early = Entries(tmp_path)
    listing = Listing(early, "/", Paths(str(tmp_path)), at_root=True)
    next(listing)
    next(listing)
    listing.close()
    assert early.closed == 1 and early.consumed == READ_BATCH


def test_parent_link_below_the_root() -> None:
    """Below the root the first row links to ``../``."""
    listing = Listing(iter([]), "/sub/", Paths("/"), at_root=False)
    assert '<a href="../">../</a>' in "".join(listing)


def test_entry_html_escapes_and_encodes() -> None:
    """A name is percent-encoded in its link and HTML-escaped in its text; undecodable bytes
    are shown as replacement characters."""
    row = entry_html(Entry(b'<a&"b>\xff', False, 1, 0.0))
    assert 'href="./%3Ca%26%22b%3E%FF"' in row
    assert "&lt;a&amp;&quot;b&gt;\ufffd" in row


@pytest_twisted.ensureDeferred
async def test_a_served_listing_is_sorted(
    server: Any, client: Any, tmp_path: pathlib.Path
) -> None:
    """Through ``FileResource(listing=True)`` on a real site, a browser gets the sorted page
    with sizes; every link works."""
    (tmp_path / "b.txt").write_bytes(b"b" * 1500)
    (tmp_path / "a").mkdir()
    (tmp_path / "C.txt").write_bytes(b"")
    os.mkfifo(tmp_path / "pipe")
    server.serve(FileResource(tmp_path, listing=True))
    response = await within(client.get(server.url("/")))
    page = (await within(treq.content(response))).decode()
    found = rows(page)
    assert [(row[1], row[2]) for row in found] == [
        ("a/", "-"),
        ("b.txt", "1.50 KB"),
        ("C.txt", "0 B"),
    ]
    for href, *_ in found:
        linked = await within(client.get(server.url("/" + href[2:])))
        assert linked.code == 200, href
        await within(treq.content(linked))
