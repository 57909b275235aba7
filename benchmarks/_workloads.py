"""The workloads: what each one asks of a server, how it is measured, what it reports.

A workload names the routes it uses per target feature (``routes``, first match wins), its
parameters for a full run and for a smoke run, the files it needs, and a ``measure``
function that runs one trial against one server and returns its metrics. Adding one: write
the measure function (the clients are in ``_clients.py``), add a ``Workload`` to
``WORKLOADS`` below, and give the servers any route it needs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmarks import _clients as clients
from benchmarks import _hostile as hostile
from benchmarks import _uploads as uploads
from benchmarks._proc import MB, GiB, KiB, MiB, Probe, Usage
from benchmarks._server import ServerProcess


@dataclass(frozen=True)
class Metric:
    name: str  # the key a measure function returns, and the unit shown
    fmt: str = "{:,.0f}"
    summary: bool = True  # shown in the summary table (else only in the workload's table)


@dataclass
class Trial:
    """One measurement of a workload on one target."""

    server: ServerProcess
    path: str
    params: Mapping[str, Any]
    curl: bool  # download single responses with curl (else with the raw client)
    usage: Usage | None = None  # what the measured span cost, for the per-trial line


@dataclass(frozen=True)
class Workload:
    name: str  # for --only
    title: Callable[[Mapping[str, Any]], str]
    routes: Mapping[str, str]  # target feature -> path (a format string over the params)
    measure: Callable[[Trial], dict[str, float]]
    metrics: tuple[Metric, ...]
    full: Mapping[str, Any]
    smoke: Mapping[str, Any]
    files: Callable[[Mapping[str, Any]], dict[str, int]] = field(default=lambda p: {})
    fresh_server: bool = False  # a new server for every trial (memory is measured)
    rounds: int = 3  # alternating rounds of a full run (--rounds overrides)
    reference: tuple[str, ...] = ("aiohttp",)  # twisted_stream's ratio is to the first here
    upstream: bool = False  # needs the suite's upstream server (the proxy workloads)
    subject: str = "twisted_stream"  # whose figures the ratio column divides

    def route(self, features: frozenset[str]) -> str | None:
        """The feature this workload uses on a target with ``features``, if any."""
        return next((f for f in self.routes if f in features), None)


def size_text(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size:,} {unit}"
    return f"{n:,} B"


def download(trial: Trial) -> clients.Transfer:
    """The trial's path, fetched once by curl or the raw client, measured."""
    probe = Probe(trial.server.pid)
    fetch = clients.curl_get if trial.curl else clients.get
    transfer = fetch(trial.server.port, trial.path)
    trial.usage = probe.stop()
    return transfer


def cpu_per_gib(usage: Usage, nbytes: int) -> float:
    return usage.server_cpu / (nbytes / GiB)


def one_file(trial: Trial) -> dict[str, float]:
    transfer = download(trial)
    assert trial.usage is not None
    if transfer.body != trial.params["size"]:
        raise RuntimeError(f"{transfer.body:,} bytes, not {trial.params['size']:,}")
    return {
        "MB/s": transfer.body / transfer.seconds / MB,
        "server CPU s/GiB": cpu_per_gib(trial.usage, transfer.body),
    }


def many_files(trial: Trial) -> dict[str, float]:
    count = trial.params["clients"]
    probe = Probe(trial.server.pid)
    transfers = clients.get_many(trial.server.port, [trial.path] * count)
    trial.usage = probe.stop()
    total = sum(t.body for t in transfers)
    if total != count * trial.params["size"]:
        raise RuntimeError(f"{total:,} bytes, not {count} x {trial.params['size']:,}")
    seconds = max(t.done_at for t in transfers) - min(t.sent_at for t in transfers)
    return {"MB/s": total / seconds / MB, "server CPU s/GiB": cpu_per_gib(trial.usage, total)}


