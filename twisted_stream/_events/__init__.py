"""Live and structured streams: SSE encoding (:mod:`._sse`), event streams, broadcast
channels, NDJSON and streamed templates. May import the layers below (``_backends`` down)."""
