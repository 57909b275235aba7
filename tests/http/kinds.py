"""Every kind of stream we serve, plus responses that are not ours, as one resource tree for
the HTTPS and HTTP/2 end-to-end tests.

``/<kind>?n=N`` answers N units (16 KiB blocks, or events/objects/paragraphs of about 1 KB);
``n=0`` never ends; ``/fail?n=N`` fails after N blocks. A :class:`Recorder` counts what each
source pulled and which sources ran their ``finally`` (or closed their file).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.static import File
from twisted.web.template import Element, TagLoader, renderer, tags

from twisted_stream import (
    Channel,
    Event,
    FileResource,
    Stream,
    stream,
    stream_element,
    stream_events,
    stream_for,
    stream_ndjson,
)

BLOCK = bytes(range(256)) * 64
"""16 KiB."""
TEXT = "x" * 1000
BIG_FILE_SIZE = 256 * 1024 * 1024
"""The file served for ``n=0`` (sparse: it costs no disk)."""


class Recorder:
    """What the sources did, by kind."""

    def __init__(self) -> None:
        self.pulled: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()
        self.streams: dict[str, list[Stream]] = {}

    def track(self, kind: str, request: Any) -> None:
        handle = stream_for(request)
        if handle is not None:
            self.streams.setdefault(kind, []).append(handle)

    def all_streams(self) -> list[Stream]:
        return [s for handles in self.streams.values() for s in handles]


def _count(n: int) -> Iterator[int]:
    i = 0
    while n == 0 or i < n:
        yield i
        i += 1


def _blocks(rec: Recorder, kind: str, n: int) -> Iterator[bytes]:
    try:
        for _ in _count(n):
            rec.pulled[kind] += len(BLOCK)
            yield BLOCK
    finally:
        rec.closed[kind] += 1


class _CountingFile(io.FileIO):
    """A file that counts what is read from it and records its close."""

    def __init__(self, path: Path, rec: Recorder, kind: str) -> None:
        super().__init__(path, "rb")
        self._rec, self._kind = rec, kind

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self._rec.pulled[self._kind] += len(data or b"")
        return data

    def close(self) -> None:
        if not self.closed:
            self._rec.closed[self._kind] += 1
        super().close()


class _Paragraphs(Element):
    loader = TagLoader(tags.html(tags.body(tags.div(render="paragraphs"))))

    def __init__(self, rec: Recorder, n: int) -> None:
        super().__init__()
        self._rec, self._n = rec, n

    @renderer
    def paragraphs(self, request: Any, tag: Any) -> Iterator[Any]:
        try:
            for _ in _count(self._n):
                self._rec.pulled["template"] += len(TEXT)
                yield tags.p(TEXT)
        finally:
            self._rec.closed["template"] += 1


@dataclass(frozen=True)
class Kind:
    """One kind of response: how it is served and how a complete body of ``n`` units looks."""

    name: str
    render: Callable[[Any, Recorder, int, Path], Any]
    check: Callable[[bytes, int], bool]
    ours: bool = True
    finally_runs: bool = True
    """Its source records its close in :attr:`Recorder.closed`."""


def _blocks_body(body: bytes, n: int) -> bool:
    return body == BLOCK * n


def _failing(rec: Recorder, n: int) -> Iterator[bytes]:
    """``n`` blocks, then an error."""
    yield from _blocks(rec, "fail", n)
    raise RuntimeError("the source failed mid-stream")


def _sync(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    return stream(request, _blocks(rec, "sync", n))


def _deferred(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    def items() -> Iterator[Any]:
        for block in _blocks(rec, "deferred", n):
            yield deferLater(reactor, 0, lambda block=block: block)

    return stream(request, items())


def _async(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    async def items() -> AsyncIterator[bytes]:
        try:
            for i in _count(n):
                if i % 4 == 0:
                    await deferLater(reactor, 0, lambda: None)
                rec.pulled["async"] += len(BLOCK)
                yield BLOCK
        finally:
            rec.closed["async"] += 1

    return stream(request, items())


def _threaded(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    return stream(request, _blocks(rec, "threaded", n), threaded=True)


def file_path(files: Path, n: int) -> Path:
    """The file of ``n`` blocks (``n=0``: a big sparse file), made on first use."""
    path = files / f"blocks-{n}.bin"
    if not path.exists():
        with path.open("wb") as f:
            if n:
                f.write(BLOCK * n)
            else:
                f.truncate(BIG_FILE_SIZE)
    return path


def _file(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    return stream(request, _CountingFile(file_path(files, n), rec, "file"))


def _file_resource(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    request.postpath = [file_path(files, n).name.encode()]
    return FileResource(files).render(request)


def _file_body(body: bytes, n: int) -> bool:
    return body == BLOCK * n if n else len(body) == BIG_FILE_SIZE


def _events(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    def items() -> Iterator[Event]:
        try:
            for _ in _count(n):
                rec.pulled["events"] += len(TEXT)
                yield Event(TEXT)
        finally:
            rec.closed["events"] += 1

    return stream_events(request, items(), heartbeat=None)


def _events_body(body: bytes, n: int) -> bool:
    return body == Event(TEXT).encode() * n


def _channel(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    channel = Channel(history=0, queue_size=max(n, 16), overflow="drop-oldest")
    result = stream_events(request, channel, heartbeat=None)
    published = 0

    def publish() -> None:
        # A finite channel publishes its events and closes; an endless one keeps publishing
        # a few per turn while the stream runs.
        nonlocal published
        handle = stream_for(request)
        if handle is None or handle.outcome is not None:
            return
        for _ in range(n or 8):
            channel.publish(TEXT)
            published += 1
            rec.pulled["channel"] += len(TEXT)
        if n:
            channel.close()
        else:
            reactor.callLater(0, publish)

    reactor.callLater(0, publish)
    return result


def _channel_body(body: bytes, n: int) -> bool:
    return body.count(b"data: " + TEXT.encode() + b"\n\n") == n


def _template(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    return stream_element(request, _Paragraphs(rec, n))


def _template_body(body: bytes, n: int) -> bool:
    return body.count(b"<p>" + TEXT.encode() + b"</p>") == n and body.endswith(b"</html>")


def _ndjson(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    def objects() -> Iterator[dict[str, Any]]:
        try:
            for i in _count(n):
                rec.pulled["ndjson"] += len(TEXT)
                yield {"i": i, "text": TEXT}
        finally:
            rec.closed["ndjson"] += 1

    return stream_ndjson(request, objects())


def _ndjson_body(body: bytes, n: int) -> bool:
    lines = body.splitlines()
    return len(lines) == n and all(TEXT.encode() in line for line in lines)


def _plain(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    return BLOCK * (n or 256)


def _static(request: Any, rec: Recorder, n: int, files: Path) -> Any:
    return File(str(file_path(files, n))).render(request)


KINDS = {
    kind.name: kind
    for kind in (
        Kind("sync", _sync, _blocks_body),
        Kind("deferred", _deferred, _blocks_body),
        Kind("async", _async, _blocks_body),
        Kind("threaded", _threaded, _blocks_body),
        Kind("file", _file, _file_body),
        Kind("file-resource", _file_resource, _file_body, finally_runs=False),
        Kind("events", _events, _events_body),
        Kind("channel", _channel, _channel_body, finally_runs=False),
        Kind("template", _template, _template_body),
        Kind("ndjson", _ndjson, _ndjson_body),
        Kind("plain", _plain, lambda body, n: body == BLOCK * n, ours=False, finally_runs=False),
        Kind("static", _static, _file_body, ours=False, finally_runs=False),
    )
}
OURS = [name for name, kind in KINDS.items() if kind.ours]
"""The kinds streamed by our engine."""
WITH_FINALLY = [name for name, kind in KINDS.items() if kind.finally_runs]


class KindsResource(Resource):
    """``/<kind>?n=N``: serves :data:`KINDS`, recording into ``recorder``."""

    isLeaf = True

    def __init__(self, recorder: Recorder, files: Path) -> None:
        super().__init__()
        self.recorder = recorder
        self.files = files

    def render_GET(self, request: Any) -> Any:
        name = request.postpath[0].decode() if request.postpath else ""
        n = int(request.args.get(b"n", [b"1"])[0])
        if name == "fail":
            result = stream(request, _failing(self.recorder, n))
            self.recorder.track(name, request)
            return result
        kind = KINDS.get(name)
        if kind is None:
            request.setResponseCode(404)
            return b"no such kind"
        result = kind.render(request, self.recorder, n, self.files)
        self.recorder.track(name, request)
        return result
