"""What the suite reads from /proc: CPU and memory of a server's process tree, the machine's
busy time, and CPU pinning.

CPU is counted over a process and all its descendants and threads (nginx's master and
worker, a server's thread pool). MB = 10**6 bytes.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1_000_000
GiB = 1 << 30
MiB = 1 << 20
KiB = 1 << 10


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    found = [pid]
    for parent in found:
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as f:
                found += [int(child) for child in f.read().split()]
        except OSError:
            pass
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (all their threads)."""
    total = 0
    for member in tree(pid):
        try:
            with open(f"/proc/{member}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of ``pid`` and its descendants."""
    total = 0
    for member in tree(pid):
        try:
            with open(f"/proc/{member}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs have spent running processes since boot (/proc/stat: user,
    nice, system, and steal, time a hypervisor gave to others). Interrupt time is left out:
    it is mostly the loopback traffic of the benchmark itself."""
    with open("/proc/stat", "rb") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + steal) / CLK_TCK


def client_cpu_seconds() -> float:
    """CPU seconds of this process (the client) and of its finished children (curl)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def pinning() -> tuple[set[int], set[int]] | None:
    """``(client CPUs, server CPUs)``: the first CPU this process may use for the client,
    the next one for the servers; None on a machine with a single CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[0]}, {cpus[1]}


@dataclass(frozen=True)
class Usage:
    """What one measured span cost."""

    seconds: float  # wall time
    server_cpu: float  # CPU seconds of the server's process tree
    client_cpu: float  # CPU seconds of this process and curl
    other_cpu: float  # machine busy time minus both: load from other processes

    @property
    def server_percent(self) -> float:
        """Server CPU as a percentage of one core over the span."""
        return 100 * self.server_cpu / self.seconds if self.seconds else 0.0


class Probe:
    """Measures a span: ``probe = Probe(server_pid)``, the work, then ``probe.stop()``."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.started = time.perf_counter()
        self.server0 = cpu_seconds(server_pid)
        self.client0 = client_cpu_seconds()
        self.busy0 = machine_busy_seconds()

    def stop(self) -> Usage:
        seconds = time.perf_counter() - self.started
        server = cpu_seconds(self.pid) - self.server0
        client = client_cpu_seconds() - self.client0
        other = max(0.0, machine_busy_seconds() - self.busy0 - server - client)
        return Usage(seconds, server, client, other)