def generated(trial: Trial) -> dict[str, float]:
    n, size = trial.params["n"], trial.params["size"]
    transfer = download(trial)
    assert trial.usage is not None
    if transfer.body < n * size:  # curl counts the payload, the raw client the framing too
        raise RuntimeError(f"{transfer.body:,} bytes, less than {n:,} x {size:,}")
    return {
        "chunks/s": n / transfer.seconds,
        "MB/s": n * size / transfer.seconds / MB,
        "server CPU s/GiB": cpu_per_gib(trial.usage, n * size),
    }


def concurrent_generated(trial: Trial) -> dict[str, float]:
    """``clients`` generated streams at once (one connection each, one selector loop):
    CPU-bound work that worker processes share out."""
    p = trial.params
    count, n, size = p["clients"], p["n"], p["size"]
    probe = Probe(trial.server.pid)
    headers = "Accept-Encoding: gzip\r\n" if p.get("gzip") else ""
    transfers = clients.get_many(trial.server.port, [trial.path] * count, headers=headers)
    trial.usage = probe.stop()
    seconds = max(t.done_at for t in transfers) - min(t.sent_at for t in transfers)
    total = count * n * size  # payload bytes (before compression)
    return {
        "chunks/s": count * n / seconds,
        "payload MB/s": total / seconds / MB,
        "server CPU s/GiB": cpu_per_gib(trial.usage, total),
    }


def stalled(trial: Trial) -> dict[str, float]:
    """Readers that stop after the first bytes; the server's RSS growth once it is stable."""
    server, p = trial.server, trial.params
    clients.get(server.port, p.get("warmup", "/gen?n=64&size=65536"))  # first-use allocations
    time.sleep(p["rest"])
    baseline = server.rss()
    probe = Probe(server.pid)
    socks = clients.open_stalled(server.port, trial.path, p["clients"])
    try:
        started = time.monotonic()
        history: list[tuple[float, int]] = []
        while True:
            now = time.monotonic()
            history.append((now, server.rss()))
            window = [rss for t, rss in history if t >= now - p["stable_for"]]
            if now - started >= p["stable_for"] and max(window) - min(window) < 256 * KiB:
                break
            if now - started > p["max_wait"]:
                break
            time.sleep(0.1)
    finally:
        trial.usage = probe.stop()
        for sock in socks:
            sock.close()
    return {
        "RSS growth MB": (history[-1][1] - baseline) / MB,
        "settled after s": history[-1][0] - started,
    }


def idle_events(trial: Trial) -> dict[str, float]:
    """Event streams open and idle but for their events: server RSS per stream and CPU."""
    server, p = trial.server, trial.params
    warm = clients.EventStreams(server.port, trial.path)  # first-use allocations
    warm.open(p["warmup"])
    warm.drain(p["every"] * 1.5)
    warm.close()
    time.sleep(p["rest"])  # the server notices the closed warm-up streams
    baseline = server.rss()
    streams = clients.EventStreams(server.port, trial.path)
    try:
        streams.open(p["streams"])
        streams.drain(p["settle"])
        opened = server.rss()
        before = streams.events
        probe = Probe(server.pid)
        streams.drain(p["window"])
        trial.usage = probe.stop()
        events = streams.events - before
        rss = max(opened, server.rss())
    finally:
        streams.close()
    return {
        "RSS/stream KB": (rss - baseline) / p["streams"] / 1000,
        "server CPU %": trial.usage.server_percent,
        "events/s/stream": events / p["streams"] / trial.usage.seconds,
    }


def first_byte(trial: Trial) -> dict[str, float]:
    count = trial.params["count"]
    for _ in range(3):  # warm up
        clients.first_byte(trial.server.port, trial.path)
    probe = Probe(trial.server.pid)
    times = [clients.first_byte(trial.server.port, trial.path) for _ in range(count)]
    trial.usage = probe.stop()
    p90 = statistics.quantiles(times, n=10)[-1]
    return {"ms": statistics.median(times) * 1000, "p90 ms": p90 * 1000}


