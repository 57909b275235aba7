"""HTTP/1.1, HTTPS/1.1 and HTTP/2 side by side (issue 16), in one run:
``flock /work/bench.lock .venv/bin/python -m benchmarks.tls_h2``.

Targets: twisted_stream (``StreamSite``, our HTTP/2 connection) and Twisted's own
``static.File`` on a plain ``Site`` (Twisted's ``H2Connection``), each one process listening
with plain HTTP and with TLS (a self-signed certificate made by ``openssl`` as the README's
"HTTPS and HTTP/2" section makes it). The client is ``h2load`` (Debian's ``nghttp2-client``,
installed with apt-get when missing unless ``--no-install``): a Python client would be the
bottleneck. Servers are pinned to the second CPU, h2load to the first.

Workloads:

- ``file_1g``: one 1 GiB file, one connection (``h2load -n1 -c1``; HTTP/1.1 with ``--h1``):
  MB/s and server CPU s/GiB, per protocol and target, alternating, median of the rounds;
- ``sse_100``: 100 concurrent event streams of 2,000 events of 1,000 bytes each, on one
  connection over HTTP/2 (``-c1 -m100``) and on 100 connections over HTTP/1.1 (one
  connection cannot carry 100 concurrent HTTP/1.1 responses): MB/s, server CPU s/GiB, and
  the server's peak RSS growth (twisted_stream only: ``static.File`` has no event streams);
- ``stalled_h2``: 100 streams of a 1 GiB file on one HTTP/2 connection whose client grants
  16 MiB windows (per stream and for the connection) and never reads: the server's RSS
  growth once stable (capped at ``--rss-cap-mb``, the server is then stopped).

Targets of the issue, checked at the end: HTTPS/1.1 file throughput at least
``static.File``'s over HTTPS; HTTP/2 file throughput at least 0.6x our HTTPS/1.1; RSS growth
with 100 stalled HTTP/2 streams under 32 MB. MB = 10^6 bytes, GiB = 2^30.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks._files import make_files, remove
from benchmarks._proc import MB, GiB, MiB, Probe, pinning
from benchmarks._server import ServerProcess, free_port

TARGETS = ("twisted_stream", "static_file")
LABELS = {"twisted_stream": "twisted_stream", "static_file": "static.File"}
PROTOCOLS = ("HTTP/1.1", "HTTPS/1.1", "HTTP/2")
DEV_CERT = [
    "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
    "-nodes", "-days", "30", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
]  # fmt: skip


@dataclass
class Params:
    file_size: int
    events: int
    event_size: int
    streams: int
    rounds: int
    stall_window: int


FULL = Params(GiB, 2000, 1000, 100, 3, 16 * MiB)
SMOKE = Params(4 * MiB, 20, 100, 4, 1, 1 * MiB)


class Server:
    """One target's server process with its plain and TLS ports."""

    def __init__(self, target: str, root: str, cert: str, key: str, cpus: set[int] | None):
        self.target = target
        self.port, self.tls_port = free_port(), free_port()
        command = [
            sys.executable, "-m", "benchmarks.servers.tls_server", "--impl", target,
            "--port", str(self.port), "--tls-port", str(self.tls_port),
            "--cert", cert, "--key", key, "--root", root,
        ]  # fmt: skip
        self.process = ServerProcess(target, command, self.port, cpus=cpus)
        self.process.wait_ready()

    def url(self, protocol: str, path: str) -> str:
        if protocol == "HTTP/1.1":
            return f"http://127.0.0.1:{self.port}{path}"
        return f"https://127.0.0.1:{self.tls_port}{path}"

    def close(self) -> None:
        self.process.close()


# h2load.


def h2load_missing(install: bool) -> str | None:
    """None once h2load is there; installs Debian's nghttp2-client when allowed."""
    if shutil.which("h2load"):
        return None
    if not install:
        return "h2load not installed (apt-get install -y nghttp2-client)"
    if not shutil.which("apt-get"):
        return "h2load not installed and no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_cmd = ["apt-get", "install", "-y", "-qq", "nghttp2-client"]
    print("installing h2load: apt-get install -y nghttp2-client", flush=True)
    for steps in ([install_cmd], [["apt-get", "update", "-qq"], install_cmd]):
        for cmd in steps:
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False)
        if shutil.which("h2load"):
            return None
    return "apt-get install -y nghttp2-client failed"


@dataclass
class Load:
    seconds: float
    data: int  # response body bytes
    succeeded: int


