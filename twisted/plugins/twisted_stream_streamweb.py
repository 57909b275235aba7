"""twistd plugin dropin: ``twistd streamweb`` (see :mod:`twisted_stream.tap`).

There is deliberately no ``__init__.py`` in ``twisted/`` or ``twisted/plugins/``: this file
joins Twisted's own ``twisted.plugins`` package, and the module named below is imported only
when the plugin is used.
"""

from twisted.application.service import ServiceMaker

streamweb = ServiceMaker(
    "twisted_stream streamweb",
    "twisted_stream.tap",
    "Serve files, your resource, or a demo site with streaming HTTP responses and flow control",
    "streamweb",
)
