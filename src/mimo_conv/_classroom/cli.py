"""The command line: ``python -m mimo_conv [demo | explain | figure | cost | exercises]``.

* ``demo`` (the default): the section's three worked examples.
* ``explain``: a convolution one output element at a time (``--step`` to wait for Enter).
* ``figure``: the section's pictures drawn from the computation (needs matplotlib).
* ``cost``: the arithmetic and memory table of :func:`mimo_conv.cost` for given shapes.
* ``exercises``: every exercise of the section with the library's computed answer.

Installed, the same program is also the ``mimo-conv`` script; it calls itself by the name
it was run as.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from mimo_conv._classroom.counts import cost
from mimo_conv._classroom.demo import run_demo
from mimo_conv._classroom.exercises import answer_exercises
from mimo_conv._classroom.textbook import BOOK_K3, BOOK_X
from mimo_conv._classroom.walkthrough import walkthrough
from mimo_conv._core.arguments import PADDING_MODES
from mimo_conv._core.machine import show_config

#: Shown under ``--help`` of ``explain`` (``{prog}`` is the program's name).
EXPLAIN_EXAMPLES = """\
examples:
  {prog} explain                      the book's X and K3, every element
  {prog} explain --step               wait for Enter between elements
  {prog} explain --element 1,0,1      only the output element Y[1, 0, 1]
  {prog} explain --channel 2          only output channel 2
  {prog} explain --x "[[1, 2], [3, 4]]" --weight "[[1, -1]]" --padding 1
  {prog} explain --x input.npy --weight kernel.npy --stride 2

The window is in [brackets] and padded zeros are written '.', so nothing relies on
colour. Colours are added only when the output is a terminal and NO_COLOR is not set.
"""

FIGURE_EXAMPLES = """\
examples:
  {prog} figure                              the book's Fig. 6.4.1, to conv_figure.png
  {prog} figure -o book.svg --element 0,1,1  Y[0, 1, 1], as SVG
  {prog} figure --view outputs --padding 1   one row per output channel
  {prog} figure --view 1x1                   a 1 x 1 kernel as a matrix (Fig. 6.4.2)
  {prog} figure -o steps.gif                 an animation of every output element
  {prog} figure --groups 2 --x "[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]" \\
      --weight "[[[[1, 0], [0, 1]]], [[[0, 1], [1, 0]]]]"   depthwise: a kernel per channel
  {prog} figure --padding 1 --padding-mode reflect   padding by mirrored values

Needs matplotlib: pip install "mimo_conv[plot]".
"""

COST_EXAMPLES = """\
examples:
  {prog} cost --input 3x224x224 --weight 64x3x7x7 --stride 2 --padding 3
  {prog} cost --input 8x16x32x32 --weight 32x16x3x3 --padding same --bias
  {prog} cost --input 3x5x5 --weight 1x3x3x3 --padding 1 --exclude-padding
