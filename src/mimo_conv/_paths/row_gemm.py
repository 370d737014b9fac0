"""The ``"row_gemm"`` path: im2col over the later kernel axes, one GEMM per first-axis tap.

(Called ``"fold"`` before this release; ``method="fold"`` still selects it, with a
``DeprecationWarning``: :func:`mimo_conv.fold` is col2im, another thing.)

``"gemm"`` copies the input ``prod(kernel)`` times (once per tap) to build its im2col
buffer; on large images that copy, which NumPy does on one core, costs about as much as the
matrix product. With stride 1 along the first spatial axis, the taps of the first kernel
axis need no copy: the buffer is built for the other kernel axes only, over every padded row,
and kernel row ``i`` reads it shifted by ``i * dilation[0]`` rows - a strided view that BLAS
takes as it is. The result is a sum of ``kernel[0]`` products,

    out[n, group] = sum_i weight[group, :, :, i] (C_out/groups, C_in/groups * rest)
                          @ columns[n, group, :, rows i*d .. i*d + out_rows] (..., positions)

For a 1-d convolution the "buffer" is the padded input itself: no copy at all.

Cost: the same multiply-adds as ``"gemm"``, in ``kernel[0]`` products with an inner dimension
``kernel[0]`` times smaller; ``prod(kernel[1:])`` input copies instead of ``prod(kernel)``;
plus ``kernel[0] - 1`` output-sized additions. The copies and the additions are split over
the worker threads (:func:`~mimo_conv._core.columns.copy_taps`,
:func:`~mimo_conv._core.workers.add_into`), each element getting the operations it gets on one
thread, in the same order: the same bits on every thread count. Temporary memory: one chunk
of the buffer,
``C_in * prod(kernel[1:]) * (rows + dilation[0] * (kernel[0] - 1)) * prod(output[1:])``
elements, and one chunk of a product, chunked like ``"gemm"``. With a stride above 1 along
the first axis the shifted rows are not a strided view of the buffer any more, and the call
is computed by ``"gemm"``.
"""

from __future__ import annotations

import math
from itertools import product
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import Chunking, chunks
from mimo_conv._core.columns import copy_taps
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.workers import add_into
from mimo_conv._paths.gemm import (
    correlate_gemm,
    gemm_work,
    im2col_bytes_per_row,
    reads_strided,
)
from mimo_conv._paths.spec import PathSpec, Work