OTHER_LOAD = "other load %"
"""Added to a trial's figures by the suite: CPU time other processes took during the
measured span, in % of one CPU (noise: large values mean a shared machine)."""
MBPS = Metric("MB/s")
CPU_GIB = Metric("server CPU s/GiB", "{:.2f}")
FILE_REFERENCE = ("nginx", "aiohttp")
SSE_FULL = {
    "streams": 2000,
    "every": 1.0,
    "warmup": 50,
    "settle": 2.0,
    "window": 10.0,
    "rest": 0.5,
}
SSE_SMOKE = {"streams": 10, "every": 0.05, "warmup": 2, "settle": 0.1, "window": 0.2, "rest": 0.05}

PROXY_FILE = "proxied.bin"
PROXY_REFERENCE = ("nginx", "aiohttp")
PROXY = [
    Workload(
        "proxy_1g",
        lambda p: f"{size_text(p['size'])} file through a proxy, one client",
        {"proxy": "/proxy/files/" + PROXY_FILE},
        one_file,
        (MBPS, CPU_GIB),
        full={"size": GiB},
        smoke={"size": 4 * MiB},
        files=lambda p: {PROXY_FILE: p["size"]},
        reference=PROXY_REFERENCE,
        rounds=5,
        upstream=True,
    ),
    Workload(
        "proxy_chunks_100b",
        lambda p: f"{p['n']:,} x {size_text(p['size'])} upstream chunks through a proxy",
        {"proxy": "/proxy/chunks?n={n}&size={size}"},
        generated,
        (Metric("chunks/s"), Metric("MB/s", summary=False), CPU_GIB),
        full={"n": 1_000_000, "size": 100},
        smoke={"n": 2_000, "size": 100},
        reference=PROXY_REFERENCE,
        upstream=True,
    ),
    Workload(
        "proxy_stalled_100",
        lambda p: (
            f"{p['clients']} stalled readers of a {size_text(p['size'])} file through a proxy"
        ),
        {"proxy": "/proxy/files/" + PROXY_FILE},
        stalled,
        (Metric("RSS growth MB", "{:.1f}"), Metric("settled after s", "{:.1f}", False)),
        full={
            "clients": 100,
            "size": GiB,
            "stable_for": 2.0,
            "max_wait": 30.0,
            "rest": 0.3,
            "warmup": "/proxy/chunks?n=64&size=65536",
        },
        smoke={
            "clients": 5,
            "size": 4 * MiB,
            "stable_for": 0.1,
            "max_wait": 1.0,
            "rest": 0.0,
            "warmup": "/proxy/chunks?n=64&size=65536",
        },
        files=lambda p: {PROXY_FILE: p["size"]},
        fresh_server=True,
        reference=PROXY_REFERENCE,
        upstream=True,
    ),
]
"""Through a proxy: every target forwards ``/proxy/...`` to the one upstream server the
suite runs on the client's CPU (``servers/upstream_server.py``: ``sendfile`` for files, each
100 B chunk framed on its own for chunks)."""

