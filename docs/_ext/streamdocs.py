"""Sphinx directives that build reference tables from the code, so they cannot drift:

- ``.. settings-table::``: every field of ``StreamSettings``, its default, its
  ``--kebab-case`` option and its help (``field(metadata={"help": ...})``);
- ``.. streamweb-options::``: the options of ``twistd streamweb`` other than the settings;
- ``.. public-names::``: every name of ``twisted_stream.__all__`` as a link into the API
  reference.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _cell(text: str) -> str:
    return " ".join(text.split())


class _TableDirective(SphinxDirective):
    has_content = False
    headers: tuple[str, ...] = ()
    widths: str = "auto"

    def rows(self) -> list[tuple[str, ...]]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {self.widths}", ""]
        for row in [self.headers, *self.rows()]:
            lines.append(f"   * - {row[0]}")
            lines.extend(f"     - {cell}" for cell in row[1:])
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="streamdocs"), 0, container)
        return list(container.children)


class SettingsTable(_TableDirective):
    headers = ("setting", "default", "option", "meaning")

    def rows(self) -> list[tuple[str, ...]]:
        from twisted_stream import StreamSettings
        from twisted_stream._ops._reflect import SETTING_OPTIONS

        options = {option.field: option for option in SETTING_OPTIONS}
        found = []
        for field in dataclasses.fields(StreamSettings):
            option = options[field.name]
            found.append(
                (
                    f"``{field.name}``",
                    f"``{field.default!r}``",
                    f"``--{option.option}``",
                    _cell(field.metadata.get("help", "")),
                )
            )
        return found


class StreamwebOptions(_TableDirective):
    headers = ("option", "meaning")

    def rows(self) -> list[tuple[str, ...]]:
        from twisted_stream._ops._options import Options
        from twisted_stream._ops._reflect import SETTING_OPTIONS

        settings = {option.option for option in SETTING_OPTIONS}
        found = []
        for long, short, *rest in [*Options.optFlags, *Options.optParameters]:
            if long in settings:
                continue
            value = "" if len(rest) == 1 else " VALUE"
            names = f"``--{long}{value}``" + (f", ``-{short}{value}``" if short else "")
            found.append((names, _cell(str(rest[-1]))))
        for name in ("listen", "add_header"):
            method = getattr(Options, f"opt_{name}")
            found.append((f"``--{name.replace('_', '-')} VALUE``", _cell(method.__doc__ or "")))
        found.append(
            ("``--buffer-size`` and every setting", "Each setting below, in ``--kebab-case``.")
        )
        return found


class PublicNames(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        import twisted_stream

        names = ", ".join(f":py:obj:`~twisted_stream.{name}`" for name in twisted_stream.__all__)
        container = nodes.container()
        self.state.nested_parse(StringList([names], source="streamdocs"), 0, container)
        return list(container.children)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("settings-table", SettingsTable)
    app.add_directive("streamweb-options", StreamwebOptions)
    app.add_directive("public-names", PublicNames)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
