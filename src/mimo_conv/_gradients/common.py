"""What the three gradients share: validating a backward call against its forward call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.arguments import as_int, build_geometry
from mimo_conv._core.geometry import ConvGeometry

IntOrInts = int | Sequence[int]


PaddingArg = int | str | Sequence[Any]


def as_shape(value: object, name: str) -> tuple[int, ...]:
    """Return a shape given as a sequence of non-negative ints as a tuple.

    Examples
    --------
    >>> as_shape([1, 3, 5, 5], "input_shape")
    (1, 3, 5, 5)
    >>> as_shape(5, "input_shape")
    Traceback (most recent call last):
    ...
    TypeError: input_shape must be a sequence of ints (a shape), got 5 of type int
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, Sequence) or isinstance(value, str):
        kind = type(value).__name__
        msg = f"{name} must be a sequence of ints (a shape), got {value!r} of type {kind}"
        raise TypeError(msg)
    shape = tuple(as_int(item, name) for item in value)
    if any(item < 0 for item in shape):
        msg = f"{name} must have non-negative sizes, got {shape}"
        raise ValueError(msg)
    return shape


def gradient_geometry(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    grad_output: NDArray[Any],
    *,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
    padding_mode: object,
    spatial_dims: int | None = None,
) -> ConvGeometry:
    """Validate a backward call: the forward call's checks, then ``grad_output``'s shape."""
    geometry = build_geometry(
        x_shape,
        weight_shape,
        None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
        spatial_dims=spatial_dims,
    )
    if grad_output.shape != geometry.out_shape:
        msg = (
            f"grad_output must have the shape of the convolution's output, "
            f"{geometry.out_shape} for x of shape {x_shape} and weight of shape "
            f"{weight_shape} (stride={geometry.stride}, padding={geometry.padding}, "
            f"dilation={geometry.dilation}), got grad_output of shape {grad_output.shape}"
        )
        raise ValueError(msg)
    return geometry
