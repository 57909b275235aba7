"""File serving benchmark: twisted_stream.FileResource vs twisted.web.static.File.

Creates real (non-sparse) test files under a temporary directory in /tmp, serves them from
one server process per implementation on 127.0.0.1 (see ``_servers.py``), and prints side
by side in one run:

- one client downloading a 1 GiB file ("one"), and 32 concurrent clients downloading a
  64 MiB file each ("many"): MB/s and server CPU seconds per GiB, medians of ``--rounds``
  runs that alternate the implementations run by run;
- the server's RSS growth with 200 clients that stall mid-download (each reads the first
  MiB of the 1 GiB file, then stops reading).

Usage::

    .venv/bin/python benchmarks/bench_files.py [--rounds N] [--quick] [--only one|many|rss]

The files are deleted at exit. MB = 10**6 bytes; GiB = 2**30 bytes.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    MB,
    Server,
    environment_lines,
    fetch,
    fetch_many,
    machine_busy_seconds,
    median,
    say,
    stalled_rss,
    table,
)

IMPLS = ("file_resource", "static_file")
GiB = 1 << 30
MiB = 1 << 20
BLOCK = 4 * MiB  # files are this random block repeated: real data, written out in full


@dataclass(frozen=True)
class Sizes:
    big: int  # the single-client file, also the one the stalled clients ask for
    medium: int  # each concurrent client's file
    clients: int  # concurrent clients
    stalled: int  # stalled clients in the RSS test
    read_first: int  # what each stalled client reads before it stops


FULL = Sizes(big=GiB, medium=64 * MiB, clients=32, stalled=200, read_first=MiB)
QUICK = Sizes(big=256 * MiB, medium=16 * MiB, clients=8, stalled=50, read_first=MiB)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="alternating runs per cell (5)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument(
        "--only",
        choices=["one", "many", "rss"],
        action="append",
        help="run only this part (repeatable)",
    )
    p.add_argument(
        "--impls", default=",".join(IMPLS), help="comma-separated implementations (default: both)"
    )
    p.add_argument(
        "--dir",
        default=None,
        help="where to create the test files (a new "
        "temporary directory under /tmp by default; it is deleted at exit)",
    )
    p.add_argument(
        "--rss-cap-mb",
        type=int,
        default=2000,
        help="kill a server whose RSS grows past this in the stall test (2000)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile the FileResource server (cProfile) and print its top "
        "functions; numbers are then not comparable",
    )
    p.add_argument("--profile-out", default=None, help="where to keep the .prof file")
    return p.parse_args()


def make_files(sizes: Sizes, parent: str | None) -> tuple[str, dict[str, int]]:
    """Write the test files (real data) into a new temporary directory, removed at exit."""
    root = tempfile.mkdtemp(prefix="bench-files-", dir=parent or "/tmp")

    def remove(*_: object) -> None:
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(remove)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    block = os.urandom(BLOCK)
    files = {"big.bin": sizes.big, "medium.bin": sizes.medium}
    for name, size in files.items():
        with open(os.path.join(root, name), "wb") as f:
            left = size
            while left:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n
    # Read them once so every implementation is served from the page cache.
    for name in files:
        with open(os.path.join(root, name), "rb", buffering=0) as f:
            while f.read(8 * MiB):
                pass
    return root, files


@dataclass
class Run:
    seconds: float
    server_user: float
    server_sys: float
    client_cpu: float
    other_cpu: float
    nbytes: int

    @property
    def server_cpu(self) -> float:
        return self.server_user + self.server_sys


def start_servers(
    impls: list[str], root: str, args: argparse.Namespace
) -> tuple[dict[str, Server], dict[str, str]]:
    servers: dict[str, Server] = {}
    missing: dict[str, str] = {}
    for impl in impls:
        profile = None
        if args.profile and impl == "file_resource":
            profile = args.profile_out or os.path.join(
                tempfile.gettempdir(), "bench-files-file_resource.prof"
            )
        try:
            servers[impl] = Server(impl, extra=["--root", root], profile=profile)
        except RuntimeError as e:
            missing[impl] = str(e).strip().splitlines()[-1]
    return servers, missing


def throughput(
    args: argparse.Namespace, servers: dict[str, Server], sizes: Sizes, parts: list[str]
) -> dict[tuple[str, str], list[Run]]:
    results: dict[tuple[str, str], list[Run]] = {(p, i): [] for p in parts for i in servers}
    for srv in servers.values():  # warm up
        fetch(srv.port, "/files/medium.bin")
    for rnd in range(1, args.rounds + 1):
        for part in parts:
            for impl, srv in servers.items():
                user0, sys0 = srv.cpu_times()
                client0 = time.process_time()
                busy0 = machine_busy_seconds()
                if part == "one":
                    resp = fetch(srv.port, "/files/big.bin", timeout=600)
                    seconds, nbytes, expected = resp.elapsed, resp.body_wire_bytes, sizes.big
                else:
                    resps = fetch_many(
                        srv.port, ["/files/medium.bin"] * sizes.clients, timeout=600
                    )
                    first = min(r.sent_at for r in resps)
                    last = max(r.done_at or 0.0 for r in resps)
                    seconds = last - first
                    nbytes = sum(r.body_wire_bytes for r in resps)
                    expected = sizes.medium * sizes.clients
                client = time.process_time() - client0
                user1, sys1 = srv.cpu_times()
                other = max(
                    0.0, machine_busy_seconds() - busy0 - client - (user1 - user0) - (sys1 - sys0)
                )
                if nbytes != expected:
                    raise RuntimeError(f"{impl} {part}: got {nbytes} bytes, not {expected}")
                run = Run(seconds, user1 - user0, sys1 - sys0, client, other, nbytes)
                results[(part, impl)].append(run)
                say(
                    f"  round {rnd} {part:4} {impl:14} {nbytes / seconds / MB:9.1f} MB/s"
                    f" {seconds:7.3f} s  server cpu {run.server_user:5.2f} user + "
                    f"{run.server_sys:5.2f} sys ({run.server_cpu / (nbytes / GiB):.2f} s/GiB)"
                    f"  client cpu {client:5.2f} s  other cpu {other:5.2f} s"
                )
    return results


def report_throughput(
    results: dict[tuple[str, str], list[Run]],
    impls: list[str],
    sizes: Sizes,
    parts: list[str],
    rounds: int,
) -> list[str]:
    labels = {
        "one": f"one (1 client x {sizes.big // MiB:,} MiB)",
        "many": f"many ({sizes.clients} clients x {sizes.medium // MiB} MiB)",
    }
    rows = []
    med: dict[tuple[str, str], tuple[float, float]] = {}
    for part in parts:
        for impl in impls:
            runs = results[(part, impl)]
            rates = [r.nbytes / r.seconds / MB for r in runs]
            per_gib = [r.server_cpu / (r.nbytes / GiB) for r in runs]
            med[(part, impl)] = (median(rates), median(per_gib))
            ratio = ""
            if impl == "file_resource" and "static_file" in impls:
                base = median([r.nbytes / r.seconds / MB for r in results[(part, "static_file")]])
                ratio = f"{median(rates) / base:.2f}x"
            rows.append(
                [
                    labels[part],
                    impl,
                    f"{median(rates):,.1f}",
                    f"{min(rates):,.0f}-{max(rates):,.0f}",
                    f"{median(per_gib):.3f}",
                    f"{median([r.server_user for r in runs]):.2f}u "
                    f"{median([r.server_sys for r in runs]):.2f}s",
                    f"{median([r.client_cpu for r in runs]):.2f}",
                    f"{median([r.other_cpu for r in runs]):.2f}",
                    ratio,
                ]
            )
    say(
        f"\nThroughput: medians of {rounds} alternating runs (MB = 10^6 bytes; many: total "
        "bytes / (first request sent .. last byte of the last response))"
    )
    say(
        table(
            [
                "workload",
                "server",
                "MB/s",
                "MB/s min-max",
                "server CPU s/GiB",
                "server CPU s (user sys)",
                "client CPU s",
                "other CPU s",
                "vs static.File",
            ],
            rows,
        )
    )
    verdicts = []
    if "file_resource" in impls and "static_file" in impls:
        for part in parts:
            r = med[(part, "file_resource")][0] / med[(part, "static_file")][0]
            c = med[(part, "file_resource")][1] / med[(part, "static_file")][1]
            verdicts.append(
                f"{labels[part]}: FileResource/static.File = {r:.2f}x MB/s, "
                f"{c:.2f}x server CPU per GiB"
            )
    return verdicts


def rss_test(args: argparse.Namespace, impls: list[str], root: str, sizes: Sizes) -> None:
    rows = []
    notes = []
    for impl in impls:
        try:
            srv = Server(impl, extra=["--root", root])
        except RuntimeError as e:
            notes.append(f"{impl}: not run ({str(e).strip().splitlines()[-1]})")
            continue
        with srv:
            fetch(srv.port, "/files/medium.bin")
            time.sleep(0.5)
            res = stalled_rss(
                srv,
                ["/files/big.bin"] * sizes.stalled,
                read_first=sizes.read_first,
                max_wait=10.0 if args.quick else 30.0,
                cap_growth=args.rss_cap_mb * MB,
            )
        after = "-" if res.after_close is None else f"{(res.after_close - res.baseline) / MB:+.1f}"
        rows.append(
            [
                impl,
                f"{res.baseline / MB:.1f}",
                f"{res.growth / MB:+.1f}" + (" (capped)" if res.capped else ""),
                f"{(res.peak - res.baseline) / MB:+.1f}",
                "yes" if res.stable is not None else "no",
                "-" if res.stable is None else f"{res.settle_seconds:.1f}",
                f"{res.queued / MB:.0f}",
                after,
            ]
        )
        if res.capped:
            notes.append(f"{impl}: {res.capped}")
    say(
        f"\nServer RSS with {sizes.stalled} clients that each read the first "
        f"{sizes.read_first // MiB} MiB of the {sizes.big / GiB:g} GiB file and then stop "
        "reading (MB = 10^6 bytes)"
    )
    say(
        table(
            [
                "server",
                "RSS before",
                "growth (stable)",
                "peak growth",
                "stable",
                "settled after s",
                "kernel-queued MB",
                "after close",
            ],
            rows,
        )
    )
    for note in notes:
        say(f"  note: {note}")
    say(
        "  'kernel-queued MB' is what the clients' receive queues hold (not server RSS); "
        "'after close' is RSS growth 2 s after the clients disconnected."
    )


def main() -> None:
    args = parse_args()
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    for impl in impls:
        if impl not in IMPLS:
            raise SystemExit(f"unknown implementation {impl!r}; choose from {IMPLS}")
    sizes = QUICK if args.quick else FULL
    parts = args.only or ["one", "many", "rss"]
    if args.profile:
        impls = ["file_resource"]
        parts = [p for p in parts if p != "rss"] or ["one", "many"]
    tput_parts = [p for p in parts if p in ("one", "many")]

    say("\n".join(environment_lines()))
    if args.quick:
        say("QUICK MODE: reduced sizes, not the issue's workloads")
    if args.profile:
        say("PROFILE MODE: the FileResource server runs under cProfile (slower)")
    started = time.monotonic()
    root, files = make_files(sizes, args.dir)
    say(
        f"test files in {root}: "
        + ", ".join(f"{n} {s / MiB:,.0f} MiB" for n, s in files.items())
        + f" (a {BLOCK // MiB} MiB random block repeated; written {time.monotonic() - started:.0f}"
        " s, then read once into the page cache)"
    )
    verdicts: list[str] = []
    if tput_parts:
        servers, missing = start_servers(impls, root, args)
        for impl, why in missing.items():
            say(f"  note: {impl} is not available, skipped: {why}")
        run_impls = [i for i in impls if i in servers]
        try:
            if run_impls:
                say(f"\nThroughput runs ({args.rounds} rounds, order: {', '.join(run_impls)}):")
                results = throughput(args, servers, sizes, tput_parts)
        finally:
            for srv in servers.values():
                srv.stop()
        if run_impls:
            verdicts += report_throughput(results, run_impls, sizes, tput_parts, args.rounds)
        if args.profile and "file_resource" in servers:
            print_profile(servers["file_resource"].profile)
    if "rss" in parts:
        rss_test(args, impls, root, sizes)
    if verdicts and not args.profile:
        say("\nSummary:")
        for v in verdicts:
            say(f"  {v}")
    say(f"\ntotal time {time.monotonic() - started:.0f} s")


def print_profile(path: str | None) -> None:
    import io
    import pstats

    if not path or not os.path.exists(path):
        say("no profile was written")
        return
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(path, stream=out).strip_dirs().sort_stats(key).print_stats(25)
        say(f"\n--- FileResource server profile, sorted by {key} ({path}) ---")
        say("\n".join(out.getvalue().splitlines()[4:]))


if __name__ == "__main__":
    main()