def row_gemm_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Temporary bytes per image and output row, counting each row's share of the halo.

    The buffer of a chunk of ``h`` rows holds ``h + dilation[0] * (kernel[0] - 1)`` rows;
    counting the halo once per row over-estimates large chunks but bounds every chunk. With
    a stride on the first axis the call runs ``"gemm"``, and this is gemm's row.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> row_gemm_bytes_per_row(g, 4)  # (64 * 3 * (1 + 2) + 64) * 56 * 4 bytes
    143360
    """
    if geometry.stride[0] != 1:
        return im2col_bytes_per_row(geometry, itemsize)
    output_shape = geometry.output_shape
    inner = math.prod(output_shape[1:])
    rest = math.prod(geometry.kernel_shape[1:])
    halo = geometry.dilation[0] * (geometry.kernel_shape[0] - 1)
    return (geometry.in_channels * rest * (1 + halo) + geometry.out_channels) * inner * itemsize


def correlate_row_gemm(
    x_padded: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    chunking: Chunking | None = None,
) -> NDArray[Any]:
    """Cross-correlate with im2col over the kernel's later axes and one GEMM per first-axis tap.

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
    >>> correlate_row_gemm(x, w, g)
    array([[[[19, 25],
             [37, 43]]]])

    A 1-d convolution multiplies shifted views of the input, copying nothing:

    >>> g1 = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(4,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> correlate_row_gemm(np.array([[[1, 2, 3, 4]]]), np.array([[[1, 10]]]), g1)
    array([[[21, 32, 43]]])
    """
    if geometry.stride[0] != 1:
        return correlate_gemm(x_padded, weight, geometry, chunking)
    batch, groups = geometry.batch_size, geometry.groups
    output_shape = geometry.output_shape
    rows, inner = output_shape[0], math.prod(output_shape[1:])
    first, rest_shape = geometry.kernel_shape[0], geometry.kernel_shape[1:]
    rest = math.prod(rest_shape)
    spacing = geometry.dilation[0]
    halo = spacing * (first - 1)
    per_group, outputs_per_group = (
        geometry.in_channels_per_group,
        geometry.out_channels_per_group,
    )
    out = np.zeros((batch, geometry.out_channels, *output_shape), dtype=x_padded.dtype)
    if out.size == 0 or geometry.in_channels == 0:
        return out
    # One (groups, C_out/groups, C_in/groups * rest) matrix per tap of the first kernel axis,
    # all from one copy of the kernels with that axis moved first.
    kernels = weight.reshape((groups, outputs_per_group, per_group, first, rest))
    by_tap = np.ascontiguousarray(np.moveaxis(kernels, 3, 0))
    matrices = [by_tap[i].reshape((groups, outputs_per_group, -1)) for i in range(first)]
    out_view = out.reshape((batch, groups, outputs_per_group, rows, inner))
    step = chunking or Chunking(max(1, batch), max(1, rows))
    # For each tap of the later kernel axes, the input elements it meets along those axes.
    rest_slices = [
        (
            tap,
            tuple(
                slice(t * d, t * d + s * (o - 1) + 1, s)
                for t, d, s, o in zip(
                    tap, geometry.dilation[1:], geometry.stride[1:], output_shape[1:], strict=True
                )
            ),
        )
        for tap in product(*(range(size) for size in rest_shape))
    ]
    every: tuple[slice, slice] = (slice(None), slice(None))
    for row_slice in chunks(rows, step.rows):
        height = row_slice.stop - row_slice.start
        span = height + halo
        padded_rows = slice(row_slice.start, row_slice.start + span)
        for image_slice in chunks(batch, step.images):
            count = image_slice.stop - image_slice.start
            if rest_shape:
                # (images, channels, *rest kernel, span rows, *inner output)
                columns = np.empty(
                    (count, geometry.in_channels, *rest_shape, span, *output_shape[1:]),
                    dtype=x_padded.dtype,
                )
                copy_taps(
                    columns,
                    x_padded,
                    [
                        ((*every, *tap), (image_slice, slice(None), padded_rows, *later))
                        for tap, later in rest_slices
                    ],
                )
            else:  # 1-d: the padded rows themselves, a view
                columns = x_padded[image_slice, :, padded_rows]
            flat = columns.reshape((count, groups, per_group * rest, span * inner))
            target = out_view[image_slice, :, :, row_slice].reshape(
                (count, groups, outputs_per_group, height * inner)
            )
            partial = None
            for i, matrix in enumerate(matrices):
                operand = flat[..., i * spacing * inner : (i * spacing + height) * inner]
                if i == 0:
                    np.matmul(matrix, operand, out=target)
                    continue
                if partial is None:
                    partial = np.empty(target.shape, dtype=x_padded.dtype)
                np.matmul(matrix, operand, out=partial)
                add_into(target, partial)
            # Free this chunk before the next is allocated: two alive would double the peak.
            del columns, flat, target, partial
    return out


def row_gemm_work(geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> Work:
    """Count the work: copies of the later taps over the padded rows, a product per row tap.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> work = row_gemm_work(g, 4, Chunking(1, 56))
    >>> work.calls  # 5 to set up; per image 3 copies, 3 products, 2 additions and 4 more
    101
    """
    g = geometry
    if g.stride[0] != 1:  # the shifted rows are no view any more: "gemm" runs
        return gemm_work(g, itemsize, chunking)
    output_shape = g.output_shape
    rows = output_shape[0]
    count = chunking.count(g.batch_size, rows)
    first = g.kernel_shape[0]
    rest = math.prod(g.kernel_shape[1:])
    halo = g.dilation[0] * (first - 1)
    positions = g.batch_size * math.prod(output_shape)
    row_ranges = -(-max(1, rows) // chunking.rows)
    # Copies of the later taps over every padded row, each row range with its halo (none
    # in 1-d), in rows of the last output axis; then per extra first-axis tap one
    # output-sized addition (2 reads, 1 write).
    copied_rows = row_ranges * halo + rows
    copies = g.batch_size * copied_rows * math.prod(output_shape[1:])
    copies *= g.in_channels * rest if g.spatial_dims > 1 else 0
    inner_rows = math.prod(output_shape[1:-1])
    runs = g.batch_size * g.in_channels * rest * copied_rows * inner_rows
    moved = 2 * copies * itemsize
    additions = 3 * (first - 1) * positions * g.out_channels * itemsize
    # The kernels, first axis moved first: one copy in runs of the later axes' taps (a
    # 3 x 3 kernel: runs of 3), which costs more than the whole call on late layers of one
    # image, where the kernels outweigh the activations (512 x 512 x 3 x 3 on a 7 x 7 map).
    weights = g.out_channels * g.in_channels_per_group * first * rest
    kernel_runs = weights // rest if rest > 1 else 0
    return Work(
        bytes_moved=moved + additions + 2 * weights * itemsize,
        # Set-up: the result's zeros, the kernels' copy and a view per first-axis tap. Per
        # chunk: the columns buffer, its copies, two views, the products, the additions
        # and the buffer of the later products.
        calls=2 + first + count * (rest + 2 * first + 3),
        products=count * first * g.groups,
        product_rows=g.out_channels_per_group,
        product_inner=g.in_channels_per_group * rest,
        product_columns=min(chunking.rows, max(1, rows)) * math.prod(output_shape[1:]),
        strided_bytes=(moved if reads_strided(g) else 0) + 2 * weights * itemsize,
        copy_runs=(runs if g.spatial_dims > 1 else 0) + kernel_runs,
        note="im2col of later taps + GEMM per row tap",
    )


#: The record of this path (:mod:`mimo_conv._paths.registry`).
PATH = PathSpec(
    name="row_gemm",
    correlate=correlate_row_gemm,
    summary="copies only the later kernel axes and runs one product per tap of the first, "
    "over row-shifted views",
    chunk_name="row_gemm buffer of one output row",
    bytes_per_row=row_gemm_bytes_per_row,
    granularity="rows",
    work=row_gemm_work,
    weight_copy=True,
)
