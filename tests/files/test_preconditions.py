"""Tests for :mod:`twisted_stream._files._preconditions`: validators and conditional requests."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twisted_stream._files._preconditions import (
    Conditions,
    EntityTags,
    ETag,
    Validators,
    Verdict,
    evaluate,
    format_http_date,
    if_range_allows,
    metadata_etag,
    parse_etag,
    parse_etag_list,
    parse_http_date,
    strong_match,
    validators_at,
    weak_match,
)

RFC_EXAMPLE = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
CURRENT = Validators(ETag("abc"), RFC_EXAMPLE)
EARLIER = "Sat, 05 Nov 1994 08:49:37 GMT"
SAME = "Sun, 06 Nov 1994 08:49:37 GMT"
LATER = "Mon, 07 Nov 1994 08:49:37 GMT"

# --- entity tags ------------------------------------------------------------------------


def test_metadata_etag_is_strong_hex_of_mtime_size_inode() -> None:
    """The ETag is strong, ``"<mtime_ns>-<size>-<inode>"`` in lower-case hex."""
    tag = metadata_etag(0x1234, 5 << 30, 255)
    assert tag == ETag("1234-140000000-ff", weak=False)
    assert str(tag) == '"1234-140000000-ff"'


def test_metadata_etag_changes_with_each_input() -> None:
    """A change in mtime, size or inode gives a different ETag."""
    base = metadata_etag(1, 2, 3)
    assert len({base, metadata_etag(9, 2, 3), metadata_etag(1, 9, 3), metadata_etag(1, 2, 9)}) == 4


def test_etag_header_form() -> None:
    """Weak tags print with ``W/``, strong ones as a bare quoted string."""
    assert str(ETag("x", weak=True)) == 'W/"x"'
    assert str(ETag("")) == '""'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("*", EntityTags(True, ())),
        ('"a"', EntityTags(False, (ETag("a"),))),
        ('W/"a", "b"', EntityTags(False, (ETag("a", True), ETag("b")))),
        (' "a" ,, "b" ,', EntityTags(False, (ETag("a"), ETag("b")))),
        ('"a", *', EntityTags(True, (ETag("a"),))),
        ('""', EntityTags(False, (ETag(""),))),
        ('"a", junk, "b"', EntityTags(False, (ETag("a"),))),
        ("junk", EntityTags(False, ())),
        ('"a"b', EntityTags(False, ())),
        ('w/"a"', EntityTags(False, ())),
        ('"a b"', EntityTags(False, ())),
        ('"a', EntityTags(False, ())),
        ("", EntityTags(False, ())),
        ('"\xe9"', EntityTags(False, (ETag("\xe9"),))),
    ],
)
def test_parse_etag_list(value: str, expected: EntityTags) -> None:
    """Lists of tags and ``*`` parse; the list ends at the first malformed member."""
    assert parse_etag_list(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"a,b"', (ETag("a,b"),)),
        ('"a,b", W/"c, d"', (ETag("a,b"),)),  # a space is not an etagc: the list ends
        ('W/"x,y","z"', (ETag("x,y", True), ETag("z"))),
        ('",", ","', (ETag(","), ETag(","))),
    ],
)
def test_commas_inside_quotes_do_not_split_a_list(value: str, expected: tuple[ETag]) -> None:
    """Kind 1 (validators): a comma is a valid character of an opaque tag (RFC 9110
    §8.8.3, etagc includes %x2C), so a list is split only on commas between tags."""
    assert parse_etag_list(value).tags == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"a"', ETag("a")),
        (' W/"a" ', ETag("a", True)),
        ("a", None),
        ('"a", "b"', None),
        ("*", None),
    ],
)
def test_parse_single_etag(value: str, expected: ETag | None) -> None:
    """A single entity-tag parses; anything else is None."""
    assert parse_etag(value) == expected


@pytest.mark.parametrize(
    ("a", "b", "strong", "weak"),
    [
        (ETag("1", True), ETag("1", True), False, True),
        (ETag("1", True), ETag("2", True), False, False),
        (ETag("1", True), ETag("1"), False, True),
        (ETag("1"), ETag("1"), True, True),
    ],
)
def test_comparison_table_of_rfc_9110(a: ETag, b: ETag, strong: bool, weak: bool) -> None:
    """Strong and weak comparison follow the example table of RFC 9110 §8.8.3.2."""
    assert strong_match(a, b) is strong and weak_match(a, b) is weak


@given(st.text())
def test_parse_etag_list_never_raises(value: str) -> None:
    """Any text parses to an EntityTags, never an exception."""
    assert isinstance(parse_etag_list(value), EntityTags)


@given(
    st.lists(st.builds(ETag, st.from_regex(r"[\x21\x23-\x7e]*", fullmatch=True), st.booleans()))
)
def test_etag_list_round_trips(tags: list[ETag]) -> None:
    """Printing tags as a list and parsing it back gives the same tags."""
    assert parse_etag_list(", ".join(map(str, tags))) == EntityTags(False, tuple(tags))


# --- dates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun Nov 06 08:49:37 1994",
        " Sun, 06 Nov 1994 08:49:37 GMT ",
    ],
)
def test_parse_the_three_date_forms(value: str) -> None:
    """IMF-fixdate, RFC 850 and asctime forms of RFC 9110's example all parse."""
    assert parse_http_date(value, now=RFC_EXAMPLE) == RFC_EXAMPLE


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 0000 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
        "1994-11-06T08:49:37Z",
        "784111777",
        "Sun, \u0660\u0666 Nov 1994 08:49:37 GMT",
    ],
)
def test_invalid_dates_are_none(value: str) -> None:
    """Anything but a valid HTTP-date is None (the header is then ignored)."""
    assert parse_http_date(value) is None


