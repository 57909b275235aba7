"""Path safety (``twisted_stream._files._paths``), with no sockets: which file a request path
names below a root, and the status of every refusal."""

from __future__ import annotations

import errno
import os
import pathlib

import pytest

from twisted_stream._errors import HTTPRefusal
from twisted_stream._files._paths import (
    NAME_MAX,
    PATH_MAX,
    Paths,
    has_dot_component,
    refusal_for,
    segment_name,
    within,
)


@pytest.fixture
def tree(tmp_path: pathlib.Path) -> pathlib.Path:
    """``root/`` with a file, a subdirectory, dotfiles and symlinks in and out of it, and a
    secret beside it."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello")
    (root / "sub" / "inner.txt").write_text("inner")
    (root / ".env").write_text("SECRET=1")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]")
    (tmp_path / "secret.txt").write_text("outside")
    (root / "link-in.txt").symlink_to(root / "sub" / "inner.txt")
    (root / "link-out.txt").symlink_to(tmp_path / "secret.txt")
    (root / "link-out-dir").symlink_to(tmp_path)
    (root / "link-to-dot").symlink_to(root / ".git" / "config")
    os.mkfifo(root / "pipe")
    return root


def status(paths: Paths, *segments: bytes) -> int:
    """The status a path gets: 200 when it resolves, else the refusal's code."""
    try:
        paths.resolve(list(segments))
    except HTTPRefusal as refusal:
        return refusal.code
    return 200


TRAVERSAL = [
    [b".."],
    [b"..", b"secret.txt"],
    [b"sub", b"..", b"..", b"secret.txt"],
    [b"."],
    [b"sub", b".", b"inner.txt"],
    [b"sub", b"", b"inner.txt"],
    [b"../secret.txt"],  # %2e%2e%2f: a decoded slash inside one segment
    [b"..%2fsecret.txt"],  # still encoded: a name that does not exist
    [b"sub/inner.txt"],  # %2f
    [b"sub\\inner.txt"],  # %5c
    [b"..\\secret.txt"],
    [b"\\..\\secret.txt"],
    [b"C:\\Windows"],
    [b"/etc", b"passwd"],
    [b"", b"etc", b"passwd"],
]


@pytest.mark.parametrize("segments", TRAVERSAL, ids=lambda s: repr(b"/".join(s)))
def test_traversal_and_encoded_separators_are_not_found(
    tree: pathlib.Path, segments: list[bytes]
) -> None:
    """``..``, ``.``, empty segments and separators inside a segment (``%2f``, ``%5c`` once
    decoded) never reach a file: 404."""
    assert status(Paths(str(tree)), *segments) == 404


def test_files_and_directories_below_the_root_resolve(tree: pathlib.Path) -> None:
    """A file, a nested file and a directory (with its trailing slash) resolve to their
    paths; the name asked for is kept (it picks the content type)."""
    paths = Paths(str(tree))
    target = paths.resolve([b"sub", b"inner.txt"])
    assert target.path == str(tree / "sub" / "inner.txt") and target.name == "inner.txt"
    directory = paths.resolve([b"sub", b""])
    assert directory.trailing_slash and directory.path == str(tree / "sub")
    assert paths.resolve([]).path == str(tree)


def test_nul_and_invalid_utf8_are_bad_requests(tree: pathlib.Path) -> None:
    """A NUL byte or bytes that are not UTF-8 are a malformed path: 400, never 500."""
    paths = Paths(str(tree))
    assert status(paths, b"hello.txt\x00.png") == 400
    assert status(paths, b"\xff\xfe") == 400
    with pytest.raises(HTTPRefusal, match="NUL"):
        segment_name(b"a\x00", dotfiles=True)


def test_dotfiles_are_hidden_unless_allowed(tree: pathlib.Path) -> None:
    """Names starting with a dot, and paths through a dot-directory, are 404 unless
    ``dotfiles``; a symlink to a dotfile is hidden too."""
    hidden = Paths(str(tree))
    for segments in ([b".env"], [b".git", b"config"], [b"link-to-dot"]):
        assert status(hidden, *segments) == 404, segments
    shown = Paths(str(tree), dotfiles=True)
    for segments in ([b".env"], [b".git", b"config"], [b"link-to-dot"]):
        assert status(shown, *segments) == 200, segments


