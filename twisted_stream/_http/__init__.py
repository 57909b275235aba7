"""The HTTP layer: the one seam to Twisted's web internals (:mod:`._twisted`) and our
connection layer (:mod:`._channel`, chosen per connection by :mod:`._protocol`); later
request bodies and HTTP/2. May import only the base modules (``_errors``, ``_settings``,
``_types``) and Twisted."""
