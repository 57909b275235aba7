"""What the kernel holds for a TCP connection on 127.0.0.1, from ``/proc/net/tcp``."""

from __future__ import annotations

LOOPBACK = "0100007F"


def kernel_queued(port_a: int, port_b: int) -> int:
    """Bytes queued in the kernel for the connection between 127.0.0.1 ports ``port_a`` and
    ``port_b``: both sockets' send queues (unsent or unacknowledged) and receive queues
    (received, not yet read)."""
    ends = {f"{LOOPBACK}:{port_a:04X}", f"{LOOPBACK}:{port_b:04X}"}
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if {fields[1], fields[2]} == ends:
                tx, rx = fields[4].split(":")
                total += int(tx, 16) + int(rx, 16)
    return total
