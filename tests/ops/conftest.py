"""Fixtures of the ``twistd streamweb`` tests."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A fresh current directory holding a uniquely named module for ``--app`` tests; it is
    not on sys.path (as under the installed twistd script). Yields (dir, module name)."""
    name = f"streamweb_app_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "from twisted.web.resource import Resource\n"
        "class Page(Resource):\n"
        "    isLeaf = True\n"
        "    def render_GET(self, request):\n"
        "        return b'page'\n"
        "resource = Page()\n"
        "class Holder:\n"
        "    resource = resource\n"
        "def make():\n"
        "    return Page()\n"
        "number = 42\n"
        "def returns_text():\n"
        "    return 'not a resource'\n"
        "def explodes():\n"
        "    raise RuntimeError('kaboom')\n"
        "def needs(argument):\n"
        "    return Page()\n"
    )
    (tmp_path / f"{name}_broken.py").write_text("raise RuntimeError('broken at import')\n")
    (tmp_path / f"{name}_needs_dep.py").write_text(f"import {name}_missing_dependency\n")
    monkeypatch.chdir(tmp_path)
    cwd = str(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", cwd)])
    yield tmp_path, name
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]
