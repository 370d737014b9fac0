"""The ``explain`` walkthrough: a convolution one output element at a time, as text.

For every output element it shows the input window the kernel covers (highlighted), the
products written out (``0*0 + 1*1 + 3*2 + 4*3 = 19``), the partial sum of each input
channel and their total; after each output channel, the finished channel; at the end the
stacked output. Every number printed as a result comes from the library
(:func:`mimo_conv.conv`); the products are read off the padded windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._classroom.textbook import BOOK_K3, BOOK_X
from mimo_conv._core.geometry import ConvGeometry
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
    X: ArrayLike, K: ArrayLike, bias: ArrayLike | None, what: str = "explain shows"
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None]:
    """Bring ``X`` to ``(c_i, h, w)`` and ``K`` to ``(c_o, c_i // groups, kh, kw)``."""
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
            f"{what} 2-d convolutions: X must be (h, w) or (c_i, h, w) and K must be "
            f"(kh, kw), (c_i, kh, kw) or (c_o, c_i, kh, kw), got X of shape {x.shape} "
            f"and K of shape {k.shape}"
        )
        raise ValueError(msg)
    b = None if bias is None else as_numeric_array(bias, "bias")
    return x, k, b


#: How a padded zero is written without colour, so that it cannot pass for a real zero.
PAD_MARK = "."


def _grid(
    channel: NDArray[Any],
    window: tuple[slice, slice],
    padding: tuple[tuple[int, int], ...],
    *,
    colour: bool,
) -> list[str]:
    """Return the lines showing one padded input channel, the window's elements marked.

    The window's elements are in brackets; padded zeros are written ``.`` (and dimmed
    with colour, where the window is also highlighted). Nothing relies on colour alone.
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
            padded = not (top <= i < rows - padding[0][1] and left <= j < cols - padding[1][1])
            text = (PAD_MARK if padded else texts[i][j]).rjust(width)
            if colour and in_window[i, j]:
                cell = f"[{HIGHLIGHT}{text}{RESET}]"
            elif in_window[i, j]:
                cell = f"[{text}]"
            elif colour and padded:
                cell = f" {DIM}{text}{RESET} "
            else:
                cell = f" {text} "
            cells.append(cell)
        lines.append("".join(cells).rstrip())
    return lines


def _visible_length(text: str) -> int:
    """Return the length of a line as shown, without its ANSI escapes."""
    for code in (HIGHLIGHT, DIM, BOLD, RESET):
        text = text.replace(code, "")
    return len(text)


def _beside(left: list[str], right: list[str], indent: str, gap: int = 6) -> list[str]:
    """Put two blocks of lines side by side (the window, then its kernel)."""
    width = max((_visible_length(line) for line in left), default=0) + gap
    lines = []
    for number in range(max(len(left), len(right))):
        a = left[number] if number < len(left) else ""
        b = right[number] if number < len(right) else ""
        line = a + " " * (width - _visible_length(a)) + b if b else a
        lines.append((indent + line).rstrip())
    return lines


def _kernel_lines(kernel: NDArray[Any]) -> list[str]:
    """Return the lines showing one kernel slice."""
    texts = [[format_number(value) for value in row] for row in kernel.tolist()]
    width = max((len(text) for row in texts for text in row), default=1)
    return [" ".join(text.rjust(width) for text in row) for row in texts]


def check_element(element: object, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Check an output element ``(output channel, row, column)`` against the output's shape.

    Examples
    --------
    >>> check_element((2, 1, 0), (3, 2, 2))
    (2, 1, 0)
    >>> check_element((3, 0, 0), (3, 2, 2))
    Traceback (most recent call last):
    ...
    ValueError: element must be (output channel, row, column) inside the output of shape
    (3, 2, 2), got (3, 0, 0)
    """
    try:
        values = tuple(int(v) for v in element)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        msg = f"element must be three ints (output channel, row, column), got {element!r}"
        raise TypeError(msg) from None
    if len(values) != 3 or not all(0 <= v < n for v, n in zip(values, shape, strict=False)):
        msg = (
            "element must be (output channel, row, column) inside the output of shape "
            f"{shape}, got {element!r}"
        )
        raise ValueError(msg)
    return values[0], values[1], values[2]


def _check_channel(channel: object, count: int) -> int:
    """Check an output channel number against the number of output channels."""
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
        msg = f"channel must be an int (an output channel), got {channel!r}"
        raise TypeError(msg)
    if not 0 <= channel < count:
        msg = f"channel must be an output channel in 0..{count - 1}, got {channel!r}"
        raise ValueError(msg)
    return int(channel)


