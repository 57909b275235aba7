"""Checking the server endpoint descriptions given to ``--port`` and ``--listen``.

Twisted's ``serverFromString`` reports a malformed description in the words of its parser
(``invalid literal for int() with base 10: 'abc'``, ``_parseTCP() got an unexpected keyword
argument``). :func:`check_endpoint` reads the description first, in the grammar Twisted
documents (``type:arg:name=value``, a backslash escapes a colon; see
``twisted.internet.endpoints.serverFromString``), and says what is wrong in our words,
naming the option and the description; only what it cannot explain falls back to Twisted's
text.
"""

from __future__ import annotations

import os
import re

from twisted.internet import endpoints
from twisted.python import usage

from .._sources._stream import default_reactor

EXAMPLES = "tcp:8080, tcp:8080:interface=127.0.0.1, ssl:8443:privateKey=key.pem:certKey=cert.pem"
"""What a valid description looks like, for messages."""

_PARAMETERS = {
    "tcp": ("port", "interface", "backlog"),
    "tcp6": ("port", "backlog", "interface"),
    "ssl": (
        "port",
        "privateKey",
        "certKey",
        "sslmethod",
        "interface",
        "backlog",
        "extraCertChain",
        "dhParameters",
    ),
    "unix": ("address", "mode", "backlog", "lockfile"),
}
"""Parameters of the endpoint types twistd users meet most (Twisted's ``_parseTCP``,
``_TCP6ServerParser``, ``_parseSSL``, ``_parseUNIX``), in positional order."""

_WHOLE_NUMBERS = {"port", "backlog"}


def _split(description: str) -> list[str]:
    """The colon-separated parts of ``description``, with ``\\:`` unescaped."""
    parts = [""]
    escaped = False
    for char in description:
        if escaped:
            parts[-1] += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append("")
        else:
            parts[-1] += char
    return parts


def endpoint_problem(description: str) -> str | None:
    """What is wrong with ``description`` in words, or None if nothing we can see (Twisted
    has the last word: a type we do not know may still be a plugin's)."""
    if not description:
        return f"is empty: give a port number or an endpoint such as {EXAMPLES}"
    kind, *rest = _split(description)
    known = _PARAMETERS.get(kind)
    if known is None:
        return None
    values: dict[str, str] = {}
    positional = [part for part in rest if "=" not in part]
    for index, part in enumerate(positional):
        if index >= len(known):
            return f"too many parts: {part!r} is not a {kind} parameter (name=value)"
        values[known[index]] = part
    for part in rest:
        if "=" not in part:
            continue
        name, _, value = part.partition("=")
        if name not in known:
            return f"{kind} has no parameter {name!r} (it has {', '.join(known)})"
        if name in values:
            return f"{kind} parameter {name!r} is given twice"
        values[name] = value
    first = known[0]
    if first not in values or not values[first]:
        example = "unix:/run/web.sock" if kind == "unix" else f"{kind}:8080"
        return f"no {first} given, as in {example}"
    for name in _WHOLE_NUMBERS & values.keys():
        if not re.fullmatch(r"\d+", values[name]):
            return f"the {name} {values[name]!r} is not a whole number"
    port = values.get("port")
    if port is not None and not 0 <= int(port) <= 65535:
        return f"port {int(port)} is out of range (0-65535)"
    mode = values.get("mode")
    if mode is not None and not re.fullmatch(r"[0-7]+", mode):
        return f"the mode {mode!r} is not an octal number such as 660"
    address = values.get("address")
    if kind == "unix" and address is not None:
        if not os.path.isdir(os.path.dirname(os.path.abspath(address))):
            return "the socket's directory does not exist"
    return None


def _twisted_problem(description: str, error: Exception) -> str:
    """Twisted's own complaint, for what :func:`endpoint_problem` let through."""
    if isinstance(error, OSError) and error.filename is not None:
        reason = error.strerror or type(error).__name__
        if description.startswith("ssl:") and "privateKey=" not in description:
            # Twisted then looks for server.pem in the current directory.
            return f"no privateKey given, as in {EXAMPLES.rpartition(', ')[2]}"
        return f"cannot read {error.filename!r}: {reason}"
    text = " ".join(str(error).split()) or type(error).__name__
    if text.startswith("Unknown endpoint type"):
        kind = text.partition(":")[2].strip()
        return f"unknown endpoint type {kind}: use one such as {EXAMPLES}"
    return f"is not a valid endpoint: {text}"


def check_endpoint(description: str, option: str) -> str:
    """The server endpoint description for the text given to ``--option``: a bare port
    number means ``tcp:N``. Raises ``UsageError`` naming the option, the description and
    what is wrong with it."""
    text = description.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        number = int(text)
        if not 0 <= number <= 65535:
            raise usage.UsageError(
                f"--{option} {description!r}: port {number} is out of range (0-65535)"
            )
        text = f"tcp:{number}"
    problem = endpoint_problem(text)
    if problem is None:
        try:
            endpoints.serverFromString(default_reactor(None), text)
        except Exception as e:
            problem = _twisted_problem(text, e)
    if problem is not None:
        separator = " " if problem.startswith("is ") else ": "
        raise usage.UsageError(f"--{option} {description!r}{separator}{problem}")
    return text
