"""The ``"fold"`` method: im2col over all kernel axes but the first, which is folded into GEMMs.

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
plus ``kernel[0] - 1`` output-sized additions. Temporary memory: one chunk of the buffer,
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

from mimo_conv._core.budget import chunks, plan_chunks
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import output_shape_of
from mimo_conv._paths.gemm import correlate_gemm


def fold_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Temporary bytes per image and output row, counting each row's share of the halo.

    The buffer of a chunk of ``h`` rows holds ``h + dilation[0] * (kernel[0] - 1)`` rows;
    counting the halo once per row over-estimates large chunks but bounds every chunk.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> fold_bytes_per_row(g, 4)  # (64 * 3 * (1 + 2) + 64) * 56 * 4 bytes
    143360
    """
    output_shape = output_shape_of(geometry)
    inner = math.prod(output_shape[1:])
    rest = math.prod(geometry.kernel_shape[1:])
    halo = geometry.dilation[0] * (geometry.kernel_shape[0] - 1)
    return (geometry.in_channels * rest * (1 + halo) + geometry.out_channels) * inner * itemsize


def correlate_fold(
    x_padded: NDArray[Any], weight: NDArray[Any], geometry: ConvGeometry
) -> NDArray[Any]:
    """Cross-correlate with im2col over the kernel's later axes and one GEMM per first-axis tap.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C_in, *padded_shape)
        The padded input, in the compute dtype.
    weight : ndarray of shape (C_out, C_in // groups, *kernel_shape)
        The kernels, in the compute dtype.
    geometry : ConvGeometry

    Returns
    -------
    ndarray of shape (N, C_out, *output_shape)
        A new C-contiguous array in the compute dtype, without bias.

    Raises
    ------
    MemoryError
        If the buffers of a single output row exceed the memory budget.

    Examples
    --------
    >>> x = np.arange(9).reshape(1, 1, 3, 3)
    >>> w = np.array([[[[0, 1], [2, 3]]]])
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3, 3),
    ...     kernel_shape=(2, 2), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> correlate_fold(x, w, g)
    array([[[[19, 25],
             [37, 43]]]])

    A 1-d convolution multiplies shifted views of the input, copying nothing:

    >>> g1 = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(4,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> correlate_fold(np.array([[[1, 2, 3, 4]]]), np.array([[[1, 10]]]), g1)
    array([[[21, 32, 43]]])
    """
    if geometry.stride[0] != 1:
        return correlate_gemm(x_padded, weight, geometry)
    batch, groups = geometry.batch_size, geometry.groups
    output_shape = output_shape_of(geometry)
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
    # One (groups, C_out/groups, C_in/groups * rest) matrix per tap of the first kernel axis.
    kernels = weight.reshape((groups, outputs_per_group, per_group, first, rest))
    matrices = [
        np.ascontiguousarray(kernels[:, :, :, i]).reshape((groups, outputs_per_group, -1))
        for i in range(first)
    ]
    out_view = out.reshape((batch, groups, outputs_per_group, rows, inner))
    images, row_step = plan_chunks(
        batch, rows, fold_bytes_per_row(geometry, x_padded.itemsize), "fold buffer"
    )
    rest_taps = list(product(*(range(size) for size in rest_shape)))
    every: tuple[slice, slice] = (slice(None), slice(None))
    for row_slice in chunks(rows, row_step):
        height = row_slice.stop - row_slice.start
        span = height + halo
        padded_rows = slice(row_slice.start, row_slice.start + span)
        for image_slice in chunks(batch, images):
            count = image_slice.stop - image_slice.start
            if rest_shape:
                # (images, channels, *rest kernel, span rows, *inner output)
                columns = np.empty(
                    (count, geometry.in_channels, *rest_shape, span, *output_shape[1:]),
                    dtype=x_padded.dtype,
                )
                for tap in rest_taps:
                    later = tuple(
                        slice(t * d, t * d + s * (o - 1) + 1, s)
                        for t, d, s, o in zip(
                            tap,
                            geometry.dilation[1:],
                            geometry.stride[1:],
                            output_shape[1:],
                            strict=True,
                        )
                    )
                    where: tuple[int | slice, ...] = (*every, *tap)
                    columns[where] = x_padded[(image_slice, slice(None), padded_rows, *later)]
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
                target += partial
            # Free this chunk before the next is allocated: two alive would double the peak.
            del columns, flat, target, partial
    return out
