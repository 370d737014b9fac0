"""The ``"gemm"`` method: im2col into a small chunked buffer, then one matrix product per chunk.

For each chunk of images (and, for very large images, of output rows) the windows are
copied, one kernel tap at a time, into a contiguous buffer laid out as
``(images, groups, C_in/groups * prod(kernel), positions)`` - the ``(K, positions)``
orientation, which BLAS reads along its contiguous rows (issue 6 measured the transposed
``(positions, K)`` layout 2x slower). Then one batched product

    out[n, group] = weight[group] (C_out/groups, K) @ columns[n, group] (K, positions)

writes straight into the output. Each tap is one strided copy of ``prod(output_shape)``
elements per channel, so the copy runs at memory speed with no per-window Python work; the
copies of a chunk can be split over the worker threads by ranges of channels
(:func:`~mimo_conv._core.columns.copy_taps`; off by default, see
:data:`mimo_conv._core.workers.SPLIT_COPIES`), then the product runs on BLAS's threads. A
copy is exact, so the result is the same bit for bit on every thread count.

Cost: ``N * C_out * prod(output_shape) * C_in/groups * prod(kernel)`` multiply-adds in BLAS
for float and complex dtypes (NumPy's own loops for integers and objects, exact there), plus
``prod(kernel)`` copies of the input. Temporary memory: one chunk of the im2col buffer,
``C_in * prod(kernel) * prod(output_shape) * itemsize`` bytes per image (the product is
written straight into the output), chunked to at most
:data:`mimo_conv._core.budget.PREFERRED_CHUNK_BYTES` (8 MiB) and never more than the memory
budget, in the chunks the plan chose (:mod:`mimo_conv._engine.plan`); a single output row
that does not fit makes the path infeasible, and the planner says so before any work.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import Chunking, chunks
from mimo_conv._core.columns import copy_taps, tap_copies
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._paths.spec import PathSpec, Work


def im2col_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Bytes of im2col buffer one image needs per output row (first spatial axis).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> im2col_bytes_per_row(g, 4)  # 64 channels * 9 taps * 56 positions * 4 bytes
    129024
    """
    taps = math.prod(geometry.kernel_shape)
    return geometry.in_channels * taps * math.prod(geometry.output_shape[1:]) * itemsize


def correlate_gemm(
    x_padded: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    chunking: Chunking | None = None,
) -> NDArray[Any]:
    """Cross-correlate by im2col into a chunked buffer and one GEMM per chunk.

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
    >>> correlate_gemm(x, w, g)
    array([[[[19, 25],
             [37, 43]]]])

    Exact on object arrays (Python ints, fractions), and the same in chunks of one row:

    >>> from fractions import Fraction
    >>> correlate_gemm(x.astype(object), w.astype(object) * Fraction(1, 3), g)[0, 0, 0, 0]
    Fraction(19, 3)
    >>> correlate_gemm(x, w, g, Chunking(1, 1))[0, 0, 1]
    array([37, 43])
    """
    batch, groups = geometry.batch_size, geometry.groups
    output_shape = geometry.output_shape
    rows, inner = output_shape[0], math.prod(output_shape[1:])
    step = chunking or Chunking(max(1, batch), max(1, rows))
    outputs_per_group = geometry.out_channels_per_group
    out = np.empty((batch, geometry.out_channels, *output_shape), dtype=x_padded.dtype)
    if out.size == 0:
        return out
    matrices = weight.reshape((groups, outputs_per_group, geometry.terms_per_output))
    out_view = out.reshape((batch, groups, outputs_per_group, rows, inner))
    for row_slice in chunks(rows, step.rows):
        height = row_slice.stop - row_slice.start
        gather = gather_index(geometry) if height == rows else None
        copies = None  # the per-tap copies, listed only if a chunk needs them
        for image_slice in chunks(batch, step.images):
            count = image_slice.stop - image_slice.start
            source = x_padded[image_slice]
            if gather is not None and source.flags.c_contiguous:
                # A small image: one indexed copy instead of one per tap.
                columns = np.take(source.reshape((count, -1)), gather, axis=1)
            else:
                # (images, channels, *kernel, rows, *inner output): tap-major rows of K.
                columns = np.empty(
                    (
                        count,
                        geometry.in_channels,
                        *geometry.kernel_shape,
                        height,
                        *output_shape[1:],
                    ),
                    dtype=x_padded.dtype,
                )
                if copies is None:
                    copies = tap_copies(geometry, row_slice.start, row_slice.stop)
                copy_taps(columns, source, copies)
            # The product goes straight into the output, also for a range of rows: merging
            # the (rows, inner positions) axes of a row slice is still a view, with a
            # leading dimension BLAS accepts.
            target = out_view[image_slice, :, :, row_slice].reshape(
                (count, groups, outputs_per_group, height * inner)
            )
            operand = columns.reshape((count, groups, geometry.terms_per_output, height * inner))
            np.matmul(matrices, operand, out=target)
            # Free this chunk before the next is allocated: two alive would double the peak.
            del columns, operand, target
    return out


#: Largest im2col buffer of one image, in elements, built by one indexed copy
#: (``np.take``) instead of one strided copy per tap. On the textbook example that saves
#: about 2 us of a 15 us call; on large images the per-tap copies are faster (contiguous
#: runs, no index array to read).
GATHER_ELEMENTS = 4096


