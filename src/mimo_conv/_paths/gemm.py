"""The ``"gemm"`` method: im2col into a small chunked buffer, then one matrix product per chunk.

For each chunk of images (and, for very large images, of output rows) the windows are
copied, one kernel tap at a time, into a contiguous buffer laid out as
``(images, groups, C_in/groups * prod(kernel), positions)`` - the ``(K, positions)``
orientation, which BLAS reads along its contiguous rows (issue 6 measured the transposed
``(positions, K)`` layout 2x slower). Then one batched product

    out[n, group] = weight[group] (C_out/groups, K) @ columns[n, group] (K, positions)

writes straight into the output. Each tap is one strided copy of ``prod(output_shape)``
elements per channel, so the copy runs at memory speed with no per-window Python work.

Cost: ``N * C_out * prod(output_shape) * C_in/groups * prod(kernel)`` multiply-adds in BLAS
for float and complex dtypes (NumPy's own loops for integers and objects, exact there), plus
``prod(kernel)`` copies of the input. Temporary memory: one chunk of the im2col buffer,
``C_in * prod(kernel) * prod(output_shape) * itemsize`` bytes per image (the product is
written straight into the output), chunked to at most
:data:`mimo_conv._core.budget.PREFERRED_CHUNK_BYTES` (8 MiB) and never more than the memory
budget; a single output row that does not fit raises ``MemoryError`` before any work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import chunks, get_memory_budget, plan_chunks
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import output_shape_of, tap_slices
from mimo_conv._core.workers import run_tasks, task_count


def im2col_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Bytes of im2col buffer one image needs per output row (first spatial axis).

    Examples
    --------
    >>> g = ConvGeometry(8, 64, 64, 1, (56, 56), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))
    >>> im2col_bytes_per_row(g, 4)  # 64 channels * 9 taps * 56 positions * 4 bytes
    129024
    """
    taps = math.prod(geometry.kernel_shape)
    return geometry.in_channels * taps * math.prod(geometry.output_shape[1:]) * itemsize


def correlate_gemm(
    x_padded: NDArray[Any], weight: NDArray[Any], geometry: ConvGeometry
) -> NDArray[Any]:
    """Cross-correlate by im2col into a chunked buffer and one GEMM per chunk.

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
        If the im2col buffer of a single output row exceeds the memory budget.

    Examples
    --------
    >>> x = np.arange(9).reshape(1, 1, 3, 3)
    >>> w = np.array([[[[0, 1], [2, 3]]]])
    >>> g = ConvGeometry(1, 1, 1, 1, (3, 3), (2, 2), (1, 1), (1, 1), ((0, 0), (0, 0)))
    >>> correlate_gemm(x, w, g)
    array([[[[19, 25],
             [37, 43]]]])

    Exact on object arrays (Python ints, fractions):

    >>> from fractions import Fraction
    >>> correlate_gemm(x.astype(object), w.astype(object) * Fraction(1, 3), g)[0, 0, 0, 0]
    Fraction(19, 3)
    """
    plan = _gemm_plan(geometry, x_padded.itemsize, get_memory_budget())
    out = np.empty(plan.out_shape, dtype=x_padded.dtype)
    if out.size == 0:
        return out
    matrices = weight.reshape(plan.matrices_shape)
    out_view = out.reshape(plan.out_view_shape)
    for chunk in plan.chunks:
        source = x_padded[chunk.images]
        if chunk.gather is not None:  # a small image: one indexed copy instead of one per tap
            columns = np.take(source.reshape((chunk.columns_shape[0], -1)), chunk.gather, axis=1)
        else:
            # (images, channels, *kernel, rows, *inner output): tap-major rows of K.
            columns = np.empty(chunk.columns_shape, dtype=x_padded.dtype)
            copy_taps(columns, source, chunk.copies)
        # The product goes straight into the output, also for a range of rows: merging the
        # (rows, inner positions) axes of a row slice is still a view, with a leading
        # dimension BLAS accepts.
        target = out_view[chunk.images, :, :, chunk.rows].reshape(chunk.target_shape)
        np.matmul(matrices, columns.reshape(chunk.operand_shape), out=target)
        # Free this chunk before the next is allocated: two alive would double the peak.
        del columns, target
    return out


@dataclass(frozen=True)
class _Chunk:
    """One chunk of images and output rows: its slices, buffer shapes and tap copies."""

    images: slice
    rows: slice
    columns_shape: tuple[int, ...]
    operand_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    copies: tuple[tuple[tuple[int | slice, ...], tuple[slice, ...]], ...]
    gather: NDArray[np.intp] | None = None


@dataclass(frozen=True)
class _GemmPlan:
    """Everything about a ``"gemm"`` call that depends only on shapes, computed once."""

    out_shape: tuple[int, ...]
    out_view_shape: tuple[int, ...]
    matrices_shape: tuple[int, ...]
    chunks: tuple[_Chunk, ...]