def h2load(url: str, protocol: str, args: list[str], cpus: set[int] | None) -> Load:
    """Run h2load on ``url`` over ``protocol`` and read its figures."""
    command = ["h2load", *(["--h1"] if protocol != "HTTP/2" else []), *args, url]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    out = done.stdout
    finished = re.search(r"finished in ([\d.]+)(ms|s)", out)
    data = re.search(r"\((\d+)\) data", out)
    succeeded = re.search(r"(\d+) succeeded", out)
    if done.returncode != 0 or not (finished and data and succeeded):
        raise RuntimeError(f"h2load failed: {' '.join(command)}\n{out}\n{done.stderr}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    return Load(seconds, int(data.group(1)), int(succeeded.group(1)))


# Workloads.


def file_1g(server: Server, protocol: str, p: Params, cpus: set[int] | None) -> dict[str, float]:
    probe = Probe(server.process.pid)
    load = h2load(server.url(protocol, "/files/big"), protocol, ["-n1", "-c1"], cpus)
    usage = probe.stop()
    if load.succeeded != 1 or load.data != p.file_size:
        raise RuntimeError(f"{load.data:,} bytes, not {p.file_size:,}")
    return {
        "MB/s": load.data / load.seconds / MB,
        "server CPU s/GiB": usage.server_cpu / (load.data / GiB),
        "server RSS MB": server.process.rss() / MB,
    }


def sse_100(server: Server, protocol: str, p: Params, cpus: set[int] | None) -> dict[str, float]:
    n = p.streams
    shape = ["-c1", f"-m{n}"] if protocol == "HTTP/2" else [f"-c{n}", "-m1"]
    path = f"/events?n={p.events}&size={p.event_size}"
    baseline = server.process.rss()
    peak = [baseline]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.02):
            peak[0] = max(peak[0], server.process.rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    probe = Probe(server.process.pid)
    try:
        load = h2load(server.url(protocol, path), protocol, [f"-n{n}", *shape], cpus)
    finally:
        usage = probe.stop()
        sampling.set()
        sampler.join()
    if load.succeeded != n:
        raise RuntimeError(f"{load.succeeded} of {n} event streams succeeded")
    return {
        "MB/s": load.data / load.seconds / MB,
        "server CPU s/GiB": usage.server_cpu / (load.data / GiB),
        "peak RSS growth MB": (peak[0] - baseline) / MB,
    }


def stalled_h2(server: Server, p: Params, cap: int) -> dict[str, float]:
    """100 streams of the big file on one HTTP/2 connection granting ``stall_window`` per
    stream and for the connection, never read; RSS growth once stable for 2 s."""
    import h2.config
    import h2.connection
    import h2.settings

    baseline = server.process.rss()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", server.tls_port), timeout=30)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock = context.wrap_socket(raw, server_hostname="localhost")
    try:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: p.stall_window},
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(p.stall_window - 65535)
        for _ in range(p.streams):
            stream_id = conn.get_next_available_stream_id()
            conn.send_headers(
                stream_id,
                [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"),
                 (":path", "/files/big")],
                end_stream=True,
            )  # fmt: skip
        sock.sendall(conn.data_to_send())
        capped, growth = False, 0
        last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.1)
            growth = server.process.rss() - baseline
            if growth > cap:
                capped = True
                break
            if abs(growth - last) > MB:
                last, stable_since = growth, time.monotonic()
            elif time.monotonic() - stable_since >= 2:
                break
        return {"RSS growth MB": growth / MB, "capped": float(capped)}
    finally:
        sock.close()


# Running and reporting.


def median_cell(values: list[float], fmt: str = "{:,.0f}") -> str:
    if not values:
        return "-"
    mid = statistics.median(values)
    if len(values) == 1:
        return fmt.format(mid)
    return f"{fmt.format(mid)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def run_rounds(
    name: str,
    measure: Callable[[Server, str, Params, set[int] | None], dict[str, float]],
    servers: dict[str, Server],
    p: Params,
    cpus: set[int] | None,
) -> dict[tuple[str, str], dict[str, list[float]]]:
    """Every (target, protocol) once per round, starting from a different one each round."""
    pairs = [(t, proto) for proto in PROTOCOLS for t in servers]
    results: dict[tuple[str, str], dict[str, list[float]]] = {}
    for round_number in range(p.rounds):
        shift = round_number % len(pairs)
        for target, protocol in pairs[shift:] + pairs[:shift]:
            figures = measure(servers[target], protocol, p, cpus)
            cell = results.setdefault((target, protocol), {})
            for key, value in figures.items():
                cell.setdefault(key, []).append(value)
            shown = ", ".join(f"{k} {v:,.2f}" for k, v in figures.items())
            print(f"  {name} round {round_number + 1} {LABELS[target]} {protocol}: {shown}",
                  flush=True)  # fmt: skip
    return results


def table(
    title: str,
    results: dict[tuple[str, str], dict[str, list[float]]],
    metrics: list[tuple[str, str]],
) -> list[str]:
    targets = [t for t in TARGETS if any(k[0] == t for k in results)]
    lines = [f"\n== {title}", "", "| protocol | metric | " + " | ".join(LABELS[t] for t in targets)
             + " |", "|---|---|" + "---|" * len(targets)]  # fmt: skip
    for protocol in [p for p in PROTOCOLS if any(k[1] == p for k in results)]:
        for metric, fmt in metrics:
            cells = [median_cell(results.get((t, protocol), {}).get(metric, []), fmt)
                     for t in targets]  # fmt: skip
            lines.append(f"| {protocol} | {metric} | " + " | ".join(cells) + " |")
    return lines


