"""Method handling for ``twisted.web`` resources (RFC 9110 §9.1, §9.3.2, §9.3.7, §15.5.6).

Twisted's ``Resource.render`` calls ``render_<METHOD>`` and otherwise raises
``UnsupportedMethod``, which the server answers 405 only for GET, HEAD and POST (501 for
every other method, OPTIONS included). Its list of allowed methods comes from the
``render_*`` names, and ``Resource`` itself defines ``render_HEAD`` (calling
``render_GET``): a resource with only ``render_POST`` advertises ``Allow: HEAD, POST`` and
answers HEAD with a 500 (``AttributeError: no attribute 'render_GET'``).

:func:`render_method` dispatches the same way with those faults fixed: HEAD is handled only
where GET is (or where the resource defines its own ``render_HEAD``), ``OPTIONS`` is answered
``200`` with ``Allow``, and any other method the resource does not handle gets ``405`` with
an ``Allow`` listing exactly the methods that work. :class:`MethodsResource` is a
``Resource`` rendering through it.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from zope.interface import implementer

from .._types import StreamRequest

_Handler = Callable[[Request], "bytes | int"]


def _handler(resource: object, method: str) -> _Handler | None:
    """The ``render_<method>`` that answers ``method``, or None.

    HEAD is answered by a ``render_HEAD`` other than ``Resource``'s default, or by that
    default when there is a ``render_GET`` for it to call.
    """
    found: _Handler | None = getattr(resource, "render_" + method, None)
    if method != "HEAD" or found is None:
        return found
    own = getattr(type(resource), "render_HEAD", None) is not Resource.render_HEAD
    return found if own or callable(getattr(resource, "render_GET", None)) else None


def allowed_methods(resource: object) -> tuple[bytes, ...]:
    """The methods ``resource`` answers, sorted: its ``render_<METHOD>`` methods (HEAD as
    :func:`_handler` says) and OPTIONS; or its own ``allowedMethods``, Twisted's attribute
    for resources that dispatch themselves."""
    explicit = getattr(resource, "allowedMethods", None)
    if explicit is not None:
        return tuple(explicit)
    names = {
        name
        for name in dir(resource)
        if name.startswith("render_") and _handler(resource, name[len("render_") :])
    }
    methods = {name[len("render_") :] for name in names} | {"OPTIONS"}
    return tuple(sorted(method.encode("ascii") for method in methods if method.isascii()))


def refuse_method(request: StreamRequest, allowed: tuple[bytes, ...]) -> bytes:
    """Answer ``OPTIONS`` with ``200`` and an empty body, anything else with ``405 Method
    Not Allowed``; both with ``Allow: <allowed>``. Returns the body."""
    request.setHeader(b"allow", b", ".join(allowed))
    if request.method == b"OPTIONS":
        request.setResponseCode(200)
        return b""
    request.setResponseCode(405)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"x-content-type-options", b"nosniff")
    return b"Method Not Allowed\n"


def render_method(resource: object, request: Request) -> bytes | int:
    """Call the ``render_<METHOD>`` of ``resource`` that answers ``request`` (see the module
    docstring); OPTIONS and methods it does not answer are refused with
    :func:`refuse_method`."""
    handler = _handler(resource, request.method.decode("latin-1"))
    if handler is None:
        return refuse_method(request, allowed_methods(resource))
    return handler(request)


@implementer(IResource)
class MethodsResource(Resource):
    """A ``Resource`` whose ``render`` is :func:`render_method`: ``render_<METHOD>`` as in
    Twisted, HEAD only with GET, OPTIONS answered, 405 with an exact ``Allow`` otherwise."""

    def render(self, request: Request) -> bytes | int:
        return render_method(self, request)
