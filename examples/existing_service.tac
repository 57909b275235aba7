# A streaming site running beside other services in one Twisted application:
#
#     twistd -ny examples/existing_service.tac
#
# - a TCP echo server (try: nc localhost 8007),
# - a periodic task (a TimerService counting ticks),
# - a StreamSite whose /ticks page streams every tick of that task as it happens, and whose
#   / page says what is running,
# - GracefulShutdown: on SIGTERM the ports stop listening, open streams get a few seconds, then
#   the endless /ticks streams are ended cleanly.
#
# STREAM_PORT, ECHO_PORT (endpoint descriptions or numbers), TICK_SECONDS and GRACE_SECONDS
# override the defaults tcp:8080, tcp:8007, 1.0 and 5.0.

import os

from twisted.application import service, strports
from twisted.application.internet import TimerService
from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource

from twisted_stream import StreamSite, stream, stream_for
from twisted_stream import GracefulShutdown


def endpoint(variable, default):
    value = os.environ.get(variable, default)
    return f"tcp:{value}" if value.isdigit() else value


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(protocol.Factory):
    protocol = Echo


class Ticker:
    """The periodic task: counts ticks and wakes whoever waits for the next one."""

    def __init__(self):
        self.count = 0
        self._waiting = []

    def tick(self):
        self.count += 1
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(f"tick {self.count}\n")

    def next_tick(self):
        d = Deferred(lambda d: self._waiting.remove(d) if d in self._waiting else None)
        self._waiting.append(d)
        return d


class Ticks(Resource):
    """Streams every tick of the periodic task until the client or the server stops."""

    isLeaf = True

    def __init__(self, ticker):
        super().__init__()
        self.ticker = ticker

    def render_GET(self, request):
        def lines():
            yield f"streaming ticks, {self.ticker.count} so far\n"
            while True:
                yield self.ticker.next_tick()  # a Deferred: the stream waits for the next tick

        result = stream(request, lines(), content_type="text/plain; charset=utf-8")
        stream_for(request).endless = True  # it never ends: end it cleanly at shutdown
        return result


class Status(Resource):
    isLeaf = True

    def __init__(self, ticker):
        super().__init__()
        self.ticker = ticker

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return (
            f"echo server on {ECHO_PORT}, {self.ticker.count} ticks so far; "
            "GET /ticks streams them\n"
        ).encode()


STREAM_PORT = endpoint("STREAM_PORT", "tcp:8080")
ECHO_PORT = endpoint("ECHO_PORT", "tcp:8007")
TICK_SECONDS = float(os.environ.get("TICK_SECONDS", "1.0"))
GRACE_SECONDS = float(os.environ.get("GRACE_SECONDS", "5.0"))

ticker = Ticker()
root = Resource()
root.putChild(b"", Status(ticker))
root.putChild(b"ticks", Ticks(ticker))
site = StreamSite(root)

application = service.Application("streaming beside an echo server")
services = service.MultiService()
services.setServiceParent(application)
# First, so that it stops last: after the ports have stopped listening.
GracefulShutdown(site, grace_period=GRACE_SECONDS).setServiceParent(services)
TimerService(TICK_SECONDS, ticker.tick).setServiceParent(services)
strports.service(ECHO_PORT, EchoFactory()).setServiceParent(services)
strports.service(STREAM_PORT, site).setServiceParent(services)