def test_symlinks_inside_the_root_are_followed_outside_refused(tree: pathlib.Path) -> None:
    """A symlink to a file below the root is served; one leading out (to a file or through
    a directory) is 404 unless ``follow_symlinks``."""
    paths = Paths(str(tree))
    assert paths.resolve([b"link-in.txt"]).path == str(tree / "sub" / "inner.txt")
    assert status(paths, b"link-out.txt") == 404
    assert status(paths, b"link-out-dir", b"secret.txt") == 404
    following = Paths(str(tree), follow_symlinks=True)
    assert status(following, b"link-out.txt") == 200
    assert status(following, b"link-out-dir", b"secret.txt") == 200


def test_a_root_reached_through_a_symlink_still_contains_its_files(
    tree: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """The root is compared by its real path, so a root that is itself a symlink works."""
    alias = tmp_path / "alias"
    alias.symlink_to(tree)
    assert status(Paths(str(alias)), b"sub", b"inner.txt") == 200
    assert status(Paths(str(alias)), b"link-out.txt") == 404


def test_what_is_not_a_regular_file_or_directory_is_not_found(tree: pathlib.Path) -> None:
    """A FIFO, a missing name, and a file asked for with a trailing slash are 404."""
    paths = Paths(str(tree))
    assert status(paths, b"pipe") == 404
    assert status(paths, b"missing.txt") == 404
    assert status(paths, b"hello.txt", b"") == 404
    assert status(paths, b"hello.txt", b"more") == 404


def test_overlong_names_and_paths_are_not_found(tree: pathlib.Path) -> None:
    """A segment over NAME_MAX bytes or a path over PATH_MAX bytes is 404 (never an OS
    error)."""
    paths = Paths(str(tree))
    assert status(paths, b"a" * (NAME_MAX + 1)) == 404
    assert status(paths, *([b"sub"] * (PATH_MAX // 4 + 1))) == 404


def test_a_single_file_root_answers_its_own_url(tmp_path: pathlib.Path) -> None:
    """A root that is a file resolves for the empty path, with or without a slash, named
    after itself."""
    only = tmp_path / "report.csv"
    only.write_text("a,b\n")
    for segments in ([], [b""]):
        target = Paths(str(only)).resolve(segments)
        assert target.path == str(only) and target.name == "report.csv"


def test_within_compares_whole_path_components() -> None:
    """``/srv/www2`` is not below ``/srv/www``; the root itself is within."""
    assert within("/srv/www", "/srv/www")
    assert within("/srv/www/a", "/srv/www")
    assert not within("/srv/www2/a", "/srv/www")
    assert has_dot_component("/srv/www/.git/x", "/srv/www")
    assert not has_dot_component("/srv/www/a.b/c", "/srv/www")


def test_filesystem_errors_become_statuses() -> None:
    """Permission errors are 403, missing paths 404, real I/O errors 500."""
    assert refusal_for(PermissionError(errno.EACCES, "denied")).code == 403
    assert refusal_for(FileNotFoundError(errno.ENOENT, "gone")).code == 404
    assert refusal_for(OSError(errno.ELOOP, "loop")).code == 404
    assert refusal_for(OSError(errno.EIO, "disk")).code == 500


def test_listings_hide_dotfiles_and_symlinks_out_of_the_root(tree: pathlib.Path) -> None:
    """A listing hides dotfiles and symlinks leading out of the root, and shows the rest
    (what is not a file or directory is listed, and answers 404 when asked for)."""
    paths = Paths(str(tree))
    with os.scandir(os.fsencode(tree)) as entries:
        shown = {e.name for e in entries if paths.listable(e, paths.real_root())}
    assert shown == {b"sub", b"hello.txt", b"link-in.txt", b"pipe"}
