"""``twisted_stream.tap``: the options of ``twistd streamweb`` and the service it builds.

Options are parsed and services built in-process without twistd; where a test needs traffic,
it listens the built site on a free port itself. ``test_plugin_e2e`` runs the real twistd.
"""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.python import usage
from twisted.web.resource import IResource, Resource

import twisted
from twisted_stream import Outcome, StreamSettings, stream, stream_for
from twisted_stream._files._resource import FileResource
from twisted_stream._ops._reflect import SETTING_OPTIONS, setting_options
from twisted_stream._ops._service import StreamWebService, StreamWebSite
from twisted_stream._ops._shutdown import GracefulShutdown
from twisted_stream.tap import Options, makeService

from ..waiting import until, within

PROJECT = Path(__file__).resolve().parents[2]
SERVER_PEM = Path(twisted.__file__).parent / "test" / "server.pem"


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def usage_error(*args: str) -> str:
    """The message of the UsageError parsing ``args`` raises (checked to be one line)."""
    with pytest.raises(usage.UsageError) as caught:
        parse(*args)
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message and message
    return message


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


# Defaults and ports.


def test_defaults() -> None:
    """With no options: tcp:8080, default settings, a 5 s grace period, no content option
    (the demo site), no access log file, no extra headers, no tracebacks."""
    options = parse()
    assert options["ports"] == ["tcp:8080"]
    assert options["settings"] == StreamSettings()
    assert options["grace-period"] == 5.0
    assert options["root"] is None
    assert options["logfile"] is None
    assert options["headers"] == []
    assert not options["display-tracebacks"] and not options["listing"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("8081", "tcp:8081"),
        ("0", "tcp:0"),
        (" 65535 ", "tcp:65535"),
        ("tcp:9000:interface=127.0.0.1", "tcp:9000:interface=127.0.0.1"),
        ("unix:/tmp/streamweb.sock", "unix:/tmp/streamweb.sock"),
    ],
)
def test_port_takes_a_number_or_an_endpoint(given: str, expected: str) -> None:
    """--port N means tcp:N (twistd web crashes on that); an endpoint description is kept."""
    assert parse("--port", given)["ports"] == [expected]
    assert parse("-p", given)["ports"] == [expected]


def test_listen_is_repeatable_and_combines_with_port() -> None:
    """--listen may be given many times, bare numbers included; --port comes first; with
    any of them the tcp:8080 default is not added."""
    options = parse("--listen", "8082", "--port", "8081", "--listen", "tcp:8083:backlog=5")
    assert options["ports"] == ["tcp:8081", "tcp:8082", "tcp:8083:backlog=5"]
    assert parse("--listen", "tcp:9001")["ports"] == ["tcp:9001"]


def test_listen_accepts_ssl_with_existing_key_files() -> None:
    """An ssl: description whose key and certificate load is accepted."""
    description = f"ssl:8443:privateKey={SERVER_PEM}:certKey={SERVER_PEM}"
    assert parse("--listen", description)["ports"] == [description]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "70000"], "--port '70000': port 70000 is out of range (0-65535)"),
        (["--port", "-1"], "port -1 is out of range"),
        (["--listen", "tcp:65536"], "--listen 'tcp:65536': port 65536 is out of range"),
        (["--listen", "bogus:1"], "--listen 'bogus:1' is not a valid endpoint: Unknown endpoint"),
        (["--listen", "tcp:notaport"], "--listen 'tcp:notaport' is not a valid endpoint"),
        (["--port", "tcp:80:nosuch=1"], "--port 'tcp:80:nosuch=1' is not a valid endpoint"),
        (["--port", ""], "--port '' is not a valid endpoint"),
        (
            ["--listen", "unix:/nonexistent/dir/web.sock"],
            "--listen 'unix:/nonexistent/dir/web.sock': the socket's directory does not exist",
        ),
        (
            ["--listen", "ssl:8443:privateKey=/nonexistent/key.pem"],
            "is not a valid endpoint: [Errno 2] No such file or directory",
        ),
    ],
)
def test_bad_ports_are_usage_errors(args: list[str], expected: str) -> None:
    """Ports out of range and malformed endpoints are one-line usage errors naming the
    option and the value."""
    assert expected in usage_error(*args)