@dataclass(frozen=True)
class WorkedExample:
    """One 2-d convolution worked out: the padded input, every window, every partial sum.

    Built by :func:`work_out`; the walkthrough writes it out and the figures draw it.

    Examples
    --------
    >>> worked = work_out(BOOK_X, BOOK_K3)
    >>> worked.partial[0, :, 0, 0], worked.result[0, 0, 0]
    (array([19, 37]), np.int64(56))
    >>> worked.window(1, 1), sorted(worked.taps(0, 0))
    ((1, 1, 2, 2), [(0, 0), (0, 1), (1, 0), (1, 1)])
    """

    x: NDArray[Any]  # (c_i, h, w)
    k: NDArray[Any]  # (c_o, c_i, kh, kw)
    bias: NDArray[Any] | None
    geometry: ConvGeometry
    padded: NDArray[Any]  # (c_i, padded h, padded w)
    windows: NDArray[Any]  # (c_i, oh, ow, kh, kw)
    result: NDArray[Any]  # (c_o, oh, ow)
    partial: NDArray[Any]  # (c_o, c_i // groups, oh, ow): see :meth:`channels`

    def channels(self, o: int) -> range:
        """Return the input channels output channel ``o`` sums: those of its group.

        ``partial[o, n]`` is input channel ``channels(o)[n]`` correlated with ``K[o, n]``.
        """
        per_group = int(self.k.shape[1])
        group = self.group(o)
        return range(group * per_group, (group + 1) * per_group)

    def group(self, o: int) -> int:
        """Return the group of output channel ``o``."""
        return int(o // (self.k.shape[0] // self.geometry.groups))

    def window(self, i: int, j: int) -> tuple[int, int, int, int]:
        """Return the top row, left column, bottom row and right column of ``(i, j)``'s window."""
        top, left = i * self.geometry.stride[0], j * self.geometry.stride[1]
        extent = self.geometry.window_extent
        return top, left, top + extent[0] - 1, left + extent[1] - 1

    def taps(self, i: int, j: int) -> set[tuple[int, int]]:
        """Return the padded cells the kernel's taps meet for output ``(i, j)``."""
        top, left, _, _ = self.window(i, j)
        (dh, dw), (kh, kw) = self.geometry.dilation, self.k.shape[2:]
        return {(top + a * dh, left + b * dw) for a in range(kh) for b in range(kw)}

    def is_padding(self, row: int, col: int) -> bool:
        """Tell whether a cell of the padded input is padding."""
        (top, _), (left, _) = self.geometry.padding
        h, w = self.x.shape[1:]
        return not (top <= row < top + h and left <= col < left + w)


def work_out(
    X: ArrayLike,
    K: ArrayLike,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    element: object = None,
    channel: object = None,
    what: str = "explain shows",
) -> WorkedExample:
    """Check the arguments and work out the convolution: every number from :func:`conv`.

    ``element`` (an output element) and ``channel`` (an output channel), when given, are
    checked against the output's shape too, before anything is computed. With
    ``groups``, output channel ``o`` sums only its group's input channels
    (:meth:`WorkedExample.channels`); ``padding_mode`` fills the padding as in
    :func:`conv`, and ``padded`` holds the values it puts there. ``what`` starts the
    message refusing an input that is not 2-d.

    Examples
    --------
    >>> work_out([[1, 2, 3]], [[1, -1]], padding=1).padded
    array([[[0, 0, 0, 0, 0],
            [0, 1, 2, 3, 0],
            [0, 0, 0, 0, 0]]])
    >>> work_out([[1, 2, 3]], [[1, -1]], padding=(0, 1), padding_mode="reflect").padded
    array([[[2, 1, 2, 3, 2]]])
    >>> depthwise = work_out(np.ones((3, 2, 2), int), np.ones((3, 1, 1, 1), int), groups=3)
    >>> depthwise.channels(2), depthwise.partial.shape
    (range(2, 3), (3, 1, 2, 2))
    >>> work_out([[1, 2, 3]], [[1, -1]], element=(0, 0, 2))
    Traceback (most recent call last):
    ...
    ValueError: element must be (output channel, row, column) inside the output of shape
    (1, 1, 2), got (0, 0, 2)
    """
    x, k, b = _as_book_arrays(X, K, bias, what)
    geometry = build_geometry(
        x.shape,
        k.shape,
        None if b is None else b.shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    if element is not None:
        check_element(element, (k.shape[0], *geometry.output_shape))
    if channel is not None:
        _check_channel(channel, k.shape[0])
    result = conv(x, k, b, stride, padding, dilation, groups, padding_mode=padding_mode)
    per_group, per_output_group = k.shape[1], k.shape[0] // geometry.groups
    partial = np.stack(
        [
            np.stack(
                [
                    conv(
                        x[start + n : start + n + 1],
                        k[o : o + 1, n : n + 1],
                        None,
                        stride,
                        padding,
                        dilation,
                        padding_mode=padding_mode,
                    )[0]
                    for n in range(per_group)
                ]
            )
            for o in range(k.shape[0])
            for start in [(o // per_output_group) * per_group]
        ]
    )
    padded = pad_input(x[np.newaxis], geometry)[0]
    windows = window_view(padded[np.newaxis], geometry)[0]
    return WorkedExample(x, k, b, geometry, padded, windows, result, partial)


def walkthrough(
    X: ArrayLike = BOOK_X,
    K: ArrayLike = BOOK_K3,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    *,
    colour: bool = False,
    element: tuple[int, int, int] | None = None,
    channel: int | None = None,
) -> Iterator[str]:
    """Yield the walkthrough of ``conv(X, K, bias, ...)`` in chunks of text.

    The first chunk introduces the call; then one chunk per output element, each input
    channel's window shown beside its kernel with the products written out; then one
    per finished output channel and a last one with the stacked result. A command line
    can wait for the user between chunks. The window is in brackets and padded zeros
    are written ``.``, so nothing relies on colour.

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
        Also highlight the window and dim the padding with ANSI colours.
    element : tuple of 3 ints, optional
        Show only this output element ``(output channel, row, column)``.
    channel : int, optional
        Show only this output channel's elements.

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
      input channel 0, window:      kernel K[0, 0]:
        [0][1] 2                    0 1
        [3][4] 5                    2 3
         6  7  8
        0*0 + 1*1 + 3*2 + 4*3 = 19
      Y[0, 0, 0] = 19
    >>> print(chunks[-1])
    stacking the 1 output channel(s) gives Y of shape (1, 2, 2):
    [[[19, 25],
      [37, 43]]]
    the plain loops (method='naive') give the same: True

    Padded zeros are dots; ``element=`` picks one output element:

    >>> print(list(walkthrough([[1, 2], [3, 4]], [[1, -1]], padding=1, element=(0, 1, 2)))[1])
    Y[0, 1, 2]: kernel K[0] at rows 1..1, columns 2..3
      input channel 0, window:      kernel K[0, 0]:
         .  .  .  .                  1 -1
         .  1 [2][.]
         .  3  4  .
         .  .  .  .
        2*1 + 0*(-1) = 2
      Y[0, 1, 2] = 2
    """
    worked = work_out(X, K, bias, stride, padding, dilation, element=element, channel=channel)
    x, k, b, geometry = worked.x, worked.k, worked.bias, worked.geometry
    result, partial, padded, windows = worked.result, worked.partial, worked.padded, worked.windows
    out_shape = result.shape
    focus = None if element is None else check_element(element, out_shape)
    only = None if channel is None else _check_channel(channel, k.shape[0])
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
        intro.append(
            f"The input is shown padded with zeros, each padded zero written {PAD_MARK!r}."
        )
    intro.append("The window is in [brackets]" + (" and highlighted." if colour else "."))
    yield "\n".join(intro)

    extent = geometry.window_extent
    for o in range(c_o):
        if (only is not None and o != only) or (focus is not None and o != focus[0]):
            continue
        for i, j in np.ndindex(*geometry.output_shape):
            if focus is not None and (i, j) != focus[1:]:
                continue
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
                grid = _grid(padded[c], window, geometry.padding, colour=colour)
                lines += _beside(
                    [f"input channel {c}, window:", *("  " + line for line in grid)],
                    [f"kernel K[{o}, {c}]:", *_kernel_lines(k[o, c])],
                    indent="  ",
                )
                terms = [
                    f"{_factor(value)}*{_factor(weight)}"
                    for value, weight in zip(
                        windows[c, i, j].ravel().tolist(), k[o, c].ravel().tolist(), strict=True
                    )
                ]
                value = format_number(partial[o, c, i, j])
                sums.append(value)
                lines.append(f"    {' + '.join(terms)} = {value}")
            total = format_number(result[o, i, j])
            if c_i > 1 or b is not None:
                parts = [*sums, *([] if b is None else [format_number(b[o])])]
                label = "sum over input channels" + (" + bias" if b is not None else "")
                lines.append(f"  {label}: {' + '.join(_factor(p) for p in parts)} = {total}")
            lines.append(f"  {bold}Y[{o}, {i}, {j}] = {total}{reset}")
            yield "\n".join(lines)
        if focus is None:
            channel_text = np.array2string(result[o], separator=", ")
            yield f"output channel {o} (kernel K[{o}]) is done:\n{channel_text}"
    if focus is not None or only is not None:
        return
    stacked = np.array2string(result, separator=", ")
    direct = conv(x, k, b, stride, padding, dilation, method="naive")
    yield (
        f"stacking the {c_o} output channel(s) gives Y of shape {result.shape}:\n{stacked}\n"
        f"the plain loops (method='naive') give the same: {bool(np.array_equal(result, direct))}"
    )
