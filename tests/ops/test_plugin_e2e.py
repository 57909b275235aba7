"""``twistd streamweb`` end to end: the plugin run by the real twistd in a subprocess.

Each server listens on ``tcp:0`` on 127.0.0.1 and the test reads the chosen port from
twistd's log; every wait is on an event (a log line, a response, the process's exit) and is
bounded, and every process is killed at teardown if it is still running.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, TimeoutError
from twisted.web.client import ResponseFailed

from twisted_stream.tap import Options

from ..rawclient import connect, get
from ..waiting import within

PROJECT = Path(__file__).resolve().parents[2]
LOCAL = "tcp:0:interface=127.0.0.1"
START_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0


def twistd_command() -> list[str]:
    """The twistd next to this Python (the installed console script, which does not put the
    current directory on sys.path), else the same entry point run by this Python."""
    script = Path(sys.executable).with_name("twistd")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from twisted.scripts.twistd import run; "
            "sys.argv[0] = 'twistd'; sys.exit(run())"]  # fmt: skip


def run_twistd(*args: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run twistd to completion (help and usage errors), output merged."""
    return subprocess.run(
        [*twistd_command(), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


class Twistd:
    """``twistd -n --pidfile= ARGS`` in a subprocess; its output lines reach the reactor as
    they are printed, so a test can wait for one."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.command = [*twistd_command(), "-n", "--pidfile=", *args]
        self.lines: list[str] = []
        self.exited: Deferred[int] = Deferred()
        self._waiting: list[tuple[re.Pattern[str], Deferred[re.Match[str]]]] = []
        self.proc = subprocess.Popen(
            self.command,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
        )
        threading.Thread(target=self._read, name="twistd-output", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            reactor.callFromThread(self._line, line.rstrip("\n"))
        code = self.proc.wait()
        reactor.callFromThread(self._exited, code)

    def _line(self, line: str) -> None:
        self.lines.append(line)
        still = []
        for pattern, d in self._waiting:
            found = pattern.search(line)
            if found is not None:
                d.callback(found)
            else:
                still.append((pattern, d))
        self._waiting = still

    def _exited(self, code: int) -> None:
        waiting, self._waiting = self._waiting, []
        for pattern, d in waiting:
            d.errback(
                AssertionError(
                    f"twistd exited ({code}) before printing {pattern.pattern!r}:\n{self.output}"
                )
            )
        self.exited.callback(code)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first output line matching ``pattern`` (waiting for it if need be)."""
        compiled = re.compile(pattern)
        for line in self.lines:
            found = compiled.search(line)
            if found is not None:
                return found
        if self.exited.called:
            raise AssertionError(f"twistd exited before printing {pattern!r}:\n{self.output}")
        d: Deferred[re.Match[str]] = Deferred()
        self._waiting.append((compiled, d))
        try:
            return await d.addTimeout(timeout, reactor)
        except TimeoutError:
            raise AssertionError(
                f"no line matching {pattern!r} within {timeout} s:\n{self.output}"
            ) from None

    async def port(self) -> int:
        """The TCP port the site listens on, from twistd's "starting on N" line."""
        return int((await self.wait_for(r"StreamWebSite starting on (\d+)")).group(1))

    async def terminate(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Send SIGTERM and check for a clean exit: twistd shuts the application down
        completely ("Server Shut Down.") and then, by design, ends itself with the signal it
        received so its parent sees why it stopped (exit status -SIGTERM); no traceback."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = await within(self.exited, timeout)
        except TimeoutError:
            raise AssertionError(
                f"twistd still running {timeout} s after SIGTERM:\n{self.output}"
            ) from None
        assert code in (0, -signal.SIGTERM), f"exit status {code}:\n{self.output}"
        assert "Server Shut Down." in self.output, self.output
        assert "Traceback" not in self.output, self.output
        assert "Unhandled" not in self.output, self.output

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def twistd_processes() -> Iterator[Any]:
    """The body of a ``twistd`` fixture: yields a function starting ``twistd -n`` processes
    and kills those still running at teardown."""
    started: list[Twistd] = []

    def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Twistd:
        process = Twistd(list(args), cwd, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def twistd() -> Iterator[Any]:
    """Starts twistd processes; kills those left at teardown."""
    yield from twistd_processes()


class Body:
    """A streamed body as it arrives: ``first`` fires at the first bytes, ``done`` with the
    whole body (or the client's failure)."""

    def __init__(self, response: Any) -> None:
        self.data = bytearray()
        self.first: Deferred[None] = Deferred()
        self.done: Deferred[bytes] = treq.collect(response, self._feed)
        self.done.addCallback(lambda _: bytes(self.data))

    def _feed(self, chunk: bytes) -> None:
        self.data += chunk
        if not self.first.called:
            self.first.callback(None)


async def open_body(client: Any, url: str) -> Body:
    response = await within(client.get(url))
    assert response.code == 200
    body = Body(response)
    await within(body.first)
    return body


async def text(client: Any, url: str) -> str:
    response = await within(client.get(url))
    assert response.code == 200, url
    return (await within(response.content())).decode()


# twistd --help.


def test_twistd_help_lists_streamweb(tmp_path: Path) -> None:
    """twistd --help lists the streamweb plugin with its description."""
    result = run_twistd("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert re.search(r"^\s+streamweb\s+Serve", result.stdout, re.MULTILINE), result.stdout


def test_streamweb_help_documents_every_option(tmp_path: Path) -> None:
    """twistd streamweb --help documents every option the plugin has."""
    result = run_twistd("streamweb", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    for option in Options().longOpt:
        assert f"--{option.rstrip('=')}" in result.stdout, option
    for name in ("port", "listen", "path", "app", "listing", "logfile", "display-tracebacks",
                 "add-header", "grace-period", "buffer-size", "thread-pool-size"):  # fmt: skip
        assert f"--{name}" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port '70000': port 70000 is out of range (0-65535)"),
        (["--listen", "tcp:abc"], "--listen 'tcp:abc': the port 'abc' is not a whole number"),
        (["--listen", "bogus:1"], "--listen 'bogus:1': unknown endpoint type 'bogus': use one"),
        (["--port", "tcp:80:nosuch=1"], "--port 'tcp:80:nosuch=1': tcp has no parameter"),
        (["--path", "/nonexistent/streamweb"], "--path '/nonexistent/streamweb': no such"),
        (["--app", "no_such_streamweb_module:resource"], "--app 'no_such_streamweb_module:"),
        (["--app", "examples.countdown:nothing"], "examples.countdown has no attribute"),
        (["--app", "examples.countdown:COUNT"], "COUNT is of type int, not an IResource"),
        (["--buffer-size", "0"], "--buffer-size must be at least 1, not 0"),
        (["--grace-period", "soon"], "--grace-period: 'soon' is not a number"),
        (["--bogus"], "no such option --bogus"),
        (["--port"], "--port needs a value"),
        (["-n"], "-n is an option of twistd itself: put it before streamweb"),
        (["extra"], "unexpected argument 'extra'"),
    ],
)
def test_usage_errors_print_one_line_and_a_pointer_to_help(args: list[str], message: str) -> None:
    """A bad value makes the real twistd exit with status 2 after exactly two lines on
    standard error: ``twistd streamweb:`` and the message naming the option and value, then
    ``Run 'twistd streamweb --help' for the options.``; no help text, no traceback, nothing
    on standard output."""
    result = subprocess.run(
        [*twistd_command(), "-n", "--pidfile=", "streamweb", *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert result.returncode == 2, result
    assert result.stdout == "", result.stdout
    first, hint = result.stderr.splitlines()
    assert first.startswith("twistd streamweb: ") and message in first, result.stderr
    assert hint == "Run 'twistd streamweb --help' for the options."


def test_busy_port_ends_with_one_line(tmp_path: Path) -> None:
    """A port already in use ends twistd with one line naming it, not a traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_twistd("-n", "--pidfile=", "streamweb", "--port",
                            f"tcp:{port}:interface=127.0.0.1", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert f"twistd streamweb: cannot listen on 127.0.0.1:{port}: " in result.stdout
    assert "Address already in use" in result.stdout
    assert "Traceback" not in result.stdout


# Serving.


@pytest_twisted.ensureDeferred
async def test_demo_site_without_content_options(twistd: Any, client: Any, tmp_path: Path) -> None:
    """With no --path and no --app, twistd -n streamweb serves the demo: the index links the
    examples, the countdown and the CSV stream, access lines go to stdout with --logfile -;
    SIGTERM exits cleanly."""
    process = twistd("streamweb", "--port", LOCAL, "--logfile", "-", cwd=tmp_path)
    base = f"http://127.0.0.1:{await process.port()}"
    index = await text(client, base + "/")
    assert "twisted_stream demo" in index
    for href in ("/countdown/", "/csv", "/download", "/clock"):
        assert f'href="{href}' in index
    countdown = await text(client, base + "/countdown/stream?delay=0.01&count=3")
    assert (
        countdown.index("Prepare for launch")
        < countdown.index("Liftoff in 1")
        < (countdown.index("Lift off!"))
    )
    threaded = await text(client, base + "/countdown/threaded?delay=0&count=2")
    assert "Lift off!" in threaded
    assert (await text(client, base + "/csv?rows=3")).count("\r\n") == 4
    await process.wait_for(r'"GET /csv\?rows=3 HTTP/1.1" 200 \d+ ')
    await process.terminate()


@pytest_twisted.ensureDeferred
async def test_start_up_prints_the_urls_to_open(twistd: Any, client: Any, tmp_path: Path) -> None:
    """The start-up log says where to open the site, with the port really chosen, and where
    the status page and the metrics are; the demo's index then links both."""
    process = twistd(
        "streamweb", "--port", LOCAL, "--status", "/_status", "--metrics", "/_metrics",
        cwd=tmp_path,
    )  # fmt: skip
    port = await process.port()
    base = f"http://127.0.0.1:{port}"
    await process.wait_for(re.escape(f"serving the demo site: open {base}/"))
    await process.wait_for(re.escape(f"the status page: {base}/_status"))
    await process.wait_for(re.escape(f"the metrics: {base}/_metrics"))
    index = await text(client, base + "/")
    assert 'href="/_status"' in index and 'href="/_metrics"' in index
    assert "<title>twisted_stream status</title>" in await text(client, base + "/_status")
    await process.terminate()


@pytest_twisted.ensureDeferred
async def test_path_serves_files(twistd: Any, client: Any, tmp_path: Path) -> None:
    """--path DIR serves the files under DIR (and lists directories with --listing); the
    start-up log says so, with the URL to open."""
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    (site / "hello.txt").write_text("hello from disk\n")
    (site / "docs" / "a.txt").write_text("a")
    process = twistd("streamweb", "--port", LOCAL, "--path", str(site), "--listing",
                     cwd=tmp_path)  # fmt: skip
    base = f"http://127.0.0.1:{await process.port()}"
    await process.wait_for(re.escape(f"serving the files under {site}: open {base}/"))
    assert await text(client, base + "/hello.txt") == "hello from disk\n"
    assert "a.txt" in await text(client, base + "/docs/")
    missing = await within(client.get(base + "/nope.txt"))
    assert missing.code == 404
    await within(missing.content())
    await process.terminate()


@pytest_twisted.ensureDeferred
async def test_app_from_the_project_root(twistd: Any, client: Any) -> None:
    """--app examples.countdown:resource, run from the project root with the twistd
    script, serves the countdown holder and both streamed countdowns."""
    process = twistd("streamweb", "--port", LOCAL, "--app", "examples.countdown:resource",
                     cwd=PROJECT)  # fmt: skip
    base = f"http://127.0.0.1:{await process.port()}"
    holder = await text(client, base + "/")
    assert holder.count("<iframe") == 2
    for kind in ("stream", "threaded"):
        body = await text(client, f"{base}/{kind}?delay=0.01&count=3")
        assert (
            body.index("Prepare for launch")
            < body.index("Liftoff in 3")
            < (body.index("Lift off!"))
        )
    await process.terminate()


@pytest_twisted.ensureDeferred
async def test_sigterm_with_open_streams(twistd: Any, client: Any, tmp_path: Path) -> None:
    """SIGTERM while streams are open: after the grace period the endless clock ends cleanly
    (its client sees a complete response), the unfinished countdowns are aborted (their
    clients see an error), each gets its access-log line (Kind 6: access-log lines of
    streams ended at shutdown, in the plugin), and twistd exits 0 with no traceback."""
    log = tmp_path / "access.log"
    process = twistd("streamweb", "--port", LOCAL, "--grace-period", "0.5",
                     "--logfile", str(log), cwd=tmp_path)  # fmt: skip
    base = f"http://127.0.0.1:{await process.port()}"
    clock = await open_body(client, base + "/clock?interval=0.05")
    slow = await open_body(client, base + "/countdown/stream?delay=30")
    blocking = await open_body(client, base + "/countdown/threaded?delay=1")
    await process.terminate()
    clock_body = await within(clock.done)
    assert clock_body.count(b"UTC<br>") >= 1
    for aborted in (slow, blocking):
        with pytest.raises(ResponseFailed):
            await within(aborted.done)
    assert "ended 1 endless stream(s), aborted 2 unfinished one(s)" in process.output
    lines = log.read_text().splitlines()
    assert len(lines) == 3, lines
    clock_line = next(line for line in lines if "GET /clock" in line)
    assert f'" 200 {len(clock_body)} ' in clock_line
    for line in lines:
        assert re.search(r'" 200 \d+ ', line), line


@pytest_twisted.ensureDeferred
async def test_sigterm_lets_a_stream_finish_within_grace(
    twistd: Any, client: Any, tmp_path: Path
) -> None:
    """A stream that ends within the grace period is not cut: the client gets the whole
    countdown and twistd exits 0 once it is done."""
    process = twistd("streamweb", "--port", LOCAL, "--grace-period", "20", cwd=tmp_path)
    base = f"http://127.0.0.1:{await process.port()}"
    body = await open_body(client, base + "/countdown/stream?delay=0.1&count=3")
    await process.terminate()
    assert b"Lift off!" in await within(body.done)


STUCK_APP = """
import time
from twisted.web.resource import Resource
from twisted_stream import stream


class Stuck(Resource):
    isLeaf = True

    def render_GET(self, request):
        def blocked():
            print("blocked in", request.uri.decode(), flush=True)
            time.sleep(3600)
            yield b"never"

        return stream(request, blocked(), threaded=True)


resource = Stuck()
"""


@pytest_twisted.ensureDeferred
async def test_sigterm_with_threaded_sources_stuck_in_a_blocking_call(
    twistd: Any, tmp_path: Path
) -> None:
    """Three threaded sources stuck in ``time.sleep(3600)``: on SIGTERM the streams are
    aborted after the grace period, the process exits within grace period + close timeout
    (+ a few seconds for twistd itself), and one warning line names the three sources still
    busy. (Before: the main thread joined the stuck workers and never exited.)"""
    (tmp_path / "stuckapp.py").write_text(STUCK_APP)
    process = twistd("streamweb", "--port", LOCAL, "--app", "stuckapp:resource",
                     "--grace-period", "0.3", "--close-timeout", "0.5", cwd=tmp_path)  # fmt: skip
    port = await process.port()
    clients = [await connect(port, get(f"/stuck?n={n}")) for n in range(3)]
    for n in range(3):
        await process.wait_for(rf"blocked in /stuck\?n={n}")
    started = time.monotonic()
    await process.terminate(timeout=15)
    took = time.monotonic() - started
    assert took < 0.3 + 0.5 + 4, f"{took:.1f} s from SIGTERM to exit"
    [warning] = [line for line in process.lines if "still busy" in line]
    assert "3 stream source(s) still busy after 0.5 s" in warning
    for n in range(3):
        assert f"GET /stuck?n={n} HTTP/1.1 from 127.0.0.1" in warning
    for client in clients:
        await within(client.closed)


# Packaging of the dropin.


def test_no_init_files_shadow_twisted() -> None:
    """twisted/ and twisted/plugins/ hold no __init__.py (it would hide the dropin or
    clobber Twisted's own package); the dropin is there."""
    assert not (PROJECT / "twisted" / "__init__.py").exists()
    assert not (PROJECT / "twisted" / "plugins" / "__init__.py").exists()
    assert (PROJECT / "twisted" / "plugins" / "twisted_stream_streamweb.py").is_file()


@pytest.mark.parametrize("path", ["twisted/plugins/dropin.cache", "twistd.pid"])
def test_twistd_droppings_are_ignored_by_git(path: str) -> None:
    """What twistd writes in a checkout is ignored by git: the dropin.cache next to the
    dropin, and the twistd.pid of a server started from the project root."""
    git = shutil.which("git")
    if git is None or not (PROJECT / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run([git, "check-ignore", "-q", path], cwd=PROJECT, timeout=30)
    assert result.returncode == 0
