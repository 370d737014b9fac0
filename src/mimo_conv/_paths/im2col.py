"""The ``"im2col"`` method: copy the windows into a matrix, then one matrix product.

The textbook's exercise 6 answered: :func:`~mimo_conv._core.columns.unfold_padded` copies each
window of the padded input into a column, ``(N, C_in * prod(k), L)``; the kernels,
flattened to ``(C_out, C_in/groups * prod(k))``, multiply those columns in one
``np.matmul`` (one product per group, broadcast over the batch). This is how GEMM-based
convolution libraries work (Chellapilla et al. 2006; Caffe's ``im2col``).

Cost: ``N * C_out * L * C_in/groups * prod(k)`` multiply-adds in BLAS for floats (object
and integer dtypes use NumPy's own loops); a temporary column matrix of
``C_in * prod(k) * L`` elements per image, about ``prod(k) / prod(stride)`` times the
input. Images are taken a few at a time, as many as the plan chose
(:mod:`mimo_conv._engine.plan`), so that the column matrix stays within the memory budget;
one image whose columns exceed the budget makes the path infeasible, and the planner says
so before any work (the ``"gemm"`` path also splits an image by rows).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import Chunking, chunks
from mimo_conv._core.columns import unfold_padded
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._paths.gemm import reads_strided, window_copy_runs
from mimo_conv._paths.spec import PathSpec, Work


def correlate_im2col(
    x_padded: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    chunking: Chunking | None = None,
) -> NDArray[Any]:
    """Cross-correlate as ``weight_matrix @ unfold(x)``, one product per group.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C_in, *padded_shape)
        The padded input, in the compute dtype.
    weight : ndarray of shape (C_out, C_in // groups, *kernel_shape)
        The kernels, in the compute dtype.
    geometry : ConvGeometry
    chunking : Chunking, optional
        Images and output rows per chunk, as the plan chose them; one chunk when None.

    Returns
    -------
    ndarray of shape (N, C_out, *output_shape)
        A new C-contiguous array in the compute dtype, without bias.

    Examples
    --------
    >>> x = np.arange(9).reshape(1, 1, 3, 3)
    >>> w = np.array([[[[0, 1], [2, 3]]]])
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3, 3),
    ...     kernel_shape=(2, 2), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> correlate_im2col(x, w, g)
    array([[[[19, 25],
             [37, 43]]]])
    """
    batch, groups = geometry.batch_size, geometry.groups
    columns = math.prod(geometry.output_shape)
    rows_per_group = geometry.terms_per_output
    matrices = weight.reshape((groups, geometry.out_channels_per_group, rows_per_group))
    out = np.empty(
        (batch, groups, geometry.out_channels_per_group, columns),
        dtype=np.result_type(x_padded, weight),
    )
    images = chunking.images if chunking else max(1, batch)
    for part in chunks(batch, images):
        # (n, C_in * prod(k), L): channel-major rows, so each group's rows are contiguous.
        cols = unfold_padded(x_padded[part], geometry)
        cols = cols.reshape((part.stop - part.start, groups, rows_per_group, columns))
        out[part] = np.matmul(matrices, cols)
        del cols  # before the next chunk's columns are allocated
    return out.reshape((batch, geometry.out_channels, *geometry.output_shape))


def im2col_bytes_per_image(geometry: ConvGeometry, itemsize: int) -> int:
    """Temporary bytes per image: its column matrix and the product's result.

    ``(C_in * prod(k) + C_out) * L`` elements: the product's result is a temporary too
    until it is copied into the output.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=4, in_channels=2, out_channels=8, groups=1, input_shape=(5, 5),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> im2col_bytes_per_image(g, 8)  # (2 channels * 9 taps + 8 outputs) * 9 positions * 8
    1872
    """
    rows = geometry.in_channels * math.prod(geometry.kernel_shape) + geometry.out_channels
    return rows * math.prod(geometry.output_shape) * itemsize


def im2col_bytes_per_output_row(geometry: ConvGeometry, itemsize: int) -> int:
    """:func:`im2col_bytes_per_image` per output row (the path chunks whole images only).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=4, in_channels=2, out_channels=8, groups=1, input_shape=(5, 5),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> im2col_bytes_per_output_row(g, 8)  # a third of the image's 1872 bytes
    624
    """
    rows = geometry.in_channels * math.prod(geometry.kernel_shape) + geometry.out_channels
    return rows * math.prod(geometry.output_shape[1:]) * itemsize


def im2col_work(geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> Work:
    """Count the work: unfold's column copy, one product per chunk, its result copied.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=4, in_channels=2, out_channels=8, groups=1, input_shape=(5, 5),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> im2col_work(g, 8, Chunking(2, 3)).calls  # 2 chunks: unfold, product, copy
    6
    """
    g = geometry
    taps = math.prod(g.kernel_shape)
    positions = g.batch_size * math.prod(g.output_shape)
    count = chunking.count(g.batch_size, 1)
    columns = 2 * positions * g.in_channels * taps * itemsize
    return Work(
        bytes_moved=columns + 2 * positions * g.out_channels * itemsize,
        calls=3 * count,
        products=count * g.groups,
        product_rows=g.out_channels_per_group,
        product_inner=g.terms_per_output,
        product_columns=math.prod(g.output_shape),
        strided_bytes=columns if reads_strided(g) else 0,
        copy_runs=window_copy_runs(g),
        window_views=count,
        note="unfold + GEMM per image chunk",
    )


#: The record of this path (:mod:`mimo_conv._paths.registry`).
PATH = PathSpec(
    name="im2col",
    correlate=correlate_im2col,
    summary="builds the column matrix of whole images (the textbook's exercise)",
    chunk_name="im2col column matrix of one image",
    bytes_per_row=im2col_bytes_per_output_row,
    granularity="images",
    work=im2col_work,
)
