"""Sphinx configuration of the twisted_stream documentation.

Build it as CI does (warnings are errors)::

    .venv/bin/pip install -e '.[docs]'
    .venv/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

project = "twisted_stream"
author = "the twisted_stream developers"
copyright = "the twisted_stream developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "streamdocs",
]
exclude_patterns = ["_build"]
nitpicky = False
suppress_warnings: list[str] = []

# The API reference: signatures short, types in the description, members in source order.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "undoc-members": False}
python_use_unqualified_type_names = True

html_theme = "furo"
html_title = "twisted_stream"
html_static_path: list[str] = []
html_show_sourcelink = False