# Content options.


def test_path_serves_the_directory_with_file_resource(tmp_path: Path) -> None:
    """--path DIR builds a FileResource rooted at the absolute DIR; --listing turns on
    directory listings."""
    root = parse("--path", str(tmp_path))["root"]
    assert isinstance(root, FileResource)
    assert root.path == str(tmp_path) and root.listing is False
    listed = parse("--path", str(tmp_path), "--listing")["root"]
    assert isinstance(listed, FileResource) and listed.listing is True


def test_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative --path is resolved against the current directory at parse time."""
    (tmp_path / "site").mkdir()
    monkeypatch.chdir(tmp_path)
    root = parse("--path", "site")["root"]
    assert isinstance(root, FileResource) and root.path == str(tmp_path / "site")


def test_path_errors(tmp_path: Path) -> None:
    """A missing directory, a file given as the directory, --path with --app and --listing
    without --path are usage errors."""
    missing = str(tmp_path / "missing")
    assert usage_error("--path", missing) == f"--path {missing!r}: no such directory"
    (tmp_path / "file.txt").write_text("x")
    file = str(tmp_path / "file.txt")
    assert usage_error("--path", file) == f"--path {file!r}: not a directory"
    assert usage_error("--path", str(tmp_path), "--app", "x:y") == (
        "--path and --app cannot be used together"
    )
    assert usage_error("--listing") == "--listing only applies with --path"


def test_app_resource_from_the_current_directory(app_dir: tuple[Path, str]) -> None:
    """--app module:attr imports from the current directory even when it is not on sys.path
    (the installed twistd script leaves it off), and uses an IResource as it is."""
    directory, name = app_dir
    root = parse("--app", f"{name}:resource")["root"]
    assert IResource.providedBy(root)
    assert sys.modules[name].resource is root
    assert sys.path[0] == str(directory)


def test_app_callables_and_dotted_attributes(app_dir: tuple[Path, str]) -> None:
    """A zero-argument callable (a function or a Resource class) is called for the resource;
    the attribute may be dotted."""
    _, name = app_dir
    made = parse("--app", f"{name}:make")["root"]
    page_class = sys.modules[name].Page
    assert isinstance(made, page_class)
    assert isinstance(parse("--app", f"{name}:Page")["root"], page_class)
    assert parse("--app", f"{name}:Holder.resource")["root"] is sys.modules[name].resource


def test_app_from_the_examples_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """--app examples.countdown:resource works from the project root."""
    monkeypatch.chdir(PROJECT)
    monkeypatch.setattr(sys, "path", list(sys.path))
    root = parse("--app", "examples.countdown:resource")["root"]
    import examples.countdown

    assert root is examples.countdown.resource


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{name}", "--app '{name}': expected module:attribute, like examples.countdown:resource"),
        ("{name}:", "expected module:attribute"),
        (":resource", "expected module:attribute"),
        (
            "{name}_nosuch:resource",
            "--app '{name}_nosuch:resource': no module named '{name}_nosuch' in the current "
            "directory or on sys.path",
        ),
        (
            "{name}_broken:resource",
            "--app '{name}_broken:resource': importing {name}_broken failed: RuntimeError: "
            "broken at import",
        ),
        (
            "{name}_needs_dep:resource",
            "importing {name}_needs_dep failed: No module named '{name}_missing_dependency'",
        ),
        ("{name}:missing", "--app '{name}:missing': {name} has no attribute 'missing'"),
        ("{name}:Holder.missing", "{name} has no attribute 'Holder.missing'"),
        (
            "{name}:number",
            "--app '{name}:number': number is of type int, not an IResource or a "
            "zero-argument callable returning one",
        ),
        ("{name}:returns_text", "returns_text() returned an object of type str, not an IResource"),
        ("{name}:explodes", "calling explodes() failed: RuntimeError: kaboom"),
        ("{name}:needs", "calling needs() failed: TypeError:"),
    ],
)
def test_bad_apps_are_usage_errors(app_dir: tuple[Path, str], spec: str, expected: str) -> None:
    """Unimportable modules, missing attributes, values that are not resources and callables
    that fail are one-line usage errors naming the problem."""
    _, name = app_dir
    assert expected.format(name=name) in usage_error("--app", spec.format(name=name))


# Other options.


def test_headers_flags_logfile_and_grace_period(tmp_path: Path) -> None:
    """--add-header (repeatable), --display-tracebacks, --logfile (absolute path or -) and
    --grace-period are parsed."""
    options = parse(
        "--add-header", "X-One: 1",
        "--add-header", "Cache-Control:  no-store ",
        "--display-tracebacks",
        "--logfile", str(tmp_path / "access.log"),
        "--grace-period", "0.5",
    )  # fmt: skip
    assert options["headers"] == [(b"X-One", b"1"), (b"Cache-Control", b"no-store")]
    assert options["display-tracebacks"]
    assert options["logfile"] == str(tmp_path / "access.log")
    assert options["grace-period"] == 0.5
    assert parse("-l", "-")["logfile"] == "-"
    assert parse("--grace-period", "0")["grace-period"] == 0.0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--add-header", "no colon"], "--add-header 'no colon': expected \"Name: value\""),
        (["--add-header", "Bad Name: x"], "with a valid header name"),
        (["--add-header", ": x"], "with a valid header name"),
        (["--add-header", "X-Snow: \u2603"], "the value is not latin-1 text"),
        (["--logfile", "/nonexistent/dir/access.log"], "its directory does not exist"),
        (["--grace-period", "-1"], "--grace-period: '-1' is negative"),
        (["--grace-period", "soon"], "--grace-period: 'soon' is not a number"),
        (["--grace-period", "inf"], "--grace-period: 'inf' is not a finite number"),
        (["--buffer-size", "0"], "--buffer-size must be at least 1, not 0"),
        (["--buffer-size", "big"], "--buffer-size: 'big' is not a whole number"),
        (["--slice-seconds", "0"], "--slice-seconds must be positive"),
        (["--thread-pool-size", "0"], "--thread-pool-size must be at least 1"),
        (["--thread-pool-size", "2.5"], "--thread-pool-size: '2.5' is not a whole number"),
        (["--bogus"], "option --bogus not recognized"),
        (["extra"], "Wrong number of arguments."),
    ],
)
def test_bad_values_are_usage_errors(args: list[str], expected: str) -> None:
    """Malformed headers, unusable log files, bad numbers and settings the engine refuses are
    one-line usage errors naming the option."""
    assert expected in usage_error(*args)


def test_logfile_that_is_a_directory(tmp_path: Path) -> None:
    """--logfile naming a directory is a usage error."""
    assert usage_error("--logfile", str(tmp_path)).endswith(": is a directory")


# Stream settings as options.


def test_every_stream_setting_is_an_option() -> None:
    """Every StreamSettings field is mirrored as --kebab-case (a flag for a bool), so
    settings added later appear without changes to the plugin."""
    fields = {f.name for f in dataclasses.fields(StreamSettings)}
    assert {o.field for o in SETTING_OPTIONS} == fields
    help_text = str(Options())
    for setting in SETTING_OPTIONS:
        assert f"--{setting.option}" in help_text
        assert setting.option == setting.field.replace("_", "-") or setting.option.startswith(
            "no-"
        )


def test_every_stream_setting_option_sets_its_field() -> None:
    """Giving each setting option a value other than its default sets that field, and only
    that field."""
    defaults = StreamSettings()
    for setting in SETTING_OPTIONS:
        default = getattr(defaults, setting.field)
        if setting.flag is not None:
            args = [f"--{setting.option}"]
            wanted: Any = setting.flag
        elif isinstance(default, int):
            wanted = default + 1
            args = [f"--{setting.option}", str(wanted)]
        else:
            wanted = float(default) + 0.5
            args = [f"--{setting.option}", str(wanted)]
        settings = parse(*args)["settings"]
        assert settings == dataclasses.replace(defaults, **{setting.field: wanted}), setting


def test_setting_options_are_derived_generically() -> None:
    """The derivation handles int, float, str, bool (a flag; --no-x when on by default) and
    optional fields, takes help from the field's metadata (a generic line without it), and
    skips types it cannot parse."""

    @dataclasses.dataclass(frozen=True)
    class Example:
        count: int = dataclasses.field(default=3, metadata={"help": "How many."})
        ratio: float = 0.5
        name: str = dataclasses.field(default="x", metadata={"help": "The ``name``."})
        cap: int | None = dataclasses.field(
            default=None, metadata={"help": "Upper bound; none for no bound."}
        )
        verbose: bool = False
        checked: bool = dataclasses.field(default=True, metadata={"help": "Check things."})
        shape: tuple[int, int] = (1, 2)

    found = {o.field: o for o in setting_options(Example)}
    assert list(found) == ["count", "ratio", "name", "cap", "verbose", "checked"]
    assert found["count"].option == "count" and found["count"].default == "3"
    assert found["count"].help == "How many." and found["count"].parse("1_000") == 1000
    assert found["ratio"].parse("2") == 2.0 and found["ratio"].help == "The stream setting ratio."
    assert found["name"].help == "The name." and found["name"].parse("y") == "y"
    assert found["cap"].default is None and found["cap"].parse("none") is None
    assert found["cap"].parse("7") == 7
    assert found["verbose"].option == "verbose" and found["verbose"].flag is True
    assert found["checked"].option == "no-checked" and found["checked"].flag is False
    assert "turns it off" in found["checked"].help
    with pytest.raises(ValueError, match="not a whole number"):
        found["count"].parse("x")


def test_help_documents_every_option() -> None:
    """twistd streamweb --help lists every option the plugin accepts."""
    help_text = str(Options())
    for name in ("port", "listen", "path", "app", "listing", "logfile", "display-tracebacks",
                 "add-header", "grace-period", "buffer-size", "slice-seconds",
                 "thread-pool-size"):  # fmt: skip
        assert f"--{name}" in help_text
    options = Options()
    for long_option in options.longOpt:
        assert f"--{long_option.rstrip('=')}" in help_text


# The service.


def test_make_service_builds_ports_site_and_shutdown() -> None:
    """makeService gives a MultiService: the graceful shutdown first (so it stops last),
    then one port service per endpoint, all serving one StreamWebSite with the settings."""
    options = parse(
        "--port", "8081", "--listen", "tcp:8082:interface=127.0.0.1",
        "--buffer-size", "4096", "--thread-pool-size", "3", "--grace-period", "2",
        "--display-tracebacks",
    )  # fmt: skip
    service = makeService(options)
    assert isinstance(service, StreamWebService)
    children = list(service)
    assert children[0] is service.shutdown and isinstance(service.shutdown, GracefulShutdown)
    assert service.shutdown.grace_period == 2.0 and service.shutdown.site is service.site
    ports = children[1:]
    assert all(isinstance(p, StreamServerEndpointService) for p in ports)
    assert [(p.endpoint._port, p.endpoint._interface) for p in ports] == [  # type: ignore[attr-defined]
        (8081, ""),
        (8082, "127.0.0.1"),
    ]
    assert all(p.factory is service.site for p in ports)  # type: ignore[attr-defined]
    site = service.site
    assert isinstance(site, StreamWebSite)
    assert site.stream_settings == StreamSettings(buffer_size=4096, thread_pool_size=3)
    assert site.displayTracebacks is True
    assert not service.running


def test_make_service_without_content_serves_the_demo() -> None:
    """With neither --path nor --app the root is the demo site."""
    site = makeService(parse())
    root = site.site.resource
    from twisted_stream._demo._site import Index

    assert isinstance(root.children[b""], Index)
    assert {b"countdown", b"csv", b"download", b"clock"} <= set(root.children)
    assert site.site.displayTracebacks is False


def test_make_service_roots(tmp_path: Path, app_dir: tuple[Path, str]) -> None:
    """--path and --app roots are what the site serves."""
    _, name = app_dir
    assert isinstance(makeService(parse("--path", str(tmp_path))).site.resource, FileResource)
    served = makeService(parse("--app", f"{name}:resource")).site.resource
    assert served is sys.modules[name].resource


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ("busy", "twistd streamweb: cannot listen on 127.0.0.1:{port}: [Errno 98] Address "),
        ("unix:/proc/streamweb.sock", "twistd streamweb: cannot listen: [Errno"),
    ],
)
def test_a_port_that_cannot_be_had_exits_with_one_line(port: str, expected: str) -> None:
    """Listening fails at start (a busy port, a socket that cannot be created): the service
    ends the process with a one-line message instead of a traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        number = busy.getsockname()[1]
        if port == "busy":
            port = f"tcp:{number}:interface=127.0.0.1"
        service = makeService(parse("--port", port))
        with pytest.raises(SystemExit) as caught:
            service.privilegedStartService()
    message = str(caught.value.code)
    assert message.startswith(expected.format(port=number)) and "\n" not in message
    assert not service.site.numPorts


