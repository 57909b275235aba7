"""``twistd streamweb``: serve a directory, your resource, or the demo site, with streaming.

The dropin ``twisted/plugins/twisted_stream_streamweb.py`` points twistd here: :class:`Options`
parses the command line (a bad value ends the process with a one-line message) and
:func:`makeService` builds the service::

    twistd -n streamweb --port 8080                        # the built-in demo site
    twistd -n streamweb --path /srv/files --listing        # files, streamed with flow control
    twistd -n streamweb --app examples.countdown:resource  # your IResource at /

The options and the service live in :mod:`twisted_stream._ops`; this module only adds the
demo site as the default root.
"""

from __future__ import annotations

from twisted.application.service import MultiService

from ._demo import demo_resource
from ._ops._options import TwistdOptions
from ._ops._service import build_service

__all__ = ["Options", "makeService"]

Options = TwistdOptions
"""The command line twistd parses: a usage error ends the process with one line naming the
bad option and value and a pointer to ``--help``, exit status 2."""


def makeService(options: Options) -> MultiService:
    """Build the service ``twistd streamweb`` runs from parsed :class:`Options`: the
    ``--path`` or ``--app`` root, else the demo site."""
    root = options["root"]
    if root is None:
        mounted = {kind: path for path, kind in options["mounts"].items()}
        demo = demo_resource(status=mounted.get("status"), metrics=mounted.get("metrics"))
        return build_service(options, demo, serving="the demo site")
    return build_service(options, root)
