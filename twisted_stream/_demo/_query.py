"""What the demo pages share: the HTML frame and the query parameters that make them quick
or small (``?delay=``, ``?count=``, ``?rows=``, ``?size=``, ``?interval=``)."""

from __future__ import annotations

import re
from html import escape

from twisted.web.server import Request

HTML = "text/html; charset=utf-8"

PADDING = "<!--" + " " * 2048 + "-->\n"
"""Sent first by progressive HTML pages: browsers hold back the first kilobyte or so of a
response before they render anything."""


def query_number(request: Request, name: str, default: float, low: float, high: float) -> float:
    """The query parameter ``name`` as a number clamped to [low, high]; ``default`` if it is
    missing or not a number."""
    raw = (request.args or {}).get(name.encode("ascii"), [b""])[0]
    try:
        value = float(raw)
    except ValueError:
        return default
    if value != value:  # NaN
        return default
    return min(max(value, low), high)


def query_size(request: Request, name: str, default: int, high: int) -> int:
    """A byte count like ``1500``, ``64K``, ``100M`` or ``4G`` (binary units), at most
    ``high``; ``default`` if missing or malformed."""
    raw = (request.args or {}).get(name.encode("ascii"), [b""])[0].decode("latin-1").strip()
    found = re.fullmatch(r"(\d+)\s*([kKmMgG]?)(?:i?[bB])?", raw)
    if found is None:
        return default
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[found.group(2).lower()]
    return min(int(found.group(1)) * scale, high)


def page(title: str, body: str) -> str:
    """A complete HTML page with the demo's style."""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.4}"
        "iframe{width:100%;height:18em;border:1px solid #999}code{background:#eee}</style>"
        f"</head><body>\n{body}\n</body></html>\n"
    )
