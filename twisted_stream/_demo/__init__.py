"""The demo site of ``twistd streamweb``. It uses the public API only: its modules import
``twisted_stream`` itself, never a private module, and sit above it."""

from ._site import demo_resource

__all__ = ["demo_resource"]
