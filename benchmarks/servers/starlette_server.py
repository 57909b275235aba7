"""Starlette on uvicorn (as ``uvicorn app`` runs it: uvloop and httptools when installed):
``StaticFiles`` (``FileResponse``), ``StreamingResponse`` from an async generator, event
streams from an async generator or a queue per subscriber fed by one ticker, and request
bodies read from ``request.stream()`` (features: files, gen, sse, upload)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from benchmarks.servers._common import (
    CONTENT_TYPE,
    SSE_CONTENT_TYPE,
    chunks,
    gen_params,
    parse_args,
    run,
    sse_event,
)


def make_app(root: str | None, sse_every: float) -> Starlette:
    subscribers: set[asyncio.Queue[bytes]] = set()

    async def ping(request: Request) -> Response:
        return PlainTextResponse("pong\n")

    async def gen(request: Request) -> Response:
        n, size = gen_params(request.query_params.get)

        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks(n, size):
                yield chunk

        return StreamingResponse(body(), media_type=CONTENT_TYPE)

    async def upload(request: Request) -> Response:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return PlainTextResponse(f"{size}\n")

    def sse(events: AsyncIterator[bytes]) -> Response:
        return StreamingResponse(
            events, media_type=SSE_CONTENT_TYPE, headers={"Cache-Control": "no-store"}
        )

    async def sse_agen(request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            number = 0
            while True:
                number += 1
                yield sse_event(number)
                await asyncio.sleep(sse_every)

        return sse(events())

    async def sse_channel(request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=256)
            subscribers.add(queue)
            try:
                while True:
                    yield await queue.get()
            finally:
                subscribers.discard(queue)

        return sse(events())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
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

    routes: list[BaseRoute] = [
        Route("/ping", ping),
        Route("/gen", gen),
        Route("/sse/agen", sse_agen),
        Route("/sse/channel", sse_channel),
        Route("/upload", upload, methods=["PUT"]),
    ]
    if root:
        routes.append(Mount("/files", StaticFiles(directory=root)))
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    config = uvicorn.Config(
        make_app(args.root, args.sse_every),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_graceful_shutdown=1,
    )
    run(uvicorn.Server(config).run, args.profile)


if __name__ == "__main__":
    main()
