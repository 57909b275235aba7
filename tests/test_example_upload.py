"""``examples/upload.py`` served and used as a user would (the other examples:
``test_examples.py``): PUT and multipart POST stored as they arrive, renamed into place only
once complete, nothing left by a failed upload, the site's body limit governing it."""

from __future__ import annotations

import hashlib
import importlib
import os
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


def test_its_docstring_command_lifts_the_limit_and_names_the_extra(upload: Any) -> None:
    """The command in the docstring serves any size (``--max-body-size 0``) and the
    install line names the ``multipart`` extra that POST forms need."""
    doc = upload.__doc__
    command = next(line for line in doc.splitlines() if "twistd" in line)
    assert "--max-body-size 0" in command
    assert "'.[multipart]'" in doc


@pytest_twisted.ensureDeferred
async def test_an_empty_file_input_is_skipped(server: Server, upload: Any, client: Any) -> None:
    """A form whose file input was left empty (a part with ``filename=""`` and no data, as
    browsers send it) stores nothing for it and answers 201 for the rest; an unnamed part
    that does hold data is still refused with 400."""
    directory = upload.resource.directory
    server.serve(upload.resource, settings=StreamSettings(max_body_size=0))

    def browser_form(data: bytes) -> bytes:
        return (
            b'--B\r\nContent-Disposition: form-data; name="title"\r\n\r\nnone\r\n'
            b'--B\r\nContent-Disposition: form-data; name="photo"; filename=""\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--B--\r\n"
        )

    headers = {b"Content-Type": [b"multipart/form-data; boundary=B"]}
    response = await within(client.post(server.url("/"), browser_form(b""), headers=headers))
    assert response.code == 201
    assert (await within(response.text())).splitlines() == ["field title 4"]
    assert listing(directory) == []
    response = await within(client.post(server.url("/"), browser_form(b"x"), headers=headers))
    assert response.code == 400
    assert listing(directory) == []


@pytest_twisted.ensureDeferred
async def test_a_name_that_is_a_directory_is_a_409_conflict(
    server: Server, upload: Any, client: Any
) -> None:
    """``PUT`` to a name that is an existing directory, or a form file part named like one,
    is answered ``409`` in plain text; no temporary file is left behind."""
    directory = upload.resource.directory
    (directory / "adir").mkdir()
    server.serve(upload.resource, settings=StreamSettings(max_body_size=0))
    response = await within(client.put(server.url("/adir"), data=b"x" * 1000))
    assert response.code == 409
    assert response.headers.getRawHeaders(b"content-type") == [b"text/plain; charset=utf-8"]
    assert (await within(response.text())) == "adir is a directory: choose another name\n"
    response = await within(
        client.post(server.url("/"), files={"f": ("adir", "application/octet-stream", b"y")})
    )
    assert response.code == 409
    assert listing(directory) == ["adir"]
    assert list((directory / "adir").iterdir()) == []


@pytest_twisted.ensureDeferred
async def test_stored_files_get_a_plain_files_mode(
    server: Server, upload: Any, client: Any
) -> None:
    """A stored file has the mode a plain file write gives (0666 less the umask), not the
    0600 of a temporary file."""
    server.serve(upload.resource)
    response = await within(client.put(server.url("/m.txt"), data=b"m"))
    assert response.code == 201
    umask = os.umask(0o022)
    os.umask(umask)
    mode = (upload.resource.directory / "m.txt").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask
    assert upload.FILE_MODE == 0o666 & ~umask
