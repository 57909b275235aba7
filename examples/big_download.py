"""A multi-gigabyte generated download with ``Content-Length`` and a filename.

    twistd -n streamweb --app examples.big_download:resource
    curl -OJ http://localhost:8080/            # saves big-download.bin, 4 GiB

Declaring the length lets the browser show progress and lets the client tell a complete
download from a cut one: if the generator produced a different number of bytes, twisted_stream
would abort the connection rather than end the response as if it were whole. ``?size=N`` (in
bytes) changes the size for one request. Byte ``i`` of the file is ``i % 256``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from twisted.web.resource import Resource

from twisted_stream import stream

SIZE = 4 * 1024**3
BLOCK = bytes(range(256)) * 256  # 64 KiB, reused for every write


def blocks(size: int) -> Iterator[bytes]:
    full, rest = divmod(size, len(BLOCK))
    for _ in range(full):
        yield BLOCK
    if rest:
        yield BLOCK[:rest]


class BigDownload(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> int:
        try:
            size = max(0, int(request.args[b"size"][0]))
        except (KeyError, ValueError):
            size = SIZE
        request.setHeader(b"content-disposition", b'attachment; filename="big-download.bin"')
        return stream(
            request, blocks(size), content_type="application/octet-stream", content_length=size
        )


resource = BigDownload()
