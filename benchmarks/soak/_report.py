"""What the soak reads of the server process and how it judges the run."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.soak._client import Driver


def proc_figures(pid: int) -> dict[str, int]:
    """RSS (bytes), descriptors (all, sockets) of process ``pid``."""
    rss = 0
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                rss = int(line.split()[1]) * 1024
    fds = sockets = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return {"rss": rss, "fds": fds, "sockets": sockets}


def fd_list(pid: int) -> list[str]:
    found = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            found.append(f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return found


TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
    "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}  # fmt: skip


def socket_states(pid: int, entries: set[str]) -> list[str]:
    """The TCP state and ports of the sockets among ``entries`` (``fd->socket:[inode]``)."""
    inodes = {e.split("socket:[")[1].rstrip("]") for e in entries if "socket:[" in e}
    found = []
    with open(f"/proc/{pid}/net/tcp") as f:
        for line in list(f)[1:]:
            parts = line.split()
            if parts[9] in inodes:
                local, remote = (int(x.split(":")[1], 16) for x in parts[1:3])
                state = TCP_STATES.get(parts[3], parts[3])
                found.append(
                    f"socket {parts[9]}: {state} local port {local} remote {remote} "
                    f"send queue {int(parts[4].split(':')[0], 16)} "
                    f"receive queue {int(parts[4].split(':')[1], 16)}"
                )
                inodes.discard(parts[9])
    found += [f"socket {inode}: in no TCP table (closed, but its descriptor is open)"
              for inode in sorted(inodes)]  # fmt: skip
    return found


def fmt_mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def summarize(args: argparse.Namespace, report: dict[str, dict[str, Any]], driver: Driver) -> int:
    rows = ["idle before", "start (loaded)", "end (loaded)", "idle after"]
    print(
        "\nstreams: running on the server; connections: open on the client side (a stream that"
        "\nhas ended may still be draining to a slow client, and new ones are connecting)\n"
    )
    print(
        f"{'':16} {'RSS MB':>8} {'fds':>6} {'sockets':>8} {'threads':>8} {'streams':>8} "
        f"{'connections':>12} {'server errors':>14} {'client errors':>14}"
    )
    for name in rows:
        f = report[name]
        print(
            f"{name:16} {fmt_mb(f['rss']):>8} {f['fds']:>6} {f['sockets']:>8} "
            f"{f['threads']:>8} {f['active']:>8} {f['open']:>12} {f['server_errors']:>14} "
            f"{f['client_errors']:>14}"
        )
    m = report["idle after"]["metrics"]
    outcomes = ", ".join(
        f"{k.removeprefix('streams_')} {int(v)}"
        for k, v in m.items()
        if k.startswith("streams_") and k not in ("streams_active", "streams_started")
    )
    print(f"\nserver: {int(m['streams_started'])} streams; ended: {outcomes}")
    print(f"server: {fmt_mb(int(m['bytes_sent']))} MB sent, {int(m['pauses'])} pauses")
    t = driver.tally
    print(
        f"client: {t.requests} requests, {fmt_mb(t.bytes)} MB received; ended {dict(t.ended)}; "
        f"errors {t.errors} (refused {t.refused}, bad status {dict(t.bad_status)}, "
        f"truncated {t.truncated})"
    )
    for text in driver.samples_of_truncation:
        print(f"  truncated: {text}")
    for text in report["idle after"]["first_errors"]:
        print(f"  server error: {text}")

    start, end = report["start (loaded)"], report["end (loaded)"]
    before, after = report["idle before"], report["idle after"]
    rss_growth = (end["rss"] - start["rss"]) / start["rss"]
    failed = int(m["streams_source_failed"]) + int(m["streams_aborted"])
    checks = [
        (
            f"RSS start->end {rss_growth:+.1%} (limit +{args.rss_tolerance:.0%})",
            rss_growth <= args.rss_tolerance,
        ),
        (
            f"descriptors idle before {before['fds']}, idle after {after['fds']} "
            f"({after['settled']:.1f} s after the last client left)",
            after["fds"] <= before["fds"],
        ),
        (
            f"threads idle after {after['threads']} <= loaded {end['threads']}",
            after["threads"] <= end["threads"],
        ),
        (f"server errors {after['server_errors']}", after["server_errors"] == 0),
        (f"streams failed or aborted by the server {failed}", failed == 0),
        (f"client errors {t.errors}", t.errors == 0),
        (f"no stream left running ({after['active']})", after["active"] == 0),
    ]
    if after["fds"] > before["fds"]:
        extra = sorted(set(after["fd_list"]) - set(before["fd_list"]))
        print(f"  descriptors open idle after but not before: {extra}")
        for text in after.get("socket_states", []):
            print(f"  {text}")
    print()
    for text, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {text}")
    passed = all(ok for _, ok in checks)
    print(f"\nverdict: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1
