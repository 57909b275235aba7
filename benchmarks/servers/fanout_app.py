"""The application of the fan-out benchmark (``python -m benchmarks.fanout``), served by
``twistd streamweb --app benchmarks.servers.fanout_app:resource``, public API only:
``GET /ping``; ``GET /events``, an event stream of ``Channel("fanout")`` (shared through
Redis when the server has ``--channel-backend``); ``GET /publish?data=X`` publishes ``X`` and
answers once the channel accepted it."""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from benchmarks.servers._twisted import Leaf, ping, query
from twisted_stream import Channel, EventStreamResource

channel = Channel("fanout", queue_size=16)


def publish(request: Any) -> Any:
    def sent(event: Any) -> None:
        request.write(str(event.id).encode())
        request.finish()

    def failed(failure: Any) -> None:
        request.setResponseCode(503)
        request.write(failure.getErrorMessage().encode())
        request.finish()

    channel.publish(query(request)("data") or "").addCallbacks(sent, failed)
    return NOT_DONE_YET


resource = Resource()
resource.putChild(b"ping", Leaf(ping))
resource.putChild(b"events", EventStreamResource(channel, heartbeat=None))
resource.putChild(b"publish", Leaf(publish))
