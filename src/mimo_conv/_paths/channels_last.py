"""The ``"channels_last"`` method: im2col and one product per chunk, on ``(N, *spatial, C)`` data.

TensorFlow's and JAX's layout, ``"NHWC"``, keeps the channels of one pixel side by side in
memory. Transposing such an input to ``(N, C, H, W)`` for the other paths, and their result
back, costs two copies; this path works on the channels-last memory itself. The columns of
one output position are its window's pixels, each a contiguous run of ``C`` channels::

    columns[n, *p, group, tap, c] = x_padded[n, *(p * stride + tap * dilation), group, c]

so the buffer is ``(positions, K)`` with ``K = prod(kernel) * C_in / groups`` per group, and
one product per group

    out[n, *p, group, :] = columns[n, *p, group] (positions, K) @ kernels[group] (K, C_out/groups)

writes the channels-last result directly (its rows are the output positions, its columns
the output channels). A 1 x 1 kernel at stride 1 needs no columns at all: the input *is*
the ``(N * H * W, C_in)`` matrix, so the whole convolution is the product of the textbook's
``corr2d_multi_in_out_1x1`` with its two factors swapped. At stride 2 the single tap is a
strided view, copied once (a quarter of the input).

The engine hands this path an input laid out channels last (copying one that is not, a copy
the planner counts) and keeps the result channels last when the caller asked for that
(:attr:`mimo_conv._core.layouts.LayoutSpec.result_layout`); otherwise the result is copied
into the order asked for. Cost: the multiply-adds of ``"gemm"`` in BLAS, plus
``prod(kernel)`` copies of the input (none for a 1 x 1 kernel at stride 1). Temporary
memory: one chunk of the column buffer, ``C_in * prod(kernel) * prod(output_shape) *
itemsize`` bytes per image, in the chunks of images and output rows the plan chose, and the
kernels re-laid-out as ``(groups, K, C_out/groups)``.

Examples
--------
>>> PATH.name, PATH.layout
('channels_last', 'channels_last')
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from mimo_conv._core.budget import Chunking, chunks
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.layouts import channels_first, channels_last
from mimo_conv._core.windows import tap_slices
from mimo_conv._paths.spec import PathSpec, Work

#: Largest column-buffer chunk this path prefers. Each tap's copy writes runs of ``C_in``
#: (or ``k * C_in``) elements a whole ``K``-row apart, so the buffer is written
#: ``prod(kernel)`` times over before the product reads it; kept to 2 MiB it stays in cache
#: meanwhile. Measured (float32, 1 thread, 2026-12-02, a loaded machine): the 7 x 7 stem on
#: 8 x 224 x 224 x 3 took 49 ms in chunks of one image (7.4 MB), 32 ms in chunks of 32 output
#: rows (2.1 MB) and 39 ms in chunks of 8 rows; the ResNet 3 x 3 layer 32, 30 and 33 ms.
PREFERRED_CHUNK_BYTES = 2 * 2**20


#: Bytes a copy moves at the least for each contiguous run it copies: one cache line.
CACHE_LINE_BYTES = 64


def reads_in_place(geometry: ConvGeometry) -> bool:
    """Whether the padded input itself is the column matrix: a 1 x 1 kernel at stride 1.

    Examples
    --------
    >>> reads_in_place(ConvGeometry(
    ...     batch_size=1, in_channels=4, out_channels=2, groups=1, input_shape=(5, 5),
    ...     kernel_shape=(1, 1), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... ))
    True
    """
    return geometry.is_pointwise and all(step == 1 for step in geometry.stride)


def columns_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Bytes of column buffer one image needs per output row (0 when it reads in place).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=128, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(2, 2), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> columns_bytes_per_row(g, 4)  # 64 channels * 9 taps * 28 positions * 4 bytes
    64512
    """
    if reads_in_place(geometry):
        return 0
    taps = math.prod(geometry.kernel_shape)
    return geometry.in_channels * taps * math.prod(geometry.output_shape[1:]) * itemsize


