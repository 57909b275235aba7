"""What every page of the demo shares: one stylesheet (``/style.css``), a favicon
(``/favicon.svg``, also answering ``/favicon.ico``) and the link back to the index.

Every HTML page of the demo, the countdown's frames, the clock, the event and template
pages included, puts :data:`HEAD_LINKS` in its ``<head>`` and :data:`BACK_LINK` first in its
``<body>`` (first, so that pages that stream for a long time or forever show it at once).
"""

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import Request

STYLESHEET = b"""\
:root { --fg: #1d2430; --muted: #667085; --line: #d0d5dd; --panel: #f8f9fb;
        --accent: #1d4ed8; --ok: #12805c; --warn: #b54708; --bad: #c01048; }
body { font-family: system-ui, sans-serif; color: var(--fg); line-height: 1.45;
       max-width: 52em; margin: 0 auto; padding: 1.2em 1em 2em; }
body.frame { max-width: none; padding: .4em .8em; font-size: .95em; }
nav.back { font-size: .9em; margin-bottom: 1em; }
nav.back a { color: var(--muted); text-decoration: none; }
nav.back a:hover { color: var(--accent); text-decoration: underline; }
a { color: var(--accent); }
h1 { font-size: 1.7em; margin: .2em 0 .5em; }
h2 { font-size: 1.2em; margin: 1.4em 0 .4em; }
code { background: #eef1f5; padding: 0 .25em; border-radius: 3px; }
iframe { width: 100%; height: 18em; border: 1px solid var(--line); border-radius: 4px; }
table { border-collapse: collapse; }
td, th { border: 1px solid var(--line); padding: .2em .6em; }
td { text-align: right; font-variant-numeric: tabular-nums; }
ul.demos li { margin: .35em 0; }
.big { font-size: 2.5em; font-variant-numeric: tabular-nums; }
.muted, #status { color: var(--muted); }
.boxes { display: grid; grid-template-columns: repeat(auto-fit, minmax(11em, 1fr)); gap: .6em;
         margin: 1em 0; }
.box { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
       padding: .5em .8em; }
.box .label { display: block; color: var(--muted); font-size: .85em; }
.box .value { font-size: 1.6em; font-variant-numeric: tabular-nums; }
.pill { display: inline-block; padding: .1em .8em; border-radius: 1em; font-weight: 600;
        border: 2px solid currentColor; }
.pill.streaming { color: var(--ok); }
.pill.paused { color: var(--warn); background: #fffaeb; }
.pill.waiting, .pill.idle { color: var(--muted); }
.pill.done { color: var(--accent); }
progress { width: 100%; height: 1.2em; }
fieldset { border: 1px solid var(--line); border-radius: 6px; }
fieldset label { margin-right: 1em; white-space: nowrap; }
svg.timeline { width: 100%; height: auto; background: var(--panel); border: 1px solid var(--line);
               border-radius: 6px; }
svg.timeline .produced { stroke: var(--accent); fill: none; stroke-width: 1.5; }
svg.timeline .sent { stroke: var(--ok); fill: none; stroke-width: 1.5; stroke-dasharray: 5 3; }
svg.timeline .received { stroke: #7a5af8; fill: none; stroke-width: 1.5; }
svg.timeline .paused { fill: var(--warn); opacity: .18; }
svg.timeline text { fill: var(--muted); font-size: 11px; }
.key::before { content: ""; display: inline-block; width: .8em; height: .8em; margin: 0 .3em 0 0;
               border-radius: 2px; background: currentColor; vertical-align: -.05em; }
.key { margin-right: 1em; font-size: .9em; }
.key.produced { color: var(--accent); } .key.sent { color: var(--ok); }
.key.received { color: #7a5af8; } .key.paused { color: #f5c48a; }
"""
"""The demo's one stylesheet."""

FAVICON = b"""\
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">\
<rect width="32" height="32" rx="6" fill="#1d4ed8"/>\
<path d="M5 21 C10 21 10 11 16 11 S22 21 27 21" fill="none" stroke="#fff" stroke-width="3.5"\
 stroke-linecap="round"/></svg>
"""
"""The demo's icon: a wave, for a stream."""

HEAD_LINKS = (
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<link rel="stylesheet" href="/style.css"><link rel="icon" href="/favicon.svg">'
)
"""What every page's ``<head>`` links: the stylesheet and the icon."""

BACK_LINK = '<nav class="back"><a href="/" target="_top">&larr; twisted_stream demo</a></nav>'
"""The first thing in every page's ``<body>``: back to the index (out of any frame)."""


class StaticBytes(Resource):
    """A small constant file, cacheable for a day."""

    isLeaf = True

    def __init__(self, body: bytes, content_type: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.body = body
        self.content_type = content_type.encode("ascii")

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", self.content_type)
        request.setHeader(b"cache-control", b"public, max-age=86400")
        return self.body


def stylesheet() -> Resource:
    return StaticBytes(STYLESHEET, "text/css; charset=utf-8")


def favicon() -> Resource:
    return StaticBytes(FAVICON, "image/svg+xml")
