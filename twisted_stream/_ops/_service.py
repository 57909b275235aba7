"""The service ``twistd streamweb`` runs: its site and its ports, drained at shutdown."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application import strports
from twisted.application.service import IService, MultiService
from twisted.internet.error import CannotListenError
from twisted.python import usage
from twisted.web.resource import IResource
from twisted.web.server import Request

from .._settings import StreamSettings
from ._announce import AnnouncingEndpoint, announcements
from ._channels import ChannelBackendService
from ._checks import listen_failure
from ._mounts import Mounts
from ._prometheus import MetricsResource
from ._shutdown import DEFAULT_CLOSE_TIMEOUT, GracefulShutdown
from ._site import StreamSite
from ._status import StatusResource
from ._worker import FIRST_PORT_FD, WorkerConfig, WorkerService, adopted_port
from ._workers import WorkerParent


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

    def getResourceFor(self, request: Request) -> IResource:
        # Added before the resource renders, so one that sets the same header replaces it.
        for name, value in self.extra_headers:
            request.responseHeaders.addRawHeader(name, value)
        found: IResource = super().getResourceFor(request)
        return found


class StreamWebService(MultiService):
    """What ``twistd streamweb`` runs: one port service per endpoint for ``site``, and the
    :class:`~twisted_stream._shutdown.GracefulShutdown` that drains it when stopped.

    Once a port listens, its URL is logged with what it serves (``serving``) and the URL of
    each of ``pages`` (``{label: path}``, e.g. the status page).
    """

    def __init__(
        self,
        site: StreamSite,
        ports: Sequence[str],
        grace_period: float,
        *,
        serving: str = "the site",
        pages: Mapping[str, str] | None = None,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        adopt: Callable[[str, int], IService] | None = None,
    ) -> None:
        """``adopt(description, n)``, in a worker of ``--workers N``, makes the service of
        the ``n``-th port from the socket its parent passed (:func:`~._worker.adopted_port`)."""
        super().__init__()  # type: ignore[no-untyped-call]
        self.site = site
        self.ports = tuple(ports)
        # First child, so it is stopped last: after the ports stopped listening.
        self.shutdown = GracefulShutdown(site, grace_period, close_timeout=close_timeout)
        self.shutdown.setServiceParent(self)  # type: ignore[no-untyped-call]
        for n, description in enumerate(self.ports):
            if adopt is not None:  # a worker: its parent announced the URLs
                adopt(description, n).setServiceParent(self)
                continue
            port = strports.service(description, site)
            port.endpoint = AnnouncingEndpoint(
                port.endpoint,
                tls=description.startswith("ssl:"),
                serving=serving,
                pages=pages or {},
            )
            port.setServiceParent(self)

    def privilegedStartService(self) -> None:
        # twistd listens here (before dropping privileges): a port that cannot be had ends
        # the process with one line, like a usage error, not a traceback.
        try:
            super().privilegedStartService()  # type: ignore[no-untyped-call]
        except (CannotListenError, OSError) as e:
            raise listen_failure(e) from None


def build_service(
    options: usage.Options, root: IResource, serving: str | None = None
) -> MultiService:
    """The service for parsed :class:`~._options.Options`, serving ``root`` (with the
    ``--metrics`` and ``--status`` pages mounted in front of it); ``serving`` says what
    ``root`` is in the start-up lines (by default the ``--path`` or ``--app`` given). With
    ``--workers N``, the parent of N worker processes, each of which runs this again."""
    if serving is None:
        if options["path"] is not None:
            serving = f"the files under {options['path']}"
        elif options["app"] is not None:
            serving = f"{options['app']}"
        elif "/" in options["proxies"]:
            serving = f"a proxy to {options['proxies']['/'].upstream.url}"
        else:
            serving = "the site"
    labels = {"status": "the status page", "metrics": "the metrics"}
    urls = {
        labels.get(kind) or f"a proxy to {options['proxies'][path].upstream.url}": path
        for path, kind in options["mounts"].items()
    }
    worker = WorkerConfig.from_env()
    backend = options["channel-backend"]
    if worker is None and options["workers"] > 1:
        parent = WorkerParent(
            options["argv"],
            options["ports"],
            options["workers"],
            options["grace-period"],
            announce=lambda address, tls: announcements(address, tls, serving, urls),
        )
        if backend is not None:
            checked = ChannelBackendService(backend, None)
            checked.setServiceParent(parent)  # type: ignore[no-untyped-call]
        return parent
    pages: dict[str, IResource] = {}
    for path, kind in options["mounts"].items():
        if kind == "proxy":
            pages[path] = options["proxies"][path]
        else:
            pages[path] = StatusResource() if kind == "status" else MetricsResource()
    if pages:
        root = Mounts(root, pages)
    site = StreamWebSite(
        root,
        settings=options["settings"],
        access_log=options["logfile"],
        headers=options["headers"],
    )
    site.displayTracebacks = bool(options["display-tracebacks"])
    for page in pages.values():
        if isinstance(page, StatusResource):
            page.history(site)  # the charts cover the time since start-up
    service = StreamWebService(
        site,
        options["ports"],
        options["grace-period"],
        serving=serving,
        pages=urls,
        close_timeout=options["close-timeout"],
        adopt=None
        if worker is None
        else lambda description, n: adopted_port(description, FIRST_PORT_FD + n, site),
    )
    if backend is not None:
        channels = ChannelBackendService(backend, service.shutdown)
        channels.setServiceParent(service)  # type: ignore[no-untyped-call]
    if worker is not None:
        status = StatusResource(site)  # the rows of this worker's streams, for the others
        reports = WorkerService(
            worker, site, service.shutdown, lambda s: status.local_snapshot(s)["streams"]
        )
        # Last: it says "ready" once the ports listen.
        reports.setServiceParent(service)  # type: ignore[no-untyped-call]
    return service
