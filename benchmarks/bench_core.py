"""Core streaming benchmark: twisted_stream vs a naive request.write loop vs aiohttp.

Serves generated streams on 127.0.0.1 (each implementation in its own server process, see
``_servers.py``) and prints, side by side in one run:

- MB/s and chunks/s for 1,000,000 x 100 B chunks ("small") and 16,384 x 64 KiB chunks
  ("large"), medians of ``--rounds`` runs that alternate the implementations run by run
  (A, B, C, A, B, C, ...), with the server's CPU seconds per run;
- the server's RSS growth while 100 clients have each requested a 1 GiB stream and never
  read it.

Usage::

    .venv/bin/python benchmarks/bench_core.py [--rounds N] [--quick] [--only small|large|rss]

``--profile`` runs only the twisted_stream server, under cProfile, and prints where its time
goes. MB = 10**6 bytes.
"""

from __future__ import annotations

import argparse
import os
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
    machine_busy_seconds,
    median,
    say,
    stalled_rss,
    table,
)

IMPLS = ("twisted_stream", "naive", "aiohttp")
WORKLOADS = {  # name: (chunks, chunk size)
    "small": (1_000_000, 100),
    "large": (16_384, 65_536),
}
QUICK_WORKLOADS = {
    "small": (100_000, 100),
    "large": (2_048, 65_536),
}
RSS_STREAM = (16_384, 65_536)  # 1 GiB per stalled client
TARGETS = (
    "small: twisted_stream chunks/s >= 3 x aiohttp; large: twisted_stream MB/s >= "
    "aiohttp; rss: twisted_stream growth < 50 MB with 100 stalled readers"
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="alternating runs per cell (5)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument(
        "--only",
        choices=["small", "large", "rss"],
        action="append",
        help="run only this part (repeatable)",
    )
    p.add_argument(
        "--impls",
        default=",".join(IMPLS),
        help="comma-separated implementations (default: all three)",
    )
    p.add_argument("--rss-clients", type=int, default=None, help="stalled clients (100)")
    p.add_argument(
        "--rss-cap-mb",
        type=int,
        default=2000,
        help="kill a server whose RSS grows past this in the stall test (2000)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile the twisted_stream server (cProfile) on the throughput "
        "workloads and print its top functions; numbers are then not "
        "comparable",
    )
    p.add_argument("--profile-out", default=None, help="where to keep the .prof file")
    return p.parse_args()


def gen_path(n: int, size: int) -> str:
    return f"/gen?n={n}&size={size}"


@dataclass
class Run:
    seconds: float  # request sent to last byte
    server_user: float
    server_sys: float
    client_cpu: float  # this process (the client) during the run
    other_cpu: float  # machine busy time minus server and client: other processes' load
    wire_bytes: int

    @property
    def server_cpu(self) -> float:
        return self.server_user + self.server_sys


