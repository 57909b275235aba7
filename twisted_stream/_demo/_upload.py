"""The upload demo: send a file and watch both ends of the upload live.

:func:`upload_demo` returns a resource to mount anywhere (the demo site uses ``/upload/``):

- ``./``: a page with a file input; it sends the file with ``XMLHttpRequest`` (``PUT``),
  shows the browser's own upload progress (``xhr.upload.onprogress``) beside the bytes the
  server has received so far, live from ``state``, and whether the server's reader holds the
  client back; the server reads at a speed you choose, so you can watch backpressure hold
  the browser's progress just ahead of the server's count;
- ``data?id=ID&speed=N``: ``PUT`` the file: the body is read as it arrives
  (``stream_body``), at most ``N`` bytes a second (0: as fast as it comes), hashed and
  dropped; the answer is its size and SHA-256 as JSON;
- ``state?id=ID``: an event stream of the server's view of that upload five times a second:
  bytes received, whether reading is paused for the reader, and at the end the size,
  digest, or the error.

Only the public API is used (``StreamingResource``, ``request_body``,
``EventStreamResource``). An upload is known by a random id its page is served with; at most
:data:`~._watch.MAX_WATCHED` are watched at once (more are refused with 503). The resource sets its
own ``max_body_size`` (:data:`MAX_SIZE`): the body is never stored, so the site's limit for
buffered bodies does not have to apply.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Request

from twisted_stream import (
    EventStreamResource,
    RequestBody,
    RequestBodyError,
    StreamingResource,
    request_body,
)

from ._query import HTML, page, query_number
from ._watch import admit, busy_page, demo_tree, page_id, state_reports

MAX_SIZE = 16 * 1024**3
"""The most bytes one upload may send."""
STATE_INTERVAL = 0.2
"""Seconds between two reports of the server's view."""
WAIT_FOR_UPLOAD = 600.0
"""Seconds a page's id stays valid without an upload (the user picks a file meanwhile)."""


class Watched:
    """One page's upload as the server sees it."""

    def __init__(self) -> None:
        self.body: RequestBody | None = None
        self.result: dict[str, Any] | None = None
        self.created = time.monotonic()

    def stale(self, now: float) -> bool:
        return now - self.created > WAIT_FOR_UPLOAD

    def state(self) -> dict[str, Any]:
        body = self.body
        report: dict[str, Any] = {"started": body is not None}
        if body is not None:
            report.update(
                received=body.bytes_received,
                length=body.length,
                paused=body.paused,
                complete=body.complete,
            )
        if self.result is not None:
            report["result"] = self.result
        return report


