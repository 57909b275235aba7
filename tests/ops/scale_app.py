"""The application the worker and channel tests serve (``--app tests.ops.scale_app:resource``):
each response tells which process served it; ``/events`` streams the shared channel
``news``, ``/publish?data=X`` publishes to it (503 with the error when the backend refuses)."""

from __future__ import annotations

import os
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from twisted_stream import Channel, EventStreamResource

PID = str(os.getpid()).encode()
channel = Channel("news", history=100)


class Pid(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"x-worker-pid", PID)
        return PID


class Events(EventStreamResource):
    def render_GET(self, request: Any) -> int:
        request.setHeader(b"x-worker-pid", PID)
        return super().render_GET(request)


class Publish(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> Any:
        data = request.args.get(b"data", [b""])[0].decode()
        request.setHeader(b"x-worker-pid", PID)

        def sent(event: Any) -> None:
            request.write(str(event.id).encode())
            request.finish()

        def failed(failure: Any) -> None:
            request.setResponseCode(503)
            request.write(failure.getErrorMessage().encode())
            request.finish()

        channel.publish(data).addCallbacks(sent, failed)
        return NOT_DONE_YET


resource = Resource()
resource.putChild(b"pid", Pid())
resource.putChild(b"events", Events(channel, heartbeat=0.2))
resource.putChild(b"publish", Publish())
