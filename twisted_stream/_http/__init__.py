"""The HTTP layer: the one seam to Twisted's web internals (:mod:`._twisted`), our
connection layer (:mod:`._channel`, chosen per connection by :mod:`._protocol`; HTTP/2 in
:mod:`._h2`) and request bodies (:mod:`._body`, :mod:`._request_body`, :mod:`._h1body`,
:mod:`._h2body`, :mod:`._forms`). May import only the base modules (``_errors``,
``_settings``, ``_types``) and Twisted."""
