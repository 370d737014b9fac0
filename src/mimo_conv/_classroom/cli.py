"""The command line: ``python -m mimo_conv [demo | explain | cost | exercises]``.

* ``demo`` (the default): the section's three worked examples.
* ``explain``: a convolution one output element at a time (``--step`` to wait for Enter).
* ``cost``: the arithmetic and memory table of :func:`mimo_conv.cost` for given shapes.
* ``exercises``: every exercise of the section with the library's computed answer.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from mimo_conv._classroom.counts import cost
from mimo_conv._classroom.demo import run_demo
from mimo_conv._classroom.exercises import answer_exercises
from mimo_conv._classroom.textbook import BOOK_K3, BOOK_X
from mimo_conv._classroom.walkthrough import walkthrough

#: Shown under ``--help`` of ``explain``.
EXPLAIN_EXAMPLES = """\
examples:
  python -m mimo_conv explain                      the book's X and K3, every element
  python -m mimo_conv explain --step               wait for Enter between elements
  python -m mimo_conv explain --x "[[1, 2], [3, 4]]" --weight "[[1, -1]]" --padding 1
  python -m mimo_conv explain --x input.npy --weight kernel.npy --stride 2

Colours are used only when the output is a terminal and NO_COLOR is not set.
"""

COST_EXAMPLES = """\
examples:
  python -m mimo_conv cost --input 3x224x224 --weight 64x3x7x7 --stride 2 --padding 3
  python -m mimo_conv cost --input 8x16x32x32 --weight 32x16x3x3 --padding same --bias
  python -m mimo_conv cost --input 3x5x5 --weight 1x3x3x3 --padding 1 --exclude-padding
"""


def _array(text: str) -> NDArray[Any]:
    """Parse a nested-list literal, or load a ``.npy`` file, for argparse."""
    if text.endswith(".npy"):
        try:
            loaded: NDArray[Any] = np.load(Path(text), allow_pickle=False)
        except (OSError, ValueError) as error:
            msg = f"cannot read {text!r} as a .npy file: {error}"
            raise argparse.ArgumentTypeError(msg) from error
        return loaded
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        msg = f"expected a nested list of numbers such as '[[1, 2], [3, 4]]', got {text!r}"
        raise argparse.ArgumentTypeError(msg) from error
    try:
        array = np.array(value)
    except ValueError as error:
        msg = f"expected a rectangular nested list of numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from error
    if array.dtype.kind not in "iuf":
        msg = f"expected numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return array


def _dims(text: str) -> tuple[int, ...]:
    """Parse ``3x224x224`` (or ``3,224,224``) into a tuple of ints, for argparse."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError as error:
        msg = f"expected sizes like 3x224x224, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from error
    return values


def _option(text: str) -> int | tuple[int, ...]:
    """Parse a stride or dilation: ``2`` or one per axis, ``2x1``."""
    values = _dims(text)
    return values[0] if len(values) == 1 else values


def _padding(text: str) -> int | str | tuple[int, ...]:
    """Parse a padding: ``1``, ``1x2`` or one of ``valid``, ``same``, ``full``."""
    if text in ("valid", "same", "full"):
        return text
    return _option(text)


