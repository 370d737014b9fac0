"""TensorFlow's ``tf.nn`` convolutions, computed by mimo_conv with TF's argument names.

TensorFlow's conventions, as each function here takes them:

* ``data_format``: channels last by default (``"NWC"``, ``"NHWC"``, ``"NDHWC"``), or
  channels first (``"NCW"``, ``"NCHW"``, ``"NCDHW"``);
* filters: spatial axes first, then in and out channels (``"HWIO"``); for
  ``depthwise_conv2d`` ``(kH, kW, C, multiplier)``; for the transposed convolutions
  ``(*k, out_channels, in_channels)``;
* ``strides`` and ``dilations``: one int, one per spatial axis, or one per axis of the input
  (``N`` and ``C`` entries must then be 1);
* ``padding``: ``"SAME"`` (output ``ceil(in / stride)``, the odd element after, at every
  stride), ``"VALID"``, or explicit: one ``[before, after]`` pair per input axis in
  ``data_format``'s order (``[[0, 0], [top, bottom], [left, right], [0, 0]]`` for NHWC).

TensorFlow documents a stride and a dilation both above 1 as unsupported (2.21's CPU
kernel computes it) and runs channels-first ``conv2d`` only on GPUs; both are computed here
(``docs/frameworks.md``).

Examples
--------
>>> import numpy as np
>>> conv2d(np.ones((1, 4, 4, 1)), np.ones((2, 2, 1, 1)), strides=2, padding="SAME")[0, :, :, 0]
array([[4., 4.],
       [4., 4.]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._core.arguments import IntOrInts
from mimo_conv._core.padding_rules import same_padding
from mimo_conv._ops.conv import conv
from mimo_conv._ops.transpose import conv_transpose

__all__ = [
    "atrous_conv2d",
    "conv1d",
    "conv2d",
    "conv2d_transpose",
    "conv3d",
    "conv3d_transpose",
    "depthwise_conv2d",
]

PaddingLike = str | Sequence[Sequence[int]]
_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def _data_format(data_format: str | None, rank: int) -> str:
    letters = _SPATIAL[rank]
    if data_format is None:
        return "N" + letters + "C"
    allowed = ("N" + letters + "C", "NC" + letters)
    if data_format not in allowed:
        msg = f"data_format must be one of {allowed!r}, got {data_format!r}"
        raise ValueError(msg)
    return data_format


def _per_axis(value: IntOrInts | None, name: str, data_format: str) -> tuple[int, ...]:
    """TF's int / per spatial axis / per input axis forms, as one int per spatial axis."""
    letters = [c for c in data_format if c not in "NC"]
    rank = len(letters)
    if value is None:
        return (1,) * rank
    items = [value] if isinstance(value, (int, np.integer)) else list(value)
    if len(items) == 1:
        items = items * rank
    if len(items) == rank + 2:
        outer = [items[data_format.index(c)] for c in "NC"]
        if any(item != 1 for item in outer):
            msg = f"{name} must be 1 along the batch and channel axes, got {value!r}"
            raise ValueError(msg)
        items = [items[data_format.index(c)] for c in letters]
    if len(items) != rank:
        msg = f"{name} must be an int or a list of 1, {rank} or {rank + 2} ints, got {value!r}"
        raise ValueError(msg)
    return tuple(int(item) for item in items)


def _padding(padding: PaddingLike, data_format: str) -> Any:
    if isinstance(padding, str):
        if padding not in ("SAME", "VALID"):
            msg = f"padding must be 'SAME', 'VALID' or explicit pairs, got {padding!r}"
            raise ValueError(msg)
        return padding.lower()
    pairs = [tuple(int(item) for item in pair) for pair in padding]
    if len(pairs) != len(data_format) or any(len(pair) != 2 for pair in pairs):
        msg = (
            f"padding must have one [before, after] pair per axis of {data_format!r}, "
            f"got {padding!r}"
        )
        raise ValueError(msg)
    if any(pairs[data_format.index(c)] != (0, 0) for c in "NC"):
        msg = f"padding must be [0, 0] along the batch and channel axes, got {padding!r}"
        raise ValueError(msg)
    return tuple(pairs[data_format.index(c)] for c in data_format if c not in "NC")


