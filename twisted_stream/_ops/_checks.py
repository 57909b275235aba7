"""Checking what ``twistd streamweb`` is given: headers, ``--app`` and ``--path``.

Each check returns the value to use or raises ``UsageError`` with a one-line message naming
the option and what is wrong, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import re
import sys

from twisted.internet.error import CannotListenError
from twisted.python import usage
from twisted.web.resource import IResource

from .._backends._redis_address import RedisAddress
from .._files._resource import FileResource


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _type_name(value: object) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def check_header(header: str) -> tuple[bytes, bytes]:
    """``"Name: value"`` as a raw header pair; raises ``UsageError`` if malformed."""
    name, colon, value = header.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
        raise usage.UsageError(
            f'--add-header {header!r}: expected "Name: value" with a valid header name'
        )
    if any(c in value for c in "\r\n\0"):
        raise usage.UsageError(f"--add-header {header!r}: the value has a line break")
    try:
        return name.encode("ascii"), value.encode("latin-1")
    except UnicodeEncodeError:
        raise usage.UsageError(f"--add-header {header!r}: the value is not latin-1 text") from None


def add_current_directory() -> None:
    """Put the current directory first on ``sys.path`` if it is not there, as ``python -m``
    does (the installed ``twistd`` script does not)."""
    cwd = os.getcwd()
    if not any(os.path.abspath(entry or os.curdir) == cwd for entry in sys.path):
        sys.path.insert(0, cwd)


def load_app(spec: str) -> IResource:
    """Import ``module:attribute`` (the attribute may be dotted) and return the resource it
    names: an ``IResource`` provider, or what a zero-argument callable returns. The current
    directory is importable. Raises ``UsageError`` naming what went wrong."""
    module_name, colon, attribute = spec.partition(":")
    module_name, attribute = module_name.strip(), attribute.strip()
    if not colon or not module_name or not attribute:
        raise usage.UsageError(
            f"--app {spec!r}: expected module:attribute, like examples.countdown:resource"
        )
    add_current_directory()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and (module_name + ".").startswith(e.name + "."):
            raise usage.UsageError(
                f"--app {spec!r}: no module named {e.name!r} in the current directory or on "
                "sys.path"
            ) from None
        raise usage.UsageError(
            f"--app {spec!r}: importing {module_name} failed: {one_line(e)}"
        ) from None
    except Exception as e:
        raise usage.UsageError(
            f"--app {spec!r}: importing {module_name} failed: {type(e).__name__}: {one_line(e)}"
        ) from None
    found: object = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise usage.UsageError(
                f"--app {spec!r}: {module_name} has no attribute {attribute!r}"
            ) from None
    if IResource.providedBy(found):
        return found
    if not callable(found):
        raise usage.UsageError(
            f"--app {spec!r}: {attribute} is of type {_type_name(found)}, not an IResource or "
            "a zero-argument callable returning one"
        )
    try:
        made = found()
    except Exception as e:
        raise usage.UsageError(
            f"--app {spec!r}: calling {attribute}() failed: {type(e).__name__}: {one_line(e)}"
        ) from None
    if not IResource.providedBy(made):
        raise usage.UsageError(
            f"--app {spec!r}: {attribute}() returned an object of type {_type_name(made)}, "
            "not an IResource"
        )
    return made


def file_resource(path: str, *, listing: bool) -> IResource:
    """The ``--path`` root: ``FileResource`` serving the directory ``path``."""
    full = os.path.abspath(path)
    if not os.path.exists(full):
        raise usage.UsageError(f"--path {path!r}: no such directory")
    if not os.path.isdir(full):
        raise usage.UsageError(f"--path {path!r}: not a directory")
    try:
        return FileResource(full, listing=listing)
    except (OSError, ValueError) as e:
        raise usage.UsageError(f"--path {path!r}: {one_line(e)}") from None


def worker_count(text: str) -> int:
    """``--workers``: a whole number, 0 meaning one per CPU this process may use."""
    try:
        count = int(str(text).strip())
    except ValueError:
        raise usage.UsageError(f"--workers {text!r} is not a whole number") from None
    if count < 0:
        raise usage.UsageError(f"--workers {text!r} is negative")
    if count == 0:
        getaffinity = getattr(os, "sched_getaffinity", None)
        count = len(getaffinity(0)) if getaffinity is not None else os.cpu_count() or 1
    return count


def check_channel_backend(url: str | None) -> str | None:
    """``--channel-backend``: a well-formed ``redis://`` URL (reachability is checked when
    the server starts)."""
    if url is None:
        return None
    try:
        RedisAddress.parse(url)
    except ValueError as e:
        raise usage.UsageError(f"--channel-backend: {one_line(e)}") from None
    return url


def listen_failure(error: Exception) -> BaseException:
    """What to raise when a port cannot be had at startup: ``SystemExit`` with one line (as
    for a usage error, not a traceback) for a listening error, else ``error`` itself."""
    if isinstance(error, CannotListenError):
        where = f"{error.interface or '*'}:{error.port}"
        return SystemExit(f"twistd streamweb: cannot listen on {where}: {error.socketError}")
    if isinstance(error, OSError):
        return SystemExit(f"twistd streamweb: cannot listen: {one_line(error)}")
    return error
