"""``--channel-backend``: the plugin's service sharing named channels through Redis."""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed

from .._backends._current import set_channel_backend
from .._backends._redis_address import RedisAddress, check_reachable
from .._backends._shared import SharedBackend
from ._checks import one_line
from ._shutdown import GracefulShutdown


class ChannelBackendService(Service):
    """Makes ``url`` the channel backend of this process. At startup an unreachable server
    ends the process with one line; at shutdown the connections close once ``shutdown``
    has drained the streams (events keep flowing during the grace period). A parent of
    workers (``shutdown`` None) only checks that the server is reachable."""

    def __init__(self, url: str, shutdown: GracefulShutdown | None) -> None:
        self.url = url
        self.address = RedisAddress.parse(url)
        self.shutdown = shutdown
        self.backend: SharedBackend | None = None
        if shutdown is not None:
            self.backend = set_channel_backend(url)

    def privilegedStartService(self) -> None:
        try:
            check_reachable(self.address)
        except OSError as e:
            raise SystemExit(
                f"twistd streamweb: cannot reach the channel backend {self.address}: {one_line(e)}"
            ) from None
        super().privilegedStartService()  # type: ignore[no-untyped-call]

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        start = getattr(self.backend, "start", None)
        if start is not None:
            start()

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        stop = getattr(self.backend, "stop", None)
        if self.shutdown is None or stop is None:
            return succeed(None)
        drained = self.shutdown.drain()
        return drained.addCallback(lambda _: stop())
