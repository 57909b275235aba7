"""The test files: real data (a random block repeated, not sparse), written to a temporary
directory and read once so that every target serves them from the page cache."""

from __future__ import annotations

import os
import shutil
import tempfile

from benchmarks._proc import MiB

BLOCK = 4 * MiB


def make_files(files: dict[str, int], parent: str | None = None) -> str:
    """A new directory holding ``files`` (name -> size); the caller removes it."""
    root = tempfile.mkdtemp(prefix="bench-files-", dir=parent)
    os.chmod(root, 0o755)  # nginx's worker runs as another user when started as root
    block = os.urandom(min(BLOCK, max(files.values(), default=0)) or 1)
    for name, size in files.items():
        path = os.path.join(root, name)
        with open(path, "wb") as f:
            left = size
            while left:
                left -= f.write(block[:left])
        with open(path, "rb", buffering=0) as f:
            while f.read(8 * MiB):
                pass
    return root


def remove(root: str) -> None:
    shutil.rmtree(root, ignore_errors=True)
