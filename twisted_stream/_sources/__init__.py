"""Source adapters and the public :func:`~._stream.stream`: sync, async and threaded
iterables (with the site's thread pool), files, Twisted producers, heartbeats, gzip. May
import the base modules, ``_http`` and ``_engine``."""
