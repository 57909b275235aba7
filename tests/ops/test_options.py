"""The command line of ``twistd streamweb`` (``twisted_stream._ops._options`` and the
checks of ``_ops._checks``): defaults, ports, content and other options, each bad value a
one-line usage error. Options are parsed in-process, without twistd."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from twisted.python import usage
from twisted.web.resource import IResource

import twisted
from twisted_stream import StreamSettings
from twisted_stream._files._resource import FileResource
from twisted_stream._ops._options import Options

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
        (["--listen", "bogus:1"], "--listen 'bogus:1': unknown endpoint type 'bogus': use one"),
        (["--listen", "tcp:notaport"], "--listen 'tcp:notaport': the port 'notaport' is not"),
        (["--port", "tcp:80:nosuch=1"], "--port 'tcp:80:nosuch=1': tcp has no parameter 'nosuch'"),
        (["--port", ""], "--port '' is empty: give a port number or an endpoint such as tcp:8080"),
        (
            ["--listen", "unix:/nonexistent/dir/web.sock"],
            "--listen 'unix:/nonexistent/dir/web.sock': the socket's directory does not exist",
        ),
        (
            ["--listen", "ssl:8443:privateKey=/nonexistent/key.pem"],
            "--listen 'ssl:8443:privateKey=/nonexistent/key.pem': cannot read "
            "'/nonexistent/key.pem': No such file or directory",
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
    """--add-header (repeatable), --display-tracebacks, --logfile (absolute path or -),
    --grace-period and --close-timeout are parsed."""
    options = parse(
        "--add-header", "X-One: 1",
        "--add-header", "Cache-Control:  no-store ",
        "--display-tracebacks",
        "--logfile", str(tmp_path / "access.log"),
        "--grace-period", "0.5",
        "--close-timeout", "0.25",
    )  # fmt: skip
    assert options["headers"] == [(b"X-One", b"1"), (b"Cache-Control", b"no-store")]
    assert options["display-tracebacks"]
    assert options["logfile"] == str(tmp_path / "access.log")
    assert options["grace-period"] == 0.5
    assert options["close-timeout"] == 0.25
    assert parse()["close-timeout"] == 5.0
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
        (["--close-timeout", "-2"], "--close-timeout: '-2' is negative"),
        (["--buffer-size", "0"], "--buffer-size must be at least 1, not 0"),
        (["--buffer-size", "big"], "--buffer-size: 'big' is not a whole number"),
        (["--slice-seconds", "0"], "--slice-seconds must be positive"),
        (["--thread-pool-size", "0"], "--thread-pool-size must be at least 1"),
        (["--thread-pool-size", "2.5"], "--thread-pool-size: '2.5' is not a whole number"),
        (["--bogus"], "option --bogus not recognized"),
        (["extra"], "unexpected argument 'extra': every value follows its option"),
    ],
)
def test_bad_values_are_usage_errors(args: list[str], expected: str) -> None:
    """Malformed headers, unusable log files, bad numbers and settings the engine refuses are
    one-line usage errors naming the option."""
    assert expected in usage_error(*args)


def test_logfile_that_is_a_directory(tmp_path: Path) -> None:
    """--logfile naming a directory is a usage error."""
    assert usage_error("--logfile", str(tmp_path)).endswith(": is a directory")


# As twistd parses them.


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "tcp:abc"], "--port 'tcp:abc': the port 'abc' is not a whole number"),
        (["--bogus"], "no such option --bogus"),
        (["--port"], "--port needs a value"),
        (["--listing=yes"], "--listing takes no value"),
        (["-n"], "-n is an option of twistd itself: put it before streamweb, as in twistd -n"),
        (["--pidfile=x"], "--pidfile is an option of twistd itself"),
    ],
)
def test_twistd_options_exit_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``TwistdOptions`` (what twistd parses with) turns a usage error into two lines on
    standard error, the message and the pointer to --help, and exit status 2; nothing on
    standard output."""
    from twisted_stream._ops._options import HELP_HINT, TwistdOptions

    with pytest.raises(SystemExit) as caught:
        TwistdOptions().parseOptions(args)
    assert caught.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    first, hint = err.splitlines()
    assert first.startswith(f"twistd streamweb: {message}")
    assert hint == HELP_HINT == "Run 'twistd streamweb --help' for the options."


def test_workers_and_channel_backend() -> None:
    """--workers defaults to 1 (one process) and 0 means one per usable CPU; the command
    line is kept for the workers; --channel-backend takes a redis:// URL."""
    import os

    options = parse()
    assert options["workers"] == 1 and options["channel-backend"] is None
    assert parse("--workers", "3")["workers"] == 3
    assert parse("--workers", "0")["workers"] == len(os.sched_getaffinity(0))
    given = ["--workers", "2", "--channel-backend", "redis://127.0.0.1:6379/2", "-p", "0"]
    options = parse(*given)
    assert options["argv"] == given
    assert options["channel-backend"] == "redis://127.0.0.1:6379/2"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--workers", "-1"], "--workers '-1' is negative"),
        (["--workers", "many"], "--workers 'many' is not a whole number"),
        (["--channel-backend", "http://h/0"], "--channel-backend: 'http://h/0' is not a redis"),
        (["--channel-backend", "redis://h/x"], "the database 'x' is not a number"),
    ],
)
def test_bad_workers_and_backends_are_usage_errors(args: list[str], expected: str) -> None:
    """A bad worker count or backend URL is a one-line usage error naming the option."""
    assert expected in usage_error(*args)
