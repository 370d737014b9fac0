"""The ONNX convolution operators ``Conv``, ``ConvTranspose``, ``ConvInteger``, ``QLinearConv``.

Inputs are the operator's inputs in order (``X``, ``W``, ``B``, zero points, scales), and
attributes are keyword arguments with ONNX's names and defaults:

* ``auto_pad``: ``"NOTSET"`` (use ``pads``), ``"SAME_UPPER"`` (output ``ceil(in /
  stride)``, odd padding element at the end), ``"SAME_LOWER"`` (at the beginning) or
  ``"VALID"`` (no padding);
* ``pads``: all the beginnings, then all the ends (``[x1_begin, x2_begin, ..., x1_end,
  x2_end]``), default zeros;
* ``strides``, ``dilations`` (default 1 per axis), ``group`` (default 1), ``kernel_shape``
  (checked against ``W`` when given);
* ``ConvTranspose`` also ``output_padding`` and ``output_shape``.

Layouts are ONNX's: ``X`` is ``(N, C, D1, ...)``, ``W`` ``(M, C / group, k1, ...)`` for a
convolution and ``(C, M / group, k1, ...)`` for a transposed one.

Examples
--------
>>> import numpy as np
>>> conv(np.ones((1, 1, 4)), np.ones((1, 1, 3)), pads=[1, 0])
array([[[2., 3., 3.]]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._ops.conv import conv as mc_conv
from mimo_conv._ops.quantized import (
    check_int32_accumulation,
    shifted_operands,
)
from mimo_conv._ops.quantized import (
    conv_integer as mc_conv_integer,
)
from mimo_conv._ops.transpose import conv_transpose as mc_conv_transpose
from mimo_conv.compat._shared import int_tuple, window

__all__ = ["conv", "conv_integer", "conv_transpose", "qlinear_conv"]

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _check_kernel_shape(weight: NDArray[Any], kernel_shape: Sequence[int] | None) -> int:
    """Return the number of spatial axes; ``kernel_shape``, when given, must be ``W``'s."""
    rank = weight.ndim - 2
    if rank < 1:
        msg = f"W must have at least 3 dimensions, got W of shape {weight.shape}"
        raise ValueError(msg)
    if kernel_shape is not None and tuple(kernel_shape) != weight.shape[2:]:
        msg = (
            f"kernel_shape must be W's spatial shape {weight.shape[2:]}, "
            f"got kernel_shape={list(kernel_shape)!r}"
        )
        raise ValueError(msg)
    return rank


def _padding(auto_pad: str, pads: Sequence[int] | None, rank: int) -> Any:
    """mimo_conv's ``padding=`` for ``auto_pad`` and ``pads``."""
    if auto_pad not in AUTO_PADS:
        msg = f"auto_pad must be one of {AUTO_PADS!r}, got {auto_pad!r}"
        raise ValueError(msg)
    if auto_pad == "SAME_UPPER":
        return "same"
    if auto_pad == "SAME_LOWER":
        return "same_lower"
    if auto_pad == "VALID" or pads is None:
        return ((0, 0),) * rank
    return _pairs(pads, rank)


def _pairs(pads: Sequence[int], rank: int) -> tuple[tuple[int, int], ...]:
    values = [int(item) for item in pads]
    if len(values) != 2 * rank:
        msg = f"pads must have 2 * {rank} entries (all begins, then all ends), got {list(pads)!r}"
        raise ValueError(msg)
    return tuple(zip(values[:rank], values[rank:], strict=True))


