"""Event streams and progressive pages in a real browser (headless Chromium via Selenium).

Skipped when Chromium, chromedriver or selenium is missing, except under CI (``CI`` set),
where that is a failure: CI installs them (``apt-get install chromium chromium-driver`` and
the ``selenium`` package). Selenium calls block, so they run in a thread (``deferToThread``)
while the reactor keeps serving. Waits are on browser events where the page can signal them
(an ``EventSource`` message resolves a pending ``execute_async_script``), otherwise a bounded
wait on a DOM MutationObserver; never a fixed sleep.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource

from twisted_stream import State, stream, stream_for
from twisted_stream._demo import demo_resource
from twisted_stream._events._channel import Channel
from twisted_stream._events._event_stream import EventStreamResource

from ..browser import in_browser, open_browser
from ..conftest import leaf
from ..waiting import until


@pytest.fixture(scope="module")
def browser() -> Generator[Any, None, None]:
    """A headless Chromium session shared by this module's tests."""
    yield from open_browser("none")


WAIT_IN_PAGE = """
const check = new Function(arguments[0]);
const done = arguments[arguments.length - 1];
const test = () => {
  let value;
  try { value = check(); } catch (e) { return; }
  if (value) {
    observer.disconnect();
    document.removeEventListener("readystatechange", test);
    done(value);
  }
};
const observer = new MutationObserver(test);
observer.observe(document, {subtree: true, childList: true, characterData: true});
document.addEventListener("readystatechange", test);
test();
"""


async def browser_until(driver: Any, condition: str) -> Any:
    """Wait until the JavaScript ``condition`` (a function body) returns something truthy in
    the page: checked now and again on every DOM change and readyState change, so the wait
    ends on the event (the session's script timeout bounds it). Commands issued after a
    navigation run in the new document (chromedriver waits for it to commit)."""
    return await in_browser(driver.execute_async_script, WAIT_IN_PAGE, condition)


async def leave(driver: Any) -> None:
    """Navigate away so the page's connections close before the server goes."""
    await in_browser(driver.get, "about:blank")
    assert await in_browser(driver.execute_script, "return location.href") == "about:blank"


def site_root() -> Resource:
    """A root resource with an empty /favicon.ico (Chromium asks for it)."""
    root = Resource()
    root.putChild(b"favicon.ico", leaf(lambda request: b""))
    return root


# EventSource: delivery and reconnection.

