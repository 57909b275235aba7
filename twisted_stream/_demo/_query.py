"""What the demo pages share: the HTML frame (with :mod:`._style`'s stylesheet, icon and
back link) and the query parameters that make them quick or small (``?delay=``,
``?count=``, ``?rows=``, ``?size=``, ``?interval=``)."""

from __future__ import annotations

import re
from html import escape

from twisted.web.server import Request

from ._style import BACK_LINK, HEAD_LINKS

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


def page_head(title: str, *, back: bool = True, body_class: str = "") -> str:
    """The start of a demo page, up to and including the back link (``back``)."""
    klass = f' class="{body_class}"' if body_class else ""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{HEAD_LINKS}'
        f"<title>{escape(title)}</title></head><body{klass}>\n{BACK_LINK if back else ''}\n"
    )


def page(title: str, body: str, *, back: bool = True) -> str:
    """A complete HTML page with the demo's stylesheet, icon and back link."""
    return f"{page_head(title, back=back)}{body}\n</body></html>\n"
