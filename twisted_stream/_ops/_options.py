"""The command line of ``twistd streamweb``: :class:`Options`, and :class:`TwistdOptions`,
what twistd parses it with."""

from __future__ import annotations

import os
import re
import sys
import typing
from typing import Any

from twisted.python import usage
from twisted.web.resource import IResource

from .._proxy._resource import ProxyResource
from .._settings import StreamSettings
from ._checks import (
    check_channel_backend,
    check_header,
    file_resource,
    load_app,
    one_line,
    worker_count,
)
from ._endpoints import check_endpoint
from ._reflect import SETTING_OPTIONS, parse_float
from ._shutdown import DEFAULT_CLOSE_TIMEOUT, DEFAULT_GRACE_PERIOD

DEFAULT_PORT = "tcp:8080"
HELP_HINT = "Run 'twistd streamweb --help' for the options."
"""The line after a usage error."""
EX_USAGE = 2
"""Exit status of a usage error (as getopt-style tools and ``argparse`` use)."""
_TWISTD_OPTIONS = {"-n", "--nodaemon", "--pidfile", "-y", "--python", "--umask", "--reactor"}
"""twistd's own options users put after ``streamweb`` by mistake."""


class Options(usage.Options):
    """The command line of ``twistd streamweb``."""

    synopsis = "[streamweb options]"
    longdesc = (
        "Serve HTTP with streaming responses and real flow control. With no --path and no "
        "--app it serves a demo site of live streaming examples. On SIGTERM it stops "
        "listening, gives open streams and uploads --grace-period seconds to finish, then "
        "ends event streams cleanly and aborts the rest."
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
            "Seconds open streams and uploads get to finish at shutdown before they are closed.",
        ],
        [
            "close-timeout",
            None,
            str(DEFAULT_CLOSE_TIMEOUT),
            "Seconds closed sources then get to be released (a threaded one stuck in a "
            "blocking call is left behind and named in the log).",
        ],
        ["metrics", None, None, "Serve Prometheus metrics of the streams at this path."],
        [
            "workers",
            None,
            "1",
            "Worker processes serving the same ports (0: one per CPU); 1 serves in this "
            "process. SIGHUP replaces them one at a time.",
        ],
        [
            "channel-backend",
            None,
            None,
            "Share named Channels across processes and hosts through this Redis server "
            "(redis://host:port/db).",
        ],
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
        self["proxy"] = []

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

    def opt_proxy(self, spec: str) -> None:
        self["proxy"].append(spec)

    opt_proxy.__doc__ = (
        "Proxy to an upstream HTTP server with flow control both ways: a URL serves it at / "
        "(instead of --path or --app); /PATH=URL mounts it at /PATH in front of what is "
        "served (repeatable)."
    )

    def parseArgs(self, *args: str) -> None:
        if args:
            raise usage.UsageError(
                f"unexpected argument {args[0]!r}: every value follows its option, as in "
                "--path DIR"
            )

    def postOptions(self) -> None:
        self["ports"] = self._ports()
        self["settings"] = self._settings()
        self["grace-period"] = self._seconds("grace-period")
        self["close-timeout"] = self._seconds("close-timeout")
        self["logfile"] = self._logfile()
        self["proxies"] = self._proxies()
        self["root"] = self._root()
        self["mounts"] = self._mounts()
        self["workers"] = worker_count(self["workers"])
        self["channel-backend"] = check_channel_backend(self["channel-backend"])

    def parseOptions(self, options: list[str] | None = None) -> None:
        # Kept to start worker processes with the same command line.
        self["argv"] = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)  # type: ignore[no-untyped-call]

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
                raise usage.UsageError(f"--{setting.option}: {one_line(e)}") from None
        try:
            return StreamSettings(**values)
        except (TypeError, ValueError) as e:
            message = one_line(e)
            for setting in SETTING_OPTIONS:
                message = re.sub(rf"\b{setting.field}\b", f"--{setting.option}", message)
            raise usage.UsageError(message) from None

    def _seconds(self, option: str) -> float:
        text = self[option]
        try:
            value = parse_float(str(text))
        except ValueError as e:
            raise usage.UsageError(f"--{option}: {one_line(e)}") from None
        if value < 0:
            raise usage.UsageError(f"--{option}: {text!r} is negative")
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
        """``{path: "metrics" | "status" | "proxy"}`` for --metrics, --status and each
        --proxy mounted at a path."""
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
        for key in self["proxies"]:
            if key == "/":
                continue
            if key in mounts:
                raise usage.UsageError(
                    f"--proxy and --{mounts[key]} cannot share the path {key!r}"
                )
            mounts[key] = "proxy"
        return mounts

    def _proxies(self) -> dict[str, ProxyResource]:
        """``{path: ProxyResource}`` for the --proxy options (``/`` for one given as a bare
        URL)."""
        proxies: dict[str, ProxyResource] = {}
        for spec in self["proxy"]:
            path, url = proxy_spec(spec)
            if path in proxies:
                where = "at /" if path == "/" else f"at {path!r}"
                raise usage.UsageError(f"--proxy {spec!r}: another --proxy is already {where}")
            try:
                proxies[path] = ProxyResource(url)
            except ValueError as e:
                raise usage.UsageError(f"--proxy {spec!r}: {one_line(e)}") from None
        return proxies

    def _root(self) -> IResource | None:
        path, app = self["path"], self["app"]
        if path is not None and app is not None:
            raise usage.UsageError("--path and --app cannot be used together")
        proxy: ProxyResource | None = self["proxies"].get("/")
        if proxy is not None and (path is not None or app is not None):
            given = "--path" if path is not None else "--app"
            raise usage.UsageError(
                f"--proxy {proxy.upstream.url} serves / and cannot be used with {given}; "
                "mount it at a path instead: --proxy /PATH=URL"
            )
        if proxy is not None:
            return proxy
        if self["listing"] and path is None:
            raise usage.UsageError("--listing only applies with --path")
        if path is not None:
            return file_resource(path, listing=bool(self["listing"]))
        if app is not None:
            return load_app(app)
        return None


