"""Exercise 6: a convolution is a matrix product with a fixed, sparse matrix.

:func:`conv_matrix` writes the convolution as the dense (Toeplitz-like) matrix ``A`` with
``conv(x).ravel() == A @ x.ravel()``: the kernel copied into one row per output element.
Good for small teaching cases and for seeing that the transpose of ``A`` is the backward
pass with respect to the input. The other matrix form, im2col (the windows as columns,
multiplied by the kernels as rows), is :func:`mimo_conv.unfold`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._core.arguments import IntOrInts, PaddingArg
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.geometry_cache import build_geometry
from mimo_conv._core.memory import check_output_fits
from mimo_conv._core.operands import as_numeric_array
from mimo_conv._core.windows import pad_constant, pad_input, window_view


def _source_indices(geometry: ConvGeometry) -> NDArray[Any]:
    """For every window element, the flat index of the input element it reads, or -1.

    Padding the array of indices with the call's ``padding_mode`` tells where each padded
    element comes from (-1 for a zero), so every padding mode is handled by the same code
    as the convolution itself.
    """
    shape = (geometry.batch_size, geometry.in_channels, *geometry.input_shape)
    indices = np.arange(math.prod(shape), dtype=np.intp).reshape(shape)
    if geometry.padding_mode == "zeros":
        padded = pad_constant(indices, geometry, -1)
    else:
        padded = pad_input(indices, geometry)
    return window_view(padded, geometry)


def conv_matrix(
    weight: ArrayLike,
    input_shape: tuple[int, ...] | list[int],
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
) -> NDArray[Any]:
    """Return the matrix ``A`` of a convolution: ``conv(x).ravel() == A @ x.ravel()``.

    Parameters
    ----------
    weight : array_like of shape (C_out, C_in // groups, *kernel)
        The kernels.
    input_shape : tuple of int
        Shape of ``x``: ``(N, C_in, *spatial)`` or ``(C_in, *spatial)``.
    stride, padding, dilation, groups, padding_mode
        As in :func:`mimo_conv.conv`. Every padding mode is linear in ``x``, so each has
        a matrix; with ``"reflect"`` and the like an entry may sum two taps.

    Returns
    -------
    ndarray of shape (prod(output shape), prod(input_shape))
        Row ``r`` holds the kernel taps that output element ``r`` (in C order of
        :func:`mimo_conv.output_shape`) multiplies each input element by; zero elsewhere.
        The dtype is the weight's (integers as int64).

    Notes
    -----
    ``A`` is mostly zeros: each row has at most ``C_in / groups * prod(kernel)`` non-zero
    entries, so it costs ``prod(out_shape) * prod(input_shape)`` elements of memory
    against the weight's few. ``A.T`` maps the gradient of the output to the gradient of
    the input (the "transposed convolution"). Without padding and with stride 1, a 1-d
    single-channel ``A`` is a Toeplitz matrix (constant along its diagonals), and a 2-d
    one is block Toeplitz with Toeplitz blocks.

    Examples
    --------
    >>> A = conv_matrix([[[1, 2, 3]]], (1, 5))
    >>> A
    array([[1, 2, 3, 0, 0],
           [0, 1, 2, 3, 0],
           [0, 0, 1, 2, 3]])

    The book's 2 x 2 kernel on a 3 x 3 input, and the check against the engine:

    >>> import mimo_conv as mc
    >>> K = np.array([[[[0, 1], [2, 3]]]])
    >>> A = conv_matrix(K, (1, 3, 3))
    >>> A.shape
    (4, 9)
    >>> X = np.arange(9).reshape(1, 3, 3)
    >>> A @ X.ravel()
    array([19, 25, 37, 43])
    >>> np.array_equal(A @ X.ravel(), mc.conv(X, K).ravel())
    True
    """
    weight_array = as_numeric_array(weight, "weight")
    geometry = build_geometry(
        tuple(input_shape),
        weight_array.shape,
        None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    dtype = weight_array.dtype
    if dtype.kind in "iu":
        dtype = np.dtype(np.int64)
    rows = math.prod(geometry.out_shape)
    columns = math.prod(input_shape)
    check_output_fits((rows, columns), dtype)
    matrix = np.zeros((rows, columns), dtype=dtype)

    g = geometry
    groups_count = g.groups
    out_spatial = g.output_shape
    # sources: (N, G, 1, C_in/G, *out, *kernel) flat input indices (-1 for a zero).
    sources = _source_indices(geometry).reshape(
        (g.batch_size, groups_count, 1, g.in_channels_per_group, *out_spatial, *g.kernel_shape)
    )
    # targets: (N, G, C_out/G, 1, *out, 1...) flat output indices.
    out_index = np.arange(rows, dtype=np.intp).reshape(
        (g.batch_size, groups_count, g.out_channels_per_group, *out_spatial)
    )
    targets = out_index.reshape((*out_index.shape[:3], 1, *out_spatial, *(1,) * g.spatial_dims))
    # taps: (1, G, C_out/G, C_in/G, 1..., *kernel), the value each window element meets.
    taps = weight_array.astype(dtype, copy=False).reshape(
        (
            1,
            groups_count,
            g.out_channels_per_group,
            g.in_channels_per_group,
            *(1,) * g.spatial_dims,
            *g.kernel_shape,
        )
    )
    sources_all, targets_all, taps_all = np.broadcast_arrays(sources, targets, taps)
    real = sources_all >= 0
    # np.add.at sums repeated (row, column) pairs, which reflect-like padding produces.
    np.add.at(matrix, (targets_all[real], sources_all[real]), taps_all[real])
    return matrix