def _use_colour(choice: str, stream: TextIO) -> bool:
    """Colour for ``always``; for ``auto``, only on a terminal without ``NO_COLOR`` set."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one subcommand per tool.

    Examples
    --------
    >>> build_parser().parse_args(["cost", "--input", "3x5x5", "--weight", "2x3x3x3"]).input
    (3, 5, 5)
    """
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

    explain = commands.add_parser(
        "explain",
        help="walk through a convolution one output element at a time",
        description=(
            "Show how each output element of a 2-d convolution is computed: the window in\n"
            "the input, the products written out, the sum over input channels, and the\n"
            "output channels stacked. Without --x and --weight it uses the book's example\n"
            "(X of shape (2, 3, 3) and K3 = stack((K, K + 1, K + 2)))."
        ),
        epilog=EXPLAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument(
        "--x", type=_array, help="input (h, w) or (c_i, h, w): a nested list or a .npy file"
    )
    explain.add_argument(
        "--weight",
        type=_array,
        help="kernel (kh, kw), (c_i, kh, kw) or (c_o, c_i, kh, kw): a nested list or .npy",
    )
    explain.add_argument("--bias", type=_array, help="bias (c_o,): a nested list or .npy")
    explain.add_argument("--stride", type=_option, default=1, help="e.g. 2 or 2x1")
    explain.add_argument("--padding", type=_option, default=0, help="zeros, e.g. 1 or 1x0")
    explain.add_argument("--dilation", type=_option, default=1, help="e.g. 2 or 1x2")
    explain.add_argument(
        "--step", action="store_true", help="wait for Enter between elements (q to quit)"
    )
    explain.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="highlight with ANSI colours: auto (a terminal without NO_COLOR), always, never",
    )

    cost_parser = commands.add_parser(
        "cost",
        help="count multiplications, additions and memory of a convolution",
        description=(
            "Print the ConvCost table of mimo_conv.cost: output shape, forward and backward\n"
            "multiplications and additions, and memory in bytes."
        ),
        epilog=COST_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cost_parser.add_argument(
        "--input", type=_dims, required=True, help="input shape: C_in x H x W or N x C_in x H x W"
    )
    cost_parser.add_argument(
        "--weight", type=_dims, required=True, help="weight shape: C_out x C_in/groups x kH x kW"
    )
    cost_parser.add_argument("--stride", type=_option, default=1, help="e.g. 2 or 2x1")
    cost_parser.add_argument(
        "--padding", type=_padding, default=0, help="e.g. 3, 3x1, valid, same or full"
    )
    cost_parser.add_argument("--dilation", type=_option, default=1, help="e.g. 2 or 1x2")
    cost_parser.add_argument("--groups", type=int, default=1, help="channel groups")
    cost_parser.add_argument("--bias", action="store_true", help="the layer adds a bias")
    cost_parser.add_argument("--dtype", default="float32", help="dtype for the memory counts")
    cost_parser.add_argument(
        "--exclude-padding",
        action="store_true",
        help="do not count products with padded zeros",
    )

    exercises = commands.add_parser(
        "exercises",
        help="answer the section's six exercises with the library",
        description="Print each exercise of d2l section 6.4 with the answer mimo_conv computes.",
    )
    exercises.add_argument("--seed", type=int, default=0, help="seed of the float32 example")
    return parser


def _run_explain(arguments: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    """Print (or step through) the walkthrough; return the exit status."""
    if (arguments.x is None) != (arguments.weight is None):
        print(
            "explain: give both --x and --weight, or neither for the book's example",
            file=sys.stderr,
        )
        return 2
    X = BOOK_X if arguments.x is None else arguments.x
    K = BOOK_K3 if arguments.weight is None else arguments.weight
    colour = _use_colour(arguments.color, out)
    try:
        chunks = walkthrough(
            X,
            K,
            arguments.bias,
            arguments.stride,
            arguments.padding,
            arguments.dilation,
            colour=colour,
        )
        stepping = arguments.step
        for number, chunk in enumerate(chunks):
            if number and stepping:
                out.write("-- Enter: next element, q: quit -- ")
                out.flush()
                answer = stdin.readline()
                if not answer:  # end of input: print the rest without waiting
                    stepping = False
                    out.write("\n")
                elif answer.strip().lower() == "q":
                    return 0
            print(chunk, file=out)
            print(file=out)
    except (ValueError, TypeError) as error:
        print(f"explain: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while waiting for Enter: leave quietly
        print(file=out)
        return 130
    return 0


def _run_cost(arguments: argparse.Namespace, out: TextIO) -> int:
    """Print the cost table; return the exit status."""
    try:
        report = cost(
            arguments.input,
            arguments.weight,
            arguments.stride,
            arguments.padding,
            arguments.dilation,
            arguments.groups,
            bias=arguments.bias,
            dtype=np.dtype(arguments.dtype),
            exclude_padding=arguments.exclude_padding,
        )
    except (ValueError, TypeError) as error:
        print(f"cost: {error}", file=sys.stderr)
        return 2
    print(report, file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status.

    Examples
    --------
    >>> main(["demo"])  # doctest: +ELLIPSIS
    "Dive into Deep Learning", section 6.4: ...
    All three match the book.
    0
    >>> main(["cost", "--input", "2x3x3", "--weight", "3x2x2x2"])  # doctest: +ELLIPSIS
    convolution of input (2, 3, 3) with weight (3, 2, 2, 2)
    ...
      forward                       96         84
    ...
    0
    """
    parser = build_parser()
    arguments = parser.parse_args(argv)
    out = sys.stdout
    if arguments.command == "explain":
        return _run_explain(arguments, out, sys.stdin)
    if arguments.command == "cost":
        return _run_cost(arguments, out)
    if arguments.command == "exercises":
        return 0 if answer_exercises(out, seed=arguments.seed) else 1
    # With no subcommand the demo runs, so `python -m mimo_conv` alone is the tour.
    ok = run_demo(out, seed=getattr(arguments, "seed", 0))
    return 0 if ok else 1
