"""The ``explain`` walkthrough: a convolution one output element at a time, as text.

For every output element it shows the input window the kernel covers (highlighted), the
products written out (``0*0 + 1*1 + 3*2 + 4*3 = 19``), the partial sum of each input
channel and their total; after each output channel, the finished channel; at the end the
stacked output. Every number printed as a result comes from the library
(:func:`mimo_conv.conv`); the products are read off the padded windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._classroom.textbook import BOOK_K3, BOOK_X
from mimo_conv._core.geometry_cache import build_geometry
from mimo_conv._core.operands import as_numeric_array
from mimo_conv._core.windows import pad_input, window_view
from mimo_conv._ops.conv import conv

#: ANSI escapes: the window in bold yellow on a dark background, padding dimmed.
HIGHLIGHT = "\x1b[1;33;44m"
DIM = "\x1b[2m"
BOLD = "\x1b[1m"
RESET = "\x1b[0m"


def format_number(value: object) -> str:
    """Write one number compactly: ints as ints, floats to 6 significant digits.

    Examples
    --------
    >>> format_number(np.int64(3)), format_number(0.1 + 0.2), format_number(2.0)
    ('3', '0.3', '2')
    >>> format_number(Fraction(1, 3)), format_number(np.float32(-1.5))
    ('1/3', '-1.5')
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (int, Fraction)):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _factor(value: object) -> str:
    """Write a factor of a product, negative numbers in parentheses: ``(-2)``."""
    text = format_number(value)
    return f"({text})" if text.startswith("-") or " " in text or "j" in text else text


def _as_book_arrays(
    X: ArrayLike, K: ArrayLike, bias: ArrayLike | None
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None]:
    """Bring ``X`` to ``(c_i, h, w)`` and ``K`` to ``(c_o, c_i, kh, kw)``."""
    x = as_numeric_array(X, "X")
    k = as_numeric_array(K, "K")
    if x.ndim == 2:
        x = x[np.newaxis]
    if k.ndim == 2:
        k = k[np.newaxis, np.newaxis]
    elif k.ndim == 3:
        k = k[np.newaxis]
    if x.ndim != 3 or k.ndim != 4:
        msg = (
            "explain shows 2-d convolutions: X must be (h, w) or (c_i, h, w) and K must be "
            f"(kh, kw), (c_i, kh, kw) or (c_o, c_i, kh, kw), got X of shape {x.shape} "
            f"and K of shape {k.shape}"
        )
        raise ValueError(msg)
    b = None if bias is None else as_numeric_array(bias, "bias")
    return x, k, b


def _grid(
    channel: NDArray[Any],
    window: tuple[slice, slice],
    padding: tuple[tuple[int, int], ...],
    *,
    colour: bool,
    indent: str,
) -> list[str]:
    """Lines showing one padded input channel with the window's elements marked.

    Without colour the window's elements are in brackets; with colour they are
    highlighted and the padding is dimmed.
    """
    (top, _), (left, _) = padding
    rows, cols = channel.shape
    in_window = np.zeros(channel.shape, dtype=bool)
    in_window[window] = True
    texts = [[format_number(value) for value in row] for row in channel.tolist()]
    width = max((len(text) for row in texts for text in row), default=1)
    lines = []
    for i in range(rows):
        cells = []
        for j in range(cols):
            text = texts[i][j].rjust(width)
            padded = not (top <= i < rows - padding[0][1] and left <= j < cols - padding[1][1])
            if colour:
                if in_window[i, j]:
                    cell = f" {HIGHLIGHT}{text}{RESET} "
                elif padded:
                    cell = f" {DIM}{text}{RESET} "
                else:
                    cell = f" {text} "
            else:
                cell = f"[{text}]" if in_window[i, j] else f" {text} "
            cells.append(cell)
        lines.append(indent + "".join(cells).rstrip())
    return lines