def throughput(
    args: argparse.Namespace, impls: list[str], workloads: dict[str, tuple[int, int]]
) -> dict[tuple[str, str], list[Run]]:
    """Alternating runs: {(workload, impl): [Run, ...]}."""
    results: dict[tuple[str, str], list[Run]] = {(w, i): [] for w in workloads for i in impls}
    servers: dict[str, Server] = {}
    prof = None
    try:
        for impl in impls:
            if args.profile:
                prof = args.profile_out or os.path.join(
                    tempfile.gettempdir(), f"bench-core-{impl}.prof"
                )
            servers[impl] = Server(impl, profile=prof if args.profile else None)
        for srv in servers.values():  # warm up: imports, first-request paths
            fetch(srv.port, "/ping")
            for n, size in workloads.values():
                fetch(srv.port, gen_path(max(1, n // 50), size))
        timeout = 120.0 if args.quick else 600.0
        for rnd in range(1, args.rounds + 1):
            for wname, (n, size) in workloads.items():
                for impl in impls:
                    srv = servers[impl]
                    user0, sys0 = srv.cpu_times()
                    client0 = time.process_time()
                    busy0 = machine_busy_seconds()
                    resp = fetch(srv.port, gen_path(n, size), timeout=timeout)
                    client = time.process_time() - client0
                    user1, sys1 = srv.cpu_times()
                    other = max(
                        0.0,
                        machine_busy_seconds() - busy0 - client - (user1 - user0) - (sys1 - sys0),
                    )
                    payload = n * size
                    if resp.body_wire_bytes < payload:
                        raise RuntimeError(
                            f"{impl} {wname}: {resp.body_wire_bytes} bytes < {payload} payload"
                        )
                    run = Run(
                        resp.elapsed,
                        user1 - user0,
                        sys1 - sys0,
                        client,
                        other,
                        resp.body_wire_bytes,
                    )
                    results[(wname, impl)].append(run)
                    say(
                        f"  round {rnd} {wname:5} {impl:14} {payload / run.seconds / MB:9.1f} MB/s"
                        f" {n / run.seconds:12,.0f} chunks/s {run.seconds:7.3f} s"
                        f"  server cpu {run.server_user:5.2f} user + {run.server_sys:5.2f} sys"
                        f"  client cpu {client:5.2f} s  other cpu {other:5.2f} s"
                    )
    finally:
        for srv in servers.values():
            srv.stop()
    if args.profile and prof:
        print_profile(prof)
    return results


def print_profile(path: str) -> None:
    import io
    import pstats

    for key, count in (("tottime", 25), ("cumulative", 25)):
        out = io.StringIO()
        stats = pstats.Stats(path, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(count)
        say(f"\n--- twisted_stream server profile, sorted by {key} ({path}) ---")
        say("\n".join(out.getvalue().splitlines()[4:]))


def report_throughput(
    results: dict[tuple[str, str], list[Run]],
    impls: list[str],
    workloads: dict[str, tuple[int, int]],
    rounds: int,
) -> list[str]:
    rows = []
    med: dict[tuple[str, str], tuple[float, float]] = {}
    for wname, (n, size) in workloads.items():
        payload = n * size
        for impl in impls:
            runs = results[(wname, impl)]
            rates = [payload / r.seconds / MB for r in runs]
            cps = [n / r.seconds for r in runs]
            m_rate, m_cps = median(rates), median(cps)
            med[(wname, impl)] = (m_rate, m_cps)
            cpu = median([r.server_cpu for r in runs])
            ratio = ""
            if "aiohttp" in impls and impl != "aiohttp":
                base = median([n / r.seconds for r in results[(wname, "aiohttp")]])
                ratio = f"{m_cps / base:.2f}x"
            rows.append(
                [
                    f"{wname} ({n:,} x {size:,} B)",
                    impl,
                    f"{m_rate:,.1f}",
                    f"{m_cps:,.0f}",
                    f"{min(rates):,.0f}-{max(rates):,.0f}",
                    f"{cpu:.2f} ({median([r.server_user for r in runs]):.2f}u "
                    f"{median([r.server_sys for r in runs]):.2f}s)",
                    f"{cpu / (payload / 1e9):.2f}",
                    f"{median([r.client_cpu for r in runs]):.2f}",
                    f"{median([r.other_cpu for r in runs]):.2f}",
                    ratio,
                ]
            )
    say(
        f"\nThroughput: medians of {rounds} alternating runs (MB = 10^6 bytes of payload; "
        "time from request sent to last byte)"
    )
    say(
        table(
            [
                "workload",
                "server",
                "MB/s",
                "chunks/s",
                "MB/s min-max",
                "server CPU s (user sys)",
                "server CPU s/GB",
                "client CPU s",
                "other CPU s",
                "vs aiohttp",
            ],
            rows,
        )
    )
    verdicts = []
    if "twisted_stream" in impls and "aiohttp" in impls:
        if "small" in workloads:
            r = med[("small", "twisted_stream")][1] / med[("small", "aiohttp")][1]
            verdicts.append(
                f"small chunks: twisted_stream/aiohttp = {r:.2f}x chunks/s "
                f"(target >= 3x): {'PASS' if r >= 3 else 'FAIL'}"
            )
        if "large" in workloads:
            r = med[("large", "twisted_stream")][0] / med[("large", "aiohttp")][0]
            verdicts.append(
                f"64 KiB chunks: twisted_stream/aiohttp = {r:.2f}x MB/s "
                f"(target >= 1x): {'PASS' if r >= 1 else 'FAIL'}"
            )
    return verdicts


def rss_test(args: argparse.Namespace, impls: list[str]) -> list[str]:
    clients = args.rss_clients or (20 if args.quick else 100)
    n, size = RSS_STREAM
    rows = []
    notes = []
    verdicts = []
    for impl in impls:
        with Server(impl) as srv:
            fetch(srv.port, "/ping")
            fetch(srv.port, gen_path(64, size))
            time.sleep(0.5)
            res = stalled_rss(
                srv,
                [gen_path(n, size)] * clients,
                max_wait=10.0 if args.quick else 30.0,
                cap_growth=args.rss_cap_mb * MB,
            )
        growth = res.growth / MB
        stable = "yes" if res.stable is not None else "no"
        after = "-" if res.after_close is None else f"{(res.after_close - res.baseline) / MB:+.1f}"
        rows.append(
            [
                impl,
                f"{res.baseline / MB:.1f}",
                f"{growth:+.1f}" + (" (capped)" if res.capped else ""),
                f"{(res.peak - res.baseline) / MB:+.1f}",
                stable,
                "-" if res.stable is None else f"{res.settle_seconds:.1f}",
                f"{res.receiving}/{res.clients}",
                f"{res.queued / MB:.0f}",
                after,
            ]
        )
        if res.capped:
            notes.append(f"{impl}: {res.capped}; its real growth is larger than shown")
        if impl == "twisted_stream":
            ok = res.stable is not None and growth < 50 and not res.capped
            verdicts.append(
                f"RSS growth with {clients} stalled readers: {growth:.1f} MB "
                f"(target < 50 MB): {'PASS' if ok else 'FAIL'}"
            )
    say(
        f"\nServer RSS with {clients} clients that requested a {n * size / 2**30:g} GiB stream "
        f"({n:,} x {size:,} B) and never read (MB = 10^6 bytes)"
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
                "clients receiving",
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
    return verdicts


def main() -> None:
    args = parse_args()
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    for impl in impls:
        if impl not in IMPLS:
            raise SystemExit(f"unknown implementation {impl!r}; choose from {IMPLS}")
    if args.profile:
        impls = ["twisted_stream"]
    parts = args.only or ["small", "large", "rss"]
    if args.profile:
        parts = [p for p in parts if p != "rss"] or ["small", "large"]
    table_workloads = QUICK_WORKLOADS if args.quick else WORKLOADS
    workloads = {k: v for k, v in table_workloads.items() if k in parts}

    say("\n".join(environment_lines()))
    say(f"targets: {TARGETS}")
    if args.quick:
        say("QUICK MODE: reduced sizes, not the issue's workloads")
    if args.profile:
        say("PROFILE MODE: the twisted_stream server runs under cProfile (slower)")
    started = time.monotonic()
    verdicts: list[str] = []
    if workloads:
        say(f"\nThroughput runs ({args.rounds} rounds, order: {', '.join(impls)}):")
        results = throughput(args, impls, workloads)
        verdicts += report_throughput(results, impls, workloads, args.rounds)
    if "rss" in parts:
        verdicts += rss_test(args, impls)
    if verdicts and not args.profile:
        say("\nTargets:")
        for v in verdicts:
            say(f"  {v}")
    say(f"\ntotal time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
