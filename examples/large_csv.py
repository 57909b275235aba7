"""A CSV of a million rows, generated while it is sent, in constant memory.

    twistd -n streamweb --app examples.large_csv:resource
    curl -o rows.csv http://localhost:8080/

Each row is produced only when the client has taken the previous ones (the engine pauses the
generator while the transport is full), so memory stays flat however many rows there are and
however slow the client is. ``?rows=N`` changes the row count for one request.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from twisted_stream import StreamingResource

ROWS = 1_000_000


class Echo:
    """A "file" whose ``write`` returns its argument, so ``csv.writer(Echo()).writerow(row)``
    returns the formatted line instead of storing it."""

    def write(self, line: str) -> str:
        return line


def csv_lines(rows: int) -> Iterator[str]:
    writer = csv.writer(Echo())
    yield writer.writerow(["id", "name", "amount", "note"])
    for i in range(1, rows + 1):
        yield writer.writerow([i, f"customer {i}", f"{i * 37 % 10000 / 100:.2f}", 'say "hi"'])


class LargeCsv(StreamingResource):
    isLeaf = True
    content_type = "text/csv; charset=utf-8"

    def render_GET(self, request: Any) -> Iterator[str]:
        try:
            rows = max(0, int(request.args[b"rows"][0]))
        except (KeyError, ValueError):
            rows = ROWS
        request.setHeader(b"content-disposition", b'attachment; filename="rows.csv"')
        return csv_lines(rows)


resource = LargeCsv()