def gathers(geometry: ConvGeometry) -> bool:
    """Whether one image's im2col buffer is small enough for one indexed copy.

    Examples
    --------
    >>> gathers(ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=1, groups=1, input_shape=(3, 3),
    ...     kernel_shape=(2, 2), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... ))
    True
    """
    taps = math.prod(geometry.kernel_shape)
    return geometry.in_channels * taps * math.prod(geometry.output_shape) <= GATHER_ELEMENTS


@lru_cache(maxsize=256)
def gather_index(geometry: ConvGeometry) -> NDArray[np.intp] | None:
    """Flat indices into one padded image of its whole im2col buffer, or None for a large one.

    Entry ``k`` of the result is where element ``k`` of the buffer (laid out as the per-tap
    copies lay it out) sits in the flattened ``(C_in, *padded_shape)`` image. At most
    :data:`GATHER_ELEMENTS` indices, so the cache stays small.
    """
    if not gathers(geometry):
        return None
    return build_gather_index(geometry)


def build_gather_index(geometry: ConvGeometry) -> NDArray[np.intp]:
    """:func:`gather_index` of any size, not cached (the lean run keeps its own).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(4,),
    ...     kernel_shape=(2,), stride=(2,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> build_gather_index(g)  # tap 0 meets elements 0 and 2, tap 1 elements 1 and 3
    array([0, 2, 1, 3])
    """
    output_shape = geometry.output_shape
    shape = (geometry.in_channels, *geometry.kernel_shape, *output_shape)
    positions = np.arange(
        geometry.in_channels * math.prod(geometry.padded_shape), dtype=np.intp
    ).reshape((1, geometry.in_channels, *geometry.padded_shape))
    index = np.empty((1, *shape), dtype=np.intp)
    for to, source in tap_copies(geometry, 0, output_shape[0]):
        index[to] = positions[source]
    return index.reshape(-1)


def window_copy_runs(geometry: ConvGeometry) -> int:
    """Contiguous runs of copying every tap's window of every image once: one per output row.

    A tap's window over one channel is ``prod(output_shape[:-1])`` rows of
    ``output_shape[-1]`` elements (the last axis is the run).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> window_copy_runs(g)  # 9 taps * 8 images * 64 channels * 56 rows
    258048
    """
    g = geometry
    rows = math.prod(g.output_shape[:-1])
    return math.prod(g.kernel_shape) * g.batch_size * g.in_channels * rows


def reads_strided(geometry: ConvGeometry) -> bool:
    """Whether a window copy reads its rows element by element (a stride on the last axis).

    Examples
    --------
    >>> reads_strided(ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(8, 8),
    ...     kernel_shape=(3, 3), stride=(2, 2), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... ))
    True
    """
    return geometry.stride[-1] > 1


#: Largest gather index (elements, all images of a call) that the call cache's lean run
#: (:mod:`mimo_conv._engine.lean`) builds: a repeated call this small, in one chunk, is one
#: gather of the input and one product, however large its image is for :func:`gathers`.
#: 2**15 intp entries are 256 KiB.
LEAN_INDEX_ELEMENTS = 2**15


def gemm_work(geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> Work:
    """Count the work: one copy per tap (or one gather) and one product per chunk.

    Each tap's copy moves ``prod(output_shape)`` elements per image and channel in rows of
    the last output axis (:func:`window_copy_runs`), read with the stride of that axis; a
    small image is one gather of scattered elements instead (counted as strided), and so is
    a small call in one chunk, which the call cache runs as one gather when it is repeated
    (:data:`LEAN_INDEX_ELEMENTS`). Each
    product is ``(C_out/groups, K) @ (K, chunk positions)``.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> work = gemm_work(g, 4, Chunking(1, 56))
    >>> work.calls  # per image: 9 tap copies, one product, one reshape
    88
    >>> work.product_columns  # one image's 56 * 56 positions per product
    3136
    """
    g = geometry
    taps = math.prod(g.kernel_shape)
    positions = g.batch_size * math.prod(g.output_shape)
    count = chunking.count(g.batch_size, g.output_shape[0])
    whole_rows = chunking.rows >= g.output_shape[0]
    lean = chunking.images >= g.batch_size and (
        g.batch_size * g.in_channels * taps * math.prod(g.output_shape) <= LEAN_INDEX_ELEMENTS
    )
    gathered = whole_rows and (gathers(g) or lean)
    per_chunk = 3 if gathered else taps + 2
    moved = 2 * positions * g.in_channels * taps * itemsize
    rows = min(chunking.rows, max(1, g.output_shape[0]))
    return Work(
        bytes_moved=moved,
        calls=count * per_chunk,
        products=count * g.groups,
        product_rows=g.out_channels_per_group,
        product_inner=g.terms_per_output,
        product_columns=rows * math.prod(g.output_shape[1:]),
        strided_bytes=moved if gathered or reads_strided(g) else 0,
        copy_runs=0 if gathered else window_copy_runs(g),
        note="im2col + GEMM",
    )


#: The record of this path (:mod:`mimo_conv._paths.registry`).
PATH = PathSpec(
    name="gemm",
    correlate=correlate_gemm,
    summary="copies windows into a chunked im2col buffer for one matrix product per chunk "
    "(the fast general path)",
    chunk_name="im2col buffer of one output row",
    bytes_per_row=im2col_bytes_per_row,
    granularity="rows",
    work=gemm_work,
)
