"""A transposed convolution's ``output_size=``: which ``output_padding`` gives that size.

A strided convolution maps several input sizes to one output size, so its transpose must be
told which one to produce. PyTorch's ``ConvTranspose{n}d.forward(x, output_size=...)`` takes
the size itself; the reachable sizes along an axis are::

    smallest = (in - 1) * stride - before - after + dilation * (k - 1) + 1
    largest  = smallest + max(stride, dilation) - 1

(``output_padding`` is then ``size - smallest``; PyTorch's own check allows only
``smallest + stride - 1``, see ``docs/frameworks.md``).

Examples
--------
>>> output_padding_for_size((8,), (1, 2, 4), (2, 3, 3), stride=2, padding=1, dilation=1)
(1,)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mimo_conv._core.arguments import as_int, int_per_axis, padding_pairs
from mimo_conv._core.layouts import shape_to_canonical


def output_padding_for_size(
    output_size: object,
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    *,
    stride: object,
    padding: object,
    dilation: object,
    output_padding: object = 0,
    order: tuple[int, ...] | None = None,
) -> tuple[int, ...]:
    """Return the ``output_padding`` that gives a transposed convolution ``output_size``.

    Parameters
    ----------
    output_size : sequence of int
        The spatial size wanted (one int per spatial axis), or the whole output shape
        (``x.ndim`` ints; only the trailing spatial entries are used), as PyTorch accepts.
    x_shape, weight_shape : tuple of int
        Shapes of the transposed convolution's input and kernels (canonical order).
    stride, padding, dilation, output_padding
        As given to :func:`mimo_conv.conv_transpose`; ``output_padding`` must be 0.
    order : tuple of int, optional
        The layout's axis order (:attr:`LayoutSpec.input_order`) when ``output_size`` is a
        whole shape in the caller's layout.

    Raises
    ------
    ValueError
        A size outside the reachable range (the message quotes the range per axis).

    Examples
    --------
    >>> output_padding_for_size((7,), (1, 1, 2), (1, 1, 3), stride=2, padding=0, dilation=1)
    Traceback (most recent call last):
    ...
    ValueError: output_size must be in the reachable range: along spatial axis 0, 5 to 6 ...
    """
    rank = len(weight_shape) - 2
    if output_padding not in (0, (0,) * rank, [0] * rank):
        msg = (
            "output_padding must be 0 when output_size is given (output_size decides it), "
            f"got output_padding={output_padding!r} and output_size={output_size!r}"
        )
        raise ValueError(msg)
    if isinstance(output_size, np.ndarray):
        output_size = output_size.tolist()
    if not isinstance(output_size, Sequence) or isinstance(output_size, str):
        msg = (
            f"output_size must be a sequence of {rank} ints (or of {len(x_shape)}, a whole "
            f"shape), got {output_size!r} of type {type(output_size).__name__}"
        )
        raise TypeError(msg)
    if len(output_size) not in (rank, len(x_shape)):
        msg = (
            f"output_size must have {rank} entries (one per spatial axis) or {len(x_shape)} "
            f"(the whole output shape), got {tuple(output_size)!r}"
        )
        raise ValueError(msg)
    if isinstance(padding, str):  # no padding strings here: conv_transpose's check says so
        return (0,) * rank
    sizes = tuple(as_int(item, "output_size") for item in output_size)
    if len(sizes) == len(x_shape):  # a whole shape, in the caller's layout
        sizes = shape_to_canonical(sizes, order)[-rank:]
    strides = int_per_axis(stride, "stride", rank, minimum=1)
    dilations = int_per_axis(dilation, "dilation", rank, minimum=1)
    kernel = weight_shape[2:]
    pairs = padding_pairs(padding, kernel, dilations, strides)
    extra = []
    for axis, (size, n, step, (before, after), spacing, taps) in enumerate(
        zip(sizes, x_shape[-rank:], strides, pairs, dilations, kernel, strict=True)
    ):
        smallest = (n - 1) * step - before - after + spacing * (taps - 1) + 1
        largest = smallest + max(step, spacing) - 1
        if not smallest <= size <= largest:
            msg = (
                f"output_size must be in the reachable range: along spatial axis {axis}, "
                f"{smallest} to {largest} (x of shape {x_shape}, weight of shape "
                f"{weight_shape}, stride={strides}, padding={pairs}, dilation={dilations}), "
                f"got output_size={tuple(output_size)!r}"
            )
            raise ValueError(msg)
        extra.append(size - smallest)
    return tuple(extra)
