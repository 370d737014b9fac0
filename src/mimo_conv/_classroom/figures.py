"""The section's figures, drawn from the computation: windows, kernels, partial sums.

Three pictures of one output element of ``conv(X, K, bias, stride, padding, dilation)``,
every number in every cell computed by the library:

* ``view="inputs"`` (the book's Fig. 6.4.1): one row per input channel, each showing the
  padded channel with the window shaded, its kernel beside it, and the channel's partial
  result; then their sum, the output channel.
* ``view="outputs"``: the input channels on top, then one row per output channel, each
  with its kernels and the output channel it makes.
* ``view="1x1"`` (the book's Fig. 6.4.2): a 1 x 1 kernel as a fully connected layer
  applied at every pixel: the pixel's input channels, the ``(c_o, c_i)`` matrix and the
  pixel's output channels.

Padding is hatched (so it reads without colour), the window's taps are shaded and
framed, and small triangles beside the input mark where windows start, which shows the
stride; with a dilation only the taps are shaded inside a dashed frame of the window's
extent. :func:`draw_conv` returns a matplotlib figure (and writes PNG, SVG or PDF by the
file name); :func:`animate_conv` writes a GIF stepping through every output element.

matplotlib is an optional extra: ``pip install "mimo_conv[plot]"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._classroom.textbook import BOOK_K3, BOOK_X
from mimo_conv._classroom.walkthrough import (
    WorkedExample,
    check_element,
    format_number,
    work_out,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The views :func:`draw_conv` can draw.
VIEWS = ("inputs", "outputs", "1x1")

#: How the refusal of an input that is not 2-d starts.
FIGURES_DRAW = "figures draw"

#: The book's 1 x 1 example has shapes (3, 3, 3) and (2, 3, 1, 1) and standard normal
#: values; the figure uses small integers of the same shapes so that a class can read them.
BOOK_1X1_X = np.array(
    [
        [[1, 0, 2], [-1, 3, 1], [0, 2, -2]],
        [[2, 1, 0], [1, -1, 2], [3, 0, 1]],
        [[0, -2, 1], [2, 1, 0], [1, 1, 3]],
    ]
)
BOOK_1X1_K = np.array([[[[1]], [[2]], [[-1]]], [[[0]], [[1]], [[3]]]])

#: What each padding mode puts in the padding, for the legend.
PADDING_WORDS = {
    "zeros": "zeros",
    "reflect": "reflect: mirrored about the edge",
    "symmetric": "symmetric: mirrored, the edge repeated",
    "replicate": "replicate: the edge value repeated",
    "circular": "circular: wrapped from the opposite side",
}

#: Inches per cell of the figure, and the colours: the window and what it makes are
#: shaded orange; padding is grey and hatched, so neither relies on colour alone.
CELL = 0.5
WINDOW = "#fdb863"
WINDOW_EDGE = "#b35806"
PADDING = "#e6e6e6"
KERNEL = "#b2abd2"
TEXT = "#202020"
FAINT = "#808080"


def _require_matplotlib() -> Any:
    """Import matplotlib, or raise an ImportError naming the ``plot`` extra."""
    try:
        import matplotlib  # noqa: PLC0415 - optional extra, imported on first use
    except ImportError as error:
        msg = 'drawing figures needs matplotlib, an optional extra: pip install "mimo_conv[plot]"'
        raise ImportError(msg) from error
    return matplotlib


def _font(texts: list[str]) -> float:
    """Return a font size (points) at which the longest text fits in one cell."""
    longest = max((len(t) for t in texts), default=1)
    return float(min(12.0, CELL * 72 * 0.85 / (0.62 * max(longest, 1))))


class _Canvas:
    """One axes over the whole figure, in cell units, y pointing down."""

    def __init__(self, axes: Axes, font: float) -> None:
        self.axes = axes
        self.font = font

    def text(self, x: float, y: float, text: str, **options: Any) -> None:
        """Write text centred at ``(x, y)`` unless told otherwise."""
        settings: dict[str, Any] = {
            "ha": "center",
            "va": "center",
            "fontsize": self.font,
            "color": TEXT,
        }
        settings.update(options)
        self.axes.text(x, y, text, **settings)

    def grid(
        self,
        x0: float,
        y0: float,
        values: NDArray[Any],
        *,
        title: str,
        fill: dict[tuple[int, int], str] | None = None,
        hatched: set[tuple[int, int]] | None = None,
        framed: set[tuple[int, int]] | None = None,
        faint: bool = False,
    ) -> None:
        """Draw a matrix of numbers with its top-left corner at ``(x0, y0)``.

        ``faint`` greys the numbers and the title (a channel that takes no part).
        """
        from matplotlib.patches import Rectangle  # noqa: PLC0415 - optional extra

        fill, hatched, framed = fill or {}, hatched or set(), framed or set()
        rows, cols = values.shape
        for r in range(rows):
            for c in range(cols):
                pad = (r, c) in hatched
                self.axes.add_patch(
                    Rectangle(
                        (x0 + c, y0 + r),
                        1,
                        1,
                        facecolor=fill.get((r, c), PADDING if pad else "white"),
                        edgecolor=FAINT,
                        hatch="///" if pad else None,
                        linewidth=0.8,
                    )
                )
                self.text(
                    x0 + c + 0.5,
                    y0 + r + 0.5,
                    format_number(values[r, c]),
                    color=FAINT if faint or (pad and (r, c) not in fill) else TEXT,
                    fontstyle="italic" if pad else "normal",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.8}
                    if pad
                    else None,
                )
        for r, c in framed:
            self.axes.add_patch(
                Rectangle(
                    (x0 + c, y0 + r),
                    1,
                    1,
                    fill=False,
                    edgecolor=WINDOW_EDGE,
                    linewidth=2.2,
                )
            )
        self.text(x0 + cols / 2, y0 - 0.35, title, va="bottom", color=FAINT if faint else TEXT)

    def frame(self, x0: float, y0: float, rows: int, cols: int, *, dashed: bool) -> None:
        """Outline a block of cells (the window's extent)."""
        from matplotlib.patches import Rectangle  # noqa: PLC0415 - optional extra

        self.axes.add_patch(
            Rectangle(
                (x0, y0),
                cols,
                rows,
                fill=False,
                edgecolor=WINDOW_EDGE,
                linewidth=2.2,
                linestyle="--" if dashed else "-",
            )
        )

    def starts(self, x0: float, y0: float, rows: list[int], cols: list[int]) -> None:
        """Small triangles above and left of a grid where the windows start (the stride)."""
        for c in cols:
            self.axes.plot(x0 + c + 0.5, y0 - 0.12, marker="v", color=WINDOW_EDGE, markersize=4)
        for r in rows:
            self.axes.plot(x0 - 0.12, y0 + r + 0.5, marker=">", color=WINDOW_EDGE, markersize=4)


def _new_figure(width: float, height: float, font: float) -> tuple[Figure, _Canvas]:
    """Make a figure of ``width x height`` cells with one axes covering it."""
    _require_matplotlib()
    from matplotlib.figure import Figure  # noqa: PLC0415 - optional extra

    figure = Figure(figsize=(width * CELL, height * CELL))
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_aspect("equal")
    axes.axis("off")
    return figure, _Canvas(axes, font)


def _fit(figure: Figure, min_width: float = 0.0) -> float:
    """Widen the figure (cells stay square) until every text fits; return its width in cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - optional

    FigureCanvasAgg(figure)  # attaches itself: text extents can be measured
    axes = figure.axes[0]
    width, height = axes.get_xlim()[1], axes.get_ylim()[0]
    to_data = axes.transData.inverted()
    right = max(
        (to_data.transform(text.get_window_extent())[1, 0] for text in axes.texts),
        default=width,
    )
    if max(right + 0.3, min_width) > width:
        width = max(right + 0.3, min_width)
        axes.set_xlim(0, width)
        figure.set_size_inches(width * CELL, height * CELL)
    return float(width)


def _options(problem: WorkedExample) -> str:
    """Write the call's options in one line."""
    g = problem.geometry
    text = f"stride {g.stride}, padding {g.padding}, dilation {g.dilation}"
    if g.groups > 1:
        text += f", groups {g.groups}"
    if g.is_padded and g.padding_mode != "zeros":
        text += f", padding_mode {g.padding_mode!r}"
    return text


def _heading(canvas: _Canvas, text: str, problem: WorkedExample) -> None:
    """Write the figure's first two lines: what it shows, then the call's options."""
    canvas.text(0.3, 0.45, text, ha="left", fontweight="bold")
    canvas.text(0.3, 1.05, _options(problem), ha="left", fontsize=canvas.font * 0.85, color=FAINT)


def _legend(canvas: _Canvas, x: float, y: float, problem: WorkedExample) -> None:
    """Explain the marks, in words (the picture must read without colour)."""
    parts = ["shaded, framed: the window's taps"]
    if problem.geometry.is_padded:
        parts.append(f"hatched grey: padding ({PADDING_WORDS[problem.geometry.padding_mode]})")
    if any(d > 1 for d in problem.geometry.dilation):
        parts.append("dashed: the window's extent (dilated)")
    parts.append(f"triangles: where windows start (stride {problem.geometry.stride})")
    canvas.text(x, y, ";  ".join(parts), ha="left", fontsize=canvas.font * 0.8, color=FAINT)


def _products(problem: WorkedExample, o: int, n: int, i: int, j: int) -> str:
    """``0*0 + 1*1 + 3*2 + 4*3 = 19`` for the ``n``-th channel of output ``(o, i, j)``'s group."""
    c = problem.channels(o)[n]
    terms = [
        f"{format_number(v)}·{_factor(w)}"
        for v, w in zip(
            problem.windows[c, i, j].ravel().tolist(),
            problem.k[o, n].ravel().tolist(),
            strict=True,
        )
    ]
    if len(terms) > 9:
        terms = [*terms[:4], "…", *terms[-2:]]
    return (
        " + ".join(terms).replace("+ -", "- ") + f" = {format_number(problem.partial[o, n, i, j])}"
    )


def _input_marks(
    problem: WorkedExample, c: int, i: int, j: int
) -> tuple[dict[tuple[int, int], str], set[tuple[int, int]], set[tuple[int, int]]]:
    """Fill, hatching and frames of the padded input channel ``c`` for output ``(i, j)``."""
    rows, cols = problem.padded.shape[1:]
    taps = problem.taps(i, j)
    hatched = {(r, q) for r in range(rows) for q in range(cols) if problem.is_padding(r, q)}
    return dict.fromkeys(taps, WINDOW), hatched, taps


def _draw_padded_input(
    canvas: _Canvas,
    x0: float,
    y0: float,
    problem: WorkedExample,
    c: int,
    i: int,
    j: int,
    *,
    taking_part: bool = True,
) -> None:
    """Draw a padded input channel with the window of output ``(i, j)`` and stride marks.

    A channel not ``taking_part`` (outside the group drawn) is greyed, without a window.
    """
    fill, hatched, taps = _input_marks(problem, c, i, j)
    geometry = problem.geometry
    title = f"X[{c}]"
    if geometry.is_padded:
        mode = geometry.padding_mode
        title += " padded" + ("" if mode == "zeros" else f" ({mode})")
    if geometry.groups > 1:
        title += f", group {c // problem.k.shape[1]}"
    dilated = any(d > 1 for d in geometry.dilation)
    canvas.grid(
        x0,
        y0,
        problem.padded[c],
        title=title,
        fill=fill if taking_part else {},
        hatched=hatched,
        framed=taps if dilated and taking_part else set(),
        faint=not taking_part,
    )
    if not taking_part:
        return
    top, left, bottom, right = problem.window(i, j)
    canvas.frame(x0 + left, y0 + top, bottom - top + 1, right - left + 1, dashed=dilated)
    oh, ow = problem.geometry.output_shape
    stride = problem.geometry.stride
    canvas.starts(x0, y0, [r * stride[0] for r in range(oh)], [q * stride[1] for q in range(ow)])


def _draw_inputs(problem: WorkedExample, element: tuple[int, int, int]) -> Figure:
    """Draw the multi-input picture: a row per input channel, then their sum.

    With groups, only the input channels of output channel ``o``'s group take part; the
    others are drawn greyed, with a note saying which output channels they feed.
    """
    o, i, j = element
    c_i = problem.x.shape[0]
    members = problem.channels(o)
    ph, pw = problem.padded.shape[1:]
    kh, kw = problem.k.shape[2:]
    oh, ow = problem.geometry.output_shape
    row_height = max(ph, kh, oh) + 2.2
    columns = [1.0, 1.0 + pw + 1.5, 1.0 + pw + 1.5 + kw + 1.5]
    sum_x = columns[2] + ow + 2.0
    width = sum_x + ow + 1.0
    height = 1.6 + c_i * row_height + 1.6
    texts = [format_number(v) for v in (*problem.padded.ravel(), *problem.result.ravel())]
    texts += [format_number(v) for v in (*problem.k.ravel(), *problem.partial.ravel())]
    figure, canvas = _new_figure(width, height, _font(texts))
    value = format_number(problem.result[o, i, j])
    _heading(canvas, f"Y[{o}, {i}, {j}] = {value}: {_inputs_story(problem, o)}", problem)
    cell = {(i, j): WINDOW}
    for c in range(c_i):
        y0 = 1.6 + c * row_height + 0.6
        middle = y0 + kh / 2
        taking_part = c in members
        _draw_padded_input(canvas, columns[0], y0, problem, c, i, j, taking_part=taking_part)
        if not taking_part:
            _not_in_group(canvas, columns[1] - 0.75, middle, problem, o, c)
            continue
        n = c - members.start
        canvas.text(columns[1] - 0.75, middle, "⋆", fontsize=canvas.font * 3)
        canvas.grid(
            columns[1],
            y0,
            problem.k[o, n],
            title=f"K[{o}, {n}]",
            fill=dict.fromkeys(np.ndindex(kh, kw), KERNEL),
        )
        canvas.text(columns[2] - 0.75, middle, "=", fontsize=canvas.font * 1.6)
        canvas.grid(columns[2], y0, problem.partial[o, n], title=f"X[{c}] ⋆ K[{o}, {n}]", fill=cell)
        if n:
            canvas.text(columns[2] + ow / 2, y0 - 1.3, "+", fontsize=canvas.font * 2)
        canvas.text(
            columns[0],
            y0 + max(ph, kh, oh) + 0.55,
            f"channel {c}: {_products(problem, o, n, i, j)}",
            ha="left",
            fontsize=canvas.font * 0.9,
        )
    middle_row = (members.start + members.stop - 1) / 2
    sum_y = 1.6 + middle_row * row_height + 0.6 + max(ph, kh, oh) / 2 - oh / 2
    sums = " + ".join(format_number(problem.partial[o, n, i, j]) for n in range(len(members)))
    if problem.bias is not None:
        sums += f" + {format_number(problem.bias[o])} (bias)"
    elif len(members) == 1:
        sums = "one channel: nothing to add"
    canvas.text(sum_x - 1.0, sum_y + oh / 2, "Σ", fontsize=canvas.font * 2)
    canvas.grid(sum_x, sum_y, problem.result[o], title=f"Y[{o}]", fill=cell)
    total = sums if sums.startswith("one") else f"{sums} = {value}"
    canvas.text(sum_x + ow / 2, sum_y + oh + 0.6, total, fontsize=canvas.font * 0.9)
    _legend(canvas, 0.3, height - 0.6, problem)
    return figure


def _inputs_story(problem: WorkedExample, o: int) -> str:
    """Say which input channels output channel ``o`` sums (all, or its group's)."""
    groups, members = problem.geometry.groups, problem.channels(o)
    if groups == 1:
        return "each input channel meets its own kernel, then the channels are added"
    kind = " (depthwise)" if groups == problem.x.shape[0] else ""
    verb = "takes" if len(members) == 1 else "take"
    return (
        f"groups={groups}{kind}: Y[{o}] is in group {problem.group(o)}, so only input "
        f"{_channel_words(members)} {verb} part"
    )


def _not_in_group(
    canvas: _Canvas, x: float, y: float, problem: WorkedExample, o: int, c: int
) -> None:
    """Say, beside input channel ``c``, that it is in another group than output ``o``."""
    per_output_group = problem.k.shape[0] // problem.geometry.groups
    group = c // problem.k.shape[1]
    feeds = range(group * per_output_group, (group + 1) * per_output_group)
    canvas.text(
        x,
        y,
        f"not in group {problem.group(o)}: X[{c}] feeds only {_output_words(feeds)}",
        ha="left",
        color=FAINT,
        fontstyle="italic",
    )


def _channel_words(channels: range) -> str:
    """``channel 2`` or ``channels 2..3``."""
    if len(channels) == 1:
        return f"channel {channels.start}"
    return f"channels {channels.start}..{channels.stop - 1}"


def _output_words(outputs: range) -> str:
    """``Y[2]`` or ``Y[2]..Y[3]``."""
    if len(outputs) == 1:
        return f"Y[{outputs.start}]"
    return f"Y[{outputs.start}]..Y[{outputs.stop - 1}]"


def _draw_outputs(problem: WorkedExample, element: tuple[int, int, int]) -> Figure:
    """Draw the multi-output picture: the input on top, one row per output channel."""
    o_shown, i, j = element
    c_i, c_o = problem.x.shape[0], problem.k.shape[0]
    ph, pw = problem.padded.shape[1:]
    kh, kw = problem.k.shape[2:]
    oh, ow = problem.geometry.output_shape
    column = max(pw, kw) + 1.5
    out_x = 2.0 + c_i * column + 1.0
    width = out_x + ow + 5.0
    row_height = max(kh, oh) + 1.4
    top_height = ph + 2.0
    height = 1.6 + top_height + c_o * row_height + 1.2
    texts = [format_number(v) for v in (*problem.padded.ravel(), *problem.result.ravel())]
    texts += [format_number(v) for v in problem.k.ravel()]
    figure, canvas = _new_figure(width, height, _font(texts))
    groups = problem.geometry.groups
    if groups == 1:
        story = "output channel o has its own kernels K[o], one per input channel"
    else:
        story = (
            f"groups={groups}: output channel o has kernels K[o] only for the "
            f"{problem.k.shape[1]} input channel(s) of its group, drawn under them"
        )
    _heading(canvas, f"Y has {c_o} output channels: {story}", problem)
    for c in range(c_i):
        _draw_padded_input(canvas, 2.0 + c * column, 2.3, problem, c, i, j)
    for o in range(c_o):
        y0 = 1.6 + top_height + o * row_height + 0.5
        canvas.text(0.9, y0 + kh / 2, f"K[{o}]", fontweight="bold")
        for n, c in enumerate(problem.channels(o)):
            canvas.grid(
                2.0 + c * column,
                y0,
                problem.k[o, n],
                title=f"K[{o}, {n}]" + ("" if groups == 1 else f" (X[{c}])"),
                fill=dict.fromkeys(np.ndindex(kh, kw), KERNEL),
            )
        canvas.text(out_x - 0.6, y0 + oh / 2, "→", fontsize=canvas.font * 1.6)
        canvas.grid(out_x, y0, problem.result[o], title=f"Y[{o}]", fill={(i, j): WINDOW})
        value = format_number(problem.result[o, i, j])
        weight = "bold" if o == o_shown else "normal"
        canvas.text(
            out_x + ow + 0.3,
            y0 + oh / 2,
            f"Y[{o}, {i}, {j}] = {value}",
            ha="left",
            fontweight=weight,
        )
    canvas.text(
        0.3,
        height - 0.6,
        f"stacked: Y of shape {problem.result.shape};  shaded: the window of element "
        f"({i}, {j}) and what it gives in every output channel"
        + ("" if groups == 1 else ";  an empty place: that input channel is in another group"),
        ha="left",
        fontsize=canvas.font * 0.8,
        color=FAINT,
    )
    return figure


def _factor(value: object) -> str:
    """Write a second factor of a product, a negative one in parentheses: ``4·(-1)``.

    Examples
    --------
    >>> _factor(-1), _factor(3)
    ('(-1)', '3')
    """
    text = format_number(value)
    return f"({text})" if text.startswith("-") else text


def _check_1x1_kernel(view: str, K: ArrayLike, groups: object = 1) -> None:
    """Refuse, before anything is computed, a kernel the 1 x 1 view cannot draw.

    Examples
    --------
    >>> _check_1x1_kernel("1x1", np.ones((2, 3, 1, 1)))
    >>> _check_1x1_kernel("1x1", np.ones((2, 3, 2, 2)))
    Traceback (most recent call last):
    ...
    ValueError: view='1x1' draws a 1 x 1 kernel, got K of shape (2, 3, 2, 2)
    >>> _check_1x1_kernel("1x1", np.ones((2, 1, 1, 1)), groups=2)
    Traceback (most recent call last):
    ...
    ValueError: view='1x1' draws groups=1 (one full matrix), got groups=2
    """
    if view != "1x1":
        return
    shape = np.shape(K)
    if tuple(shape[-2:]) != (1, 1):
        msg = f"view='1x1' draws a 1 x 1 kernel, got K of shape {shape}"
        raise ValueError(msg)
    if groups != 1:
        msg = f"view='1x1' draws groups=1 (one full matrix), got groups={groups!r}"
        raise ValueError(msg)


def _draw_1x1(problem: WorkedExample, element: tuple[int, int, int]) -> Figure:
    """Draw the 1 x 1 picture: at one pixel, a fully connected layer across the channels."""
    o, i, j = element
    c_i, c_o = problem.x.shape[0], problem.k.shape[0]
    if problem.k.shape[2:] != (1, 1) or problem.geometry.is_padded:
        msg = (
            f"view='1x1' draws a 1 x 1 kernel without padding, got a kernel of shape "
            f"{problem.k.shape} and padding {problem.geometry.padding}"
        )
        raise ValueError(msg)
    h, w = problem.x.shape[1:]
    oh, ow = problem.geometry.output_shape
    matrix = problem.k.reshape(c_o, c_i)
    pixel = problem.windows[:, i, j, 0, 0]
    top = 2.2
    tall = max(c_i * (h + 1.2), c_o * (oh + 1.2), c_i + 1.0)
    height = top + tall + 2.2
    # Left: the input channels; middle: W @ (the pixel's channels) = (its outputs);
    # right: the output channels.
    matrix_x = 1.0 + w + 2.5
    pixel_x = matrix_x + c_i + 1.5
    column_x = pixel_x + 2.5
    out_x = column_x + 3.0
    width = out_x + ow + 1.0
    texts = [format_number(v) for v in (*problem.x.ravel(), *problem.result.ravel())]
    texts += [format_number(v) for v in matrix.ravel()]
    figure, canvas = _new_figure(width, height, _font(texts))
    _heading(
        canvas,
        f"A 1 x 1 kernel is a fully connected layer at every pixel: "
        f"Y[:, {i}, {j}] = W @ X[:, {i}, {j}], W = K.reshape({c_o}, {c_i})",
        problem,
    )
    stride = problem.geometry.stride
    at = (i * stride[0], j * stride[1])
    for c in range(c_i):
        canvas.grid(
            1.0,
            top + c * (h + 1.2),
            problem.x[c],
            title=f"X[{c}]",
            fill={at: WINDOW},
            framed={at},
        )
    middle = top + tall / 2
    matrix_y = middle - c_o / 2
    fill = {(r, c): (WINDOW if r == o else KERNEL) for r in range(c_o) for c in range(c_i)}
    canvas.grid(
        matrix_x, matrix_y, matrix, title="W", fill=fill, framed={(o, c) for c in range(c_i)}
    )
    canvas.text(pixel_x - 0.75, middle, "@", fontsize=canvas.font * 1.6)
    canvas.grid(
        pixel_x,
        middle - c_i / 2,
        pixel.reshape(c_i, 1),
        title=f"X[:, {i}, {j}]",
        fill=dict.fromkeys(((c, 0) for c in range(c_i)), WINDOW),
    )
    canvas.text(column_x - 0.75, middle, "=", fontsize=canvas.font * 1.6)
    canvas.grid(
        column_x,
        middle - c_o / 2,
        problem.result[:, i, j].reshape(c_o, 1),
        title=f"Y[:, {i}, {j}]",
        fill={(o, 0): WINDOW},
        framed={(o, 0)},
    )
    for r in range(c_o):
        canvas.grid(
            out_x,
            top + r * (oh + 1.2),
            problem.result[r],
            title=f"Y[{r}]",
            fill={(i, j): WINDOW},
            framed={(i, j)} if r == o else set(),
        )
    terms = " + ".join(
        f"{format_number(matrix[o, c])}·{_factor(pixel[c])}" for c in range(c_i)
    ).replace("+ -", "- ")
    matmul = (matrix @ problem.x.reshape(c_i, -1)).reshape(c_o, h, w)
    same = bool(np.array_equal(matmul[:, :: stride[0], :: stride[1]], problem.result))
    canvas.text(
        0.3,
        height - 1.4,
        f"Y[{o}, {i}, {j}] = {terms} = {format_number(problem.result[o, i, j])}"
        "  (row of W times the pixel's channels)",
        ha="left",
    )
    canvas.text(
        0.3,
        height - 0.6,
        f"W @ X.reshape({c_i}, {h * w}) equals conv(X, K) at every pixel: {same}",
        ha="left",
        fontsize=canvas.font * 0.8,
        color=FAINT,
    )
    return figure


def _render(
    problem: WorkedExample, view: str, element: tuple[int, int, int], min_width: float = 0.0
) -> Figure:
    """Draw the view of one output element, at least ``min_width`` cells wide."""
    draw = {"inputs": _draw_inputs, "outputs": _draw_outputs, "1x1": _draw_1x1}[view]
    figure = draw(problem, element)
    _fit(figure, min_width)
    return figure


def _inputs(X: ArrayLike | None, K: ArrayLike | None, view: str) -> tuple[ArrayLike, ArrayLike]:
    """Check the view; return ``X`` and ``K``, or the book's example for the view."""
    if view not in VIEWS:
        msg = f"view must be one of {VIEWS}, got {view!r}"
        raise ValueError(msg)
    if X is None and K is None:
        return (BOOK_1X1_X, BOOK_1X1_K) if view == "1x1" else (BOOK_X, BOOK_K3)
    if X is None or K is None:
        msg = "give both X and K, or neither for the book's example"
        raise ValueError(msg)
    return X, K


def _save(figure: Figure, file: str | Path) -> Path:
    """Write a figure; the format follows the file name (text stays text in an SVG)."""
    matplotlib = _require_matplotlib()
    path = Path(file)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mimo_conv"}):
        figure.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    return path


def draw_conv(
    X: ArrayLike | None = None,
    K: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    view: str = "inputs",
    element: tuple[int, int, int] | None = None,
    file: str | Path | None = None,
) -> Figure:
    """Draw one output element of a 2-d convolution, every number computed by the library.

    Parameters
    ----------
    X : array_like of shape (h, w) or (c_i, h, w), optional
        The input; the book's two-channel ``X`` by default (for ``view="1x1"``, a
        ``(3, 3, 3)`` integer input of the book's 1 x 1 example's shape).
    K : array_like of shape (kh, kw), (c_i, kh, kw) or (c_o, c_i, kh, kw), optional
        The kernels; the book's ``stack((K, K + 1, K + 2))`` by default (for
        ``view="1x1"``, a ``(2, 3, 1, 1)`` integer kernel).
    bias : array_like of shape (c_o,), optional
    stride, padding, dilation : int or pair of int, optional
        As in :func:`mimo_conv.conv`.
    groups : int, optional
        As in :func:`mimo_conv.conv`: ``K`` is ``(c_o, c_i // groups, kh, kw)`` and output
        channel ``o`` sums only the input channels of its group; ``"inputs"`` greys the
        other input channels, ``"outputs"`` draws each kernel under the input channel it
        meets. ``groups == c_i`` is a depthwise convolution.
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}, optional
        As in :func:`mimo_conv.conv`; the hatched padding shows the values the mode puts
        there.
    view : {"inputs", "outputs", "1x1"}, optional
        ``"inputs"``: a row per input channel (window, kernel, partial result) and their
        sum, as in the book's Fig. 6.4.1; ``"outputs"``: a row per output channel;
        ``"1x1"``: a 1 x 1 kernel as a matrix at one pixel, as in Fig. 6.4.2.
    element : tuple of 3 ints, optional
        The output element ``(output channel, row, column)`` shown; ``(0, 0, 0)`` by
        default.
    file : str or path, optional
        Also write the figure there; the suffix picks the format (``.png``, ``.svg``,
        ``.pdf``). In an SVG the numbers stay text.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        Without matplotlib (``pip install "mimo_conv[plot]"``).
    ValueError
        For an unknown view, an element outside the output, an input that is not 2-d
        ("figures draw 2-d convolutions"), or an invalid convolution; all before any
        work.

    Examples
    --------
    >>> figure = draw_conv()  # the book's Fig. 6.4.1, for output element (0, 0, 0)
    >>> texts = [text.get_text() for text in figure.axes[0].texts]
    >>> "channel 0: 0·0 + 1·1 + 3·2 + 4·3 = 19" in texts, "19 + 37 = 56" in texts
    (True, True)
    >>> figure = draw_conv(view="outputs", element=(2, 1, 1), padding=1)
    >>> figure = draw_conv(view="1x1", element=(1, 2, 2))

    A depthwise convolution (one kernel per input channel) with reflected padding:

    >>> figure = draw_conv(BOOK_X, [[[[0, 1], [2, 3]]], [[[1, 0], [0, 1]]]], groups=2,
    ...                    padding=1, padding_mode="reflect", element=(1, 0, 0))
    >>> texts = [text.get_text() for text in figure.axes[0].texts]
    >>> "channel 1: 5·1 + 4·0 + 2·0 + 1·1 = 6" in texts
    True
    """
    x, k = _inputs(X, K, view)
    _require_matplotlib()
    _check_1x1_kernel(view, k, groups)
    problem = work_out(
        x,
        k,
        bias,
        stride,
        padding,
        dilation,
        groups,
        padding_mode=padding_mode,
        element=element,
        what=FIGURES_DRAW,
    )
    chosen = (0, 0, 0) if element is None else check_element(element, problem.result.shape)
    figure = _render(problem, view, chosen)
    if file is not None:
        _save(figure, file)
    return figure


def animate_conv(
    file: str | Path,
    X: ArrayLike | None = None,
    K: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    view: str = "inputs",
    frames_per_second: int = 1,
) -> Path:
    """Write a GIF that steps through every output element, one frame each.

    The frames are the figures of :func:`draw_conv` for elements ``(0, 0, 0)``,
    ``(0, 0, 1)``, ... in the order of ``Y.ravel()``. The GIF is written with
    matplotlib's ``PillowWriter`` (Pillow comes with matplotlib).

    Parameters
    ----------
    file : str or path
        Where to write the GIF.
    X, K, bias, stride, padding, dilation, groups, padding_mode, view
        As in :func:`draw_conv`.
    frames_per_second : int, optional
        Output elements shown per second.

    Returns
    -------
    pathlib.Path
        The file written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = animate_conv(pathlib.Path(folder) / "small.gif", [[1, 2, 3]], [[1, -1]])
    ...     path.read_bytes()[:6]
    b'GIF89a'
    """
    matplotlib = _require_matplotlib()
    from matplotlib.animation import PillowWriter  # noqa: PLC0415 - optional extra

    if isinstance(frames_per_second, bool) or not isinstance(frames_per_second, int):
        msg = f"frames_per_second must be an int, got {frames_per_second!r}"
        raise TypeError(msg)
    if frames_per_second < 1:
        msg = f"frames_per_second must be at least 1, got {frames_per_second!r}"
        raise ValueError(msg)
    x, k = _inputs(X, K, view)
    _check_1x1_kernel(view, k, groups)
    problem = work_out(
        x, k, bias, stride, padding, dilation, groups, padding_mode=padding_mode, what=FIGURES_DRAW
    )
    elements = [(o, i, j) for o, i, j in np.ndindex(*problem.result.shape)]
    # Every frame must have the same size: drawn once each, then all widened to the widest.
    frames = [_render(problem, view, element) for element in elements]
    width = max(_fit(frame) for frame in frames)
    path = Path(file)
    writer = PillowWriter(fps=frames_per_second)
    with matplotlib.rc_context({"savefig.facecolor": "white"}):
        writer.setup(frames[0], str(path), dpi=80)
        for frame in frames:
            _fit(frame, width)
            writer.fig = frame
            writer.grab_frame()
        writer.finish()
    return path
