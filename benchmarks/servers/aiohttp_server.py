"""aiohttp: ``FileResponse`` (sendfile), ``StreamResponse`` with an ``await resp.write()``
loop, event streams from a handler loop or a queue per subscriber fed by one ticker, request
bodies read from ``request.content`` and a proxy: a ``ClientSession`` response copied into a
``StreamResponse`` as it is read (features: files, gen, sse, upload, proxy)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from benchmarks.servers._common import (
    CONTENT_TYPE,
    SSE_CONTENT_TYPE,
    chunks,
    gen_params,
    parse_args,
    run,
    sse_event,
)

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


def make_app(root: str | None, sse_every: float, upstream: str | None = None) -> web.Application:
    subscribers: set[asyncio.Queue[bytes]] = set()

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong\n")

    async def files(request: web.Request) -> web.StreamResponse:
        assert root is not None
        path = os.path.join(root, os.path.basename(request.match_info["name"]))
        if not os.path.isfile(path):
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def gen(request: web.Request) -> web.StreamResponse:
        n, size = gen_params(request.query.get)
        resp = web.StreamResponse()
        resp.content_type = CONTENT_TYPE
        await resp.prepare(request)
        for chunk in chunks(n, size):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def upload(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
        return web.Response(text=f"{size}\n")

    async def sse_start(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": SSE_CONTENT_TYPE, "Cache-Control": "no-store"}
        )
        await resp.prepare(request)
        return resp

    async def sse_agen(request: web.Request) -> web.StreamResponse:
        resp = await sse_start(request)
        number = 0
        while True:
            number += 1
            await resp.write(sse_event(number))
            await asyncio.sleep(sse_every)

    async def sse_channel(request: web.Request) -> web.StreamResponse:
        resp = await sse_start(request)
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=256)
        subscribers.add(queue)
        try:
            while True:
                await resp.write(await queue.get())
        finally:
            subscribers.discard(queue)

    async def ticker(app: web.Application) -> AsyncIterator[None]:
        async def tick() -> None:
            number = 0
            while True:
                await asyncio.sleep(sse_every)
                number += 1
                event = sse_event(number)
                for queue in list(subscribers):
                    if not queue.full():
                        queue.put_nowait(event)

        task = asyncio.ensure_future(tick())
        yield
        task.cancel()

    async def client(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        app["client"] = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        yield
        await app["client"].close()

    async def proxy(request: web.Request) -> web.StreamResponse:
        """The pass-through as aiohttp users write it: the upstream's body copied into a
        ``StreamResponse`` as it is read (``write`` waits for the socket to drain)."""
        url = f"{upstream}/{request.match_info['tail']}"
        if request.query_string:
            url += "?" + request.query_string
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.pop("Host", None)
        session: aiohttp.ClientSession = request.app["client"]
        async with session.request(request.method, url, headers=headers) as up:
            resp = web.StreamResponse(status=up.status, reason=up.reason)
            for name, value in up.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    resp.headers.add(name, value)
            if up.content_length is not None:
                resp.content_length = up.content_length
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    app = web.Application()
    app.cleanup_ctx.append(ticker)
    if upstream:
        app.cleanup_ctx.append(client)
        app.router.add_get("/proxy/{tail:.*}", proxy)
    app.router.add_get("/ping", ping)
    app.router.add_get("/gen", gen)
    app.router.add_get("/files/{name}", files)
    app.router.add_get("/sse/agen", sse_agen)
    app.router.add_get("/sse/channel", sse_channel)
    app.router.add_put("/upload", upload)
    return app


async def serve(root: str | None, sse_every: float, port: int, upstream: str | None) -> None:
    app = make_app(root, sse_every, upstream)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096, shutdown_timeout=1.0).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    run(
        lambda: asyncio.run(serve(args.root, args.sse_every, args.port, args.upstream)),
        args.profile,
    )


if __name__ == "__main__":
    main()
