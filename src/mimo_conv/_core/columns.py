"""Windows as matrix columns and back: the shared cores of im2col and of its adjoint.

:func:`unfold_padded` copies every window of a padded batched input into one column
(the im2col buffer of the ``"im2col"`` path, the weight gradient and ``mc.unfold``);
:func:`fold_taps` adds every tap back where it was read from (the input gradient's
scatter and ``mc.fold``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import window_view


def unfold_padded(x_padded: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """Copy the windows of a padded batched input into columns: ``(N, C * prod(k), L)``.

    The shared core of :func:`unfold` and of the ``"im2col"`` method: one strided view
    (:func:`~mimo_conv._core.windows.window_view`) and one copy of ``N * C * prod(k) * L``
    elements.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(4,),
    ...     kernel_shape=(2,), stride=(2,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> unfold_padded(np.arange(4).reshape(1, 1, 4), g)
    array([[[0, 2],
            [1, 3]]])
    """
    windows = window_view(x_padded, geometry)
    dims = geometry.spatial_dims
    # (N, C, *out, *k) -> (N, C, *k, *out): taps become rows, positions columns.
    order = (0, 1, *range(2 + dims, 2 + 2 * dims), *range(2, 2 + dims))
    rows = x_padded.shape[1] * math.prod(geometry.kernel_shape)
    columns = math.prod(geometry.output_shape)
    return windows.transpose(order).reshape((x_padded.shape[0], rows, columns))


def fold_taps(
    cols: NDArray[Any],
    padded_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> NDArray[Any]:
    """Add every tap of every window back into the padded input: the adjoint of unfold.

    Parameters
    ----------
    cols : ndarray of shape (N, C, prod(kernel_shape), *positions)
        One value per channel, tap and window position.
    padded_shape : tuple of int
        Spatial shape of the result; ``p * stride + t * dilation`` must lie inside it.
    kernel_shape, stride, dilation : tuple of int

    Returns
    -------
    ndarray of shape (N, C, *padded_shape)
        In the dtype of ``cols``. One vectorised strided ``+=`` per kernel tap:
        ``N * C * prod(k) * prod(positions)`` additions, no temporary.

    Examples
    --------
    >>> fold_taps(np.array([[[[1, 2], [10, 20]]]]), (3,), (2,), (1,), (1,))
    array([[[ 1, 12, 20]]])
    """
    positions = cols.shape[3:]
    out = np.zeros((*cols.shape[:2], *padded_shape), dtype=cols.dtype)
    for flat, taps in enumerate(np.ndindex(*kernel_shape)):
        window = tuple(
            slice(t * d, t * d + s * (p - 1) + 1, s) if p else slice(0, 0)
            for t, d, s, p in zip(taps, dilation, stride, positions, strict=True)
        )
        out[(slice(None), slice(None), *window)] += cols[:, :, flat]
    return out
