"""What the live demos share (``twisted_stream._demo._watch``): admitting visitors' pages,
forgetting stale ones, the redirect to the demo's folder."""

from __future__ import annotations

import pytest
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from twisted_stream._demo import _watch
from twisted_stream._demo._watch import admit, busy_page, demo_tree, page_id, state_reports


class Entry:
    def __init__(self, stale: bool = False) -> None:
        self.is_stale = stale

    def stale(self, now: float) -> bool:
        return self.is_stale


def test_admit_watches_new_pages_up_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each admitted page gets a fresh id and an entry; past ``MAX_WATCHED`` the visitor is
    turned away with 503 and ``Retry-After: 10``; a stale entry is forgotten to make room."""
    monkeypatch.setattr(_watch, "MAX_WATCHED", 2)
    watched: dict[str, Entry] = {}
    first, second = (
        admit(DummyRequest([]), watched, Entry),
        admit(DummyRequest([]), watched, Entry),
    )
    assert first and second and first != second and set(watched) == {first, second}
    refused = DummyRequest([])
    assert admit(refused, watched, Entry) is None
    assert refused.responseCode == 503
    assert refused.responseHeaders.getRawHeaders(b"retry-after") == [b"10"]
    assert b"Too many visitors" in busy_page("Uploads")
    watched[first].is_stale = True
    third = admit(DummyRequest([]), watched, Entry)
    assert third is not None and set(watched) == {second, third}


def test_page_id_is_the_id_argument() -> None:
    """A data or state request names its page with ``?id=``; no argument is the empty id."""
    request = DummyRequest([])
    request.args = {b"id": [b"abc"]}
    assert page_id(request) == "abc"
    assert page_id(DummyRequest([])) == ""


def test_the_demo_folder_redirects_to_its_page() -> None:
    """``/upload`` answers 301 to ``upload/`` with the query kept, so the page's relative
    links resolve below the folder."""
    root = demo_tree(*(Resource() for _ in range(3)))  # type: ignore[no-untyped-call]
    request = DummyRequest([])
    request.uri = b"/upload?x=1"
    request.path = b"/upload"
    assert root.render(request) == b""
    assert request.responseCode == 301
    assert request.responseHeaders.getRawHeaders(b"location") == [b"upload/?x=1"]


class Reporting(Entry):
    def __init__(self, report: dict[str, object]) -> None:
        super().__init__()
        self.report = report

    def state(self) -> dict[str, object]:
        return self.report


def test_state_reports_end_with_the_transfer_or_a_gone_event() -> None:
    """The state feed sends the page's state and forgets the page once a report says the
    transfer ended; an unknown page, or one given up on, gets one ``gone`` event naming what
    is missing."""
    watched = {"a": Reporting({"outcome": "completed"})}
    events = list(state_reports(watched, "a", 0.2, "download", ended=lambda r: "outcome" in r))
    assert [e.data for e in events] == ['{"outcome": "completed"}']  # type: ignore[attr-defined]
    assert watched == {}
    (gone,) = state_reports(watched, "a", 0.2, "upload", ended=lambda r: False)
    assert gone.event == "gone" and "no such upload" in gone.data  # type: ignore[attr-defined]
    watched = {"b": Reporting({})}
    (gave_up,) = state_reports(
        watched, "b", 0.2, "download", ended=lambda r: False, given_up=lambda e, w: True
    )
    assert gave_up.event == "gone"  # type: ignore[attr-defined]
