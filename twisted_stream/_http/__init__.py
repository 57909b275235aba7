"""The HTTP layer: the one seam to Twisted's web internals (:mod:`._twisted`); later our
connection layer, request bodies and HTTP/2. May import only the base modules
(``_errors``, ``_settings``, ``_types``) and Twisted."""