"""

#: Printed under the cost table when padded zeros are counted.
PADDING_NOTE = """\
  The counts include the padding: the forward products with padded zeros, and in
  "backward: input" the gradient of every padded cell, which is computed and then dropped
  (dL/dx has the input's shape). --exclude-padding leaves both out."""

#: The file ``figure`` writes when no ``--output`` is given.
DEFAULT_FIGURE = "conv_figure.png"


def program_name(argv0: str | None = None) -> str:
    """Return the name the program was run as: ``mimo-conv`` or ``python -m mimo_conv``.

    Examples
    --------
    >>> program_name("/usr/local/bin/mimo-conv"), program_name("/src/mimo_conv/__main__.py")
    ('mimo-conv', 'python -m mimo_conv')
    """
    name = Path(sys.argv[0] if argv0 is None else argv0).name
    return "mimo-conv" if name in ("mimo-conv", "mimo-conv.exe") else "python -m mimo_conv"


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


def _element(text: str) -> tuple[int, int, int]:
    """Parse an output element ``c,i,j`` (output channel, row, column), for argparse."""
    values = _dims(text.replace(" ", ""))
    if len(values) != 3:
        msg = f"expected an output element as channel,row,column such as 0,1,1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return values[0], values[1], values[2]


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


def _add_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that give the convolution, and ``--element``."""
    parser.add_argument(
        "--x", type=_array, help="input (h, w) or (c_i, h, w): a nested list or a .npy file"
    )
    parser.add_argument(
        "--weight",
        type=_array,
        help="kernel (kh, kw), (c_i, kh, kw) or (c_o, c_i, kh, kw): a nested list or .npy",
    )
    parser.add_argument("--bias", type=_array, help="bias (c_o,): a nested list or .npy")
    parser.add_argument("--stride", type=_option, default=1, help="e.g. 2 or 2x1")
    parser.add_argument("--padding", type=_option, default=0, help="zeros, e.g. 1 or 1x0")
    parser.add_argument("--dilation", type=_option, default=1, help="e.g. 2 or 1x2")
    parser.add_argument(
        "--element",
        type=_element,
        help="one output element: output channel,row,column (e.g. 0,1,1)",
    )


def package_version() -> str:
    """Return the version of mimo_conv: the installed distribution's, else the package's.

    Examples
    --------
    >>> import mimo_conv
    >>> package_version() == mimo_conv.__version__
    True
    """
    try:
        return metadata.version("mimo_conv")
    except metadata.PackageNotFoundError:
        # Run from a source checkout: the package (always imported before this module,
        # as its parent) holds the version.
        return str(sys.modules["mimo_conv"].__version__)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    r"""Build the argument parser with one subcommand per tool.

    Parameters
    ----------
    prog : str, optional
        The program's name in usage lines and examples (see :func:`program_name`).

    Examples
    --------
    >>> build_parser().parse_args(["cost", "--input", "3x5x5", "--weight", "2x3x3x3"]).input
    (3, 5, 5)
    >>> build_parser("mimo-conv").format_usage()
    'usage: mimo-conv [-h] [--version] COMMAND ...\n'
    """
    prog = program_name() if prog is None else prog
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A NumPy reference for multi-input, multi-output channel convolution.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
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
        epilog=EXPLAIN_EXAMPLES.format(prog=prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_problem_arguments(explain)
    explain.add_argument("--channel", type=int, help="only this output channel")
    explain.add_argument(
        "--step", action="store_true", help="wait for Enter between elements (q to quit)"
    )
    explain.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="highlight with ANSI colours: auto (a terminal without NO_COLOR), always, never",
    )

    figure = commands.add_parser(
        "figure",
        help="draw the section's pictures from the computation (PNG, SVG, GIF)",
        description=(
            "Draw one output element of a 2-d convolution: each input channel with the\n"
            "window shaded, its kernel, the channel's partial result and their sum (the\n"
            "book's Fig. 6.4.1); or one row per output channel; or a 1 x 1 kernel as a\n"
            "matrix (Fig. 6.4.2). Padding is hatched. The file name's suffix picks the\n"
            "format: .png, .svg or .pdf, or .gif for an animation of every output element."
        ),
        epilog=FIGURE_EXAMPLES.format(prog=prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_problem_arguments(figure)
    figure.add_argument(
        "--groups", type=int, default=1, help="channel groups (C_in for a depthwise conv)"
    )
    figure.add_argument(
        "--padding-mode",
        choices=PADDING_MODES,
        default="zeros",
        help="what fills the padding: zeros (the default), reflect, replicate, circular, symmetric",
    )
    figure.add_argument(
        "--view",
        choices=("inputs", "outputs", "1x1"),
        default="inputs",
        help="inputs (a row per input channel, the default), outputs, or 1x1",
    )
    figure.add_argument(
        "-o",
        "--output",
        default=DEFAULT_FIGURE,
        help=f"file to write: .png, .svg, .pdf or .gif (default {DEFAULT_FIGURE})",
    )

    cost_parser = commands.add_parser(
        "cost",
        help="count multiplications, additions and memory of a convolution",
        description=(
            "Print the ConvCost table of mimo_conv.cost: output shape, forward and backward\n"
            "multiplications and additions, and memory in bytes."
        ),
        epilog=COST_EXAMPLES.format(prog=prog),
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

    commands.add_parser(
        "info",
        help="print what mimo_conv runs on here (versions, BLAS kernels, threads, budget)",
        description="Print versions, the BLAS and its kernels, the thread count and the memory "
        "budget, with advice where the BLAS could run faster on this CPU.",
    )
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
            element=arguments.element,
            channel=arguments.channel,
        )
        stepping = arguments.step
        # The introduction and the first element come together, so that the first prompt
        # follows something to look at.
        for number, chunk in enumerate(chunks):
            if number > 1 and stepping:
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


def _run_figure(arguments: argparse.Namespace, out: TextIO) -> int:
    """Draw the figure (or the animation) to the file; return the exit status."""
    from mimo_conv._classroom.figures import animate_conv, draw_conv  # noqa: PLC0415

    if (arguments.x is None) != (arguments.weight is None):
        print(
            "figure: give both --x and --weight, or neither for the book's example",
            file=sys.stderr,
        )
        return 2
    path = Path(arguments.output)
    if path.suffix.lower() not in (".png", ".svg", ".pdf", ".gif"):
        print(
            f"figure: the output must end in .png, .svg, .pdf or .gif, got {str(path)!r}",
            file=sys.stderr,
        )
        return 2
    problem = (
        arguments.x,
        arguments.weight,
        arguments.bias,
        arguments.stride,
        arguments.padding,
        arguments.dilation,
        arguments.groups,
    )
    try:
        if path.suffix.lower() == ".gif":
            if arguments.element is not None:
                print("figure: an animation shows every element; drop --element", file=sys.stderr)
                return 2
            animate_conv(path, *problem, view=arguments.view, padding_mode=arguments.padding_mode)
        else:
            draw_conv(
                *problem,
                view=arguments.view,
                padding_mode=arguments.padding_mode,
                element=arguments.element,
                file=path,
            )
    except ImportError as error:
        print(f"figure: {error}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as error:
        print(f"figure: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}", file=out)
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
    if report.geometry.is_padded and not arguments.exclude_padding:
        print(file=out)
        print(PADDING_NOTE, file=out)
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
    if arguments.command == "figure":
        return _run_figure(arguments, out)
    if arguments.command == "cost":
        return _run_cost(arguments, out)
    if arguments.command == "exercises":
        return 0 if answer_exercises(out, seed=arguments.seed) else 1
    if arguments.command == "info":
        show_config(out)
        return 0
    # With no subcommand the demo runs, so `python -m mimo_conv` alone is the tour.
    ok = run_demo(out, seed=getattr(arguments, "seed", 0))
    return 0 if ok else 1
