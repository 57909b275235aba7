"""Settings reflected into plugin options (``twisted_stream._ops._reflect``) need no source
code: ``twistd streamweb --help`` works from an install that ships only ``.pyc`` files."""

from __future__ import annotations

import compileall
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import twisted_stream

SCRIPT = textwrap.dedent(
    """
    import inspect
    import twisted_stream._settings as settings
    assert settings.__file__.endswith(".pyc"), settings.__file__
    try:
        inspect.getsource(settings.StreamSettings)
    except OSError:
        pass
    else:
        raise SystemExit("the settings module's source is still reachable")
    from twisted_stream.tap import Options
    print(str(Options()))
    """
)


def test_help_works_from_a_pyc_only_install(tmp_path: pathlib.Path) -> None:
    """With the package compiled to ``.pyc`` files and every ``.py`` removed, the plugin's
    help lists each setting with the help text from its field's metadata."""
    copy = tmp_path / "twisted_stream"
    shutil.copytree(
        pathlib.Path(twisted_stream.__file__).parent,
        copy,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    assert compileall.compile_dir(str(copy), legacy=True, quiet=1)
    for source in copy.rglob("*.py"):
        source.unlink()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    help_text = " ".join(done.stdout.split())
    for option in ("--buffer-size", "--slice-seconds", "--thread-pool-size", "--compress"):
        assert option in help_text
    assert "Bytes buffered per stream beyond the transport's own buffer" in help_text
    assert "The stream setting" not in help_text, "a field lost its help text"