def test_leap_second_folds_onto_59() -> None:
    """``:60`` is accepted as the last second of its minute."""
    assert parse_http_date("Sun, 06 Nov 1994 08:49:60 GMT") == RFC_EXAMPLE + 22


def test_two_digit_years_stay_within_fifty_years_ahead() -> None:
    """RFC 850 years more than 50 years ahead of now are read in the previous century."""
    now = calendar.timegm((2030, 1, 1, 0, 0, 0))
    assert parse_http_date("Friday, 01-Jan-80 00:00:00 GMT", now=now) == calendar.timegm(
        (2080, 1, 1, 0, 0, 0)
    )
    assert parse_http_date("Saturday, 01-Jan-81 00:00:00 GMT", now=now) == calendar.timegm(
        (1981, 1, 1, 0, 0, 0)
    )


def test_format_http_date() -> None:
    """Dates format as IMF-fixdate."""
    assert format_http_date(RFC_EXAMPLE) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert format_http_date(RFC_EXAMPLE + 0.9) == "Sun, 06 Nov 1994 08:49:37 GMT"


@given(st.integers(min_value=0, max_value=253402300799))
def test_format_then_parse_round_trips(seconds: int) -> None:
    """Every formatted date between 1970 and 9999 parses back to the same second."""
    assert parse_http_date(format_http_date(seconds)) == seconds


@given(st.text())
def test_parse_http_date_never_raises(value: str) -> None:
    """Any text gives an int or None."""
    assert parse_http_date(value) is None or isinstance(parse_http_date(value), int)


# --- Last-Modified and the Date of the response -----------------------------------------


def test_last_modified_is_never_after_the_date() -> None:
    """Kind 1 (validators): a modification time in the future (clock skew, a restored
    backup) is replaced by the response's Date (RFC 9110 §8.8.2.1); it is then weak."""
    future = validators_at(ETag("abc"), (RFC_EXAMPLE + 3600) * 10**9, RFC_EXAMPLE)
    assert (future.last_modified, future.strong_date) == (RFC_EXAMPLE, False)


