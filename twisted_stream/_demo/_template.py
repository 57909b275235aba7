"""The streamed ``twisted.web.template`` demo page (mounted at ``/template`` by the demo site).

A table whose rows come one at a time from a renderer yielding Deferreds: the browser shows
each row as soon as it is rendered, the next row is rendered only once the client has taken
the previous ones, and leaving the page stops the rendering. ``?rows=N&delay=S`` set the
number of rows (20) and the seconds between them (0.25).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.web.iweb import IRenderable
from twisted.web.resource import IResource
from twisted.web.server import Request
from twisted.web.template import Comment, Element, Tag, XMLString, renderer

from twisted_stream import ElementResource

from ._query import query_number

ROWS = 20
DELAY = 0.25
MAX_ROWS = 10_000
MAX_DELAY = 10.0

PAGE = XMLString(
    """\
<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
<head>
  <meta charset="utf-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1" />
  <link rel="stylesheet" href="/style.css" />
  <link rel="icon" href="/favicon.svg" />
  <title>Streamed template</title>
  <t:transparent t:render="padding" />
</head>
<body>
  <nav class="back"><a href="/" target="_top">← twisted_stream demo</a></nav>
  <h1>A streamed <code>twisted.web.template</code> page</h1>
  <p t:render="intro">Each row below comes from a renderer returning a Deferred; it is sent
  as soon as it is rendered (<t:slot name="rows" /> rows, one every <t:slot name="delay" /> s).
  Twisted's <code>renderElement</code> would queue the page regardless of the client and
  keep rendering after it left; here rendering follows the client and stops with it.</p>
  <table>
    <thead><tr><th>#</th><th>square</th><th>rendered after (s)</th></tr></thead>
    <tbody><tr t:render="rows"><td><t:slot name="n" /></td><td><t:slot name="square" /></td
      ><td><t:slot name="elapsed" /></td></tr></tbody>
  </table>
  <p t:render="done">Rendered <t:slot name="rows" /> rows in <t:slot name="elapsed" /> s.</p>
</body>
</html>
"""
)


class TablePage(Element):
    """The page: ``rows`` rows, each rendered ``delay`` seconds after the previous one."""

    loader = PAGE

    def __init__(
        self, rows: int = ROWS, delay: float = DELAY, reactor: IReactorTime | None = None
    ) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.count = rows
        self.delay = delay
        self.reactor = reactor
        self.started = time.monotonic()

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.2f}"

    @renderer
    def padding(self, request: object, tag: Tag) -> Comment:
        """Browsers hold back the first kilobyte or so before they render anything."""
        return Comment(" " * 2048)

    @renderer
    def rows(self, request: object, tag: Tag) -> Iterator[Deferred[Tag]]:
        """One Deferred per row, created only when the flattener gets to it."""
        for n in range(1, self.count + 1):
            row = tag.clone()
            yield deferLater(
                self.reactor,
                self.delay,
                lambda row=row, n=n: row.fillSlots(
                    n=str(n), square=str(n * n), elapsed=self._elapsed()
                ),
            )

    @renderer
    def done(self, request: object, tag: Tag) -> Tag:
        return tag.fillSlots(rows=str(self.count), elapsed=self._elapsed())

    @renderer
    def intro(self, request: object, tag: Tag) -> Tag:
        return tag.fillSlots(rows=str(self.count), delay=f"{self.delay:g}")


def _page_for(request: Request) -> IRenderable:
    rows = int(query_number(request, "rows", ROWS, 0.0, MAX_ROWS))
    delay = query_number(request, "delay", DELAY, 0.0, MAX_DELAY)
    return TablePage(rows, delay)


def template_demo() -> IResource:
    """The ``/template`` demo resource: a table streamed row by row."""
    return ElementResource(_page_for)