class Listening:
    """Listens a built site on a free 127.0.0.1 port for in-process checks."""

    def __init__(self, site: StreamWebSite) -> None:
        self.site = site
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}{path}"

    def stop(self) -> Deferred[None]:
        return self.port.stopListening()  # type: ignore[no-any-return]


@pytest.fixture
def listen() -> Iterator[Any]:
    started: list[Listening] = []

    def start(*args: str) -> Listening:
        listening = Listening(makeService(parse(*args)).site)  # type: ignore[arg-type]
        started.append(listening)
        return listening

    yield start
    for listening in started:
        if listening.port.connected:
            pytest_twisted.blockon(listening.stop())


@pytest_twisted.ensureDeferred
async def test_built_site_serves_the_demo_with_extra_headers(listen: Any, client: Any) -> None:
    """The built site answers with the demo index and adds --add-header headers to every
    response; a resource setting the same header replaces the added one."""
    running = listen("--add-header", "X-Served-By: streamweb", "--add-header",
                     "Content-Type: text/x-overridden")  # fmt: skip
    response = await within(client.get(running.url("/")))
    assert response.code == 200
    assert response.headers.getRawHeaders(b"x-served-by") == [b"streamweb"]
    assert response.headers.getRawHeaders(b"content-type") == [b"text/html; charset=utf-8"]
    assert b"twisted_stream demo" in await within(response.content())
    missing = await within(client.get(running.url("/nowhere")))
    assert missing.code == 404
    assert missing.headers.getRawHeaders(b"x-served-by") == [b"streamweb"]
    await within(missing.content())


