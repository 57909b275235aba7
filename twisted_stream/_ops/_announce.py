"""The start-up lines of ``twistd streamweb``: the URL(s) to open, once each port listens.

:class:`AnnouncingEndpoint` wraps a server endpoint; when its port is listening it logs
where to point a browser (or ``curl``), the address the port really got included
(``tcp:0`` picks a free port).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from zope.interface import implementer

_log = Logger(namespace="twisted_stream.streamweb")

_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
"""An address listening on every interface, and the loopback address to open it on."""


def base_url(address: IAddress, tls: bool) -> str | None:
    """``http(s)://host:port`` for a TCP address (loopback for "every interface"), or None
    for another kind (a UNIX socket)."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if not isinstance(host, str) or not isinstance(port, int):
        return None
    shown = _ANY.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def announcements(
    address: IAddress, tls: bool, serving: str, pages: Mapping[str, str]
) -> list[str]:
    """The lines to log for a port listening at ``address``: what it serves, then each of
    ``pages`` (``{label: path}``)."""
    base = base_url(address, tls)
    if base is None:
        name = getattr(address, "name", None)
        if not isinstance(name, (str, bytes)):
            return [f"serving {serving} on {address}"]
        path = name.decode() if isinstance(name, bytes) else name
        return [
            f"serving {serving} on the UNIX socket {path} "
            f"(curl --unix-socket {path} http://localhost/)"
        ]
    everywhere = getattr(address, "host", "") in _ANY
    lines = [f"serving {serving}: open {base}/" + (" (on every interface)" if everywhere else "")]
    lines += [f"{label}: {base}{path}" for label, path in pages.items()]
    return lines


@implementer(IStreamServerEndpoint)
class AnnouncingEndpoint:
    """``endpoint``, logging :func:`announcements` once its port listens."""

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        *,
        tls: bool,
        serving: str,
        pages: Mapping[str, str],
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.tls = tls
        self.serving = serving
        self.pages = dict(pages)
        self._log = log if log is not None else _info

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        listening: Deferred[IListeningPort] = self.endpoint.listen(protocolFactory)

        def announce(port: IListeningPort) -> IListeningPort:
            for line in announcements(port.getHost(), self.tls, self.serving, self.pages):
                self._log(line)
            return port

        return listening.addCallback(announce)


def _info(line: str) -> None:
    _log.info("{line}", line=line)
