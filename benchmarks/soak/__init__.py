"""Soak: hold thousands of mixed streams for minutes and check that nothing grows.

Not a test: run it by hand (it takes ``--minutes``, 10 by default)::

    python -m benchmarks.soak                 # 2,000 streams for 10 minutes
    python -m benchmarks.soak --quick         # 1 minute
    python -m benchmarks.soak --streams 500 --minutes 3
    python -m benchmarks.soak --smoke         # seconds: checks that it runs, not the verdict

A server process (this script with ``--serve``) runs a ``StreamSite`` on 127.0.0.1 with:
paced generators (``/gen``), async generators (``/agen``), blocking generators in the thread
pool (``/tgen``), files through ``FileResource`` (``/files/``), event streams (``/events``),
and the metrics and status pages. This process is the client: it keeps ``--streams``
connections open at all times, each a random kind and a random behaviour, and opens a new
one whenever one ends:

- ``normal``: reads the whole response (file downloads are rate-limited, as a browser on a
  slow link would be; event streams are read for a random while, then left);
- ``slow``: reads in bursts, far below the stream's rate, but drains its buffer well within
  the stall timeout, so the server must keep it going;
- ``stall``: stops reading; the server's stall timeout (``--stall-timeout``) must abort it;
- ``disconnect``: leaves at a random moment, half of them with a reset (RST).

Every ``--sample`` seconds it prints the server's RSS, descriptors, threads and the counts
so far. It reports the figures at four points: idle before the load, the start of the
measured period (once the load is up and ``--warmup`` has passed: allocator arenas and caches
have grown to the load), the end of the run (same load), and idle after every client has
left. Errors are: client-side (connection refused, a status other than 200, a body cut
short although neither the client nor the stall timeout did it) and server-side (streams
that ended as ``source-failed`` or ``aborted``, and error/critical log events). The verdict
fails when RSS grew by more than ``--rss-tolerance`` between start and end, when the
descriptors idle after exceed those idle before, or on any error.

Everything stays on 127.0.0.1; connection counts and the run time are bounded.
"""
