"""The ``"shift"`` method: shift-and-accumulate, one small matrix product per kernel tap.

The low-memory path. A convolution is a sum over kernel taps ``t`` of 1 x 1 convolutions of
shifted inputs:

    out[n, group] = sum_t weight[group, :, :, t] (C_out/groups, C_in/groups)
                          @ x_shifted_t[n, group] (C_in/groups, positions)

where ``x_shifted_t`` holds the input elements tap ``t`` meets at every output position.
No im2col buffer is built: each tap's shifted input is copied into one reused buffer the
size of the input chunk (a strided view cannot be handed to BLAS as it is), multiplied, and
added into the output.

Cost: the same ``N * C_out * prod(output_shape) * C_in/groups * prod(kernel)`` multiply-adds
as ``"gemm"``, as ``prod(kernel)`` products that are each ``prod(kernel)`` times smaller,
plus per tap one input-sized copy and one output-sized addition, each split over the worker
threads (:func:`~mimo_conv._core.columns.copy_taps`, :func:`~mimo_conv._core.workers.add_into`;
the same bits on every thread count).
Temporary memory does not grow with the kernel: one chunk of the shifted input
(``C_in * prod(output_shape) * itemsize`` bytes per image) and one chunk of a product
(``C_out * prod(output_shape) * itemsize``), chunked like ``"gemm"``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import Chunking, chunks
from mimo_conv._core.columns import copy_taps
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import tap_slices
from mimo_conv._core.workers import add_into
from mimo_conv._paths.gemm import reads_strided, window_copy_runs
from mimo_conv._paths.spec import PathSpec, Work


def shift_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Bytes of temporaries one image needs per output row: shifted input plus one product.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> shift_bytes_per_row(g, 4)  # (64 + 64 channels) * 56 positions * 4 bytes
    28672
    """
    inner = math.prod(geometry.output_shape[1:])
    return (geometry.in_channels + geometry.out_channels) * inner * itemsize


def correlate_shift(
    x_padded: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    chunking: Chunking | None = None,
) -> NDArray[Any]:
    """Cross-correlate as a sum over kernel taps of matrix products of shifted inputs.

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
    >>> correlate_shift(x, w, g)
    array([[[[19, 25],
             [37, 43]]]])
    """
    batch, groups = geometry.batch_size, geometry.groups
    output_shape = geometry.output_shape
    rows, inner = output_shape[0], math.prod(output_shape[1:])
    per_group, outputs_per_group = (
        geometry.in_channels_per_group,
        geometry.out_channels_per_group,
    )
    out = np.zeros((batch, geometry.out_channels, *output_shape), dtype=x_padded.dtype)
    if out.size == 0 or geometry.in_channels == 0:
        return out
    # (taps, groups, C_out/groups, C_in/groups): one contiguous matrix per tap and group.
    matrices = np.ascontiguousarray(
        np.moveaxis(weight.reshape((groups, outputs_per_group, per_group, -1)), -1, 0)
    )
    step = chunking or Chunking(max(1, batch), max(1, rows))
    # A view of the output with the groups split out and the inner positions flattened.
    out_view = out.reshape((batch, groups, outputs_per_group, rows, inner))
    for row_slice in chunks(rows, step.rows):
        height = row_slice.stop - row_slice.start
        views = tap_slices(geometry, row_slice.start, row_slice.stop)
        for image_slice in chunks(batch, step.images):
            count = image_slice.stop - image_slice.start
            source = x_padded[image_slice]
            shifted = np.empty(
                (count, geometry.in_channels, height, *output_shape[1:]), dtype=x_padded.dtype
            )
            operand = shifted.reshape((count, groups, per_group, height * inner))
            partial = np.empty((count, groups, outputs_per_group, height * inner), x_padded.dtype)
            target = out_view[image_slice, :, :, row_slice]
            whole: tuple[slice, slice] = (slice(None), slice(None))
            for number, (_, index) in enumerate(views):
                copy_taps(shifted, source, [(whole, index)])
                np.matmul(matrices[number], operand, out=partial)
                add_into(target, partial.reshape(target.shape))
            # Free this chunk before the next is allocated: two alive would double the peak.
            del shifted, operand, partial
    return out


def shift_work(geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> Work:
    """Count the work: per tap one input-sized copy, one product and one addition.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> shift_work(g, 4, Chunking(2, 56)).calls  # 4 chunks of 9 taps, 3 calls each
    108
    """
    g = geometry
    taps = math.prod(g.kernel_shape)
    positions = g.batch_size * math.prod(g.output_shape)
    count = chunking.count(g.batch_size, g.output_shape[0])
    # Per tap: copy the shifted input (read + write), in rows of the last output axis; add
    # the product (2 reads, 1 write), one contiguous run per image chunk and channel.
    copies = 2 * taps * positions * g.in_channels * itemsize
    # The kernels, taps moved first: one copy whose reads jump by the tap count.
    kernels = 2 * g.out_channels * g.in_channels_per_group * taps * itemsize
    return Work(
        bytes_moved=copies + 3 * taps * positions * g.out_channels * itemsize + kernels,
        calls=count * 3 * taps,
        products=count * taps * g.groups,
        product_rows=g.out_channels_per_group,
        product_inner=g.in_channels_per_group,
        product_columns=min(chunking.rows, max(1, g.output_shape[0]))
        * math.prod(g.output_shape[1:]),
        strided_bytes=(copies if reads_strided(g) else 0) + kernels,
        copy_runs=window_copy_runs(g),
        note="GEMM per tap",
    )


#: The record of this path (:mod:`mimo_conv._paths.registry`).
PATH = PathSpec(
    name="shift",
    correlate=correlate_shift,
    summary="sums one small product per kernel tap (the low-memory path)",
    chunk_name="shifted input and product of one output row",
    bytes_per_row=shift_bytes_per_row,
    granularity="rows",
    work=shift_work,
    weight_copy=True,
)
