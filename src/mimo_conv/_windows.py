"""Shared window helpers: padding the input and viewing every window without copying.

Each computational path starts from :func:`pad_input` and most of them from
:func:`window_view`, so stride, dilation and every padding mode are handled in one place.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from mimo_conv._geometry import ConvGeometry

#: How each ``padding_mode`` is spelled for ``np.pad`` (``"zeros"`` is done by hand so that
#: object arrays are padded with the Python int 0, not ``np.int64(0)``).
NUMPY_PAD_MODES: dict[str, Literal["reflect", "edge", "wrap", "symmetric"]] = {
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",
}


def pad_input(x: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """Pad the spatial axes of a batched input ``(N, C, *spatial)``.

    Returns ``x`` itself when there is no padding (callers never write to it), otherwise a
    new array of shape ``(N, C, *geometry.padded_shape)``. Costs one copy of the padded
    input.

    Examples
    --------
    >>> x = np.arange(3).reshape(1, 1, 3)
    >>> g = ConvGeometry(1, 1, 1, 1, (3,), (1,), (1,), (1,), ((2, 1),), "reflect")
    >>> pad_input(x, g)
    array([[[2, 1, 0, 1, 2, 1]]])
    """
    if not geometry.is_padded:
        return x
    widths = ((0, 0), (0, 0), *geometry.padding)
    if geometry.padding_mode == "zeros":
        padded = np.zeros(x.shape[:2] + geometry.padded_shape, dtype=x.dtype)
        inside = tuple(
            slice(before, before + size)
            for (before, _), size in zip(geometry.padding, geometry.input_shape, strict=True)
        )
        padded[(slice(None), slice(None), *inside)] = x
        return padded
    padded_copy: NDArray[Any] = np.pad(x, widths, mode=NUMPY_PAD_MODES[geometry.padding_mode])
    return padded_copy


def window_view(x_padded: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """View every window of a padded input, without copying.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C, *padded_shape)
        Output of :func:`pad_input`.
    geometry : ConvGeometry

    Returns
    -------
    ndarray of shape (N, C, *output_shape, *kernel_shape)
        A read-only strided view: element ``[n, c, *p, *t]`` is the input element that
        kernel tap ``t`` meets when the kernel sits at output position ``p``, that is
        ``x_padded[n, c, *(p * stride + t * dilation)]``. Stride and dilation are applied by
        slicing the view of ``sliding_window_view``, so the cost is O(1) in time and memory.

    Examples
    --------
    >>> x = np.arange(5).reshape(1, 1, 5)
    >>> g = ConvGeometry(1, 1, 1, 1, (5,), (2,), (2,), (2,), ((0, 0),))
    >>> window_view(x, g)[0, 0]
    array([[0, 2],
           [2, 4]])
    """
    dims = geometry.spatial_dims
    spatial_axes = tuple(range(2, 2 + dims))
    windows = sliding_window_view(x_padded, geometry.window_extent, axis=spatial_axes)
    positions = tuple(slice(None, None, step) for step in geometry.stride)
    taps = tuple(slice(None, None, spacing) for spacing in geometry.dilation)
    return windows[(slice(None), slice(None), *positions, *taps)]