EVENT_PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>events</title><link rel="icon" href="data:,">
</head><body>
<script>
window.got = [];
window.opens = 0;
window.waiters = [];
const source = new EventSource("/events");
source.onopen = () => { window.opens += 1; };
source.onmessage = (e) => {
  window.got.push([e.lastEventId, e.data]);
  window.waiters = window.waiters.filter((w) => {
    if (window.got.length < w.n) return true;
    w.done(window.got.slice());
    return false;
  });
};
window.waitFor = (n, done) => {
  if (window.got.length >= n) done(window.got.slice());
  else window.waiters.push({n: n, done: done});
};
</script>
<p>ready</p>
</body></html>
"""

WAIT_FOR = "window.waitFor(arguments[0], arguments[arguments.length - 1]);"


@pytest.mark.parametrize("drop", ["end", "abort"])
@pytest_twisted.ensureDeferred
async def test_event_source_receives_and_resumes_after_a_drop(
    browser: Any, server: Any, drop: str
) -> None:
    """The browser's EventSource receives published events; when the server drops the
    stream (cleanly, or by resetting the connection) the browser reconnects by itself with
    Last-Event-ID, gets the event it missed meanwhile from the channel's history, then the
    live ones: every event exactly once, in order."""
    channel = Channel()
    seen_ids: list[str | None] = []
    requests: list[Any] = []

    def events(request: Any, last_id: str | None) -> object:
        seen_ids.append(last_id)
        requests.append(request)
        return channel.subscribe(last_id)

    root = site_root()
    root.putChild(b"", leaf(lambda request: EVENT_PAGE))
    root.putChild(b"events", EventStreamResource(events, retry=100))
    server.serve(root)
    try:
        await in_browser(browser.get, server.url("/"))
        await until(lambda: channel.subscribers == 1, timeout=15, what="the EventSource")
        for data in ("a", "b", "c"):
            channel.publish(data)
        got = await in_browser(browser.execute_async_script, WAIT_FOR, 3)
        assert got == [["1", "a"], ["2", "b"], ["3", "c"]]

        handle = stream_for(requests[0])
        assert handle is not None
        if drop == "end":
            handle.end()
        else:
            handle.abort("dropped by the test")
        channel.publish("d")  # published while the browser is away
        await until(lambda: len(seen_ids) == 2, timeout=15, what="the reconnection")
        assert seen_ids == [None, "3"]
        await until(lambda: channel.subscribers == 1, what="the new subscription")
        channel.publish("e")
        got = await in_browser(browser.execute_async_script, WAIT_FOR, 5)
        assert got == [["1", "a"], ["2", "b"], ["3", "c"], ["4", "d"], ["5", "e"]]
        assert await in_browser(browser.execute_script, "return window.opens") == 2
    finally:
        await leave(browser)
    await until(lambda: channel.subscribers == 0, what="the browser's subscription to go")


@pytest_twisted.ensureDeferred
async def test_the_events_demo_page(browser: Any, server: Any) -> None:
    """The demo page shows the ticking clock, resumes the tick count after each server-side
    drop (Last-Event-ID), and a click on +1 reaches the page through the channel."""
    server.serve(demo_resource())  # the whole demo: the page's stylesheet and icon too
    try:
        await in_browser(browser.get, server.url("/events/?interval=0.1&drop=3"))
        await browser_until(
            browser,
            "const t = document.getElementById('tick');"
            "return t !== null && Number(t.textContent) >= 5",
        )
        resumed = await in_browser(
            browser.execute_script, "return document.getElementById('resumed').textContent"
        )
        assert resumed.startswith("(resumed after tick ")
        clock = await in_browser(
            browser.execute_script, "return document.getElementById('time').textContent"
        )
        assert clock.endswith("UTC")
        await in_browser(browser.execute_script, "document.getElementById('click').click()")
        await browser_until(browser, "return document.getElementById('count').textContent === '1'")
    finally:
        await leave(browser)


# Progressive rendering.


@pytest_twisted.ensureDeferred
async def test_a_page_renders_while_it_is_still_streaming(browser: Any, server: Any) -> None:
    """Lines of a streamed page show in the browser while the server holds the rest back
    (each next line waits on a gate the test opens only after seeing the previous one)."""
    gates = [Deferred[object]() for _ in range(3)]
    requests: list[Any] = []

    def page() -> Iterator[object]:
        yield '<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        yield "</head><body>\n"
        yield "<!--" + " " * 2048 + "-->\n"
        yield "<p>Prepare for launch</p>\n"
        for n, gate in zip((3, 2, 1), gates, strict=True):
            yield gate
            yield f"<p>Liftoff in {n}</p>\n"
        yield "<p>Lift off!</p></body></html>\n"

    def render(request: Any) -> Any:
        requests.append(request)
        return stream(request, page(), content_type="text/html; charset=utf-8")

    root = site_root()
    root.putChild(b"countdown", leaf(render))
    server.serve(root)
    try:
        await in_browser(browser.get, server.url("/countdown"))
        await browser_until(
            browser, "return document.body.innerText.includes('Prepare for launch')"
        )
        handle = stream_for(requests[0])
        assert handle is not None
        for n, gate in zip((3, 2, 1), gates, strict=True):
            text = await in_browser(browser.execute_script, "return document.body.innerText")
            assert f"Liftoff in {n}" not in text
            assert "Lift off!" not in text
            assert handle.state is State.WAITING, "the response is still open"
            gate.callback(None)
            await browser_until(
                browser, f"return document.body.innerText.includes('Liftoff in {n}')"
            )
        await browser_until(browser, "return document.body.innerText.includes('Lift off!')")
        await browser_until(browser, "return document.readyState === 'complete'")
    finally:
        await leave(browser)


@pytest.mark.parametrize("child", ["stream", "threaded"])
@pytest_twisted.ensureDeferred
async def test_the_countdown_example_renders_progressively(
    browser: Any, server: Any, child: str
) -> None:
    """examples/countdown.py (both ways) shows its first lines while the countdown is still
    running: "Prepare for launch" and early lines are on screen, "Lift off!" is not yet;
    then the page completes."""
    from examples import countdown

    root = site_root()
    root.putChild(b"countdown", countdown.resource)
    server.serve(root)
    url = server.url(f"/countdown/{child}?delay=0.2&count=10")
    try:
        await in_browser(browser.get, url)
        await browser_until(
            browser,
            "return document.body !== null && document.body.innerText.includes('Liftoff in 9')",
        )
        text = await in_browser(browser.execute_script, "return document.body.innerText")
        assert "Prepare for launch" in text
        assert "Lift off!" not in text, "the page rendered before the response ended"
        assert await in_browser(browser.execute_script, "return document.readyState") != (
            "complete"
        )
        await browser_until(browser, "return document.body.innerText.includes('Lift off!')")
        await browser_until(browser, "return document.readyState === 'complete'")
    finally:
        await leave(browser)
