"""Stream settings as command-line options, reflected from the dataclass.

Every field of :class:`~twisted_stream.StreamSettings` is an option of the same name in
``--kebab-case`` (a flag for a ``bool``), with the field's ``metadata["help"]`` as its help:
settings added later appear without changes here. Only :func:`dataclasses.fields` and the
type hints are read, never source code.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable

from .._settings import StreamSettings


@dataclasses.dataclass(frozen=True)
class SettingOption:
    """One :class:`StreamSettings` field offered as a command-line option."""

    field: str
    """The dataclass field."""
    option: str
    """The option name without dashes (``buffer-size``; ``no-x`` for a flag turning off a
    setting that is on by default)."""
    parse: Callable[[str], object]
    """Turns the option's text into the field's value; raises ``ValueError``."""
    default: str | None
    """The field's default as option text (None: no default shown)."""
    help: str
    flag: object = None
    """For a ``bool`` field, the value the flag sets (the opposite of the default); None
    for an option that takes a value."""


def _parse_int(text: str) -> int:
    try:
        return int(text.strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


_BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def _parse_bool(text: str) -> bool:
    try:
        return _BOOLEANS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"{text!r} is not yes or no") from None


_PARSERS: dict[object, Callable[[str], object]] = {
    bool: _parse_bool,
    int: _parse_int,
    float: parse_float,
    str: str,
}


def _parser_for(annotation: object) -> Callable[[str], object] | None:
    """The text parser for a field of type ``annotation`` (``X`` or ``X | None``, with ``X``
    one of bool, int, float, str); None for any other type."""
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        rest = [m for m in members if m is not type(None)]
        if len(rest) != 1 or len(rest) == len(members):
            return None
        annotation, optional = rest[0], True
    base = _PARSERS.get(annotation)
    if base is None or not optional:
        return base

    def parse_optional(text: str) -> object:
        return None if text.strip().lower() in ("", "none", "off", "unlimited") else base(text)

    return parse_optional


def _plain(doc: str) -> str:
    """A reST docstring as one plain line."""
    doc = re.sub(r":\w+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], doc)
    return " ".join(doc.replace("``", "").split())


def setting_options(settings_class: type = StreamSettings) -> tuple[SettingOption, ...]:
    """The options mirroring the fields of ``settings_class`` (a dataclass).

    A field's help is its ``metadata["help"]`` (reST markup removed). Nothing is read from
    source code, so this works from an install that ships only ``.pyc`` files. Fields whose
    type is not bool, int, float or str (or one of those or None) are not offered.
    """
    hints = typing.get_type_hints(settings_class)
    found = []
    for field in dataclasses.fields(settings_class):
        parse = _parser_for(hints.get(field.name)) if field.init else None
        if parse is None:
            continue
        if field.default is not dataclasses.MISSING:
            default: object = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        help_text = _plain(str(field.metadata.get("help") or f"The stream setting {field.name}."))
        option = field.name.replace("_", "-")
        flag = None
        if hints.get(field.name) is bool:
            flag = not default
            if default:
                option = "no-" + option
                help_text += " (On by default: this turns it off.)"
        found.append(
            SettingOption(
                field=field.name,
                option=option,
                parse=parse,
                default=None if default is None or flag is not None else str(default),
                help=help_text,
                flag=flag,
            )
        )
    return tuple(found)


SETTING_OPTIONS = setting_options()