@lru_cache(maxsize=256)
def _gemm_plan(geometry: ConvGeometry, itemsize: int, budget: int) -> _GemmPlan:
    """Chunks, shapes and tap slices of a call, cached: planning costs more than a tiny call."""
    del budget  # part of the cache key: plan_chunks reads the budget in force
    batch, groups = geometry.batch_size, geometry.groups
    output_shape = output_shape_of(geometry)
    rows, inner = output_shape[0], math.prod(output_shape[1:])
    terms = geometry.terms_per_output
    outputs_per_group = geometry.out_channels_per_group
    images, row_step = plan_chunks(
        batch, rows, im2col_bytes_per_row(geometry, itemsize), "im2col buffer"
    )
    every: tuple[int | slice, ...] = (slice(None), slice(None))
    planned: list[_Chunk] = []
    for row_slice in chunks(rows, row_step):
        height = row_slice.stop - row_slice.start
        copies: tuple[tuple[tuple[int | slice, ...], tuple[slice, ...]], ...] = tuple(
            ((*every, *tap), index)
            for tap, index in tap_slices(geometry, row_slice.start, row_slice.stop)
        )
        gather = _gather_index(geometry, copies, height) if height == rows else None
        for image_slice in chunks(batch, images):
            count = image_slice.stop - image_slice.start
            planned.append(
                _Chunk(
                    image_slice,
                    row_slice,
                    (
                        count,
                        geometry.in_channels,
                        *geometry.kernel_shape,
                        height,
                        *output_shape[1:],
                    ),
                    (count, groups, terms, height * inner),
                    (count, groups, outputs_per_group, height * inner),
                    copies,
                    gather,
                )
            )
    return _GemmPlan(
        (batch, geometry.out_channels, *output_shape),
        (batch, groups, outputs_per_group, rows, inner),
        (groups, outputs_per_group, terms),
        tuple(planned),
    )


#: Largest im2col buffer of one image, in elements, built by one indexed copy
#: (``np.take``) instead of one strided copy per tap. On the textbook example that saves
#: about 2 us of a 15 us call; on large images the per-tap copies are faster (contiguous
#: runs, no index array to read).
GATHER_ELEMENTS = 4096


def _gather_index(
    geometry: ConvGeometry,
    copies: tuple[tuple[tuple[int | slice, ...], tuple[slice, ...]], ...],
    height: int,
) -> NDArray[np.intp] | None:
    """Flat indices into one padded image of its im2col buffer, or None for a large buffer.

    Entry ``k`` of the result is where element ``k`` of the buffer (laid out as the per-tap
    copies lay it out) sits in the flattened ``(C_in, *padded_shape)`` image.
    """
    output_shape = output_shape_of(geometry)
    shape = (geometry.in_channels, *geometry.kernel_shape, height, *output_shape[1:])
    if math.prod(shape) > GATHER_ELEMENTS:
        return None
    positions = np.arange(
        geometry.in_channels * math.prod(geometry.padded_shape), dtype=np.intp
    ).reshape((1, geometry.in_channels, *geometry.padded_shape))
    index = np.empty((1, *shape), dtype=np.intp)
    for where, taps in copies:
        index[where] = positions[taps]
    return index.reshape(-1)


def copy_taps(
    columns: NDArray[Any],
    source: NDArray[Any],
    copies: tuple[tuple[tuple[int | slice, ...], tuple[slice, ...]], ...],
) -> None:
    """Copy every tap's window view into its rows of ``columns``, on the worker threads.

    Each tap writes its own rows, so splitting the taps over threads
    (:func:`mimo_conv._core.workers.run_tasks`) gives the same buffer, bit for bit; a small
    buffer is copied on the calling thread.

    Examples
    --------
    >>> source = np.arange(4).reshape(1, 1, 4)
    >>> columns = np.empty((1, 1, 2, 3), dtype=source.dtype)
    >>> every = (slice(None), slice(None))
    >>> copy_taps(columns, source, (((*every, 0), (*every, slice(0, 3))),
    ...                             ((*every, 1), (*every, slice(1, 4)))))
    >>> columns[0, 0]
    array([[0, 1, 2],
           [1, 2, 3]])
    """
    parts = task_count(columns.size, len(copies))
    if parts == 1:
        for where, index in copies:
            columns[where] = source[index]
        return
    step = -(-len(copies) // parts)

    def copy(group: tuple[tuple[tuple[int | slice, ...], tuple[slice, ...]], ...]) -> None:
        for where, index in group:
            columns[where] = source[index]

    run_tasks(
        [partial(copy, copies[start : start + step]) for start in range(0, len(copies), step)]
    )
