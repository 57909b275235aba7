"""The service ``twistd streamweb`` runs: its site and its ports, drained at shutdown."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application import strports
from twisted.application.service import IService, MultiService
from twisted.internet.error import CannotListenError
from twisted.python import usage
from twisted.web.resource import IResource
from twisted.web.server import Request

from .._settings import StreamSettings
from ._channels import ChannelBackendService
from ._checks import listen_failure
from ._mounts import Mounts
from ._prometheus import MetricsResource
from ._shutdown import GracefulShutdown
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
        found: IResource = super().getResourceFor(request)  # type: ignore[no-untyped-call]
        return found


class StreamWebService(MultiService):
    """What ``twistd streamweb`` runs: one port service per endpoint for ``site``, and the
    :class:`~twisted_stream._shutdown.GracefulShutdown` that drains it when stopped."""

    def __init__(
        self,
        site: StreamSite,
        ports: Sequence[str],
        grace_period: float,
        *,
        adopt: Callable[[str, int], IService] | None = None,
    ) -> None:
        """``adopt(description, n)``, in a worker, makes the service of the ``n``-th port from
        the socket its parent passed (:func:`~._worker.adopted_port`)."""
        super().__init__()  # type: ignore[no-untyped-call]
        self.site = site
        self.ports = tuple(ports)
        # First child, so it is stopped last: after the ports stopped listening.
        self.shutdown = GracefulShutdown(site, grace_period)
        self.shutdown.setServiceParent(self)  # type: ignore[no-untyped-call]
        for n, description in enumerate(self.ports):
            port = strports.service(description, site) if adopt is None else adopt(description, n)
            port.setServiceParent(self)  # type: ignore[no-untyped-call]

    def privilegedStartService(self) -> None:
        # twistd listens here (before dropping privileges): a port that cannot be had ends
        # the process with one line, like a usage error, not a traceback.
        try:
            super().privilegedStartService()  # type: ignore[no-untyped-call]
        except (CannotListenError, OSError) as e:
            raise listen_failure(e) from None


def build_service(options: usage.Options, root: IResource) -> MultiService:
    """The service for parsed :class:`~._options.Options`, serving ``root`` (with the
    ``--metrics`` and ``--status`` pages mounted in front of it): in this process, or, with
    ``--workers N``, the parent of N worker processes (each of which runs this again)."""
    worker = WorkerConfig.from_env()
    backend = options["channel-backend"]
    if worker is None and options["workers"] > 1:
        parent = WorkerParent(
            options["argv"], options["ports"], options["workers"], options["grace-period"]
        )
        if backend is not None:
            ChannelBackendService(backend, None).setServiceParent(parent)  # type: ignore[no-untyped-call]
        return parent
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
    if worker is None:
        service = StreamWebService(site, options["ports"], options["grace-period"])
    else:
        service = StreamWebService(
            site,
            options["ports"],
            options["grace-period"],
            adopt=lambda description, n: adopted_port(description, FIRST_PORT_FD + n, site),
        )
    if backend is not None:
        channels = ChannelBackendService(backend, service.shutdown)
        channels.setServiceParent(service)  # type: ignore[no-untyped-call]
    if worker is not None:
        status = StatusResource(site)  # the rows of this worker's streams for the others
        rows = WorkerService(
            worker, site, service.shutdown, lambda s: status.local_snapshot(s)["streams"]
        )
        # Last: it says "ready" once the ports listen.
        rows.setServiceParent(service)  # type: ignore[no-untyped-call]
    return service
