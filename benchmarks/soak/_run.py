"""The soak's client side: writes the files, starts the server, ramps the load up, takes
the four measuring points and reports."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

from benchmarks._server import REPO
from benchmarks.soak._client import BEHAVIOURS, FILE_SIZES, KINDS, STALL_FILE, TICK, Driver
from benchmarks.soak._report import fd_list, fmt_mb, proc_figures, socket_states, summarize
from benchmarks.soak._server import raise_nofile


def run_client(args: argparse.Namespace) -> int:
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall, deferLater

    limit = raise_nofile()
    needed = args.streams + 200
    if limit < needed:
        print(f"soak: the descriptor limit is {limit}, {needed} are needed", file=sys.stderr)
        return 2

    import tempfile

    files = tempfile.mkdtemp(prefix="soak-files-")
    for name, size in [*FILE_SIZES.items(), STALL_FILE]:
        with open(os.path.join(files, name), "wb") as f:
            f.write(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    log = tempfile.TemporaryFile(prefix="soak-server-")
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.soak",
        "--serve",
        "--files",
        files,
        "--stall-timeout",
        str(args.stall_timeout),
    ]
    server = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO
    )
    assert server.stdout is not None
    line = server.stdout.readline().decode()
    if not line.startswith("PORT "):
        log.seek(0)
        print(f"soak: the server did not start: {line}\n{log.read().decode()}", file=sys.stderr)
        return 2
    port = int(line.split()[1])
    driver = Driver(args, port, server.pid)
    duration = args.minutes * 60
    report: dict[str, dict[str, Any]] = {}
    verdict = [2]  # 2: the run itself failed (summarize sets 0 or 1)

    def point(name: str) -> dict[str, Any]:
        # Descriptors first: the request for the server's state opens one more.
        figures: dict[str, Any] = dict(proc_figures(server.pid))
        figures["fd_list"] = fd_list(server.pid)
        state = driver.server_state()
        figures.update(
            threads=state["threads"],
            active=state["active_streams"],
            server_errors=state["errors"],
            client_errors=driver.tally.errors,
            open=len(driver.open),
            metrics=state["metrics"],
            first_errors=state["first_errors"],
        )
        report[name] = figures
        return figures

    def sample(t0: float) -> None:
        f = point("_sample")
        m = f["metrics"]
        errors = f["server_errors"] + f["client_errors"] + int(m["streams_source_failed"])
        print(
            f"t={time.monotonic() - t0:6.0f}s  streams {f['active']:5d}  "
            f"RSS {fmt_mb(f['rss']):>6} MB  fds {f['fds']:5d}  threads {f['threads']:3d}  "
            f"requests {driver.tally.requests:7d}  completed {int(m['streams_completed']):7d}  "
            f"stalled {int(m['streams_stalled']):5d}  "
            f"client-gone {int(m['streams_client_gone']):6d}  errors {errors}",
            flush=True,
        )

    async def main() -> None:
        point("idle before")
        t0 = time.monotonic()
        print(
            f"soak: {args.streams} streams for {args.minutes:g} min against pid {server.pid} "
            f"(kinds {KINDS}, behaviours {BEHAVIOURS}, stall timeout {args.stall_timeout:g} s)",
            flush=True,
        )
        ticker = LoopingCall(driver.tick)
        ticker.start(TICK)
        # Ramp up in batches so the accept queue is never flooded.
        for i in range(args.streams):
            driver.new_client()
            if i % 100 == 99:
                await deferLater(reactor, 0.1, lambda: None)
        sampler = LoopingCall(sample, t0)
        sampler.start(args.sample, now=True)
        warmup = min(args.warmup, duration / 4)
        await deferLater(reactor, max(0.0, warmup - (time.monotonic() - t0)), lambda: None)
        point("start (loaded)")
        await deferLater(reactor, max(0.0, duration - (time.monotonic() - t0)), lambda: None)
        point("end (loaded)")
        sampler.stop()
        driver.stopping = True
        for client in list(driver.open):
            client.left_on_purpose = True
            client.transport.abortConnection()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await deferLater(reactor, 0.5, lambda: None)
            state = driver.server_state()
            if not driver.open and state["active_streams"] == 0:
                break
        # Let closes settle: wait (30 s at most) for the descriptors to fall back to the
        # idle level, and say how long that took.
        settle_from = time.monotonic()
        idle_fds = report["idle before"]["fds"]
        while time.monotonic() - settle_from < 30:
            if proc_figures(server.pid)["fds"] <= idle_fds:
                break
            await deferLater(reactor, 0.5, lambda: None)
        settled = time.monotonic() - settle_from
        point("idle after")
        report["idle after"]["settled"] = settled
        report["idle after"]["socket_states"] = socket_states(
            server.pid,
            set(report["idle after"]["fd_list"]) - set(report["idle before"]["fd_list"]),
        )
        ticker.stop()
        verdict[0] = summarize(args, report, driver)

    def done(result: Any) -> None:
        if hasattr(result, "printTraceback"):
            result.printTraceback(file=sys.stderr)
        reactor.stop()

    from twisted.internet.defer import ensureDeferred

    reactor.callWhenRunning(lambda: ensureDeferred(main()).addBoth(done))
    try:
        reactor.run()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.seek(0)
        tail = log.read().decode("utf-8", "replace").strip()
        if tail:
            print("server stderr (last 2000 characters):\n" + tail[-2000:])
        for name in [*FILE_SIZES, STALL_FILE[0]]:
            os.unlink(os.path.join(files, name))
        os.rmdir(files)
    return verdict[0]
