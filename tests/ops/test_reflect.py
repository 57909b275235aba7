"""Settings reflected into plugin options (``twisted_stream._ops._reflect``) need no source
code: ``twistd streamweb --help`` works from an install that ships only ``.pyc`` files."""

from __future__ import annotations

import compileall
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import twisted_stream
from twisted_stream import StreamSettings
from twisted_stream._ops._reflect import SETTING_OPTIONS, setting_options
from twisted_stream.tap import Options

from .test_options import parse

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


def test_every_stream_setting_is_an_option() -> None:
    """Every StreamSettings field is mirrored as --kebab-case (a flag for a bool), so
    settings added later appear without changes to the plugin."""
    fields = {f.name for f in dataclasses.fields(StreamSettings)}
    assert {o.field for o in SETTING_OPTIONS} == fields
    help_text = str(Options())
    for setting in SETTING_OPTIONS:
        assert f"--{setting.option}" in help_text
        assert setting.option == setting.field.replace("_", "-") or setting.option.startswith(
            "no-"
        )


def test_every_stream_setting_option_sets_its_field() -> None:
    """Giving each setting option a value other than its default sets that field, and only
    that field."""
    defaults = StreamSettings()
    for setting in SETTING_OPTIONS:
        default = getattr(defaults, setting.field)
        if setting.flag is not None:
            args = [f"--{setting.option}"]
            wanted: Any = setting.flag
        elif isinstance(default, int):
            wanted = default + 1
            args = [f"--{setting.option}", str(wanted)]
        elif isinstance(default, str):
            wanted = default + "-x"
            args = [f"--{setting.option}", wanted]
        else:
            wanted = float(default) + 0.5
            args = [f"--{setting.option}", str(wanted)]
        settings = parse(*args)["settings"]
        assert settings == dataclasses.replace(defaults, **{setting.field: wanted}), setting


def test_setting_options_are_derived_generically() -> None:
    """The derivation handles int, float, str, bool (a flag; --no-x when on by default) and
    optional fields, takes help from the field's metadata (a generic line without it), and
    skips types it cannot parse."""

    @dataclasses.dataclass(frozen=True)
    class Example:
        count: int = dataclasses.field(default=3, metadata={"help": "How many."})
        ratio: float = 0.5
        name: str = dataclasses.field(default="x", metadata={"help": "The ``name``."})
        cap: int | None = dataclasses.field(
            default=None, metadata={"help": "Upper bound; none for no bound."}
        )
        verbose: bool = False
        checked: bool = dataclasses.field(default=True, metadata={"help": "Check things."})
        shape: tuple[int, int] = (1, 2)

    found = {o.field: o for o in setting_options(Example)}
    assert list(found) == ["count", "ratio", "name", "cap", "verbose", "checked"]
    assert found["count"].option == "count" and found["count"].default == "3"
    assert found["count"].help == "How many." and found["count"].parse("1_000") == 1000
    assert found["ratio"].parse("2") == 2.0 and found["ratio"].help == "The stream setting ratio."
    assert found["name"].help == "The name." and found["name"].parse("y") == "y"
    assert found["cap"].default is None and found["cap"].parse("none") is None
    assert found["cap"].parse("7") == 7
    assert found["verbose"].option == "verbose" and found["verbose"].flag is True
    assert found["checked"].option == "no-checked" and found["checked"].flag is False
    assert "turns it off" in found["checked"].help
    with pytest.raises(ValueError, match="not a whole number"):
        found["count"].parse("x")


def test_help_documents_every_option() -> None:
    """twistd streamweb --help lists every option the plugin accepts."""
    help_text = str(Options())
    for name in ("port", "listen", "path", "app", "listing", "logfile", "display-tracebacks",
                 "add-header", "grace-period", "buffer-size", "slice-seconds",
                 "thread-pool-size"):  # fmt: skip
        assert f"--{name}" in help_text
    options = Options()
    for long_option in options.longOpt:
        assert f"--{long_option.rstrip('=')}" in help_text