NORMAL = (
    Metric("normal p50 ms", "{:.1f}"),
    Metric("normal max ms", "{:.0f}"),
    Metric("normal failed", "{:.0f}"),
)
HOSTILE_MEMORY = (Metric("RSS growth MB", "{:.1f}"), Metric("peak fds", "{:.0f}", False))
HOSTILE = [
    Workload(
        "hostile_pipeline",
        lambda p: f"pipelining flood behind a response never read, {p['seconds']:g} s",
        {"gen": "/gen?n=1000000&size=65536", "files": "/files/flood.bin"},
        hostile.pipeline_flood,
        (Metric("client sent MB", "{:,.1f}"), *HOSTILE_MEMORY, *NORMAL),
        full={"seconds": 10.0, "cap": 2 * GiB},
        smoke={"seconds": 0.3, "cap": 256 * MiB},
        files=lambda p: {"flood.bin": 256 * MiB if p["seconds"] > 1 else MiB},
        fresh_server=True,
        rounds=1,
        reference=("nginx",),
    ),
    Workload(
        "hostile_slowloris",
        lambda p: (
            f"{p['clients']:,} slowloris connections, a header byte every "
            f"{p['every']:g} s for {p['seconds']:g} s"
        ),
        {"gen": "/ping", "files": "/ping"},
        hostile.slowloris,
        (Metric("still open"), *HOSTILE_MEMORY, *NORMAL),
        full={"clients": 1000, "every": 1.0, "seconds": 25.0},
        smoke={"clients": 5, "every": 0.05, "seconds": 0.3},
        fresh_server=True,
        rounds=1,
        reference=("nginx",),
    ),
    Workload(
        "hostile_threaded",
        lambda p: (
            f"{p['requests']} threaded requests at once ({p['sleep']:g} s blocking "
            "each), pool of 10"
        ),
        {"threaded": "/threaded?s={sleep}"},
        hostile.threaded_burst,
        (
            Metric("served"),
            Metric("503"),
            Metric("503 within s", "{:.2f}"),
            Metric("unanswered"),
            *HOSTILE_MEMORY,
            *NORMAL,
        ),
        full={"requests": 200, "sleep": 2.0, "timeout": 30.0},
        smoke={"requests": 20, "sleep": 0.05, "timeout": 10.0},
        fresh_server=True,
        rounds=1,
        reference=("nginx",),
    ),
    Workload(
        "hostile_body",
        lambda p: f"a chunked body of up to {size_text(p['body'])} on a GET",
        {"gen": "/gen?n=1&size=1024", "files": "/files/ttfb.bin"},
        hostile.body_on_get,
        (
            Metric("status"),
            Metric("client sent MB", "{:,.1f}"),
            Metric("answered after s", "{:.2f}"),
            Metric("temp disk MB", "{:,.1f}"),
            *HOSTILE_MEMORY,
            *NORMAL,
        ),
        full={"body": 2 * GiB, "timeout": 60.0},
        smoke={"body": 4 * MiB, "timeout": 10.0},
        files=lambda p: {"ttfb.bin": 16 * KiB},
        fresh_server=True,
        rounds=1,
        reference=("nginx",),
    ),
]

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            "file_1g",
            lambda p: f"{size_text(p['size'])} file, one client",
            {"files": "/files/one.bin"},
            one_file,
            (MBPS, CPU_GIB),
            full={"size": GiB},
            smoke={"size": 4 * MiB},
            files=lambda p: {"one.bin": p["size"]},
            reference=FILE_REFERENCE,
            rounds=5,
        ),
        Workload(
            "files_32x64m",
            lambda p: f"{p['clients']} x {size_text(p['size'])} files, copy-free client",
            {"files": "/files/each.bin"},
            many_files,
            (MBPS, CPU_GIB),
            full={"clients": 32, "size": 64 * MiB},
            smoke={"clients": 4, "size": MiB},
            files=lambda p: {"each.bin": p["size"]},
            reference=FILE_REFERENCE,
            rounds=5,
        ),
        Workload(
            "chunks_100b",
            lambda p: f"{p['n']:,} x {size_text(p['size'])} generated chunks",
            {"gen": "/gen?n={n}&size={size}"},
            generated,
            (Metric("chunks/s"), Metric("MB/s", summary=False), CPU_GIB),
            full={"n": 1_000_000, "size": 100},
            smoke={"n": 2_000, "size": 100},
        ),
        Workload(
            "chunks_64k",
            lambda p: f"{p['n']:,} x {size_text(p['size'])} generated chunks",
            {"gen": "/gen?n={n}&size={size}"},
            generated,
            (MBPS, Metric("chunks/s", summary=False), CPU_GIB),
            full={"n": 16_384, "size": 64 * KiB},
            smoke={"n": 64, "size": 64 * KiB},
            rounds=5,
        ),
        Workload(
            "stalled_200",
            lambda p: f"{p['clients']} stalled readers of a generated stream",
            {"gen": "/gen?n=16384&size=65536"},
            stalled,
            (Metric("RSS growth MB", "{:.1f}"), Metric("settled after s", "{:.1f}", False)),
            full={"clients": 200, "stable_for": 2.0, "max_wait": 20.0, "rest": 0.3},
            smoke={"clients": 5, "stable_for": 0.1, "max_wait": 1.0, "rest": 0.0},
            fresh_server=True,
        ),
        Workload(
            "sse_agen",
            lambda p: f"{p['streams']:,} idle SSE, async generator, 1 event/{p['every']:g} s",
            {"sse": "/sse/agen"},
            idle_events,
            (
                Metric("RSS/stream KB", "{:.1f}"),
                Metric("server CPU %", "{:.1f}"),
                Metric("events/s/stream", "{:.2f}", False),
            ),
            full=SSE_FULL,
            smoke=SSE_SMOKE,
            fresh_server=True,
        ),
        Workload(
            "sse_channel",
            lambda p: f"{p['streams']:,} idle SSE, Channel fan-out, 1 event/{p['every']:g} s",
            {"sse": "/sse/channel"},
            idle_events,
            (
                Metric("RSS/stream KB", "{:.1f}"),
                Metric("server CPU %", "{:.1f}"),
                Metric("events/s/stream", "{:.2f}", False),
            ),
            full=SSE_FULL,
            smoke=SSE_SMOKE,
            fresh_server=True,
        ),
        Workload(
            "workers_100b",
            lambda p: f"{p['clients']} x {p['n']:,} x {size_text(p['size'])} chunks at once",
            {"workers": "/gen?n={n}&size={size}"},
            concurrent_generated,
            (Metric("chunks/s"), Metric("payload MB/s", summary=False), CPU_GIB),
            full={"clients": 8, "n": 500_000, "size": 100},
            smoke={"clients": 2, "n": 2_000, "size": 100},
            reference=("streamweb_1w",),
            subject="streamweb_2w",
        ),
        Workload(
            "workers_gzip",
            lambda p: f"{p['clients']} x {p['n']:,} x {size_text(p['size'])} chunks gzipped",
            {"workers": "/gzip?n={n}&size={size}"},
            concurrent_generated,
            (Metric("payload MB/s"), Metric("chunks/s", summary=False), CPU_GIB),
            full={"clients": 8, "n": 20_000, "size": 4096, "gzip": True},
            smoke={"clients": 2, "n": 64, "size": 4096, "gzip": True},
            reference=("streamweb_1w",),
            subject="streamweb_2w",
        ),
        Workload(
            "ttfb",
            lambda p: f"time to first byte, 16 x 1 KiB (or a 16 KiB file), {p['count']} requests",
            {"gen": "/gen?n=16&size=1024", "files": "/files/ttfb.bin"},
            first_byte,
            (Metric("ms", "{:.2f}"), Metric("p90 ms", "{:.2f}", False)),
            full={"count": 300},
            smoke={"count": 10},
            rounds=5,
            files=lambda p: {"ttfb.bin": 16 * KiB},
        ),
        Workload(
            "upload_1g",
            lambda p: f"{size_text(p['size'])} upload to a discarding reader, one client",
            {"upload": "/upload"},
            uploads.upload,
            (MBPS, Metric("RSS growth MB", "{:.1f}"), CPU_GIB),
            full={"size": GiB, "rest": 0.3},
            smoke={"size": 8 * MiB, "rest": 0.0},
            fresh_server=True,
        ),
        *PROXY,
        *HOSTILE,
    ]
}
