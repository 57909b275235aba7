from __future__ import annotations
import pytest_twisted
from ..rawclient import connect, get
from ..waiting import within, until, turns

@pytest_twisted.ensureDeferred
async def test_dbg(proxied) -> None:
    raw = await connect(proxied.upstream_port, get("/silent"))
    await until(lambda: bool(proxied.upstream.silent), what="the upstream request")
    req = proxied.upstream.silent[0]
    lost = []
    req.notifyFinish().addBoth(lost.append)
    t = req.channel.transport
    print("reading?", t in t.reactor.getReaders() if hasattr(t,'reactor') else None)
    raw.transport.abortConnection()
    await turns(200)
    print("upstream lost", lost, req._disconnected)
