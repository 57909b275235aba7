"""The service ``twistd streamweb`` runs (``twisted_stream._ops._service`` and
``twisted_stream.tap.makeService``): built in-process from parsed options; where a test
needs traffic it listens the built site on a free port itself. ``test_plugin_e2e`` runs the
real twistd."""

from __future__ import annotations

import io
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource

from twisted_stream import Outcome, StreamSettings, stream, stream_for
from twisted_stream._files._resource import FileResource
from twisted_stream._ops._service import StreamWebService, StreamWebSite
from twisted_stream._ops._shutdown import GracefulShutdown
from twisted_stream.tap import Options, makeService

from ..waiting import until, within
from .test_options import parse, usage_error


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
    assert [(p.endpoint.endpoint._port, p.endpoint.endpoint._interface) for p in ports] == [  # type: ignore[attr-defined]
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


def test_status_history_starts_with_the_service() -> None:
    """With --status the status page keeps its chart history from start-up, so the first
    visit already shows the minutes before it."""
    from twisted_stream import Mounts, StatusResource

    options = Options()
    options.parseOptions(["--port", "tcp:0:interface=127.0.0.1", "--status", "/_status"])
    service = makeService(options)
    mounts = service.site.resource
    assert isinstance(mounts, Mounts)
    ((segments, page),) = mounts.mounts
    assert segments == (b"_status",) and isinstance(page, StatusResource)
    assert service.site in page._histories, "started before any request"
    # Its timer holds the page and the site weakly: it stops once they are collected.
