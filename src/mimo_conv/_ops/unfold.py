"""``unfold`` (im2col) and ``fold`` (col2im): windows as matrix columns, and back.

``unfold`` copies every window of the padded input into one column of a matrix, in the
layout of PyTorch's ``F.unfold``: ``(N, C * prod(kernel_size), L)``, rows ordered channel
first then kernel taps in C order, columns the ``L = prod(output_shape)`` window positions
in C order. A convolution is then one matrix product (the ``"im2col"`` method).
``fold`` is its adjoint: it adds every column entry back into the position it was copied
from, so overlapping windows sum (``F.fold``).

Both work for any number of spatial axes (PyTorch's only for two). The number of spatial
axes is ``len(kernel_size)``; an int ``kernel_size`` means two axes, as in PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._core.arguments import IntOrInts, PaddingArg, int_per_axis, padding_pairs
from mimo_conv._core.columns import fold_taps, unfold_padded
from mimo_conv._core.dtypes import check_integer_range, plan_dtypes
from mimo_conv._core.geometry import output_length
from mimo_conv._core.geometry_cache import build_geometry
from mimo_conv._core.memory import check_output_fits
from mimo_conv._core.operands import as_numeric_array
from mimo_conv._core.padding_rules import is_same_string, same_padding
from mimo_conv._core.windows import pad_input


def _spatial_dims(*sizes: object) -> int:
    """Spatial axes implied by the first sequence among ``sizes``; 2 (PyTorch's) if none."""
    for size in sizes:
        if isinstance(size, np.ndarray):
            return int(size.size)
        if isinstance(size, Sequence) and not isinstance(size, str):
            return len(size)
    return 2


def unfold(
    x: ArrayLike,
    kernel_size: IntOrInts,
    dilation: IntOrInts = 1,
    padding: PaddingArg = 0,
    stride: IntOrInts = 1,
    *,
    padding_mode: str = "zeros",
) -> NDArray[Any]:
    """Extract sliding windows as columns (im2col), like PyTorch's ``F.unfold``.

    Parameters
    ----------
    x : array_like of shape (N, C, *spatial) or (C, *spatial)
        The input; ``len(spatial) == len(kernel_size)`` (2 for an int ``kernel_size``).
    kernel_size : int or sequence of int
        Window shape; its length sets the number of spatial axes.
    dilation, stride : int or sequence of int, optional
        As in :func:`mimo_conv.conv`.
    padding : int, sequence or {"valid", "same", "same_lower", "full"}, optional
        Every form :func:`mimo_conv.conv` accepts (PyTorch's ``F.unfold`` only has ints),
        ``"same"`` and ``"same_lower"`` at any stride with TensorFlow's, JAX's and ONNX's
        rule: ``ceil(in / stride)`` windows per axis.
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}, optional
        How padded elements are filled.

    Returns
    -------
    ndarray of shape (N, C * prod(kernel_size), L) or (C * prod(kernel_size), L)
        A new array in the dtype of ``x``; ``L`` is the number of windows,
        ``prod(output_shape)`` by the output-size law of :func:`mimo_conv.conv`. Row
        ``c * prod(k) + t`` holds tap ``t`` (C order) of channel ``c``.

    Notes
    -----
    Cost: a copy of ``N * C * prod(k) * L`` elements, about ``prod(k) / prod(stride)``
    times the input, plus the padded copy of the input when there is padding.

    Examples
    --------
    >>> x = np.arange(9).reshape(1, 1, 3, 3)
    >>> unfold(x, 2)
    array([[[0, 1, 3, 4],
            [1, 2, 4, 5],
            [3, 4, 6, 7],
            [4, 5, 7, 8]]])

    Any number of spatial axes, set by ``kernel_size``; unbatched input:

    >>> unfold([[1, 2, 3, 4, 5]], (3,), stride=2)
    array([[1, 3],
           [2, 4],
           [3, 5]])

    TensorFlow's ``SAME`` at stride 2: ``ceil(5 / 2) = 3`` windows, the one padded zero
    after (``"same_lower"`` puts it before):

    >>> unfold([[1, 2, 3, 4, 5]], (2,), stride=2, padding="same")
    array([[1, 3, 5],
           [2, 4, 0]])
    """
    x_array = as_numeric_array(x, "x")
    dims = _spatial_dims(kernel_size)
    kernel = int_per_axis(kernel_size, "kernel_size", dims, minimum=1)
    if x_array.ndim not in (dims + 1, dims + 2):
        msg = (
            f"x must have {dims + 1} (unbatched) or {dims + 2} (batched) dimensions for a "
            f"kernel_size of {dims} spatial dimensions, got x of shape {x_array.shape}"
        )
        raise ValueError(msg)
    channels = x_array.shape[-dims - 1]
    geometry = build_geometry(
        x_array.shape,
        (channels, channels, *kernel),
        None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=1,
        padding_mode=padding_mode,
    )
    batch = x_array if geometry.batched else x_array[np.newaxis]
    rows = channels * math.prod(kernel)
    check_output_fits((batch.shape[0], rows, math.prod(geometry.output_shape)), x_array.dtype)
    cols = unfold_padded(pad_input(batch, geometry), geometry)
    if np.may_share_memory(cols, x_array):  # a 1 x 1 kernel at stride 1 reshapes to a view
        cols = cols.copy()
    return cols if geometry.batched else cols[0]


def fold(
    cols: ArrayLike,
    output_size: IntOrInts,
    kernel_size: IntOrInts,
    dilation: IntOrInts = 1,
    padding: PaddingArg = 0,
    stride: IntOrInts = 1,
) -> NDArray[Any]:
    """Sum columns back into an array (col2im), like PyTorch's ``F.fold``.

    The adjoint of :func:`unfold` with zero padding: ``<unfold(x), y> == <x, fold(y)>``.

    Parameters
    ----------
    cols : array_like of shape (N, C * prod(kernel_size), L) or (C * prod(kernel_size), L)
        One column per window, in the layout :func:`unfold` returns.
    output_size : int or sequence of int
        Spatial shape of the result (before padding is cut off).
    kernel_size : int or sequence of int
        Window shape. The number of spatial axes is the length of ``output_size`` or of
        ``kernel_size`` (whichever is a sequence), 2 if both are ints.
    dilation, padding, stride : optional
        As in :func:`unfold`; padding is added around ``output_size`` and cut off after
        the sum (every form of :func:`mimo_conv.conv` is accepted; ``"same"`` and
        ``"same_lower"`` at any stride take their amounts from ``output_size``, as
        :func:`unfold` takes them from the input).

    Returns
    -------
    ndarray of shape (N, C, *output_size) or (C, *output_size)
        A new array. Integers sum in int64 (with the same overflow check as
        :func:`mimo_conv.conv`), float16 in float32, ``dtype=object`` exactly.

    Notes
    -----
    Cost: ``N * C * prod(k) * L`` additions in ``prod(k)`` vectorised strided additions,
    and one padded result array.

    Examples
    --------
    Overlapping windows add up; ``fold(unfold(ones))`` counts the windows covering each
    element:

    >>> fold(unfold(np.ones((1, 1, 3, 3)), 2), (3, 3), 2)
    array([[[[1., 2., 1.],
             [2., 4., 2.],
             [1., 2., 1.]]]])
    >>> fold([[1, 2], [3, 4], [5, 6]], (5,), (3,), stride=2)
    array([[1, 3, 7, 4, 6]])

    The adjoint of the ``SAME`` example of :func:`unfold`: the padded zero's column entry
    is cut off.

    >>> fold([[1, 3, 5], [2, 4, 6]], (5,), (2,), stride=2, padding="same")
    array([[1, 2, 3, 4, 5]])
    """
    cols_array = as_numeric_array(cols, "cols")
    dims = _spatial_dims(output_size, kernel_size)
    size = int_per_axis(output_size, "output_size", dims, minimum=1)
    kernel = int_per_axis(kernel_size, "kernel_size", dims, minimum=1)
    strides = int_per_axis(stride, "stride", dims, minimum=1)
    dilations = int_per_axis(dilation, "dilation", dims, minimum=1)
    if is_same_string(padding):  # TensorFlow's rule at any stride, from the known size
        pairs = same_padding(size, kernel, dilations, strides, lower=padding == "same_lower")
    else:
        pairs = padding_pairs(padding, kernel, dilations, strides)
    if cols_array.ndim not in (2, 3):
        msg = (
            "cols must have 2 (unbatched) or 3 (batched) dimensions (N, C * prod(kernel_size), "
            f"L), got cols of shape {cols_array.shape}"
        )
        raise ValueError(msg)
    taps = math.prod(kernel)
    if cols_array.shape[-2] % taps:
        msg = (
            f"cols must have a multiple of prod(kernel_size) = {taps} rows "
            f"(kernel_size={kernel}), got cols of shape {cols_array.shape}"
        )
        raise ValueError(msg)
    blocks = tuple(
        output_length(n, k, stride=s, padding=p, dilation=d)
        for n, k, s, p, d in zip(size, kernel, strides, pairs, dilations, strict=True)
    )
    if any(count < 1 for count in blocks) or math.prod(blocks) != cols_array.shape[-1]:
        msg = (
            f"cols must have one column per window: output_size={size}, kernel_size={kernel}, "
            f"dilation={dilations}, padding={pairs}, stride={strides} give {blocks} windows "
            f"({math.prod(blocks)} in all), got cols of shape {cols_array.shape}"
        )
        raise ValueError(msg)
    batched = cols_array.ndim == 3
    batch = cols_array if batched else cols_array[np.newaxis]
    channels = batch.shape[1] // taps
    plan = plan_dtypes(batch.dtype)
    if plan.compute.kind == "i":
        check_integer_range(batch, np.ones(1, dtype=np.int64), None, taps)
    padded_shape = tuple(n + b + a for n, (b, a) in zip(size, pairs, strict=True))
    check_output_fits((batch.shape[0], channels, *padded_shape), plan.compute)
    split = batch.astype(plan.compute, copy=False).reshape(
        (batch.shape[0], channels, taps, *blocks)
    )
    # inf * 0 and overflow give IEEE results (nan, inf) in the outputs they reach, no warnings.
    inside = tuple(slice(b, b + n) for n, (b, _) in zip(size, pairs, strict=True))
    with np.errstate(all="ignore"):
        summed = fold_taps(split, padded_shape, kernel, strides, dilations)
        out = summed[(slice(None), slice(None), *inside)].astype(plan.output, copy=False)
    return np.ascontiguousarray(out if batched else out[0])