@pytest.mark.parametrize(
    ("mtime_ns", "strong"),
    [
        ((RFC_EXAMPLE - 1) * 10**9 + 999_999_999, True),  # the second before the Date
        ((RFC_EXAMPLE - 3600) * 10**9, True),
        (RFC_EXAMPLE * 10**9, False),  # the very second of the Date
        (RFC_EXAMPLE * 10**9 + 999_999_999, False),
    ],
)
def test_last_modified_is_strong_one_second_before_the_date(mtime_ns: int, strong: bool) -> None:
    """Kind 1 (validators): Last-Modified is a strong validator only when it is at least one
    second before the Date of the same response (RFC 9110 §8.8.2.2): a file changed in the
    second of the response may change again within that second."""
    current = validators_at(ETag("abc"), mtime_ns, RFC_EXAMPLE)
    assert current.last_modified == mtime_ns // 10**9
    assert current.strong_date is strong


WEAK = Validators(ETag("abc"), RFC_EXAMPLE, strong_date=False)


@pytest.mark.parametrize(
    ("conditions", "verdict"),
    [
        (Conditions(if_modified_since=SAME), Verdict.PROCEED),
        (Conditions(if_modified_since=EARLIER), Verdict.PROCEED),
        (Conditions(if_modified_since=LATER), Verdict.NOT_MODIFIED),
        (Conditions(if_unmodified_since=SAME), Verdict.PRECONDITION_FAILED),
        (Conditions(if_unmodified_since=EARLIER), Verdict.PRECONDITION_FAILED),
        (Conditions(if_unmodified_since=LATER), Verdict.PROCEED),
        (Conditions(if_none_match='"abc"', if_modified_since=SAME), Verdict.NOT_MODIFIED),
    ],
)
def test_a_weak_last_modified_never_equals_a_date(
    conditions: Conditions, verdict: Verdict
) -> None:
    """Kind 1 (validators): a date equal to a weak Last-Modified cannot tell the version the
    client saw from a later one of the same second: If-Modified-Since does not give 304
    and If-Unmodified-Since fails (412); later or earlier dates compare as usual, and the
    ETag (nanosecond precise) still gives 304."""
    assert evaluate("GET", conditions, WEAK) is verdict


def test_if_range_needs_a_strong_date() -> None:
    """Kind 1 (validators): If-Range with a date is true only for an exact match with a
    strong Last-Modified (RFC 9110 §13.1.5); the current ETag still matches."""
    assert if_range_allows(SAME, CURRENT) is True
    assert if_range_allows(SAME, WEAK) is False
    assert if_range_allows('"abc"', WEAK) is True
    assert if_range_allows('W/"abc"', WEAK) is False


# --- evaluation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "conditions", "verdict"),
    [
        ("GET", Conditions(), Verdict.PROCEED),
        ("GET", Conditions(if_match='"abc"'), Verdict.PROCEED),
        ("GET", Conditions(if_match='"x", "abc"'), Verdict.PROCEED),
        ("GET", Conditions(if_match="*"), Verdict.PROCEED),
        ("GET", Conditions(if_match='"x"'), Verdict.PRECONDITION_FAILED),
        ("GET", Conditions(if_match='W/"abc"'), Verdict.PRECONDITION_FAILED),
        ("GET", Conditions(if_match="garbage"), Verdict.PRECONDITION_FAILED),
        ("GET", Conditions(if_unmodified_since=SAME), Verdict.PROCEED),
        ("GET", Conditions(if_unmodified_since=LATER), Verdict.PROCEED),
        ("GET", Conditions(if_unmodified_since=EARLIER), Verdict.PRECONDITION_FAILED),
        ("GET", Conditions(if_unmodified_since="not a date"), Verdict.PROCEED),
        ("GET", Conditions(if_none_match='"abc"'), Verdict.NOT_MODIFIED),
        ("HEAD", Conditions(if_none_match='W/"abc"'), Verdict.NOT_MODIFIED),
        ("GET", Conditions(if_none_match='"x", W/"abc"'), Verdict.NOT_MODIFIED),
        ("GET", Conditions(if_none_match="*"), Verdict.NOT_MODIFIED),
        ("GET", Conditions(if_none_match='"x"'), Verdict.PROCEED),
        ("POST", Conditions(if_none_match='"abc"'), Verdict.PRECONDITION_FAILED),
        ("GET", Conditions(if_modified_since=SAME), Verdict.NOT_MODIFIED),
        ("GET", Conditions(if_modified_since=LATER), Verdict.NOT_MODIFIED),
        ("GET", Conditions(if_modified_since=EARLIER), Verdict.PROCEED),
        ("GET", Conditions(if_modified_since="garbage"), Verdict.PROCEED),
        ("POST", Conditions(if_modified_since=SAME), Verdict.PROCEED),
    ],
)
def test_each_condition(method: str, conditions: Conditions, verdict: Verdict) -> None:
    """Each conditional header alone gives the RFC 9110 §13.1 answer."""
    assert evaluate(method, conditions, CURRENT) is verdict


