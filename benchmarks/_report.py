"""What the suite prints: the machine, one line per trial, a table per workload, and the
summary table (Markdown, as ``RESULTS.md`` holds it)."""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from benchmarks._proc import Usage
from benchmarks._server import REPO
from benchmarks._targets import TARGETS, versions
from benchmarks._workloads import OTHER_LOAD, Metric, Workload


def say(*parts: object) -> None:
    print(*parts, flush=True)


def command_line() -> str:
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(REPO) else "python"
    return " ".join(shlex.quote(a) for a in [python, "-m", "benchmarks", *sys.argv[1:]])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def git_state() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True)
        return out.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "twisted_stream")
    except OSError:
        return "git: unavailable"
    return f"git {head or '?'}" + (" with uncommitted changes in twisted_stream/" if dirty else "")


def machine_lines(pinned: tuple[set[int], set[int]] | None) -> list[str]:
    found = versions()
    stacks = ", ".join(f"{name} {v}" for name, v in found.items())
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    pin = (
        f"client on CPU {min(pinned[0])}, servers on CPU {min(pinned[1])} (sched_setaffinity)"
        if pinned
        else "not pinned"
    )
    return [
        f"command: {command_line()}",
        f"machine: nproc {os.cpu_count()}, {cpu_model()}, kernel {platform.release()}",
        f"python {platform.python_version()}, {stacks}",
        f"{git_state()}; started {time.strftime('%Y-%m-%d %H:%M:%S')}; load average {load}",
        f"pinning: {pin}",
    ]


def trial_line(round_no: int, target: str, values: dict[str, float], usage: Usage | None) -> str:
    shown = "  ".join(f"{name} {value:,.2f}" for name, value in values.items())
    line = f"  round {round_no} {target:15} {shown}"
    if usage is not None:
        line += (
            f"  | {usage.seconds:.2f} s, server CPU {usage.server_cpu:.2f} s, "
            f"client CPU {usage.client_cpu:.2f} s"
        )
    return line


def cell(metric: Metric, values: Sequence[float]) -> str:
    """``median (min-max)``, or the one value."""
    if not values:
        return "-"
    med = metric.fmt.format(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} ({metric.fmt.format(min(values))}-{metric.fmt.format(max(values))})"


Results = dict[tuple[str, str], list[dict[str, float]]]


def values_of(results: Results, workload: str, target: str, metric: str) -> list[float]:
    return [trial[metric] for trial in results.get((workload, target), []) if metric in trial]


def workload_table(workload: Workload, targets: Sequence[str], results: Results) -> str:
    metrics = list(workload.metrics)
    if any(OTHER_LOAD in trial for t in targets for trial in results.get((workload.name, t), [])):
        metrics.append(Metric(OTHER_LOAD, "{:.0f}"))
    headers = ["target", *(m.name for m in metrics)]
    rows = [
        [
            TARGETS[t].label,
            *(cell(m, values_of(results, workload.name, t, m.name)) for m in metrics),
        ]
        for t in targets
        if (workload.name, t) in results
    ]
    return plain_table(headers, rows)


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def ratio(workload: Workload, metric: str, results: Results, targets: Sequence[str]) -> str:
    """The subject's (twisted_stream's) median over the first reference target measured."""
    ours = values_of(results, workload.name, workload.subject, metric)
    for ref in workload.reference:
        theirs = values_of(results, workload.name, ref, metric)
        if ours and theirs and ref in targets and statistics.median(theirs):
            return (
                f"{statistics.median(ours) / statistics.median(theirs):.2f}x {TARGETS[ref].label}"
            )
    return "-"


def summary_table(
    workloads: Sequence[Workload],
    params: dict[str, dict[str, object]],
    targets: Sequence[str],
    results: Results,
    routes: dict[tuple[str, str], str],
) -> str:
    """Markdown: a row per workload and summary metric, a column per target, cells
    ``median (min-max)``, and twisted_stream's ratio to the workload's reference."""
    lines = [
        "| workload | " + " | ".join(TARGETS[t].label for t in targets) + " | ratio |",
        "|---|" + "---|" * len(targets) + "---|",
    ]
    for w in workloads:
        for metric in (m for m in w.metrics if m.summary):
            cells = []
            for t in targets:
                text = cell(metric, values_of(results, w.name, t, metric.name))
                first = next(iter(w.routes))
                if text != "-" and routes.get((w.name, t), first) != first:
                    text += f" ({routes[(w.name, t)]})"
                cells.append(text)
            label = f"{w.title(params[w.name])}: {metric.name}"
            lines.append(
                f"| {label} | "
                + " | ".join(cells)
                + f" | {ratio(w, metric.name, results, targets)} |"
            )
    return "\n".join(lines)
