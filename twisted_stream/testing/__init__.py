"""Test your streaming resources without a network, as ``treq.testing`` tests HTTP clients.

:class:`StreamTestClient` sends requests to a :class:`~twisted_stream.StreamSite` over
in-memory connections served by the site's own protocol, on a fake clock
(:class:`StreamTestClock`, a ``MemoryReactorClock`` to give your resources where they take
a clock); each request gives back a live :class:`StreamTestResponse`. Its transport
behaves as TCP's does for flow control (the producer is paused past 64 KiB unread and
resumed when the client has read it all), and the client can read at a rate, stop
reading, or disconnect after so many bytes; so backpressure, stall timeouts, limits and
teardown happen as they do in production, in fake time::

    from twisted_stream.testing import StreamTestClient, assert_released

    def test_a_client_that_leaves_releases_the_export():
        with StreamTestClient(Export()) as client:
            response = client.get("/export", disconnect_after=100_000)
            assert response.code == 200 and not response.complete
            assert response.result.outcome is Outcome.CLIENT_GONE
            assert_released(response)

:func:`assert_released` fails when a stream's source was not closed, or when a timer or a
thread is left running once the connections are closed. The guide's "Testing your streams"
page has an example for every source kind.
"""

from ._client import StreamTestClient
from ._clock import StreamTestClock
from ._response import StreamTestResponse, assert_released

__all__ = ["StreamTestClient", "StreamTestClock", "StreamTestResponse", "assert_released"]