class _Data(StreamingResource):
    isLeaf = True
    stream_body = True
    max_body_size = MAX_SIZE

    def __init__(self, watched: dict[str, Watched]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._watched = watched

    async def render_PUT(self, request: Request) -> bytes:
        from twisted.internet import reactor

        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        entry = self._watched.get(page_id(request))
        if entry is None or entry.body is not None:
            request.setResponseCode(409 if entry is not None else 404)
            return b'{"error": "open the demo page to get an upload of your own"}\n'
        speed = query_number(request, "speed", 0, 0, 1e12)
        body = entry.body = request_body(request)
        digest = hashlib.sha256()
        started = time.monotonic()
        try:
            async for chunk in body:
                digest.update(chunk)
                if speed:  # a slow reader: behind by more than it may be, it waits
                    behind = body.bytes_received / speed - (time.monotonic() - started)
                    if behind > 0:
                        await deferLater(reactor, behind, lambda: None)
        except RequestBodyError as e:
            entry.result = {"error": str(e)}
            raise
        entry.result = {"size": body.bytes_received, "sha256": digest.hexdigest()}
        return json.dumps(entry.result).encode() + b"\n"


class _State(EventStreamResource):
    """The server's view of one page's upload, as events, until it has ended."""

    def __init__(self, watched: dict[str, Watched]) -> None:
        super().__init__(retry=1000)
        self._watched = watched

    def events(self, request: Request, last_event_id: str | None) -> object:
        interval = query_number(request, "interval", STATE_INTERVAL, 0.05, 5.0)
        return state_reports(
            self._watched, page_id(request), interval, "upload", ended=lambda r: "result" in r
        )


class _Page(Resource):
    isLeaf = True

    def __init__(self, watched: dict[str, Watched]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._watched = watched

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", HTML.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        key = admit(request, self._watched, Watched)
        if key is None:
            return busy_page("Uploads")
        speed = query_number(request, "speed", 1_000_000, 0, 1e12)
        body = _BODY.replace("__ID__", json.dumps(key)).replace("__SPEED__", f"{speed:g}")
        return page("Uploads", body).encode("utf-8")


def upload_demo() -> Resource:
    """The upload demo resource (see the module docstring)."""
    watched: dict[str, Watched] = {}
    return demo_tree(_Page(watched), _Data(watched), _State(watched))


_BODY = """<h1>Uploads, live</h1>
<p>Pick a file: this page sends it to the server, which reads the body only as fast as its
reader takes it (here, at the speed you choose below) and drops it after hashing it. The
server stops reading the connection while its reader is behind, so the browser's own
progress stays just ahead of what the server has received: the operating system's buffers
apart, nothing piles up, and nothing is written to disk.</p>
<fieldset id="speeds"><legend>The server reads</legend>
<label><input type="radio" name="speed" value="0"> as fast as it comes</label>
<label><input type="radio" name="speed" value="10000000"> 10 MB/s</label>
<label><input type="radio" name="speed" value="1000000"> 1 MB/s</label>
<label><input type="radio" name="speed" value="100000"> 100 KB/s</label>
</fieldset>
<p><input type="file" id="file"> <button id="send" disabled>Upload</button></p>
<progress id="progress" max="1" value="0"></progress>
<div class="boxes">
<div class="box"><span class="label">sent by this browser</span>
<span class="value" id="sent">-</span></div>
<div class="box"><span class="label">received by the server</span>
<span class="value" id="received">-</span></div>
<div class="box"><span class="label">the server's reader</span>
<span class="value"><span class="pill idle" id="reading">not started</span></span></div>
</div>
<p id="outcome"></p>
<script>
"use strict";
(function () {
  var id = __ID__, speed = Number("__SPEED__"), sentBytes = 0, total = 0;
  var UNITS = ["KB", "MB", "GB", "TB"];
  function three(v) { return v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0); }
  function bytes(n) {
    if (n < 1000) return n.toFixed(0) + " B";
    for (var i = 0; i < UNITS.length; i++) {
      n /= 1000;
      if (Number(three(n)) < 1000 || i === UNITS.length - 1) return three(n) + " " + UNITS[i];
    }
  }
  function text(key, value) { document.getElementById(key).textContent = value; }
  function pill(kind, label) {
    var node = document.getElementById("reading");
    node.className = "pill " + kind;
    node.textContent = label;
  }
  Array.prototype.forEach.call(document.querySelectorAll("#speeds input"), function (input) {
    input.checked = Number(input.value) === speed;
    input.onchange = function () { speed = Number(input.value); };
  });
  var file = document.getElementById("file"), send = document.getElementById("send");
  file.onchange = function () { send.disabled = !file.files.length; };
  function watch() {
    var feed = new EventSource("state?id=" + encodeURIComponent(id));
    feed.onmessage = function (event) {
      var state = JSON.parse(event.data);
      if (!state.started) return;
      text("received", bytes(state.received));
      if (state.result) {
        feed.close();
        if (state.result.error) {
          pill("paused", "failed");
          text("outcome", "The upload failed: " + state.result.error);
        } else {
          pill("done", "done");
          text("outcome", "The server received " + bytes(state.result.size) +
               "; SHA-256 " + state.result.sha256 + ".");
          document.getElementById("outcome").dataset.sha256 = state.result.sha256;
        }
        return;
      }
      if (state.paused) pill("paused", "behind: the client is held back");
      else pill("streaming", "reading");
    };
    feed.addEventListener("gone", function () { feed.close(); });
  }
  send.onclick = function () {
    var chosen = file.files[0];
    send.disabled = file.disabled = true;
    total = chosen.size;
    var progress = document.getElementById("progress");
    progress.max = Math.max(1, total);
    watch();
    var xhr = new XMLHttpRequest();
    xhr.open("PUT", "data?id=" + encodeURIComponent(id) + "&speed=" + speed);
    xhr.upload.onprogress = function (event) {
      sentBytes = event.loaded;
      progress.value = sentBytes;
      text("sent", bytes(sentBytes));
    };
    xhr.upload.onload = function () {
      progress.value = total;
      text("sent", bytes(total));
    };
    xhr.onerror = function () { text("outcome", "The upload failed."); };
    xhr.send(chosen);
  };
})();
</script>
"""