def walkthrough(
    X: ArrayLike = BOOK_X,
    K: ArrayLike = BOOK_K3,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    *,
    colour: bool = False,
) -> Iterator[str]:
    """Yield the walkthrough of ``conv(X, K, bias, ...)`` in chunks of text.

    The first chunk introduces the call; then one chunk per output element; then one
    per finished output channel and a last one with the stacked result. A command line
    can wait for the user between chunks.

    Parameters
    ----------
    X : array_like of shape (h, w) or (c_i, h, w)
        The input (the book's two-channel example by default).
    K : array_like of shape (kh, kw), (c_i, kh, kw) or (c_o, c_i, kh, kw)
        The kernels (the book's ``stack((K, K + 1, K + 2))`` by default).
    bias : array_like of shape (c_o,), optional
    stride, padding, dilation : int or pair of int, optional
        As in :func:`mimo_conv.conv` (zero padding).
    colour : bool, optional
        Use ANSI colours to highlight the window instead of brackets.

    Yields
    ------
    str
        A chunk of lines, without a final newline.

    Examples
    --------
    >>> from mimo_conv._classroom.textbook import BOOK_K
    >>> chunks = list(walkthrough(BOOK_X[0], BOOK_K[0]))
    >>> print(chunks[1])
    Y[0, 0, 0]: kernel K[0] at rows 0..1, columns 0..1
      input channel 0:
        [0][1] 2
        [3][4] 5
         6  7  8
        0*0 + 1*1 + 3*2 + 4*3 = 19
      Y[0, 0, 0] = 19
    >>> print(chunks[-1])
    stacking the 1 output channel(s) gives Y of shape (1, 2, 2):
    [[[19, 25],
      [37, 43]]]
    the plain loops (method='naive') give the same: True
    """
    x, k, b = _as_book_arrays(X, K, bias)
    geometry = build_geometry(
        x.shape,
        k.shape,
        None if b is None else b.shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=1,
        padding_mode="zeros",
    )
    result = conv(x, k, b, stride, padding, dilation)
    # partial[o, c] = the library's single-channel correlation of channel c with K[o, c].
    partial = [
        [
            conv(x[c : c + 1], k[o : o + 1, c : c + 1], None, stride, padding, dilation)[0]
            for c in range(x.shape[0])
        ]
        for o in range(k.shape[0])
    ]
    padded = pad_input(x[np.newaxis], geometry)[0]
    windows = window_view(padded[np.newaxis], geometry)[0]  # (c_i, oh, ow, kh, kw)
    c_i, c_o = x.shape[0], k.shape[0]
    bold, reset = (BOLD, RESET) if colour else ("", "")

    intro = [
        (
            f"X has {c_i} input channel(s) of {x.shape[1]} x {x.shape[2]}; K has {c_o} output "
            f"channel(s), each {c_i} kernel(s) of {k.shape[2]} x {k.shape[3]}."
        ),
        (
            f"stride={geometry.stride}, padding={geometry.padding}, "
            f"dilation={geometry.dilation}: Y has shape {result.shape}."
        ),
        (
            "Each output element sums, over the input channels, the products of the window "
            "with the kernel."
        ),
    ]
    if geometry.is_padded:
        intro.append("The input is shown padded with zeros" + (" (dimmed)." if colour else "."))
    intro.append("The window is " + ("highlighted." if colour else "in [brackets]."))
    yield "\n".join(intro)

    extent = geometry.window_extent
    for o in range(c_o):
        for i, j in np.ndindex(*geometry.output_shape):
            top, left = i * geometry.stride[0], j * geometry.stride[1]
            window = (
                slice(top, top + extent[0], geometry.dilation[0]),
                slice(left, left + extent[1], geometry.dilation[1]),
            )
            bottom, right = top + extent[0] - 1, left + extent[1] - 1
            lines = [
                (
                    f"{bold}Y[{o}, {i}, {j}]{reset}: kernel K[{o}] at rows {top}..{bottom}, "
                    f"columns {left}..{right}"
                )
            ]
            sums = []
            for c in range(c_i):
                lines.append(f"  input channel {c}:")
                lines += _grid(padded[c], window, geometry.padding, colour=colour, indent="    ")
                terms = [
                    f"{_factor(value)}*{_factor(weight)}"
                    for value, weight in zip(
                        windows[c, i, j].ravel().tolist(), k[o, c].ravel().tolist(), strict=True
                    )
                ]
                value = format_number(partial[o][c][i, j])
                sums.append(value)
                lines.append(f"    {' + '.join(terms)} = {value}")
            total = format_number(result[o, i, j])
            if c_i > 1 or b is not None:
                parts = [*sums, *([] if b is None else [format_number(b[o])])]
                label = "sum over input channels" + (" + bias" if b is not None else "")
                lines.append(f"  {label}: {' + '.join(_factor(p) for p in parts)} = {total}")
            lines.append(f"  {bold}Y[{o}, {i}, {j}] = {total}{reset}")
            yield "\n".join(lines)
        channel = np.array2string(result[o], separator=", ")
        yield f"output channel {o} (kernel K[{o}]) is done:\n{channel}"
    stacked = np.array2string(result, separator=", ")
    direct = conv(x, k, b, stride, padding, dilation, method="naive")
    yield (
        f"stacking the {c_o} output channel(s) gives Y of shape {result.shape}:\n{stacked}\n"
        f"the plain loops (method='naive') give the same: {bool(np.array_equal(result, direct))}"
    )
