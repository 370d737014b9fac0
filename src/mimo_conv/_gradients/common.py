"""What the three gradients share: validating a backward call against its forward call."""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.geometry_cache import build_geometry


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
    """Validate a backward call: the forward call's checks, then ``grad_output``'s shape.

    Examples
    --------
    >>> gradient_geometry((1, 1, 4), (1, 1, 2), np.ones((1, 1, 3)), stride=1, padding=0,
    ...                   dilation=1, groups=1, padding_mode="zeros").out_shape
    (1, 1, 3)
    >>> gradient_geometry((1, 1, 4), (1, 1, 2), np.ones((1, 1, 2)), stride=1, padding=0,
    ...                   dilation=1, groups=1, padding_mode="zeros")
    Traceback (most recent call last):
    ...
    ValueError: grad_output must have the shape of the convolution's output, (1, 1, 3) ...
    """
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
