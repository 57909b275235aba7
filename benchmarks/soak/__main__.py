"""``python -m benchmarks.soak``: the command line (see the package docstring)."""

from __future__ import annotations

import argparse
import random
import sys

import benchmarks.soak
from benchmarks.soak._run import run_client
from benchmarks.soak._server import serve


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak", description=benchmarks.soak.__doc__.split("\n\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="run time (default 10)")
    parser.add_argument("--quick", action="store_true", help="a 1-minute run")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds with a few streams: checks that the soak runs and reports; its "
        "verdict is printed but does not set the exit status",
    )
    parser.add_argument("--streams", type=int, default=2000, help="concurrent streams")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds before the start figures"
    )
    parser.add_argument("--stall-timeout", type=float, default=5.0)
    parser.add_argument("--rss-tolerance", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return 0
    if args.quick:
        args.minutes = 1.0
        args.sample = min(args.sample, 10.0)
        args.warmup = min(args.warmup, 15.0)
    if args.smoke:
        args.minutes, args.streams, args.sample, args.warmup = 0.03, 40, 1.0, 0.5
        args.stall_timeout = min(args.stall_timeout, 1.0)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    print(f"soak: seed {args.seed}; command: {' '.join(sys.argv)}")
    status = run_client(args)
    if args.smoke:
        print("SMOKE RUN: the verdict above is not enforced")
        return 0 if status in (0, 1) else status
    return status


if __name__ == "__main__":
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
