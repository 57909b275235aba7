"""Uploads stored as they arrive, any size, in constant memory.

    pip install -e '.[multipart]'     # POST forms need python-multipart (the extra)
    UPLOAD_DIR=/srv/uploads twistd -n streamweb --app examples.upload:resource --max-body-size 0
    curl -T big.iso http://localhost:8080/big.iso         # PUT: 201, the SHA-256 first
    curl -F title=Holiday -F photo=@sea.jpg http://localhost:8080/   # POST: a line per part

``PUT /<name>`` stores the body (``Content-Length`` or chunked) as ``<name>`` in the upload
directory (``UPLOAD_DIR``, or else a fresh temporary directory, logged at start) and answers
``201 Created`` with the hex SHA-256 of the stored bytes as the body's first line. ``POST /``
with ``multipart/form-data`` stores each file part the same way under its (base) filename and
answers one line per part: ``<sha256> <name> <size>`` for a file, ``field <name> <size>``
for a plain field; a file input left empty (a browser sends an empty part with
``filename=""``) is skipped. A name that is an existing directory is answered ``409
Conflict``. Stored files get the mode a plain file write would give them (``0666`` less the
process's umask), not the ``0600`` of a temporary file.

Each body goes to a hidden temporary file beside its final name and is renamed into place
only once complete and flushed, so nothing half-written is ever visible under a real name; a
failed upload (client gone, too large) leaves nothing. Files are written in the reactor's
thread pool, and a disk slower than the client holds the client back (the body is read only
as fast as it is written). The example sets no limit of its own: the site's
``--max-body-size`` (1 MiB unless raised; ``0`` for none, as in the command above) governs
it. Without the ``multipart`` extra a form POST is answered ``500`` with a plain-text line
saying so (and the log says what to install); ``PUT`` works either way.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from twisted_stream import StreamingResource, multipart_parts, request_body

log = Logger(namespace="examples.upload")


def _file_mode() -> int:
    """The mode ``open(name, "w")`` gives a new file: ``0666`` less the umask (read once,
    at import, while no other thread can see the umask changed and put back)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def safe_name(raw: bytes | str) -> str | None:
    """``raw`` as a file name of the upload directory, or None if it is not a plain one (a
    path, hidden, empty, too long, or not UTF-8)."""
    try:
        name = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        return None
    if not name or name.startswith(".") or len(name.encode()) > 255:
        return None
    if any(c in name for c in "/\\\0"):
        return None
    return name


async def store(directory: Path, name: str, chunks: AsyncIterable[bytes]) -> tuple[str, int]:
    """Write ``chunks`` to ``directory/name`` through a hidden temporary file renamed into
    place once all of it is written; its SHA-256 (hex) and size. On any failure the
    temporary file is removed and the failure raised (``IsADirectoryError`` when ``name``
    is a directory)."""
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
    os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 is for a private temporary file
    digest = hashlib.sha256()
    size = 0
    out = os.fdopen(fd, "wb")

    def write(chunk: bytes) -> None:  # in a thread: the disk never blocks the reactor
        out.write(chunk)
        digest.update(chunk)

    try:
        async for chunk in chunks:
            await deferToThread(write, chunk)
            size += len(chunk)
        await deferToThread(_close_synced, out)
        os.replace(temporary, directory / name)
    except BaseException:
        out.close()
        os.unlink(temporary)
        raise
    return digest.hexdigest(), size


def _close_synced(out: Any) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()


class Uploads(StreamingResource):
    """``PUT /<name>`` and ``POST /`` (multipart), stored in ``directory``."""

    isLeaf = True
    stream_body = True
    content_type = "text/plain; charset=utf-8"

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    async def render_PUT(self, request: Any) -> bytes:
        name = safe_name(request.postpath[0]) if len(request.postpath) == 1 else None
        if name is None:
            return _refuse(request, 400, "PUT /<name>: one plain file name")
        if (self.directory / name).is_dir():  # refused before the body is read
            return _is_a_directory(request, name)
        try:
            digest, size = await store(self.directory, name, request_body(request))
        except IsADirectoryError:  # made while the body arrived
            return _is_a_directory(request, name)
        request.setResponseCode(201)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"{digest}\n{size} bytes stored as {name}\n".encode()

    async def render_POST(self, request: Any) -> bytes:
        if request.postpath not in ([], [b""]):
            return _refuse(request, 404, "POST forms to /")
        lines = []
        async for part in multipart_parts(request):
            if part.filename is None:
                size = sum([len(chunk) async for chunk in part])
                lines.append(f"field {part.name} {size}")
                continue
            if part.filename == "" and await _is_empty(part):
                continue  # a file input left empty: browsers send an empty, unnamed part
            # A browser may send a path: its last segment is the name.
            name = safe_name(part.filename.replace("\\", "/").rsplit("/", 1)[-1])
            if name is None:
                return _refuse(request, 400, f"not a plain file name: {part.filename!r}")
            try:
                digest, size = await store(self.directory, name, part)
            except IsADirectoryError:
                return _is_a_directory(request, name)
            lines.append(f"{digest} {name} {size}")
        request.setResponseCode(201)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return "".join(line + "\n" for line in lines).encode()

    async def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"PUT /<name> a file, or POST / a multipart form.\n"


async def _is_empty(chunks: AsyncIterable[bytes]) -> bool:
    """Whether ``chunks`` hold no byte (reading at most the first that does)."""
    async for chunk in chunks:
        if chunk:
            return False
    return True


def _is_a_directory(request: Any, name: str) -> bytes:
    return _refuse(request, 409, f"{name} is a directory: choose another name")


def _refuse(request: Any, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return message.encode() + b"\n"


def upload_directory() -> Path:
    """``UPLOAD_DIR``, or a fresh temporary directory; logged."""
    found = os.environ.get("UPLOAD_DIR")
    directory = Path(found) if found else Path(tempfile.mkdtemp(prefix="uploads-"))
    directory.mkdir(parents=True, exist_ok=True)
    log.info("Storing uploads in {directory}", directory=str(directory))
    return directory


resource = Uploads(upload_directory())