def conv(
    X: ArrayLike,
    W: ArrayLike,  # noqa: N803
    B: ArrayLike | None = None,  # noqa: N803
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> NDArray[Any]:
    """ONNX ``Conv``: cross-correlation of ``X`` with ``W``, plus ``B``.

    Parameters
    ----------
    X : array_like of shape (N, C, D1, ...)
    W : array_like of shape (M, C / group, k1, ...)
    B : array_like of shape (M,), optional
    auto_pad, dilations, group, kernel_shape, pads, strides
        ONNX's attributes (module notes).

    Returns
    -------
    ndarray of shape (N, M, ...)

    Examples
    --------
    >>> conv(np.ones((1, 1, 5)), np.ones((1, 1, 2)), auto_pad="SAME_LOWER", strides=[2])
    array([[[1., 2., 2.]]])
    """
    weight = np.asarray(W)
    rank = _check_kernel_shape(weight, kernel_shape)
    return mc_conv(
        X, weight, B, int_tuple(strides, "strides", rank), _padding(auto_pad, pads, rank),
        int_tuple(dilations, "dilations", rank), group,
    )  # fmt: skip


def transpose_window(
    in_shape: Sequence[int],
    kernel: Sequence[int],
    *,
    auto_pad: str,
    dilations: tuple[int, ...],
    output_padding: tuple[int, ...],
    output_shape: Sequence[int] | None,
    pads: Sequence[int] | None,
    strides: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:
    """Where ``ConvTranspose``'s output lies in the full (unpadded) scatter, per axis.

    The full scatter has ``stride * (in - 1) + dilation * (k - 1) + 1`` elements; ONNX's
    output starts ``pads_begin`` into it and ends ``pads_end + ... - output_padding`` before
    its end. With ``output_shape`` (or ``SAME_*`` without it: ``output_shape = in *
    stride``), ``pads`` is ignored and ``total = full + output_padding - output_shape`` is
    split as the spec says: ``SAME_UPPER`` puts ``total // 2`` at the beginning, the other
    modes ``total - total // 2``, ``//`` being floor division (the spec's formula as the
    ONNX reference evaluator reads it). A negative ``total`` (an output larger than the
    scatter) therefore puts the odd extra element at the beginning for ``SAME_UPPER`` and at
    the end otherwise; onnxruntime puts it at the end always (``docs/frameworks.md``).

    Returns
    -------
    tuple of (start, stop)
        Bounds of the output in the full scatter (zeros outside it).

    Examples
    --------
    >>> transpose_window((3,), (3,), auto_pad="SAME_UPPER", dilations=(1,), output_padding=(0,),
    ...                  output_shape=None, pads=None, strides=(2,))
    ((0, 6),)
    """
    rank = len(kernel)
    if auto_pad not in AUTO_PADS:
        msg = f"auto_pad must be one of {AUTO_PADS!r}, got {auto_pad!r}"
        raise ValueError(msg)
    full = [
        step * (n - 1) + spacing * (k - 1) + 1
        for n, k, step, spacing in zip(in_shape, kernel, strides, dilations, strict=True)
    ]
    if output_shape is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        output_shape = [n * step for n, step in zip(in_shape, strides, strict=True)]
    if output_shape is not None:
        sizes = [int(item) for item in output_shape][-rank:]
        if len(sizes) != rank:
            msg = f"output_shape must have {rank} spatial entries, got {list(output_shape)!r}"
            raise ValueError(msg)
        bounds = []
        for size, natural, extra in zip(sizes, full, output_padding, strict=True):
            total = natural + extra - size
            half = total // 2  # floor division, also for a negative total
            begin = half if auto_pad == "SAME_UPPER" else total - half
            bounds.append((begin, begin + size))
        return tuple(bounds)
    pairs = ((0, 0),) * rank if auto_pad == "VALID" or pads is None else _pairs(pads, rank)
    return tuple(
        (begin, natural + extra - end)
        for natural, extra, (begin, end) in zip(full, output_padding, pairs, strict=True)
    )


def conv_transpose(
    X: ArrayLike,
    W: ArrayLike,  # noqa: N803
    B: ArrayLike | None = None,  # noqa: N803
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    output_padding: Sequence[int] | None = None,
    output_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> NDArray[Any]:
    """ONNX ``ConvTranspose``, following the specification's shape and padding rules.

    The full scatter (:func:`mimo_conv.conv_transpose` without padding) is computed, then
    cut to (or extended with zeros around) the window ``transpose_window`` gives; ``B``
    is added per output channel (every channel its own ``B[m]``, also with ``group > 1``).

    Parameters
    ----------
    X : array_like of shape (N, C, D1, ...)
    W : array_like of shape (C, M / group, k1, ...)
    B : array_like of shape (M,), optional
    auto_pad, dilations, group, kernel_shape, output_padding, output_shape, pads, strides
        ONNX's attributes (module notes).

    Returns
    -------
    ndarray of shape (N, M, ...)

    Examples
    --------
    >>> conv_transpose(np.array([[[1.0, 10.0]]]), np.ones((1, 1, 2)), strides=[2],
    ...                output_shape=[5])  # one element more than natural: at the end
    array([[[ 1.,  1., 10., 10.,  0.]]])
    """
    weight = np.asarray(W)
    rank = _check_kernel_shape(weight, kernel_shape)
    x = np.asarray(X)
    steps = int_tuple(strides, "strides", rank)
    spacing = int_tuple(dilations, "dilations", rank)
    extra = int_tuple(output_padding, "output_padding", rank, default=0)
    full = mc_conv_transpose(x, weight, None, steps, 0, 0, group, spacing)
    bounds = transpose_window(
        x.shape[2:], weight.shape[2:], auto_pad=auto_pad, dilations=spacing,
        output_padding=extra, output_shape=output_shape, pads=pads, strides=steps,
    )  # fmt: skip
    out: NDArray[Any] = window(full, bounds)
    if B is not None:
        bias = np.asarray(B)
        if bias.shape != (out.shape[1],):
            msg = f"B must have shape ({out.shape[1]},), got B of shape {bias.shape}"
            raise ValueError(msg)
        out = out + bias.reshape((-1,) + (1,) * rank).astype(out.dtype)
    return out


def conv_integer(
    x: ArrayLike,
    w: ArrayLike,
    x_zero_point: ArrayLike | None = None,
    w_zero_point: ArrayLike | None = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> NDArray[np.int32]:
    """ONNX ``ConvInteger``: :func:`mimo_conv.conv_integer` with ONNX's attributes.

    Exact for every int8/uint8 combination (onnxruntime is not for int8 ``x`` with uint8
    ``w``: see ``docs/frameworks.md``).

    Parameters
    ----------
    x, w : array_like of int8 or uint8
    x_zero_point : scalar, optional
    w_zero_point : scalar or array_like of shape (M,), optional
    auto_pad, dilations, group, kernel_shape, pads, strides
        ONNX's attributes.

    Returns
    -------
    ndarray of int32

    Examples
    --------
    >>> conv_integer(np.array([[[-28, 33, 125]]], np.int8), np.array([[[194, 236]]], np.uint8))
    array([[[ 2356, 35902]]], dtype=int32)
    """
    weight = np.asarray(w)
    rank = _check_kernel_shape(weight, kernel_shape)
    return mc_conv_integer(
        x, weight, 0 if x_zero_point is None else x_zero_point,
        0 if w_zero_point is None else w_zero_point, int_tuple(strides, "strides", rank),
        _padding(auto_pad, pads, rank), int_tuple(dilations, "dilations", rank), group,
    )  # fmt: skip


def requantize(
    accumulator: NDArray[Any],
    multiplier: NDArray[np.float64],
    zero_point: NDArray[Any],
) -> NDArray[Any]:
    """``saturate(round_half_to_even(accumulator * multiplier) + zero_point)`` in its dtype.

    Examples
    --------
    >>> requantize(np.array([5, 7, -300]), np.array(0.5), np.array(0, np.int8))
    array([   2,    4, -128], dtype=int8)
    """
    info = np.iinfo(zero_point.dtype)
    scaled = np.rint(accumulator.astype(np.float64) * multiplier) + int(zero_point)
    saturated: NDArray[Any] = np.clip(scaled, info.min, info.max).astype(zero_point.dtype)
    return saturated


def qlinear_conv(
    x: ArrayLike,
    x_scale: ArrayLike,
    x_zero_point: ArrayLike,
    w: ArrayLike,
    w_scale: ArrayLike,
    w_zero_point: ArrayLike,
    y_scale: ArrayLike,
    y_zero_point: ArrayLike,
    B: ArrayLike | None = None,  # noqa: N803
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> NDArray[Any]:
    """ONNX ``QLinearConv``: integer convolution, int32 bias, requantisation, saturation.

    ``acc = ConvInteger(x, w, x_zero_point, w_zero_point) + B`` exactly (``OverflowError``
    if an int32 accumulator could overflow), then ``y = saturate(round_half_to_even(acc *
    x_scale * w_scale / y_scale) + y_zero_point)`` in ``y_zero_point``'s dtype. The
    multiplier is formed in float64 from the float32 scales (``w_scale`` per tensor or per
    output channel); implementations that form it in float32 can differ by one unit where
    ``acc * multiplier`` is within float32 rounding of a half-integer.

    Parameters
    ----------
    x, w : array_like of int8 or uint8
    x_scale, y_scale : scalar
    w_scale : scalar or array_like of shape (M,)
    x_zero_point, w_zero_point, y_zero_point : scalar (``w_zero_point`` also per channel)
    B : array_like of int32, shape (M,), optional
    auto_pad, dilations, group, kernel_shape, pads, strides
        ONNX's attributes.

    Returns
    -------
    ndarray of ``y_zero_point``'s dtype

    Examples
    --------
    >>> qlinear_conv(np.array([[[10, 20, 30]]], np.uint8), 0.5, np.uint8(10),
    ...              np.array([[[1, 2]]], np.int8), 0.25, np.int8(0), 0.5, np.uint8(3),
    ...              B=np.array([4], np.int32))
    array([[[ 9, 17]]], dtype=uint8)
    """
    weight = np.asarray(w)
    rank = _check_kernel_shape(weight, kernel_shape)
    accumulator = conv_integer(
        x, weight, x_zero_point, w_zero_point, auto_pad=auto_pad, dilations=dilations,
        group=group, pads=pads, strides=strides,
    ).astype(np.int64)  # fmt: skip
    spread = (-1,) + (1,) * rank
    if B is not None:
        bias = np.asarray(B)
        if bias.dtype != np.int32 or bias.shape != (weight.shape[0],):
            msg = (
                f"B must be int32 of shape ({weight.shape[0]},), got B of dtype {bias.dtype} "
                f"and shape {bias.shape}"
            )
            raise ValueError(msg)
        shifted_x, shifted_weight = shifted_operands(x, weight, x_zero_point, w_zero_point)
        check_int32_accumulation(
            shifted_x, shifted_weight, int(np.abs(bias.astype(np.int64)).max(initial=0))
        )
        accumulator = accumulator + bias.astype(np.int64).reshape(spread)
    scales = [
        np.asarray(value, dtype=np.float32).astype(np.float64)
        for value in (x_scale, w_scale, y_scale)
    ]
    w_scales = scales[1].reshape(-1)
    if w_scales.size not in (1, weight.shape[0]):
        msg = (
            f"w_scale must be a scalar or one per output channel ({weight.shape[0]},), "
            f"got {w_scales.size} values"
        )
        raise ValueError(msg)
    multiplier = (scales[0] * w_scales / scales[2]).reshape(spread if w_scales.size > 1 else ())
    return requantize(accumulator, multiplier, np.asarray(y_zero_point))
