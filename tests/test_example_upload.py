"""``examples/upload.py`` served and used as a user would (the other examples:
``test_examples.py``): PUT and multipart POST stored as they arrive, renamed into place only
once complete, nothing left by a failed upload, the site's body limit governing it."""

from __future__ import annotations

import hashlib
import importlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread, deferToThread
from twisted.logger import globalLogPublisher

from twisted_stream import StreamSettings

from .conftest import Server
from .waiting import until, within

MIB = 1024 * 1024


@pytest.fixture
def upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The example module, loaded with ``UPLOAD_DIR`` set to a fresh directory."""
    monkeypatch.setenv("UPLOAD_DIR", str(tmp_path / "uploads"))
    import examples.upload

    yield importlib.reload(examples.upload)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest_twisted.ensureDeferred
async def test_put_is_renamed_into_place_only_when_complete(server: Server, upload: Any) -> None:
    """A chunked ``PUT /<name>``: while it arrives only a hidden temporary file exists; once
    complete the file is in place with exactly the bytes sent, and the answer is 201 with
    their SHA-256 as its first line."""
    directory = upload.resource.directory
    server.serve(upload.resource, settings=StreamSettings(max_body_size=0))
    data = bytes(range(256)) * 8192  # 2 MiB

    def put() -> bytes:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(
            b"PUT /report.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        half = len(data) // 2
        sock.sendall(b"%x\r\n%s\r\n" % (half, data[:half]))

        def partial() -> bool:
            names = listing(directory)
            return len(names) == 1 and names[0].startswith(".report.bin.")

        blockingCallFromThread(reactor, until, partial)
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data) - half, data[half:]))
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out

    response = await within(deferToThread(put), 30)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 ")
    assert body.split(b"\n")[0] == hashlib.sha256(data).hexdigest().encode()
    assert listing(directory) == ["report.bin"]
    assert (directory / "report.bin").read_bytes() == data


@pytest_twisted.ensureDeferred
async def test_a_failed_upload_leaves_nothing(server: Server, upload: Any) -> None:
    """An upload whose client leaves halfway leaves no file, temporary or not."""
    directory = upload.resource.directory
    server.serve(upload.resource)

    def put() -> None:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"PUT /gone.bin HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        sock.sendall(b"g" * 50000)
        blockingCallFromThread(reactor, until, lambda: bool(listing(directory)))
        sock.close()

    await within(deferToThread(put))
    await until(lambda: listing(directory) == [], what="the temporary file to go")


@pytest_twisted.ensureDeferred
async def test_the_site_limit_governs_it(server: Server, upload: Any, client: Any) -> None:
    """The example sets no limit of its own: a body over the site's ``max_body_size`` gets
    413 and nothing is stored; under it, it is stored."""
    directory = upload.resource.directory
    server.serve(upload.resource, settings=StreamSettings(max_body_size=MIB))
    response = await within(client.put(server.url("/big.bin"), data=b"b" * (MIB + 1)))
    assert response.code == 413
    assert listing(directory) == []
    response = await within(client.put(server.url("/small.bin"), data=b"s" * MIB))
    assert response.code == 201
    assert (await within(response.text())).startswith(hashlib.sha256(b"s" * MIB).hexdigest())
    assert listing(directory) == ["small.bin"]


@pytest_twisted.ensureDeferred
async def test_a_multipart_post_stores_each_file_part(
    server: Server, upload: Any, client: Any
) -> None:
    """``POST /`` with two files and a field: each file stored under its base name, one
    answer line per part."""
    directory = upload.resource.directory
    server.serve(upload.resource, settings=StreamSettings(max_body_size=0))
    first, second = b"1" * 300_000, bytes(range(256)) * 1000
    response = await within(
        client.post(
            server.url("/"),
            data={"title": "holiday"},
            files={"a": ("C:\\photos\\a.jpg", "image/jpeg", first), "b": ("b.bin", second)},
        )
    )
    assert response.code == 201
    lines = (await within(response.text())).splitlines()
    assert lines == [
        "field title 7",
        f"{hashlib.sha256(first).hexdigest()} a.jpg {len(first)}",
        f"{hashlib.sha256(second).hexdigest()} b.bin {len(second)}",
    ]
    assert (directory / "a.jpg").read_bytes() == first
    assert listing(directory) == ["a.jpg", "b.bin"]


@pytest.mark.parametrize("path", ["/.hidden", "/a/b", "/%2e%2e", "/", "/a%2Fb"])
@pytest_twisted.ensureDeferred
async def test_names_that_are_not_plain_are_refused(
    server: Server, upload: Any, client: Any, path: str
) -> None:
    """A PUT name that is hidden, a path, or empty is refused with 400, nothing stored."""
    server.serve(upload.resource)
    response = await within(client.put(server.url(path), data=b"x"))
    assert response.code == 400
    assert listing(upload.resource.directory) == []


def test_the_directory_is_upload_dir_or_a_fresh_one_logged(
    upload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``UPLOAD_DIR`` names the directory; without it a fresh temporary directory is made;
    either way it is logged at start."""
    seen: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "examples.upload":
            seen.append(str(event["directory"]))

    globalLogPublisher.addObserver(observe)
    try:
        monkeypatch.delenv("UPLOAD_DIR")
        fresh = upload.upload_directory()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert fresh.is_dir() and fresh.name.startswith("uploads-") and listing(fresh) == []
    fresh.rmdir()
    assert seen == [str(fresh)]
    assert upload.resource.directory.name == "uploads"
