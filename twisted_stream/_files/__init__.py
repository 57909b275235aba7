"""Serving files: ``FileResource``, path safety as a pure module (:mod:`._paths`), the
streamed listing, RFC 9110 preconditions and ranges, the content-type table. May import the
base modules, ``_http``, ``_engine`` and ``_sources``."""
