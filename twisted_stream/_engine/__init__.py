"""The engine: the state table, the :class:`~._source.Source` interface, the one push
producer and the :class:`~._stream.Stream` handle. May import the base modules and
``_http`` (the seam to Twisted); nothing here knows a source kind, a site or a feature."""
