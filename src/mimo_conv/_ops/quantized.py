"""Quantized convolution: int8/uint8 operands with zero points, exact int32 results.

ONNX's ``ConvInteger`` (and the integer core of ``QLinearConv``, TFLite's and oneDNN's int8
convolutions) computes::

    y[n, o, p] = sum_{c, t} (x_pad[n, c, p * stride + t * dilation] - x_zero_point)
                            * (weight[o, c, t] - weight_zero_point[o])

in an int32 accumulator, where the padding holds ``x_zero_point`` (the quantized zero), so
the shifted operand is padded with 0. Here the shifted operands are formed in int64 and
convolved exactly by :func:`mimo_conv.conv`; the result is returned as int32 after checking,
before any work, that no sum can leave the int32 range.

The overflow bound. With ``A = max |x - x_zero_point|`` (over every element of ``x``; the
padding contributes 0) and ``S_o = sum_{c, t} |weight[o, c, t] - weight_zero_point[o]|``,
every partial sum of output channel ``o`` satisfies ``|partial| <= A * S_o``, so if
``A * max_o S_o <= 2**31 - 1`` no accumulation order can overflow int32. Otherwise
``OverflowError``. For full-range 8-bit data ``A <= 255`` and ``S_o <= 255 * terms``, so
any call with ``terms = C_in / groups * prod(k) <= 33025`` (``(2**31 - 1) // 255**2``) is
always safe, e.g. a 3 x 3 kernel over up to 3,669 input channels.

Examples
--------
>>> import numpy as np
>>> conv_integer(np.array([[[-28, 33, 125]]], np.int8), np.array([[[194, 236]]], np.uint8))
array([[[ 2356, 35902]]], dtype=int32)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._core.arguments import IntOrInts, PaddingArg
from mimo_conv._core.layouts import canonical, from_canonical, parse_layouts
from mimo_conv._core.operands import as_numeric_array
from mimo_conv._ops.conv import conv

#: The operand dtypes of a quantized convolution.
QUANTIZED_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8))
INT32_MAX = 2**31 - 1


def _quantized(value: object, name: str) -> NDArray[Any]:
    array = as_numeric_array(value, name)
    if array.dtype not in QUANTIZED_DTYPES:
        msg = f"{name} must have dtype int8 or uint8, got {name} of dtype {array.dtype}"
        raise TypeError(msg)
    return array


def _zero_point(value: object, name: str, dtype: np.dtype[Any], channels: int) -> NDArray[Any]:
    """Return a zero point as int64: a scalar, or (``channels`` > 0) one per output channel."""
    array = np.asarray(value)
    if array.dtype.kind not in "iu" or array.dtype == np.bool_:
        msg = f"{name} must be an integer or an integer array, got {value!r}"
        raise TypeError(msg)
    if array.ndim > 1 or (array.ndim == 1 and array.size not in (1, channels)):
        shapes = (
            "a scalar" if channels == 0 else f"a scalar or one per output channel ({channels},)"
        )
        msg = f"{name} must be {shapes}, got {name} of shape {array.shape}"
        raise ValueError(msg)
    info = np.iinfo(dtype)
    if array.size and (array.min() < info.min or array.max() > info.max):
        msg = (
            f"{name} must be in the range of the {dtype} values it shifts "
            f"({info.min} to {info.max}), got {array.tolist()!r}"
        )
        raise ValueError(msg)
    return array.astype(np.int64).reshape(-1)


def check_int32_accumulation(
    shifted_x: NDArray[np.int64], shifted_weight: NDArray[np.int64], bias_bound: int = 0
) -> None:
    """Raise ``OverflowError`` when an int32 accumulator could overflow (see module notes).

    ``bias_bound`` is the largest ``|bias|`` added to the sums (``QLinearConv``'s int32 bias).

    Examples
    --------
    >>> check_int32_accumulation(np.full((1, 4, 1), 255), np.full((1, 4, 1), -255))
    >>> check_int32_accumulation(np.full((1, 40000, 1), 255), np.full((1, 40000, 1), -255))
    Traceback (most recent call last):
    ...
    OverflowError: int32 accumulation could overflow: max |x - x_zero_point| = 255 times ...
    """
    largest_x = int(np.abs(shifted_x).max(initial=0))
    if shifted_weight.ndim == 0:  # not a kernel: conv's shape check names it
        return
    per_channel = np.abs(shifted_weight).reshape(shifted_weight.shape[0], -1).sum(axis=1)
    largest_weight = int(per_channel.max(initial=0))
    bound = largest_x * largest_weight + bias_bound
    if bound > INT32_MAX:
        msg = (
            f"int32 accumulation could overflow: max |x - x_zero_point| = {largest_x} times "
            f"the largest sum of |weight - weight_zero_point| over one output channel's "
            f"kernel, {largest_weight}, plus max |bias| = {bias_bound}, is {bound} "
            f"> 2**31 - 1; use int64 inputs with mimo_conv.conv for an exact int64 result"
        )
        raise OverflowError(msg)


def shifted_operands(
    x: ArrayLike,
    weight: ArrayLike,
    x_zero_point: ArrayLike,
    weight_zero_point: ArrayLike,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Check 8-bit operands (canonical order) and return ``x - zx``, ``weight - zw`` in int64.

    Examples
    --------
    >>> x, w = shifted_operands(np.array([[1, 2]], np.uint8), np.array([[[3]], [[4]]], np.int8),
    ...                         1, [3, 0])
    >>> x.tolist(), w.ravel().tolist()
    ([[0, 1]], [0, 4])
    """
    x_array = _quantized(x, "x")
    weight_array = _quantized(weight, "weight")
    out_channels = weight_array.shape[0] if weight_array.ndim else 0
    x_zero = _zero_point(x_zero_point, "x_zero_point", x_array.dtype, 0)
    weight_zero = _zero_point(
        weight_zero_point, "weight_zero_point", weight_array.dtype, out_channels
    )
    spread = (-1,) + (1,) * (weight_array.ndim - 1)
    shifted_x = x_array.astype(np.int64) - x_zero[0] if x_zero.size else x_array.astype(np.int64)
    shifted_weight = weight_array.astype(np.int64) - weight_zero.reshape(spread)
    return shifted_x, shifted_weight


def conv_integer(
    x: ArrayLike,
    weight: ArrayLike,
    x_zero_point: ArrayLike = 0,
    weight_zero_point: ArrayLike = 0,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    *,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[np.int32]:
    """Quantized convolution of int8/uint8 operands with zero points, exactly, in int32.

    Parameters
    ----------
    x : array_like of int8 or uint8, shape (N, C_in, *spatial) or (C_in, *spatial)
        The quantized input. Never modified.
    weight : array_like of int8 or uint8, shape (C_out, C_in // groups, *kernel)
        The quantized kernels (either 8-bit type, independently of ``x``'s).
    x_zero_point : int, optional
        The value of ``x`` that stands for 0 (per tensor); the padding holds it.
    weight_zero_point : int or array_like of shape (C_out,), optional
        The value of ``weight`` that stands for 0: one per tensor or one per output channel.
    stride, padding, dilation, groups, layout, weight_layout
        As for :func:`mimo_conv.conv` (zero padding of the shifted values only).

    Returns
    -------
    ndarray of int32, shape (N, C_out, *out) or (C_out, *out)
        ``sum (x - x_zero_point) * (weight - weight_zero_point)``, exact.

    Raises
    ------
    TypeError
        Operands that are not int8/uint8, or non-integer zero points.
    ValueError
        Zero points outside their operand's range or of the wrong shape; every
        :func:`mimo_conv.conv` shape error.
    OverflowError
        When a sum could leave int32 (the bound is derived in this module's notes), raised
        before any work.

    Examples
    --------
    Per-output-channel weight zero points:

    >>> x = np.array([[[10, 20, 30]]], np.uint8)
    >>> w = np.array([[[1, 2]], [[5, 5]]], np.int8)
    >>> conv_integer(x, w, x_zero_point=10, weight_zero_point=[0, 5])
    array([[[20, 50],
            [ 0,  0]]], dtype=int32)
    """
    layouts = parse_layouts(layout, weight_layout, spatial_dims=None, transposed=False)
    shifted_x, shifted_weight = shifted_operands(
        canonical(x, layouts.input_order, "x"),
        canonical(weight, layouts.weight_order, "weight"),
        x_zero_point,
        weight_zero_point,
    )
    check_int32_accumulation(shifted_x, shifted_weight)  # before any work
    out = conv(shifted_x, shifted_weight, None, stride, padding, dilation, groups)
    return from_canonical(out.astype(np.int32), layouts.input_order)
