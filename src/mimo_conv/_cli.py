"""The command line: ``python -m mimo_conv [demo]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mimo_conv._demo import run_demo


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one subcommand per tool."""
    parser = argparse.ArgumentParser(
        prog="python -m mimo_conv",
        description="A NumPy reference for multi-input, multi-output channel convolution.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="print the textbook's examples computed by the library (the default)",
        description="Print the three worked examples of d2l section 6.4, computed by mimo_conv.",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the random 1 x 1 example")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status.

    Examples
    --------
    >>> main(["demo"])  # doctest: +ELLIPSIS
    "Dive into Deep Learning", section 6.4: ...
    All three match the book.
    0
    """
    parser = build_parser()
    arguments = parser.parse_args(argv)
    # With no subcommand the demo runs, so `python -m mimo_conv` alone is the tour.
    ok = run_demo(sys.stdout, seed=getattr(arguments, "seed", 0))
    return 0 if ok else 1
