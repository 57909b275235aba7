"""The documentation in ``docs/`` (a Sphinx site; CI builds it with ``-W``, so a warning
fails): every public name in the API reference, every example with its page, the README's
links pointing at pages that exist."""

from __future__ import annotations

import gc
import hashlib
import re
import textwrap
from pathlib import Path
from typing import Any

import twisted_stream
import twisted_stream.testing
from twisted_stream.testing import StreamTestClient

from .conftest import logged_text

PROJECT = Path(__file__).resolve().parents[1]
DOCS = PROJECT / "docs"


def documented(module: str) -> set[str]:
    """The names of ``module`` that ``docs/api.rst`` documents with an autodoc directive."""
    api = (DOCS / "api.rst").read_text()
    name = r"\.(\w+)(?:\(.*\))?$"  # a signature may be given: ``Name()``
    directive = r"^\.\. auto(?:class|function|exception):: " + re.escape(module) + name
    return set(re.findall(directive, api, re.M))


def test_every_public_name_is_in_the_api_reference() -> None:
    """``docs/api.rst`` documents each name of ``twisted_stream.__all__`` and of
    ``twisted_stream.testing.__all__`` with an autodoc directive, so a new public name
    cannot be left out of the reference."""
    assert documented("twisted_stream") == set(twisted_stream.__all__)
    assert documented("twisted_stream.testing") == set(twisted_stream.testing.__all__)


def test_every_example_has_a_page() -> None:
    """Each example of ``examples/`` has a page under ``docs/examples/`` that includes its
    whole source and is in the examples' table of contents."""
    index = (DOCS / "examples" / "index.rst").read_text()
    examples = sorted(
        p
        for p in (PROJECT / "examples").iterdir()
        if p.suffix in (".py", ".tac") and p.name != "__init__.py"
    )
    assert examples
    for example in examples:
        page = DOCS / "examples" / f"{example.stem}.rst"
        assert page.exists(), example.name
        assert f".. literalinclude:: ../../examples/{example.name}" in page.read_text()
        assert re.search(rf"^   {example.stem}$", index, re.M), example.stem


def test_every_page_is_in_a_table_of_contents() -> None:
    """Every page of the guide and reference is reachable from the index."""
    index = (DOCS / "index.rst").read_text()
    for page in sorted(DOCS.glob("*.rst")) + sorted((DOCS / "guide").glob("*.rst")):
        name = page.relative_to(DOCS).with_suffix("").as_posix()
        if name != "index":
            assert re.search(rf"^   {re.escape(name)}$", index, re.M), name


def test_readme_links_into_the_docs() -> None:
    """The README keeps its set-up commands and links into the docs; every link to a
    ``docs/`` page names a file that exists."""
    readme = (PROJECT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)]+)\)", readme)
    assert len(links) >= 10
    for link in links:
        assert (PROJECT / link).exists(), link
    assert "docs/guide/commandline.rst" in links and "docs/api.rst" in links


def guide_block(page: str, marker: str) -> str:
    """The Python code block of ``docs/guide/<page>.rst`` that contains ``marker``,
    dedented."""
    text = (DOCS / "guide" / f"{page}.rst").read_text()
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text, re.M)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, marker
    return textwrap.dedent(found[0])


def test_the_uploads_pages_plain_resource_example_runs_and_handles_refusals(
    logged: list[dict[str, Any]],
) -> None:
    """The plain-``Resource`` example of the uploads page (``Checksum``), run as printed:
    it answers the SHA-256 of a body, and a body over its limit gets the server's 413
    with nothing logged as an unhandled error."""
    namespace: dict[str, Any] = {}
    exec(guide_block("uploads", "class Checksum(Resource)"), namespace)

    def serve() -> tuple[int | None, bytes, int | None]:
        with StreamTestClient(namespace["Checksum"]()) as client:
            response = client.post("/", b"hello")
            refused = client.post("/", b"x" * 10_000_001)
            return response.code, response.body, refused.code

    code, body, refused = serve()
    gc.collect()  # an unhandled failure in a Deferred is logged when it is collected
    assert (code, body) == (200, hashlib.sha256(b"hello").hexdigest().encode() + b"\n")
    assert refused == 413
    assert logged_text(logged) == []