def test_if_match_failure_wins_over_if_none_match() -> None:
    """Step 1 (If-Match) is evaluated before step 3 (If-None-Match): 412, not 304."""
    conditions = Conditions(if_match='"x"', if_none_match='"abc"')
    assert evaluate("GET", conditions, CURRENT) is Verdict.PRECONDITION_FAILED


def test_if_unmodified_since_is_ignored_with_if_match() -> None:
    """If-Unmodified-Since is not evaluated when If-Match is present."""
    conditions = Conditions(if_match='"abc"', if_unmodified_since=EARLIER)
    assert evaluate("GET", conditions, CURRENT) is Verdict.PROCEED


def test_if_modified_since_is_ignored_with_if_none_match() -> None:
    """If-Modified-Since is not evaluated when If-None-Match is present."""
    conditions = Conditions(if_none_match='"x"', if_modified_since=LATER)
    assert evaluate("GET", conditions, CURRENT) is Verdict.PROCEED


def test_if_unmodified_since_failure_wins_over_not_modified() -> None:
    """Step 2 (If-Unmodified-Since) is evaluated before step 4 (If-Modified-Since)."""
    conditions = Conditions(if_unmodified_since=EARLIER, if_modified_since=LATER)
    assert evaluate("GET", conditions, CURRENT) is Verdict.PRECONDITION_FAILED


HEADER = st.one_of(st.none(), st.text(), st.sampled_from(['"abc"', "*", SAME, EARLIER, LATER]))


@given(st.sampled_from(["GET", "HEAD", "POST", "PUT"]), st.builds(Conditions, *[HEADER] * 4))
def test_evaluate_never_raises(method: str, conditions: Conditions) -> None:
    """Any combination of headers gives a verdict; 304 only ever for GET and HEAD."""
    verdict = evaluate(method, conditions, CURRENT)
    assert isinstance(verdict, Verdict)
    if verdict is Verdict.NOT_MODIFIED:
        assert method in ("GET", "HEAD")


@given(
    st.lists(st.from_regex(r'W?/?"[a-z]{0,3}"', fullmatch=True)),
    st.lists(st.from_regex(r'W?/?"[a-z]{0,3}"', fullmatch=True)),
    st.booleans(),
)
def test_if_none_match_with_the_current_tag_is_304(
    before: list[str], after: list[str], weak: bool
) -> None:
    """A list that contains the current tag, weak or strong, anywhere, gives 304 on GET."""
    tag = str(ETag("abc", weak))
    tags = [t for t in [*before, tag, *after] if parse_etag(t) is not None]
    conditions = Conditions(if_none_match=", ".join(tags))
    assert evaluate("GET", conditions, CURRENT) is Verdict.NOT_MODIFIED


# --- If-Range ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        (None, True),
        ('"abc"', True),
        (' "abc" ', True),
        ('"stale"', False),
        ('W/"abc"', False),
        ('"abc", "x"', False),
        (SAME, True),
        (EARLIER, False),
        (LATER, False),
        ("garbage", False),
        ("", False),
    ],
)
def test_if_range(value: str | None, allowed: bool) -> None:
    """Ranges apply only when If-Range matches strongly or names the exact date."""
    assert if_range_allows(value, CURRENT) is allowed


@given(st.text())
def test_if_range_never_raises(value: str) -> None:
    """Any If-Range text gives a boolean."""
    assert isinstance(if_range_allows(value, CURRENT), bool)
