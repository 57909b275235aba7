"""``twistd streamweb``: serve a directory, your resource, or the demo site, with streaming.

The dropin ``twisted/plugins/twisted_stream_streamweb.py`` points twistd here: :class:`Options`
parses the command line (every bad value is a one-line ``UsageError``) and :func:`makeService`
builds the service::

    twistd -n streamweb --port 8080                        # the built-in demo site
    twistd -n streamweb --path /srv/files --listing        # files, streamed with flow control
    twistd -n streamweb --app examples.countdown:resource  # your IResource at /

Every field of :class:`~twisted_stream.StreamSettings` is an option of the same name in
``--kebab-case`` (``--buffer-size``, ``--thread-pool-size``, ...), derived from the dataclass so
new settings appear without changes here.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import itertools
import math
import os
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.defer import DeferredList
from twisted.internet.error import CannotListenError
from twisted.python import usage
from twisted.web.resource import IResource

from ._ops._mounts import Mounts
from ._ops._prometheus import MetricsResource
from ._ops._shutdown import DEFAULT_GRACE_PERIOD, GracefulShutdown
from ._ops._site import StreamSite
from ._ops._status import StatusResource
from ._settings import StreamSettings

DEFAULT_PORT = "tcp:8080"

# Stream settings as options.


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


def _parse_float(text: str) -> float:
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
    float: _parse_float,
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


def _field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings (the string right after each field) of a dataclass."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = _plain(after.value.value)
    return docs


def setting_options(settings_class: type = StreamSettings) -> tuple[SettingOption, ...]:
    """The options mirroring the fields of ``settings_class`` (a dataclass).

    A field's help is its ``metadata["help"]``, else its attribute docstring. Fields whose
    type is not bool, int, float or str (or one of those or None) are not offered.
    """
    hints = typing.get_type_hints(settings_class)
    docs = _field_docs(settings_class)
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
        help_text = _plain(
            str(
                field.metadata.get("help")
                or docs.get(field.name)
                or f"The stream setting {field.name}."
            )
        )
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


# Checking values.


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _type_name(value: object) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def check_endpoint(description: str, option: str) -> str:
    """The server endpoint description for the text given to ``option``: a bare port number
    means ``tcp:N``. Raises ``UsageError`` for a malformed description or a port out of range.
    """
    text = description.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        text = f"tcp:{int(text)}"
    from twisted.internet import endpoints, reactor

    try:
        endpoint = endpoints.serverFromString(reactor, text)
    except Exception as e:
        raise usage.UsageError(
            f"--{option} {description!r} is not a valid endpoint: {_one_line(e)}"
        ) from None
    port = getattr(endpoint, "_port", None)
    if isinstance(port, int) and not 0 <= port <= 65535:
        raise usage.UsageError(
            f"--{option} {description!r}: port {port} is out of range (0-65535)"
        )
    address = getattr(endpoint, "_address", None)  # a unix socket's path
    if isinstance(address, str) and not os.path.isdir(os.path.dirname(os.path.abspath(address))):
        raise usage.UsageError(
            f"--{option} {description!r}: the socket's directory does not exist"
        )
    return text


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
            f"--app {spec!r}: importing {module_name} failed: {_one_line(e)}"
        ) from None
    except Exception as e:
        raise usage.UsageError(
            f"--app {spec!r}: importing {module_name} failed: {type(e).__name__}: {_one_line(e)}"
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
            f"--app {spec!r}: calling {attribute}() failed: {type(e).__name__}: {_one_line(e)}"
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
    cls = _file_resource_class()
    try:
        return typing.cast(IResource, cls(full, listing=listing))
    except (OSError, ValueError) as e:
        raise usage.UsageError(f"--path {path!r}: {_one_line(e)}") from None


def _file_resource_class() -> Any:
    import twisted_stream

    cls = getattr(twisted_stream, "FileResource", None)
    if cls is None:
        cls = importlib.import_module("twisted_stream._files._resource").FileResource
    return cls


# The options.


class Options(usage.Options):
    """The command line of ``twistd streamweb``."""

    synopsis = "[streamweb options]"
    longdesc = (
        "Serve HTTP with streaming responses and real flow control. With no --path and no "
        "--app it serves a demo site of live streaming examples. On SIGTERM it stops "
        "listening, gives open streams --grace-period seconds to finish, then ends event "
        "streams cleanly and aborts the rest."
    )

    optFlags: typing.ClassVar[list[list[str | None]]] = [
        ["listing", None, "With --path: list directories that have no index file."],
        [
            "display-tracebacks",
            None,
            "Show the traceback of a failed request to the client (a security risk: for "
            "development only).",
        ],
        *([o.option, None, o.help] for o in SETTING_OPTIONS if o.flag is not None),
    ]

    optParameters: typing.ClassVar[list[list[str | None]]] = [
        [
            "port",
            "p",
            None,
            "Listen on this port: a number (meaning tcp:N) or an endpoint description. "
            f"[default: {DEFAULT_PORT} when neither --port nor --listen is given]",
        ],
        ["path", None, None, "Serve the files under this directory at /."],
        [
            "app",
            None,
            None,
            "Serve the resource named module:attribute at / (an IResource, or a zero-argument "
            "callable returning one); the current directory is importable.",
        ],
        [
            "logfile",
            "l",
            None,
            "Write the access log (Combined Log Format) to this file; - for stdout. "
            "[default: the twistd log]",
        ],
        [
            "grace-period",
            None,
            str(DEFAULT_GRACE_PERIOD),
            "Seconds open streams get to finish at shutdown before they are closed.",
        ],
        ["metrics", None, None, "Serve Prometheus metrics of the streams at this path."],
        [
            "status",
            None,
            None,
            "Serve the live status page of the streams at this path (it shows client "
            "addresses: keep it private).",
        ],
        *([o.option, None, o.default, o.help] for o in SETTING_OPTIONS if o.flag is None),
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["listen"] = []
        self["headers"] = []

    def opt_listen(self, description: str) -> None:
        self["listen"].append(description)

    opt_listen.__doc__ = (
        "Listen on this endpoint (repeatable, and with --port): tcp:8080:interface=127.0.0.1, "
        "ssl:8443:privateKey=key.pem:certKey=cert.pem, unix:/run/web.sock; a bare number "
        "means tcp:N."
    )

    def opt_add_header(self, header: str) -> None:
        self["headers"].append(check_header(header))

    opt_add_header.__doc__ = (
        'Add the header "Name: value" to every response unless the resource sets that header '
        "itself (repeatable)."
    )

    def postOptions(self) -> None:
        self["ports"] = self._ports()
        self["settings"] = self._settings()
        self["grace-period"] = self._grace_period()
        self["logfile"] = self._logfile()
        self["root"] = self._root()
        self["mounts"] = self._mounts()

    def _ports(self) -> list[str]:
        given = [("port", self["port"])] if self["port"] is not None else []
        given += [("listen", description) for description in self["listen"]]
        if not given:
            given = [("port", DEFAULT_PORT)]
        return [check_endpoint(description, option) for option, description in given]

    def _settings(self) -> StreamSettings:
        values: dict[str, Any] = {}
        for setting in SETTING_OPTIONS:
            text = self[setting.option]
            if setting.flag is not None:
                if text:
                    values[setting.field] = setting.flag
                continue
            if text is None:
                continue
            try:
                values[setting.field] = setting.parse(text)
            except ValueError as e:
                raise usage.UsageError(f"--{setting.option}: {_one_line(e)}") from None
        try:
            return StreamSettings(**values)
        except (TypeError, ValueError) as e:
            message = _one_line(e)
            for setting in SETTING_OPTIONS:
                message = re.sub(rf"\b{setting.field}\b", f"--{setting.option}", message)
            raise usage.UsageError(message) from None

    def _grace_period(self) -> float:
        text = self["grace-period"]
        try:
            value = _parse_float(str(text))
        except ValueError as e:
            raise usage.UsageError(f"--grace-period: {_one_line(e)}") from None
        if value < 0:
            raise usage.UsageError(f"--grace-period: {text!r} is negative")
        return value

    def _logfile(self) -> str | None:
        value: str | None = self["logfile"]
        if value is None or value == "-":
            return value
        full = os.path.abspath(value)
        if os.path.isdir(full):
            raise usage.UsageError(f"--logfile {value!r}: is a directory")
        if not os.path.isdir(os.path.dirname(full)):
            raise usage.UsageError(f"--logfile {value!r}: its directory does not exist")
        return full

    def _mounts(self) -> dict[str, str]:
        """``{path: "metrics" | "status"}`` for --metrics and --status."""
        mounts: dict[str, str] = {}
        for option in ("metrics", "status"):
            path = self[option]
            if path is None:
                continue
            if not path.strip("/") or "//" in path.strip("/"):
                raise usage.UsageError(f"--{option} {path!r}: give a path like /_{option}")
            key = "/" + path.strip("/")
            if key in mounts:
                raise usage.UsageError(f"--metrics and --status cannot share the path {key!r}")
            mounts[key] = option
        return mounts

    def _root(self) -> IResource | None:
        path, app = self["path"], self["app"]
        if path is not None and app is not None:
            raise usage.UsageError("--path and --app cannot be used together")
        if self["listing"] and path is None:
            raise usage.UsageError("--listing only applies with --path")
        if path is not None:
            return file_resource(path, listing=bool(self["listing"]))
        if app is not None:
            return load_app(app)
        return None


# The service.


class _StdoutLog:
    """The access log file for ``--logfile -``: the process's real standard output (twistd
    redirects ``sys.stdout`` into its own log)."""

    def write(self, line: str) -> None:
        out = sys.__stdout__
        if out is not None:
            out.write(line)
            out.flush()

    def close(self) -> None:
        out = sys.__stdout__
        if out is not None:
            out.flush()


class StreamWebSite(StreamSite):
    """The site of ``twistd streamweb``: a :class:`StreamSite` with extra response headers
    and an access log that may go to standard output (``access_log="-"``)."""

    def __init__(
        self,
        resource: Any,
        *,
        settings: StreamSettings | None = None,
        access_log: str | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
        **kwargs: Any,
    ) -> None:
        log_path = None if access_log in (None, "-") else access_log
        super().__init__(resource, settings=settings, logPath=log_path, **kwargs)
        self.access_log = access_log
        self.extra_headers = tuple(headers)

    def startFactory(self) -> None:
        if self._logFile is not None:
            return  # restarted while a stop waited for streams: the log is still open
        super().startFactory()
        if self.access_log == "-":
            self._logFile = _StdoutLog()

    def stopFactory(self) -> None:
        # The ports stop listening before a graceful shutdown lets open streams end, and
        # their access-log lines are written when they end: close the log after the last.
        streams = [active.when_done() for active in self.active_streams]
        if not streams:
            super().stopFactory()
            return

        def ended(_: object) -> None:
            if self.numPorts == 0:
                self.stopFactory()

        DeferredList(streams).addCallback(ended)

    def getResourceFor(self, request: Any) -> Any:
        # Added before the resource renders, so one that sets the same header replaces it.
        for name, value in self.extra_headers:
            request.responseHeaders.addRawHeader(name, value)
        return super().getResourceFor(request)  # type: ignore[no-untyped-call]


class StreamWebService(MultiService):
    """What ``twistd streamweb`` runs: one port service per endpoint for ``site``, and the
    :class:`~twisted_stream._shutdown.GracefulShutdown` that drains it when stopped."""

    def __init__(self, site: StreamSite, ports: Sequence[str], grace_period: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.site = site
        self.ports = tuple(ports)
        # First child, so it is stopped last: after the ports stopped listening.
        self.shutdown = GracefulShutdown(site, grace_period)
        self.shutdown.setServiceParent(self)  # type: ignore[no-untyped-call]
        for description in self.ports:
            port = strports.service(description, site)
            port.setServiceParent(self)

    def privilegedStartService(self) -> None:
        # twistd listens here (before dropping privileges): a port that cannot be had ends
        # the process with one line, like a usage error, not a traceback.
        try:
            super().privilegedStartService()  # type: ignore[no-untyped-call]
        except CannotListenError as e:
            where = f"{e.interface or '*'}:{e.port}"
            raise SystemExit(
                f"twistd streamweb: cannot listen on {where}: {e.socketError}"
            ) from None
        except OSError as e:
            raise SystemExit(f"twistd streamweb: cannot listen: {_one_line(e)}") from None


def makeService(options: Options) -> StreamWebService:
    """Build the service ``twistd streamweb`` runs from parsed :class:`Options`."""
    root = options["root"]
    if root is None:
        from ._demo._site import demo_resource

        root = demo_resource()
    if options["mounts"]:
        kinds = {"metrics": MetricsResource, "status": StatusResource}
        root = Mounts(root, {path: kinds[kind]() for path, kind in options["mounts"].items()})
    site = StreamWebSite(
        root,
        settings=options["settings"],
        access_log=options["logfile"],
        headers=options["headers"],
    )
    site.displayTracebacks = bool(options["display-tracebacks"])
    return StreamWebService(site, options["ports"], options["grace-period"])
