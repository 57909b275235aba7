"""The seam to Twisted's web internals: connections (HTTP/1.1, HTTP/2) and request helpers.
May import the top-level modules (``_errors``, ``_settings``, ``_types``) and Twisted."""
