"""The suite's command line and its run: every selected workload on every selected target
that can serve it, targets alternating within each round, then the tables."""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import shutil
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from benchmarks import _report as report
from benchmarks._clients import have_curl
from benchmarks._files import make_files, remove
from benchmarks._proc import pinning
from benchmarks._server import ServerProcess, free_port
from benchmarks._targets import TARGETS, Launch
from benchmarks._workloads import OTHER_LOAD, WORKLOADS, Trial, Workload

say = report.say


def names(value: str, known: Mapping[str, object], what: str) -> list[str]:
    chosen = [n.strip() for n in value.split(",") if n.strip()]
    if chosen == ["all"]:
        return list(known)
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; choose from {', '.join(known)}")
    return [n for n in known if n in chosen]  # the registry's order


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Streaming benchmarks: twisted_stream side by side with its peers.",
    )
    p.add_argument("--only", help=f"workloads, comma-separated (all): {', '.join(WORKLOADS)}")
    p.add_argument("--targets", help=f"targets, comma-separated, or all: {', '.join(TARGETS)}")
    p.add_argument(
        "--rounds", type=int, help="alternating rounds per workload (its own default; smoke: 1)"
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="seconds, tiny sizes, only the targets that need nothing but the project "
        "(unless --targets): checks that everything starts, measures nothing",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin client and servers to CPUs")
    p.add_argument("--no-curl", action="store_true", help="download with the raw client")
    p.add_argument("--no-install", action="store_true", help="never apt-get install nginx")
    p.add_argument(
        "--profile",
        action="store_true",
        help="run twisted_stream alone under cProfile and print where its time goes "
        "(figures are then not comparable; use --only to profile one workload)",
    )
    p.add_argument("--json", metavar="FILE", help="also write every trial's figures to FILE")
    p.add_argument("--dir", help="parent directory of the test files (default: the temp dir)")
    p.add_argument("--list", action="store_true", help="list workloads and targets, then exit")
    return p.parse_args(argv)


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.smoke = args.smoke
        self.workloads = [WORKLOADS[n] for n in names(args.only or "all", WORKLOADS, "workload")]
        default = [t for t, target in TARGETS.items() if target.in_smoke or not self.smoke]
        self.targets = names(args.targets, TARGETS, "target") if args.targets else default
        if args.profile:
            self.targets = ["twisted_stream"]
        self.rounds = {
            w.name: args.rounds or (1 if self.smoke else w.rounds) for w in self.workloads
        }
        self.params = {w.name: dict(w.smoke if self.smoke else w.full) for w in self.workloads}
        self.pinned = None if (args.no_pin or self.smoke) else pinning()
        self.curl = have_curl() and not args.no_curl
        self.scratch = tempfile.mkdtemp(prefix="bench-")
        self.shared: dict[str, ServerProcess] = {}
        self.profiles: dict[int, str] = {}  # server pid -> statistics file
        self.results: report.Results = {}
        self.routes: dict[tuple[str, str], str] = {}
        self.failures = 0
        self.root = ""

    # Servers.

    def launch(self, target: str, sse_every: float = 1.0) -> ServerProcess:
        """Start a server for ``target`` (the caller waits until it is ready)."""
        workdir = tempfile.mkdtemp(dir=self.scratch)
        profile = os.path.join(workdir, "profile.prof") if self.args.profile else None
        launch = Launch(free_port(), self.root, workdir, sse_every, profile)
        server = ServerProcess(
            target,
            TARGETS[target].command(launch),
            launch.port,
            cpus=self.pinned[1] if self.pinned and TARGETS[target].pinned else None,
        )
        if profile:
            self.profiles[server.pid] = profile
        return server

    def stop(self, server: ServerProcess, what: str) -> None:
        server.close()
        profile = self.profiles.pop(server.pid, None)
        if profile and os.path.exists(profile):
            for key in ("tottime", "cumulative"):
                out = io.StringIO()
                pstats.Stats(profile, stream=out).strip_dirs().sort_stats(key).print_stats(25)
                say(f"\n--- profile of {server.target} ({what}), by {key} ---")
                say("\n".join(out.getvalue().splitlines()[4:]))

    def server_for(self, workload: Workload, target: str) -> ServerProcess:
        if workload.fresh_server:
            server = self.launch(target, float(self.params[workload.name].get("every", 1.0)))
            server.wait_ready()
            return server
        self.start_shared([target])
        if target not in self.shared:
            raise RuntimeError(f"no {target} server")
        return self.shared[target]

    def start_shared(self, targets: list[str]) -> None:
        """Start the shared servers of ``targets`` not running yet, all at once."""
        started = {t: self.launch(t) for t in targets if t not in self.shared}
        for target, server in started.items():
            try:
                server.wait_ready()
            except RuntimeError as e:
                self.failures += 1
                say(f"  {e}")
            else:
                self.shared[target] = server

    # The run.

    def available_targets(self) -> list[str]:
        ready = []
        for name in self.targets:
            why = TARGETS[name].missing(not (self.smoke or self.args.no_install))
            if why:
                say(f"  skipped target {name}: {why}")
                self.failures += bool(self.args.targets)  # asked for by name: an error
            else:
                ready.append(name)
        return ready

    def run(self) -> int:
        started = time.monotonic()
        self.targets = self.available_targets()  # may install nginx: before its version
        for line in report.machine_lines(self.pinned):
            say(line)
        if self.smoke:
            say("SMOKE RUN: tiny sizes, unpinned; it checks that everything starts, nothing more")
        if self.args.profile:
            say("PROFILE RUN: twisted_stream under cProfile; its figures are not comparable")
        say(f"client for single downloads: {'curl' if self.curl else 'raw sockets (no curl)'}")
        files: dict[str, int] = {}
        for w in self.workloads:
            files.update(w.files(self.params[w.name]))
        self.root = make_files(files, self.args.dir)
        if self.pinned:
            os.sched_setaffinity(0, self.pinned[0])
        try:
            for workload in self.workloads:
                self.run_workload(workload)
        finally:
            for target, server in self.shared.items():
                self.stop(server, f"{target}: all shared-server workloads")
            remove(self.root)
            shutil.rmtree(self.scratch, ignore_errors=True)
        groups: dict[int, list[str]] = {}
        for name, count in self.rounds.items():
            groups.setdefault(count, []).append(name)
        rounds = "; ".join(f"{n} rounds: {', '.join(names)}" for n, names in groups.items())
        say(f"\nSummary (cells: median (min-max) over the rounds; {rounds})\n")
        measured = [t for t in self.targets if any(key[1] == t for key in self.results)]
        say(report.summary_table(self.workloads, self.params, measured, self.results, self.routes))
        say(f"\ntotal time {time.monotonic() - started:.0f} s; failures {self.failures}")
        if self.args.json:
            self.write_json()
        return 1 if self.failures else 0

    def run_workload(self, workload: Workload) -> None:
        params = self.params[workload.name]
        runnable = []
        for target in self.targets:
            feature = workload.route(TARGETS[target].features)
            if feature:
                runnable.append(target)
                self.routes[(workload.name, target)] = feature
        if not workload.fresh_server:
            self.start_shared(runnable)
        on = ", ".join(runnable) or "no target"
        say(f"\n== {workload.name}: {workload.title(params)} ({on})")
        for round_no in range(1, self.rounds[workload.name] + 1):
            first = (round_no - 1) % max(1, len(runnable))  # each round starts elsewhere
            for target in runnable[first:] + runnable[:first]:
                self.trial(workload, target, round_no)
        say(report.workload_table(workload, runnable, self.results))

    def trial(self, workload: Workload, target: str, round_no: int) -> None:
        params = self.params[workload.name]
        path = workload.routes[self.routes[(workload.name, target)]].format(**params)
        server = None
        try:
            server = self.server_for(workload, target)
            trial = Trial(server, path, params, self.curl)
            values = workload.measure(trial)
        except Exception as e:  # report it, go on with the others
            self.failures += 1
            say(f"  round {round_no} {target:15} FAILED: {type(e).__name__}: {e}")
            if server is not None and not server.alive():
                say(server.log_text())
                if self.shared.get(target) is server:
                    self.stop(self.shared.pop(target), "died")
            return
        finally:
            if server is not None and workload.fresh_server:
                self.stop(server, workload.name)
        if trial.usage is not None:
            values[OTHER_LOAD] = 100 * trial.usage.other_cpu / trial.usage.seconds
        self.results.setdefault((workload.name, target), []).append(values)
        say(report.trial_line(round_no, target, values, trial.usage))

    def write_json(self) -> None:
        data: dict[str, Any] = {
            "machine": report.machine_lines(self.pinned),
            "rounds": self.rounds,
            "smoke": self.smoke,
            "params": self.params,
            "results": {f"{w}/{t}": trials for (w, t), trials in sorted(self.results.items())},
        }
        with open(self.args.json, "w") as f:
            json.dump(data, f, indent=1)


def list_all() -> None:
    say("workloads:")
    for w in WORKLOADS.values():
        say(f"  {w.name:14} {w.title(w.full)} (needs: {' or '.join(w.routes)})")
    say("targets:")
    for t in TARGETS.values():
        say(f"  {t.name:14} {t.label} (features: {', '.join(sorted(t.features))})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        list_all()
        return 0
    return Suite(args).run()
