"""File bodies read on the thread pool (``twisted_stream._sources._file_threads``, setting
``threaded_file_reads``): exact bytes, no read on the reactor thread, a slow read holding no
other connection up, and the file closed only once a running read has returned."""

from __future__ import annotations

import io
import math
import os
import pathlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.web.resource import Resource

from twisted_stream import StreamSettings, stream
from twisted_stream._engine._source import EOF, SliceDeadline
from twisted_stream._files import _resource as file_resource_module
from twisted_stream._files._resource import FileResource
from twisted_stream._sources._file import FileRegion, FileSource
from twisted_stream._sources._file_threads import ThreadedFileReads

from ..conftest import Server, leaf
from ..rawclient import connect, get
from ..waiting import until, within

BODY = os.urandom(300_000)
LATER = SliceDeadline(math.inf, time.monotonic)


class WatchedFile(io.FileIO):
    """A file that records the threads reading it, and can hold a read until released."""

    def __init__(self, path: str, hold: threading.Event | None = None) -> None:
        super().__init__(path, "rb")
        self.readers: set[str] = set()
        self.hold = hold
        self.held = threading.Event()

    def read(self, size: int | None = -1) -> bytes:
        self.readers.add(threading.current_thread().name)
        if self.hold is not None:
            self.held.set()
            self.hold.wait(timeout=3.0)  # slow storage; bounded so a broken test ends
        return super().read(size) or b""


class Opened:
    """Every file FileResource opens, watched; set ``hold`` to make their reads wait."""

    def __init__(self) -> None:
        self.files: list[WatchedFile] = []
        self.hold: threading.Event | None = None

    def open(self, path: str) -> WatchedFile:
        file = WatchedFile(path, self.hold)
        self.files.append(file)
        return file


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Opened:
    found = Opened()
    monkeypatch.setattr(file_resource_module, "_open_file", found.open)
    return found


def serve(server: Server, root: pathlib.Path, **settings: Any) -> None:
    top = Resource()
    top.putChild(b"files", FileResource(root))
    top.putChild(b"gen", leaf(lambda request: stream(request, iter([b"other"]))))
    server.serve(top, settings=StreamSettings(**settings))


@pytest_twisted.ensureDeferred
async def test_file_read_on_the_pool_arrives_exact(
    server: Server, tmp_path: pathlib.Path, opened: Opened
) -> None:
    """With threaded_file_reads the body arrives byte for byte, and the file is never read
    on the reactor thread (nor sent with sendfile, which would read it there)."""
    (tmp_path / "body.bin").write_bytes(BODY)
    serve(server, tmp_path, threaded_file_reads=True)
    raw = await connect(server.port, get("/files/body.bin", version="1.0"))
    await within(raw.closed)
    assert bytes(raw.received).partition(b"\r\n\r\n")[2] == BODY
    (file,) = opened.files
    assert file.readers and threading.main_thread().name not in file.readers
    assert file.closed


@pytest_twisted.ensureDeferred
async def test_a_slow_read_holds_up_no_other_connection(
    server: Server, tmp_path: pathlib.Path, opened: Opened
) -> None:
    """While a file read is stuck on slow storage, another client is answered; the file's
    client gets its body once the read returns."""
    (tmp_path / "body.bin").write_bytes(BODY)
    serve(server, tmp_path, threaded_file_reads=True)
    release = opened.hold = threading.Event()
    slow = await connect(server.port, get("/files/body.bin", version="1.0"))
    await until(lambda: bool(opened.files) and opened.files[0].held.is_set(), what="a read")
    other = await connect(server.port, get("/gen", version="1.0"))
    await within(other.closed)
    answered_while_blocked = not release.is_set()
    release.set()
    await within(slow.closed)
    assert bytes(other.received).endswith(b"other")
    assert answered_while_blocked
    assert bytes(slow.received).partition(b"\r\n\r\n")[2] == BODY


class ManualPool:
    """A pool whose work runs only when the test says so."""

    def __init__(self) -> None:
        self.work: list[Callable[[], object]] = []

    def run(self, reactor: Any, work: Callable[[], object]) -> None:
        self.work.append(work)


class ImmediateReactor:
    """callFromThread runs at once (the test plays the pool's thread itself)."""

    def callFromThread(self, f: Callable[..., object], *args: object) -> None:
        f(*args)


def test_close_waits_for_a_read_in_flight(tmp_path: pathlib.Path) -> None:
    """close() during a read on the pool closes the file only once that read has returned
    (its descriptor is never closed, and its number reused, under the read); the read's
    result then goes nowhere."""
    (tmp_path / "f.bin").write_bytes(BODY)
    file = open(tmp_path / "f.bin", "rb", buffering=0)
    pool = ManualPool()
    source = ThreadedFileReads(
        FileSource(file, [FileRegion(0, len(BODY))]),
        pool,  # type: ignore[arg-type]
        ImmediateReactor(),  # type: ignore[arg-type]
    )
    first = source.read(65536, LATER)
    (work,) = pool.work
    work()
    got: list[object] = []
    first.addCallback(got.append)  # type: ignore[union-attr]
    assert got == [BODY[:65536]]
    second = source.read(65536, LATER)
    closing = source.close()
    assert closing is not None and not closing.called and not file.closed
    pool.work[1]()
    assert closing.called and file.closed
    second.addErrback(lambda _: None)  # type: ignore[union-attr]


def test_read_errors_and_the_end_are_delivered() -> None:
    """A failing read fails the Deferred; the end of the file is EOF."""

    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError(5, "Input/output error")

    pool = ManualPool()
    broken = ThreadedFileReads(FileSource(Broken(b"x")), pool, ImmediateReactor())  # type: ignore[arg-type]
    failed: list[Any] = []
    broken.read(10, LATER).addErrback(failed.append)  # type: ignore[union-attr]
    pool.work.pop()()
    assert failed and failed[0].check(OSError)
    ended = ThreadedFileReads(FileSource(io.BytesIO(b"")), pool, ImmediateReactor())  # type: ignore[arg-type]
    results: list[object] = []
    ended.read(10, LATER).addCallback(results.append)  # type: ignore[union-attr]
    pool.work.pop()()
    assert results == [EOF]
