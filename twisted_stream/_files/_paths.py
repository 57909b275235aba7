"""Path safety: which file a request path names below a root, or why it names none.

No HTTP and no Twisted here: the decisions are made on the path segments and the
filesystem alone, so they are tested without sockets. A refusal is an
:class:`~twisted_stream._errors.HTTPRefusal` carrying its status:

- 400 for a segment with a NUL byte or bytes that are not UTF-8;
- 404 for ``""``, ``.``, ``..``, a segment holding ``/`` or ``\\`` (``%2f``, ``%5c`` once
  decoded), a segment over :data:`NAME_MAX` bytes or a path over :data:`PATH_MAX`, a dotfile
  (unless ``dotfiles``), a symlink leading outside the root (unless ``follow_symlinks``),
  anything that is neither a regular file nor a directory, a missing file;
- 403 when the filesystem refuses for lack of permission, 500 for real I/O errors.

Symlinks are resolved with ``realpath`` and the result must lie below the root's real path.
Someone who can write inside the root can still race a directory swap between this check and
the open: the caller opens with ``O_NOFOLLOW`` and takes everything from ``fstat``.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from .._errors import HTTPRefusal

NAME_MAX = 255
"""Longest path segment, in bytes, as on most filesystems."""
PATH_MAX = 4096
"""Longest path below the root, in bytes."""

_NOT_FOUND_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.EINVAL, errno.ENXIO}
)
_PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


def refusal_for(error: OSError) -> HTTPRefusal:
    """The answer for a failed filesystem call: 404, 403, or 500 for real I/O errors."""
    if isinstance(error, PermissionError) or error.errno in _PERMISSION_ERRNOS:
        return HTTPRefusal(403, "Forbidden")
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return HTTPRefusal(404, "Not Found")
    if error.errno in _NOT_FOUND_ERRNOS:
        return HTTPRefusal(404, "Not Found")
    return HTTPRefusal(500, "Internal Server Error")


def segment_name(raw: bytes, dotfiles: bool) -> str:
    """The file name a (percent-decoded) URL path segment names; raise
    :class:`~twisted_stream._errors.HTTPRefusal` if it names none."""
    if b"\x00" in raw:
        raise HTTPRefusal(400, "Bad Request: NUL byte in path")
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPRefusal(400, "Bad Request: path is not valid UTF-8") from None
    if (
        name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or len(raw) > NAME_MAX
        or (name.startswith(".") and not dotfiles)
    ):
        raise HTTPRefusal(404, "Not Found")
    return name


def within(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or below it (both resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def has_dot_component(path: str, root: str) -> bool:
    """True when ``path`` (below ``root``) goes through a dotfile or dot-directory."""
    relative = os.path.relpath(path, root)
    return relative != "." and any(part.startswith(".") for part in relative.split(os.sep))


def stat_path(path: str) -> os.stat_result:
    """``os.stat`` with its errors turned into refusals."""
    try:
        return os.stat(path)
    except OSError as error:
        raise refusal_for(error) from None


@dataclass(frozen=True)
class Target:
    """What a request path resolved to."""

    path: str
    """The resolved path on disk."""
    name: str
    """The name the client asked for (it picks the content type)."""
    info: os.stat_result
    trailing_slash: bool


@dataclass(frozen=True)
class Paths:
    """The files that may be served below ``root`` (an absolute path to a directory, or to
    a single file that answers its own URL)."""

    root: str
    dotfiles: bool = False
    """Serve names starting with ``.`` (off: 404, and hidden from listings)."""
    follow_symlinks: bool = False
    """Follow symlinks that lead outside the root (off: 404)."""

    def real_root(self) -> str:
        """The root with its symlinks resolved (read anew each time: it may change)."""
        return os.path.realpath(self.root)

    def resolve(self, segments: list[bytes]) -> Target:
        """Check every segment of a request path and resolve them below the root; a final
        empty segment is a trailing slash. Raises ``HTTPRefusal``."""
        root = self.real_root()
        if segments in ([], [b""]) and os.path.isfile(root):
            # A single-file resource answers its own URL, with or without a final slash.
            return Target(root, os.path.basename(self.root), stat_path(root), False)
        trailing_slash = bool(segments) and segments[-1] == b""
        if trailing_slash:
            segments = segments[:-1]
        names = [segment_name(raw, self.dotfiles) for raw in segments]
        if sum(len(raw) + 1 for raw in segments) > PATH_MAX:
            raise HTTPRefusal(404, "Not Found")
        resolved = self.below(root, os.path.join(root, *names))
        info = stat_path(resolved)
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            raise HTTPRefusal(404, "Not Found")
        if stat.S_ISREG(info.st_mode) and trailing_slash:
            raise HTTPRefusal(404, "Not Found")
        name = names[-1] if names else os.path.basename(root)
        return Target(resolved, name, info, trailing_slash)

    def below(self, root: str, path: str) -> str:
        """``path`` with its symlinks resolved; refuses (404) an escape from ``root`` (the
        real root) and a hidden target."""
        resolved = os.path.realpath(path)
        inside = within(resolved, root)
        if not inside and not self.follow_symlinks:
            raise HTTPRefusal(404, "Not Found")
        if inside and not self.dotfiles and has_dot_component(resolved, root):
            raise HTTPRefusal(404, "Not Found")
        return resolved

    def index(self, directory: Target, name: str) -> Target | None:
        """The index file ``name`` of ``directory``, if it is a servable regular file."""
        try:
            path = self.below(self.real_root(), os.path.join(directory.path, name))
            info = os.stat(path)
        except (HTTPRefusal, OSError):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        return Target(path, name, info, False)

    def listable(self, entry: os.DirEntry[bytes], root: str) -> bool:
        """True when a directory entry would be served, so a listing shows it; ``root`` is
        :meth:`real_root`, read once per listing."""
        try:
            segment_name(entry.name, self.dotfiles)
            if entry.is_symlink():
                self.below(root, os.fsdecode(entry.path))
        except HTTPRefusal:
            return False
        return True