@pytest_twisted.ensureDeferred
async def test_access_log_file_gets_status_and_bytes(
    listen: Any, client: Any, tmp_path: Path
) -> None:
    """--logfile FILE writes a Combined Log Format line per request with the real status
    and the bytes sent, for streamed responses too."""
    log = tmp_path / "access.log"
    running = listen("--logfile", str(log))
    response = await within(client.get(running.url("/countdown/stream?delay=0&count=3")))
    body = await within(response.content())
    await within(running.stop())
    line = log.read_text().strip()
    assert '"GET /countdown/stream?delay=0&count=3 HTTP/1.1" 200 ' in line
    assert line.split('" 200 ')[1].split()[0] == str(len(body))


@pytest_twisted.ensureDeferred
async def test_access_log_to_stdout(
    listen: Any, client: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """--logfile - writes the access log to the process's standard output."""
    running = listen("--logfile", "-")
    response = await within(client.get(running.url("/csv?rows=2")))
    body = await within(response.content())
    await within(running.stop())
    out = capfd.readouterr().out
    assert f'"GET /csv?rows=2 HTTP/1.1" 200 {len(body)} ' in out


@pytest_twisted.ensureDeferred
async def test_access_log_waits_for_streams_outliving_the_port(
    client: Any, tmp_path: Path
) -> None:
    """Stopping the port (as shutdown does first) keeps the access log open until the
    site's streams have ended, so their lines, with the real byte counts, are written."""
    log = tmp_path / "access.log"
    gate: Deferred[bytes] = Deferred()
    handles: list[Any] = []

    class Slow(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            result = stream(request, iter([b"12345", gate]))
            handles.append(stream_for(request))
            return result

    site = StreamWebSite(Slow(), access_log=str(log))
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}/slow"
    response = await within(client.get(url))
    collected = treq.collect(response, lambda data: None)
    await until(lambda: handles and handles[0].bytes_sent == 5)
    await within(port.stopListening())
    assert site._logFile is not None  # held open for the stream
    handles[0].abort("test")
    with pytest.raises(Exception):  # noqa: B017 - any client-side failure
        await within(collected)
    assert handles[0].outcome is Outcome.ABORTED
    assert site._logFile is None
    assert '"GET /slow HTTP/1.1" 200 5 ' in log.read_text()


def test_stdout_log_survives_close(capfd: pytest.CaptureFixture[str]) -> None:
    """The stdout access log's close only flushes: standard output stays usable."""
    from twisted_stream._ops._service import _StdoutLog

    out = _StdoutLog()
    out.write("line\n")
    out.close()
    out.write("again\n")
    assert capfd.readouterr().out == "line\nagain\n"
    assert not isinstance(sys.__stdout__, io.StringIO) and not sys.__stdout__.closed  # type: ignore[union-attr]


def test_dropin_points_at_this_module() -> None:
    """The dropin's ServiceMaker names tapname streamweb and this module, whose Options and
    makeService it uses."""
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    from twisted.plugins import twisted_stream_streamweb

    maker = twisted_stream_streamweb.streamweb
    assert maker.tapname == "streamweb" and maker.module == "twisted_stream.tap"
    assert maker.options is Options and maker.makeService is makeService
    assert "streamweb" in {p.tapname for p in getPlugins(IServiceMaker)}
    assert os.path.basename(twisted_stream_streamweb.__file__ or "") == (
        "twisted_stream_streamweb.py"
    )


def test_metrics_and_status_are_mounted_in_front_of_the_content(tmp_path: Path) -> None:
    """--metrics and --status put the Prometheus page and the status page at their paths,
    in front of --path content; bad or shared paths are usage errors."""
    from twisted_stream._ops._mounts import Mounts
    from twisted_stream._ops._prometheus import MetricsResource
    from twisted_stream._ops._status import StatusResource

    options = parse("--path", str(tmp_path), "--metrics", "/_metrics", "--status", "_status/")
    root = makeService(options).site.resource
    assert isinstance(root, Mounts)
    assert isinstance(root.root, FileResource)
    kinds = {b"/".join(segments): type(resource) for segments, resource in root.mounts}
    assert kinds == {b"_metrics": MetricsResource, b"_status": StatusResource}
    assert "give a path like /_metrics" in usage_error("--metrics", "/")
    assert "cannot share" in usage_error("--metrics", "/x", "--status", "x")
