"""twisted_stream or Twisted's own ``static.File`` on one site listening twice: plain HTTP on
``--port`` and TLS on ``--tls-port`` (ALPN ``h2`` and ``http/1.1``), for
``python -m benchmarks.tls_h2``.

Routes: those of the suite's server for ``--impl`` (``/ping``, ``/files/``, and for
twisted_stream ``/gen``), plus for twisted_stream ``/events?n=N&size=S``: an event stream of
``N`` events of ``S`` bytes of data each, as fast as the client reads.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from benchmarks.servers import static_file_server, twisted_stream_server
from benchmarks.servers._common import run
from benchmarks.servers._twisted import Leaf, query


def make_site(impl: str, root: str | None) -> Any:
    if impl == "static_file":
        return static_file_server.make_site(root)
    from twisted_stream import Event, stream_events

    site = twisted_stream_server.make_site(root, 1.0)

    def events(request: Any) -> Any:
        get = query(request)
        n, size = int(get("n") or 1), int(get("size") or 1000)
        data = "x" * size

        def items() -> Iterator[Event]:
            for _ in range(n):
                yield Event(data)

        return stream_events(request, items(), heartbeat=None)

    site.resource.putChild(b"events", Leaf(events))
    return site


def serve(args: argparse.Namespace) -> None:
    from twisted.internet import endpoints, reactor

    site = make_site(args.impl, args.root)
    reactor.listenTCP(args.port, site, backlog=4096, interface="127.0.0.1")
    tls = (
        f"ssl:{args.tls_port}:interface=127.0.0.1:backlog=4096:"
        f"privateKey={args.key}:certKey={args.cert}"
    )
    endpoints.serverFromString(reactor, tls).listen(site)
    reactor.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("twisted_stream", "static_file"), required=True)
    parser.add_argument("--port", type=int, required=True, help="plain HTTP on 127.0.0.1")
    parser.add_argument("--tls-port", type=int, required=True, help="TLS on 127.0.0.1")
    parser.add_argument("--cert", required=True, help="certificate (PEM)")
    parser.add_argument("--key", required=True, help="private key (PEM)")
    parser.add_argument("--root", help="directory served at /files/")
    parser.add_argument("--profile", metavar="FILE", help="run under cProfile, dump to FILE")
    args = parser.parse_args()
    run(lambda: serve(args), args.profile)


if __name__ == "__main__":
    main()
