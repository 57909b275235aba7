"""``benchmarks/``: the suite and the soak run in their smoke modes (seconds, tiny sizes, no
peers), so a benchmark that no longer starts fails here. Nothing is timed: these check that
each script runs and prints its table, never a speed."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks._workloads import WORKLOADS

PROJECT = Path(__file__).resolve().parent.parent


class Run:
    """A ``python -m ...`` started at once; ``result()`` waits for it."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=PROJECT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self) -> subprocess.CompletedProcess[str]:
        stdout, stderr = self.proc.communicate(timeout=180)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, stdout, stderr)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return Run(*args).result()


@pytest.fixture(scope="module")
def smokes() -> Iterator[dict[str, Run]]:
    """The two smoke runs, started together so that they overlap."""
    runs = {"suite": Run("benchmarks", "--smoke"), "soak": Run("benchmarks.soak", "--smoke")}
    yield runs
    for started in runs.values():
        started.kill()


def summary_rows(stdout: str) -> list[list[str]]:
    """The cells of the summary table's rows (the header included)."""
    summary = stdout.partition("\nSummary")[2]
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in summary.splitlines()
        if line.startswith("| ")
    ]


def test_suite_smoke_runs_every_workload(smokes: dict[str, Run]) -> None:
    """``python -m benchmarks --smoke`` runs every workload on twisted_stream (and the file
    workloads on static.File too, the worker workloads on streamweb with 1 and 2 workers),
    and its summary has a twisted_stream figure in each row (streamweb's for the workers)."""
    done = smokes["suite"].result()
    assert done.returncode == 0, done.stdout + done.stderr
    for name in WORKLOADS:
        assert f"\n== {name}: " in done.stdout
    header, *rows = summary_rows(done.stdout)
    assert header[:3] == ["workload", "twisted_stream", "static.File"]
    titles = {row[0].partition(":")[0] for row in rows}
    assert len(titles) == len(WORKLOADS)
    workers = [row for row in rows if row[0].partition(":")[0].endswith(("at once", "gzipped"))]
    assert all(row[1] not in ("", "-") for row in rows if row not in workers)
    # The worker workloads compare twistd streamweb with 1 and with 2 worker processes.
    assert len(workers) == 4
    assert all(cell not in ("", "-") for row in workers for cell in row[-3:-1])
    assert "failures 0" in done.stdout


def test_suite_selects_workloads_and_targets() -> None:
    """``--only`` and ``--targets`` restrict the run to the workloads and targets named."""
    done = run("benchmarks", "--smoke", "--only", "ttfb", "--targets", "static_file")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\n== ttfb: " in done.stdout
    assert "\n== file_1g" not in done.stdout
    header, row = summary_rows(done.stdout)
    assert header == ["workload", "static.File", "ratio"]
    assert row[1].endswith("(files)")


def test_suite_refuses_unknown_names() -> None:
    """An unknown workload is refused with the list of known ones, before anything starts."""
    done = run("benchmarks", "--only", "nosuch")
    assert done.returncode != 0
    assert "unknown workload: nosuch" in done.stderr
    assert "file_1g" in done.stderr


def test_soak_smoke_runs_and_reports(smokes: dict[str, Run]) -> None:
    """``python -m benchmarks.soak --smoke`` holds a few mixed streams for seconds and prints
    its table and verdict."""
    done = smokes["soak"].result()
    assert done.returncode == 0, done.stdout + done.stderr
    for point in ("idle before", "start (loaded)", "end (loaded)", "idle after"):
        assert f"\n{point}" in done.stdout
    assert "verdict: " in done.stdout


def test_tls_h2_smoke_runs_and_checks_its_targets() -> None:
    """``python -m benchmarks.tls_h2 --smoke`` serves over HTTP/1.1, HTTPS/1.1 and HTTP/2
    (with h2load when installed; the stalled HTTP/2 client needs only ``h2``) and prints its
    tables and the issue's targets."""
    done = run("benchmarks.tls_h2", "--smoke", "--no-install")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\n== stalled_h2: " in done.stdout
    assert "HTTP/2 stalled: twisted_stream RSS growth" in done.stdout
    if "h2load workloads skipped" not in done.stdout:
        assert "\n== file_1g: " in done.stdout and "\n== sse_100: " in done.stdout


def test_benchmarks_use_the_public_api_only() -> None:
    """No benchmark imports a private part of twisted_stream: they measure what users get
    and keep working when the package's insides move."""
    private = []
    for path in sorted((PROJECT / "benchmarks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
                names = []
            else:
                continue
            for module in modules:
                if module.startswith("twisted_stream.") or (
                    module == "twisted_stream" and any(n.startswith("_") for n in names)
                ):
                    private.append(f"{path.relative_to(PROJECT)}:{node.lineno} {module}")
    assert private == []


def test_fanout_smoke_runs_both_setups() -> None:
    """``python -m benchmarks.fanout --smoke`` publishes through one process and through two
    processes sharing a channel in a redis-server of its own, and prints both latencies."""
    import os
    import shutil

    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the fan-out smoke: redis-server is not installed")
        pytest.skip("redis-server is not installed")
    done = run("benchmarks.fanout", "--smoke")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| one process | " in done.stdout
    assert "| 2 processes + Redis | " in done.stdout