def kernel_matrices(weight: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """Lay the kernels ``(C_out, C_in / groups, *kernel)`` out as ``(groups, K, C_out / groups)``.

    Row ``k`` of group ``g``'s matrix is ``(tap, channel)`` in C order, the order of a
    column buffer's ``K`` axis. A view when the kernels were given as ``(*kernel, I, O)``
    (``"HWIO"``) with one group, otherwise one kernel-sized copy.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=3, groups=1, input_shape=(4,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> w = np.arange(12).reshape(3, 2, 2)  # w[o, c, tap]
    >>> kernel_matrices(w, g)[0]  # rows (tap 0, c 0), (tap 0, c 1), (tap 1, c 0), ...
    array([[ 0,  4,  8],
           [ 2,  6, 10],
           [ 1,  5,  9],
           [ 3,  7, 11]])
    """
    groups, dims = geometry.groups, geometry.spatial_dims
    split = weight.reshape(
        (
            groups,
            geometry.out_channels_per_group,
            geometry.in_channels_per_group,
            *geometry.kernel_shape,
        )
    )
    # (groups, O/g, I/g, *kernel) -> (groups, *kernel, I/g, O/g)
    ordered = split.transpose((0, *range(3, 3 + dims), 2, 1))
    return ordered.reshape((groups, geometry.terms_per_output, geometry.out_channels_per_group))


def correlate_channels_last(
    x_padded: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    chunking: Chunking | None = None,
) -> NDArray[Any]:
    """Cross-correlate channels-last data by im2col into ``(positions, K)`` and one GEMM per chunk.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C_in, *padded_shape)
        The padded input in the compute dtype, in the canonical axis order but laid out in
        memory as ``(N, *padded_shape, C_in)``, C-contiguous (a view of such an array).
    weight : ndarray of shape (C_out, C_in // groups, *kernel_shape)
        The kernels, in the compute dtype (any memory order).
    geometry : ConvGeometry
    chunking : Chunking, optional
        Images and output rows per chunk, as the plan chose them; one chunk when None.

    Returns
    -------
    ndarray of shape (N, C_out, *output_shape)
        A new array in the compute dtype, without bias, laid out in memory as
        ``(N, *output_shape, C_out)`` (C-contiguous there).

    Examples
    --------
    >>> nhwc = np.arange(18).reshape(1, 3, 3, 2)  # two channels of 3 x 3 pixels
    >>> w = np.array([[[[0, 1], [2, 3]], [[1, 0], [0, 0]]]])  # (1, 2, 2, 2)
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=1, groups=1, input_shape=(3, 3),
    ...     kernel_shape=(2, 2), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> out = correlate_channels_last(channels_first(nhwc), w, g)
    >>> out[0, 0]  # top left: 0*0 + 2*1 + 6*2 + 8*3 (channel 0) + 1*1 (channel 1) = 39
    array([[39, 53],
           [81, 95]])
    >>> channels_last(out).flags.c_contiguous
    True
    """
    batch, groups = geometry.batch_size, geometry.groups
    output_shape = geometry.output_shape
    rows, inner = output_shape[0], math.prod(output_shape[1:])
    outputs_per_group, terms = geometry.out_channels_per_group, geometry.terms_per_output
    out = np.empty((batch, *output_shape, geometry.out_channels), dtype=x_padded.dtype)
    if out.size == 0:
        return channels_first(out)
    step = chunking or Chunking(max(1, batch), max(1, rows))
    # A range of rows is one image at a time: only then is it one block of the output.
    images = step.images if step.rows >= rows else 1
    source = channels_last(x_padded)  # (N, *padded_shape, C_in), C-contiguous
    matrices = kernel_matrices(weight, geometry)
    in_place = reads_in_place(geometry)
    for row_slice in chunks(rows, step.rows):
        for image_slice in chunks(batch, images):
            count = image_slice.stop - image_slice.start
            positions = count * (row_slice.stop - row_slice.start) * inner
            if in_place:
                columns = source[image_slice, row_slice]
            else:
                columns = _columns(source[image_slice], geometry, row_slice)
            # The group axis first: one product per group over every position of the chunk.
            operand = columns.reshape((positions, groups, terms)).transpose(1, 0, 2)
            target = out[image_slice, row_slice].reshape((positions, groups, outputs_per_group))
            np.matmul(operand, matrices, out=target.transpose(1, 0, 2))
            # Free this chunk before the next is allocated: two alive would double the peak.
            del columns, operand, target
    return channels_first(out)


def merges_last_axis(geometry: ConvGeometry) -> bool:
    """Whether the taps of the last kernel axis are copied together with the channels.

    With one group and no dilation along the last axis, the ``k`` taps of a window row are
    ``k * C_in`` consecutive input elements, and their columns too: one copy per tap of the
    other axes moves runs ``k`` times longer (the 7 x 7 stem on RGB images: 7 copies of 21
    elements per position instead of 49 copies of 3).

    Examples
    --------
    >>> merges_last_axis(ConvGeometry(
    ...     batch_size=1, in_channels=3, out_channels=8, groups=1, input_shape=(9, 9),
    ...     kernel_shape=(7, 7), stride=(2, 2), dilation=(1, 1), padding=((3, 3), (3, 3)),
    ... ))
    True
    """
    return geometry.groups == 1 and geometry.dilation[-1] == 1 and geometry.in_channels > 0


def _columns(source: NDArray[Any], geometry: ConvGeometry, row_slice: slice) -> NDArray[Any]:
    """Copy the column buffer of some images ``(n, *padded_shape, C_in)`` for a range of rows.

    Laid out ``(n, rows, *output_shape[1:], groups, *kernel_shape, C_in / groups)``: one row
    of ``K`` per group and output position, taps in C order, channels last.
    """
    count, groups = source.shape[0], geometry.groups
    height = row_slice.stop - row_slice.start
    output_shape, kernel_shape = geometry.output_shape, geometry.kernel_shape
    columns = np.empty(
        (count, height, *output_shape[1:], groups, *kernel_shape, geometry.in_channels_per_group),
        dtype=source.dtype,
    )
    # The image and spatial axes of the column buffer, before its (group, *tap, c) axes.
    lead: tuple[slice, ...] = (slice(None),) * (1 + geometry.spatial_dims)
    copies = tap_slices(geometry, row_slice.start, row_slice.stop)
    if merges_last_axis(geometry):
        # The last axis merged with the channels: (n, *padded[:-1], W * C), and every window
        # of k * C consecutive elements of it, a view; a window row starts every stride * C.
        channels, taps = geometry.in_channels, kernel_shape[-1]
        flat = source.reshape((*source.shape[:-2], -1))
        windows = sliding_window_view(flat, taps * channels, axis=-1)
        rows = columns.reshape((*columns.shape[:-2], taps * channels))
        for tap, index in copies:
            if tap[-1] == 0:  # one copy per tap of the other axes
                last, jump = index[-1], index[-1].step * channels
                # positions along the last axis: the chunk's rows when it is the only axis
                across = columns.shape[geometry.spatial_dims]
                stop = last.start * channels + jump * (across - 1) + 1
                merged = slice(last.start * channels, stop, jump)
                into: tuple[int | slice, ...] = (*lead, 0, *tap[:-1])
                rows[into] = windows[(slice(None), *index[2:-1], merged)]
        return columns
    for tap, index in copies:
        # index picks (N, C, rows, *inner) from the canonical order; the same slices of the
        # spatial axes pick (N, rows, *inner, C) from the channels-last memory.
        window = source[(slice(None), *index[2:])]
        at: tuple[int | slice, ...] = (*lead, slice(None), *tap)
        columns[at] = window.reshape((*window.shape[:-1], groups, -1))
    return columns


def channels_last_work(geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> Work:
    """Count the work: the tap copies (none for a 1 x 1 kernel at stride 1), a product per chunk.

    A copy moves, per output position, runs of ``C_in / groups`` contiguous elements (of
    ``k * C_in`` when the last axis is merged, :func:`merges_last_axis`), and memory moves
    in whole cache lines: a run shorter than :data:`CACHE_LINE_BYTES` is counted as one
    line. That is what makes depthwise layers (runs of one element) a poor fit here.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=256, out_channels=128, groups=1, input_shape=(28, 28),
    ...     kernel_shape=(1, 1), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> work = channels_last_work(g, 4, Chunking(8, 28))
    >>> work.bytes_moved, work.calls  # the input is the column matrix: nothing copied
    (0, 3)
    >>> stem = ConvGeometry(
    ...     batch_size=1, in_channels=3, out_channels=64, groups=1, input_shape=(224, 224),
    ...     kernel_shape=(7, 7), stride=(2, 2), dilation=(1, 1), padding=((3, 3), (3, 3)),
    ... )
    >>> channels_last_work(stem, 4, Chunking(1, 32)).bytes_moved  # 7 runs of 84 B, 112**2 times
    14751744
    """
    g = geometry
    positions = g.batch_size * math.prod(g.output_shape)
    count = chunking.count(g.batch_size, g.output_shape[0])
    if reads_in_place(g):
        copies, moved = 0, 0
    else:
        merged = merges_last_axis(g)
        copies = math.prod(g.kernel_shape[:-1] if merged else g.kernel_shape)
        run = (g.kernel_shape[-1] * g.in_channels if merged else g.in_channels_per_group) * itemsize
        runs = 1 if merged else g.groups  # per copy and output position
        moved = 2 * positions * copies * runs * max(run, CACHE_LINE_BYTES)
    return Work(
        bytes_moved=moved,
        calls=count * (copies + 3),
        products=count * g.groups,
        product_rows=g.out_channels_per_group,
        product_inner=g.terms_per_output,
        note="channels-last " + ("GEMM in place" if copies == 0 else "im2col + GEMM"),
    )


#: The record of this path (:mod:`mimo_conv._paths.registry`).
PATH = PathSpec(
    name="channels_last",
    correlate=correlate_channels_last,
    summary="works on channels-last data (layout='NHWC'): im2col of contiguous channel runs "
    "and one matrix product per chunk, writing the channels-last result",
    chunk_name="column buffer of one output row",
    bytes_per_row=columns_bytes_per_row,
    granularity="rows",
    work=channels_last_work,
    weight_copy=True,
    layout="channels_last",
    preferred_chunk=PREFERRED_CHUNK_BYTES,
)
