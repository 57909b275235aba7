"""Running streams in production: ``StreamSite`` (the stream registry), limits, metrics,
Prometheus, the status page, graceful shutdown, mounts, and the ``twistd streamweb`` options
and service. May import every layer below (``_events``, ``_files`` and what they build on)."""