def proxy_spec(spec: str) -> tuple[str, str]:
    """``(path, url)`` of a --proxy value: ``URL`` is at ``/``, ``/PATH=URL`` at ``/PATH``;
    ``UsageError`` for a path that is not one."""
    if not spec.startswith("/"):
        return "/", spec
    path, equals, url = spec.partition("=")
    segments = path.strip("/")
    if not equals or not url:
        raise usage.UsageError(
            f"--proxy {spec!r}: give /PATH=URL, as in /api=http://127.0.0.1:9000"
        )
    if not segments or "//" in segments:
        raise usage.UsageError(f"--proxy {spec!r}: give a path like /api before the =")
    return "/" + segments, url


class TwistdOptions(Options):
    """:class:`Options` as twistd uses them (``twisted_stream.tap.Options``).

    twistd answers a ``UsageError`` with the whole help text and then the message; here a
    usage error instead writes one line naming the bad option and value, then
    :data:`HELP_HINT`, to standard error and exits with status :data:`EX_USAGE`.
    ``--help`` still prints the whole help.
    """

    def parseOptions(self, options: list[str] | None = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            sys.stderr.write(f"twistd streamweb: {usage_message(e)}\n{HELP_HINT}\n")
            sys.stderr.flush()
            raise SystemExit(EX_USAGE) from None


def usage_message(error: usage.UsageError) -> str:
    """The one-line message for ``error``, with a hint for a twistd option given after
    ``streamweb`` (getopt says "option -n not recognized")."""
    message = one_line(error)
    needs = re.fullmatch(r"option (-[-\w]+) requires argument", message)
    if needs is not None:
        return f"{needs.group(1)} needs a value"
    takes = re.fullmatch(r"option (-[-\w]+) must not have an argument", message)
    if takes is not None:
        return f"{takes.group(1)} takes no value"
    found = re.fullmatch(r"option (-[-\w]+) not recognized", message)
    if found is not None and found.group(1) in _TWISTD_OPTIONS:
        return (
            f"{found.group(1)} is an option of twistd itself: put it before streamweb, as in "
            f"twistd {found.group(1)} streamweb"
        )
    if found is not None:
        return f"no such option {found.group(1)}"
    return message