def _conv(
    x: ArrayLike, filters: ArrayLike, strides: IntOrInts, padding: PaddingLike,
    data_format: str | None, dilations: IntOrInts | None, rank: int,
) -> NDArray[Any]:  # fmt: skip
    layout = _data_format(data_format, rank)
    filters_array = np.asarray(filters)
    x_array = np.asarray(x)
    channels = x_array.shape[layout.index("C")] if x_array.ndim == rank + 2 else None
    groups = 1
    if channels is not None and filters_array.ndim == rank + 2 and filters_array.shape[-2]:
        groups = max(channels // filters_array.shape[-2], 1)  # TF's implied groups
    return conv(
        x_array, filters_array, None, _per_axis(strides, "strides", layout),
        _padding(padding, layout), _per_axis(dilations, "dilations", layout), groups,
        layout=layout, weight_layout=_SPATIAL[rank] + "IO",
    )  # fmt: skip


def conv1d(
    input: ArrayLike,  # noqa: A002 - TensorFlow's argument name
    filters: ArrayLike,
    stride: IntOrInts,
    padding: PaddingLike,
    data_format: str = "NWC",
    dilations: IntOrInts | None = None,
    name: str | None = None,
) -> NDArray[Any]:
    """``tf.nn.conv1d``: ``input`` ``NWC`` (or ``NCW``), ``filters`` ``(k, I, O)``.

    Examples
    --------
    >>> conv1d(np.ones((1, 5, 1)), np.ones((3, 1, 1)), stride=2, padding="SAME")[0, :, 0]
    array([2., 3., 2.])
    """
    del name
    return _conv(input, filters, stride, padding, data_format, dilations, 1)


def conv2d(
    input: ArrayLike,  # noqa: A002
    filters: ArrayLike,
    strides: IntOrInts,
    padding: PaddingLike,
    data_format: str = "NHWC",
    dilations: IntOrInts | None = None,
    name: str | None = None,
) -> NDArray[Any]:
    """``tf.nn.conv2d``: ``input`` ``NHWC`` (or ``NCHW``), ``filters`` ``(kH, kW, I, O)``.

    ``I`` smaller than the input's channels is a grouped convolution, as in TensorFlow.

    Examples
    --------
    >>> conv2d(np.ones((1, 3, 3, 2)), np.ones((3, 3, 2, 1)), strides=1,
    ...        padding=[[0, 0], [1, 1], [1, 1], [0, 0]])[0, :, :, 0]
    array([[ 8., 12.,  8.],
           [12., 18., 12.],
           [ 8., 12.,  8.]])
    """
    del name
    return _conv(input, filters, strides, padding, data_format, dilations, 2)


def conv3d(
    input: ArrayLike,  # noqa: A002
    filters: ArrayLike,
    strides: IntOrInts,
    padding: PaddingLike,
    data_format: str = "NDHWC",
    dilations: IntOrInts | None = None,
    name: str | None = None,
) -> NDArray[Any]:
    """``tf.nn.conv3d``: ``input`` ``NDHWC`` (or ``NCDHW``), ``filters`` ``(kD, kH, kW, I, O)``.

    Examples
    --------
    >>> conv3d(np.ones((1, 2, 2, 2, 1)), np.ones((2, 2, 2, 1, 3)), strides=[1, 1, 1, 1, 1],
    ...        padding="VALID").shape
    (1, 1, 1, 1, 3)
    """
    del name
    return _conv(input, filters, strides, padding, data_format, dilations, 3)


def depthwise_conv2d(
    input: ArrayLike,  # noqa: A002
    filter: ArrayLike,  # noqa: A002
    strides: IntOrInts,
    padding: PaddingLike,
    data_format: str | None = None,
    dilations: IntOrInts | None = None,
    name: str | None = None,
) -> NDArray[Any]:
    """``tf.nn.depthwise_conv2d``: ``filter`` ``(kH, kW, C, multiplier)``.

    Output channel ``c * multiplier + m`` is input channel ``c`` correlated with
    ``filter[:, :, c, m]``: a grouped convolution with ``groups = C``.

    Examples
    --------
    >>> x = np.stack([np.ones((3, 3)), 2 * np.ones((3, 3))], axis=-1)[None]
    >>> depthwise_conv2d(x, np.ones((2, 2, 2, 2)), strides=[1, 1, 1, 1], padding="VALID")[0, 0, 0]
    array([4., 4., 8., 8.])
    """
    del name
    layout = _data_format(data_format, 2)
    kernel = np.asarray(filter)
    if kernel.ndim != 4:
        msg = f"filter must have 4 dimensions (kH, kW, C, multiplier), got shape {kernel.shape}"
        raise ValueError(msg)
    height, width, channels, multiplier = kernel.shape
    return conv(
        input, kernel.reshape(height, width, 1, channels * multiplier), None,
        _per_axis(strides, "strides", layout), _padding(padding, layout),
        _per_axis(dilations, "dilations", layout), channels, layout=layout, weight_layout="HWIO",
    )  # fmt: skip


def _transpose(
    x: ArrayLike, filters: ArrayLike, output_shape: Sequence[int], strides: IntOrInts,
    padding: PaddingLike, data_format: str | None, dilations: IntOrInts | None, rank: int,
) -> NDArray[Any]:  # fmt: skip
    """Compute the input gradient of the forward ``conv{n}d`` whose input has ``output_shape``.

    That is :func:`mimo_conv.conv_transpose` with the forward call's padding (``SAME``
    worked out on ``output_shape``) and ``output_size=output_shape``, after TensorFlow's
    check that the forward call maps ``output_shape`` to ``input``'s shape.
    """
    layout = _data_format(data_format, rank)
    letters = _SPATIAL[rank]
    x_array, kernel = np.asarray(x), np.asarray(filters)
    shape = [int(item) for item in np.asarray(output_shape).reshape(-1)]
    if len(shape) != rank + 2 or kernel.ndim != rank + 2 or x_array.ndim != rank + 2:
        msg = (
            f"output_shape, input and filters must have {rank + 2} dimensions, got "
            f"output_shape={shape}, input of shape {x_array.shape}, filters of shape "
            f"{kernel.shape}"
        )
        raise ValueError(msg)
    steps = _per_axis(strides, "strides", layout)
    spacing = _per_axis(dilations, "dilations", layout)
    out_spatial = tuple(shape[layout.index(c)] for c in letters)
    taps = kernel.shape[:rank]
    given = _padding(padding, layout)
    pairs = (
        same_padding(out_spatial, taps, spacing, steps) if given == "same"
        else ((0, 0),) * rank if given == "valid" else given
    )  # fmt: skip
    forward = tuple(
        (size + low + high - d * (k - 1) - 1) // s + 1
        for size, (low, high), d, k, s in zip(out_spatial, pairs, spacing, taps, steps, strict=True)
    )
    in_spatial = tuple(x_array.shape[layout.index(c)] for c in letters)
    if forward != in_spatial or shape[layout.index("C")] != kernel.shape[rank]:
        msg = (
            f"output_shape {shape} must be the input of a conv{rank}d whose output has input's "
            f"shape {x_array.shape} (the forward call gives spatial {forward}) and "
            f"filters' out_channels ({kernel.shape[rank]}) channels"
        )
        raise ValueError(msg)
    return conv_transpose(
        x_array, kernel, None, steps, pairs, 0, 1, spacing, output_size=out_spatial,
        layout=layout, weight_layout=letters + "OI",
    )  # fmt: skip


def conv2d_transpose(
    input: ArrayLike,  # noqa: A002
    filters: ArrayLike,
    output_shape: Sequence[int],
    strides: IntOrInts,
    padding: PaddingLike = "SAME",
    data_format: str = "NHWC",
    dilations: IntOrInts | None = None,
    name: str | None = None,
) -> NDArray[Any]:
    """``tf.nn.conv2d_transpose``: the input gradient of ``conv2d``.

    ``filters`` is ``(kH, kW, out_channels, in_channels)``, which is the forward
    ``conv2d``'s ``HWIO`` kernel; ``output_shape`` is the whole output shape (the forward
    input's), and ``input`` must have the forward output's shape for it (``ValueError``
    otherwise, as TensorFlow's check).

    Examples
    --------
    >>> conv2d_transpose(np.ones((1, 2, 2, 1)), np.ones((2, 2, 1, 1)), [1, 4, 4, 1],
    ...                  strides=2)[0, :, :, 0]
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.]])
    """
    del name
    return _transpose(input, filters, output_shape, strides, padding, data_format, dilations, 2)


def conv3d_transpose(
    input: ArrayLike,  # noqa: A002
    filters: ArrayLike,
    output_shape: Sequence[int],
    strides: IntOrInts,
    padding: PaddingLike = "SAME",
    data_format: str = "NDHWC",
    dilations: IntOrInts | None = None,
    name: str | None = None,
) -> NDArray[Any]:
    """``tf.nn.conv3d_transpose``: ``filters`` ``(kD, kH, kW, out_channels, in_channels)``.

    Examples
    --------
    >>> conv3d_transpose(np.ones((1, 1, 1, 1, 2)), np.ones((2, 2, 2, 3, 2)), [1, 2, 2, 2, 3],
    ...                  strides=2).shape
    (1, 2, 2, 2, 3)
    """
    del name
    return _transpose(input, filters, output_shape, strides, padding, data_format, dilations, 3)


def atrous_conv2d(
    value: ArrayLike,
    filters: ArrayLike,
    rate: int,
    padding: str,
    name: str | None = None,
) -> NDArray[Any]:
    """``tf.nn.atrous_conv2d``: ``conv2d`` (NHWC, HWIO, stride 1) with dilation ``rate``.

    Examples
    --------
    >>> atrous_conv2d(np.arange(5.0).reshape(1, 1, 5, 1), np.ones((1, 2, 1, 1)), 2,
    ...               "VALID")[0, 0, :, 0]
    array([2., 4., 6.])
    """
    del name
    if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool) or rate < 1:
        msg = f"rate must be an int >= 1, got {rate!r}"
        raise ValueError(msg)
    return _conv(value, filters, 1, padding, "NHWC", int(rate), 2)
