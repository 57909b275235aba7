"""Mounting resources at fixed paths in front of any root resource."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from zope.interface import implementer


@implementer(IResource)
class Mounts(Resource):
    """``root``, with other resources answering at given paths in front of it.

    ``Mounts(root, {"/_status": StatusResource(), "/_metrics": MetricsResource()})`` serves
    those two paths (and what lies below them) from the given resources and everything else
    from ``root`` exactly as if ``root`` were the site's resource: a leaf root (such as
    ``FileResource``) still sees the whole path. Paths may have several segments
    (``/admin/status``); the longest matching one wins.
    """

    def __init__(self, root: IResource, mounts: Mapping[str, IResource]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.root = root
        found: list[tuple[tuple[bytes, ...], IResource]] = []
        for path, resource in mounts.items():
            segments = tuple(s.encode("utf-8") for s in path.strip("/").split("/"))
            if segments == (b"",) or b"" in segments:
                raise ValueError(f"cannot mount at {path!r}: give a path like /_status")
            found.append((segments, resource))
        found.sort(key=lambda item: -len(item[0]))
        self.mounts = tuple(found)

    def getChildWithDefault(self, name: bytes, request: Request) -> IResource:
        assert request.prepath is not None and request.postpath is not None  # set by Site
        remaining = [name, *request.postpath]
        for segments, resource in self.mounts:
            if tuple(remaining[: len(segments)]) == segments:
                rest = len(segments) - 1
                request.prepath.extend(request.postpath[:rest])
                del request.postpath[:rest]
                return resource
        if getattr(self.root, "isLeaf", False):
            # Undo the step Twisted just took, so the leaf renders the whole path.
            request.prepath.pop()
            request.postpath.insert(0, name)
            return self.root
        child: IResource = self.root.getChildWithDefault(name, request)
        return child

    def render(self, request: Request) -> bytes | int:
        rendered: bytes | int = self.root.render(request)
        return rendered