def med(results: dict[tuple[str, str], dict[str, list[float]]], key: tuple[str, str]) -> float:
    values = results.get(key, {}).get("MB/s", [])
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--rounds", type=int, help="alternating rounds (3; smoke: 1)")
    parser.add_argument("--no-install", action="store_true", help="never apt-get h2load")
    parser.add_argument("--only", help="file_1g,sse_100,stalled_h2 (default: all)")
    parser.add_argument("--rss-cap-mb", type=int, default=500, help="stalled_h2 cap (500)")
    args = parser.parse_args()
    p = SMOKE if args.smoke else FULL
    if args.rounds:
        p.rounds = args.rounds
    only = set(args.only.split(",")) if args.only else {"file_1g", "sse_100", "stalled_h2"}
    pins = pinning()
    client_cpus, server_cpus = pins if pins else (None, None)
    missing = h2load_missing(not args.no_install and not args.smoke)
    started = time.monotonic()
    print(f"python {sys.version.split()[0]}, h2load: {missing or shutil.which('h2load')}")
    workdir = tempfile.mkdtemp(prefix="bench-tls-")
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    subprocess.run([*DEV_CERT, "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    root = make_files({"big": p.file_size})
    servers: dict[str, Server] = {}
    report: list[str] = []
    checks: list[str] = []
    try:
        servers = {t: Server(t, root, cert, key, server_cpus) for t in TARGETS}
        if "file_1g" in only and not missing:
            files = run_rounds("file_1g", file_1g, servers, p, client_cpus)
            report += table(
                f"file_1g: a {p.file_size / GiB:g} GiB file, one connection",
                files,
                [("MB/s", "{:,.0f}"), ("server CPU s/GiB", "{:.2f}"), ("server RSS MB", "{:.0f}")],
            )
            ours = med(files, ("twisted_stream", "HTTPS/1.1"))
            theirs = med(files, ("static_file", "HTTPS/1.1"))
            h2 = med(files, ("twisted_stream", "HTTP/2"))
            twisted_h2 = med(files, ("static_file", "HTTP/2"))
            checks.append(f"HTTPS/1.1 file: twisted_stream {ours:,.0f} MB/s vs static.File "
                          f"{theirs:,.0f}: {'PASS' if ours >= theirs else 'FAIL'}")  # fmt: skip
            checks.append(f"HTTP/2 file: {h2 / ours:.2f}x our HTTPS/1.1 (target 0.6x; "
                          f"Twisted's H2Connection: {twisted_h2 / theirs:.2f}x static.File's "
                          f"HTTPS/1.1): {'PASS' if h2 >= 0.6 * ours else 'FAIL'}")  # fmt: skip
        if "sse_100" in only and not missing:
            ours_only = {"twisted_stream": servers["twisted_stream"]}
            events = run_rounds("sse_100", sse_100, ours_only, p, client_cpus)
            report += table(
                f"sse_100: {p.streams} event streams x {p.events:,} events of "
                f"{p.event_size:,} B (HTTP/2: one connection; HTTP/1.1: one each)",
                events,
                [
                    ("MB/s", "{:,.0f}"),
                    ("server CPU s/GiB", "{:.2f}"),
                    ("peak RSS growth MB", "{:.1f}"),
                ],
            )
        if "stalled_h2" in only:
            stalled: dict[tuple[str, str], dict[str, list[float]]] = {}
            for target in TARGETS:
                servers[target].close()  # a fresh server: growth from a warm baseline
                servers[target] = Server(target, root, cert, key, server_cpus)
                figures = stalled_h2(servers[target], p, args.rss_cap_mb * MB)
                print(f"  stalled_h2 {LABELS[target]}: {figures}", flush=True)
                stalled[(target, "HTTP/2")] = {"RSS growth MB": [figures["RSS growth MB"]]}
                if figures["capped"]:
                    print(f"  ({LABELS[target]} capped at {args.rss_cap_mb} MB and stopped)")
            report += table(
                f"stalled_h2: {p.streams} streams, {p.stall_window // MiB} MiB windows, "
                "client never reads",
                stalled,
                [("RSS growth MB", "{:.1f}")],
            )
            growth = stalled[("twisted_stream", "HTTP/2")]["RSS growth MB"][0]
            checks.append(f"HTTP/2 stalled: twisted_stream RSS growth {growth:.1f} MB "
                          f"(target < 32): {'PASS' if growth < 32 else 'FAIL'}")  # fmt: skip
    finally:
        for server in servers.values():
            server.close()
        remove(root)
        shutil.rmtree(workdir, ignore_errors=True)
    if missing:
        report.append(f"\n(h2load workloads skipped: {missing})")
    print("\n".join(report))
    print("\nTargets")
    print("\n".join(f"- {line}" for line in checks) or "- (none measured)")
    print(f"\n({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
