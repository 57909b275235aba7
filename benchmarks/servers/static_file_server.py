"""Twisted's own ``twisted.web.static.File`` on a plain ``Site`` (feature: files)."""

from __future__ import annotations

from typing import Any

from benchmarks.servers._common import parse_args, run
from benchmarks.servers._twisted import Leaf, listen_and_run, ping


def make_site(root: str | None) -> Any:
    from twisted.web.resource import Resource
    from twisted.web.server import Site
    from twisted.web.static import File

    top = Resource()
    top.putChild(b"ping", Leaf(ping))
    if root:
        top.putChild(b"files", File(root))
    return Site(top)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    run(lambda: listen_and_run(make_site(args.root), args.port), args.profile)


if __name__ == "__main__":
    main()
