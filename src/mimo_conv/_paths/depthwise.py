"""The ``"depthwise"`` path: per-tap multiply-adds, for convolutions with few channels per group.

A depthwise convolution (``groups == C_in``, any channel multiplier ``C_out / C_in``) sums
only ``prod(kernel)`` products per output, one per tap, each a scalar weight times one input
channel. A matrix product has nothing to batch there (its inner dimension is the tap count,
its row count the multiplier), so this path does the arithmetic elementwise instead:

    out[n, o] = sum_c sum_t weight[o, c, t] * x_padded[n, group(o) * C_in/groups + c,
                                                      tap t's window positions]

one NumPy multiply and one add over a whole chunk per input channel of a group ``c`` and tap
``t``, in that fixed order (``c`` outer, taps in C order inner), so each output is the same
recursive sum whatever the chunking or the thread count. Any group size works (the loop over
``c`` runs ``C_in/groups`` times); the cost model picks this path only where few channels per
group make it faster than a matrix product.

**Flat views.** With stride 1 every tap's input is one contiguous run of the flattened padded
image, shifted by the tap's offset: output position ``(r, *p)`` is computed at "wide" index
``r * W + flat(p)`` of the padded image's inner shape ``W``, so each multiply-add runs over a
contiguous slice instead of a strided 2-d or 3-d window (a SIMD loop, not a loop of short
rows). The wide result holds ``prod(padded_shape[1:]) - prod(output_shape[1:])`` extra columns
per row, dropped at the end. With a stride the taps read strided views
(:func:`mimo_conv._core.windows.tap_slices`).

Cost: ``2 * C_in/groups * prod(kernel)`` elementwise passes over an output-sized chunk (the
multiply writes a temporary, the add reads it), on :func:`mimo_conv._core.workers.get_threads`
threads, split over images and groups. Temporary memory: the accumulator and the product of
one chunk, ``2 * C_out * prod(wide output) * itemsize`` bytes per image and output row
(wide: padded inner shape), for each of the threads that run at once; the plan sizes the
chunks (:class:`~mimo_conv._core.budget.Chunking`) so that this stays within the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import Chunking, chunks
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import tap_slices
from mimo_conv._core.workers import get_threads, run_tasks, task_count
from mimo_conv._paths.spec import PathSpec, Work

#: Bytes of accumulator a task aims at: small enough that the accumulator and the product
#: stay in the core's L2 cache across the taps (measured fastest between 128 and 512 KiB on
#: the benchmark machine's 512 KiB L2, for the 3x3 depthwise layers of the suite).
TASK_BYTES = 256 * 2**10


def uses_flat_views(geometry: ConvGeometry) -> bool:
    """Whether every tap reads one contiguous run of the flattened image (stride 1).

    Examples
    --------
    >>> uses_flat_views(ConvGeometry(
    ...     batch_size=1, in_channels=4, out_channels=4, groups=4, input_shape=(8, 8),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(2, 2), padding=((2, 2),) * 2,
    ... ))
    True
    >>> uses_flat_views(ConvGeometry(
    ...     batch_size=1, in_channels=4, out_channels=4, groups=4, input_shape=(8, 8),
    ...     kernel_shape=(3, 3), stride=(2, 2), dilation=(1, 1), padding=((1, 1),) * 2,
    ... ))
    False
    """
    return all(step == 1 for step in geometry.stride)


def _row_width(geometry: ConvGeometry) -> int:
    """Elements per output row of the accumulator: padded inner shape when wide."""
    if uses_flat_views(geometry):
        return math.prod(geometry.padded_shape[1:])
    return math.prod(geometry.output_shape[1:])


def depthwise_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Temporary bytes per image and output row: accumulator plus one product, per thread.

    Every one of the :func:`~mimo_conv._core.workers.get_threads` threads may hold its
    own task's buffers at once, so a chunk of the plan pays for all of them.

    Examples
    --------
    >>> from mimo_conv._core.workers import set_threads
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=32, out_channels=32, groups=32, input_shape=(112, 112),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> previous = set_threads(1)
    >>> depthwise_bytes_per_row(g, 4)  # 2 buffers * 32 channels * 114 wide columns * 4 bytes
    29184
    >>> _ = set_threads(previous)
    """
    return 2 * geometry.out_channels * _row_width(geometry) * itemsize * get_threads()


def correlate_depthwise(
    x_padded: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    chunking: Chunking | None = None,
) -> NDArray[Any]:
    """Cross-correlate by per-tap multiply-adds over flat (or strided) views.

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
    >>> correlate_depthwise(x, w, g)
    array([[[[19, 25],
             [37, 43]]]])

    Two channels, each with its own kernel, and a channel multiplier of 2:

    >>> x = np.array([[[1, 2, 3], [10, 20, 30]]])
    >>> w = np.array([[[1, 1]], [[1, -1]], [[2, 0]], [[0, 3]]])
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=4, groups=2, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> correlate_depthwise(x, w, g)
    array([[[ 3,  5],
            [-1, -1],
            [20, 40],
            [60, 90]]])
    """
    plan = plan_depthwise(geometry, x_padded.itemsize, chunking)
    out = np.empty(plan.out_shape, dtype=x_padded.dtype)
    if out.size == 0:
        return out
    if geometry.in_channels_per_group == 0:
        out[...] = x_padded.dtype.type(0)
        return out
    per_group, taps = geometry.in_channels_per_group, math.prod(geometry.kernel_shape)
    # (C_in/groups, taps, groups, C_out/groups): one small weight table per channel and tap.
    table = np.moveaxis(
        weight.reshape((geometry.groups, geometry.out_channels_per_group, per_group, taps)),
        (2, 3),
        (0, 1),
    )
    # Flat runs need a C-contiguous image; another layout (an unpadded input passed as it
    # is) takes the strided views rather than a copy the budget did not plan for.
    flat = plan.flat and x_padded.flags.c_contiguous

    run_tasks(
        [
            partial(_accumulate, x_padded, table, out, geometry, task, flat=flat)
            for task in plan.tasks
        ]
    )
    return out


@dataclass(frozen=True)
class _DepthwisePlan:
    """Shapes, the split of a call into tasks and its workspace, computed once per call shape."""

    out_shape: tuple[int, ...]
    flat: bool
    tasks: tuple[tuple[slice, slice, slice], ...]
    workspace: int


def plan_depthwise(
    geometry: ConvGeometry, itemsize: int, chunking: Chunking | None = None
) -> _DepthwisePlan:
    """Split a call into tasks: the plan's chunks, each split over groups for the cache.

    Each task holds an accumulator and a product for some images, groups and output rows;
    up to :func:`~mimo_conv._core.workers.get_threads` tasks run at once, each at most one
    chunk of the plan (whose bytes :func:`depthwise_bytes_per_row` counts once per thread).
    Chunks are split over groups until each task is near :data:`TASK_BYTES`, so its buffers
    stay in cache.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=32, out_channels=32, groups=32, input_shape=(112, 112),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> plan = plan_depthwise(g, 4, Chunking(1, 16))
    >>> len(plan.tasks) > 8  # 8 images times 7 row ranges, split over groups
    True
    """
    rows = max(1, geometry.output_shape[0])
    step = chunking or Chunking(max(1, geometry.batch_size), rows)
    return _plan(geometry, itemsize, step.images, step.rows, get_threads())


@lru_cache(maxsize=256)
def _plan(
    geometry: ConvGeometry, itemsize: int, images: int, row_step: int, threads: int
) -> _DepthwisePlan:
    """:func:`plan_depthwise`, cached: the chunk sizes and the thread count are its key."""
    batch, groups = geometry.batch_size, geometry.groups
    output_shape = geometry.output_shape
    rows = output_shape[0]
    per_row = 2 * geometry.out_channels * _row_width(geometry) * itemsize
    chunk = min(images, max(1, batch)) * min(rows, row_step) * per_row
    # Split the groups so that one task's buffers stay near TASK_BYTES, and into at least as
    # many tasks as run at once when the work is large enough.
    wanted = max(math.ceil(chunk / TASK_BYTES), task_count(chunk // max(1, itemsize), threads))
    group_step = max(1, math.ceil(groups / max(1, wanted)))
    tasks = tuple(
        (image_slice, group_slice, row_slice)
        for row_slice in chunks(rows, row_step)
        for image_slice in chunks(batch, images)
        for group_slice in chunks(groups, group_step)
    )
    largest = math.ceil(chunk * min(groups, group_step) / max(1, groups))
    workspace = min(threads, len(tasks)) * largest
    return _DepthwisePlan(
        (batch, geometry.out_channels, *output_shape), uses_flat_views(geometry), tasks, workspace
    )


def _accumulate(
    source: NDArray[Any],
    table: NDArray[Any],
    out: NDArray[Any],
    geometry: ConvGeometry,
    task: tuple[slice, slice, slice],
    *,
    flat: bool,
) -> None:
    """Compute one task: the outputs of some images, groups and output rows."""
    images, groups, rows = task
    per_group, per_out = geometry.in_channels_per_group, geometry.out_channels_per_group
    count, group_count = images.stop - images.start, groups.stop - groups.start
    height = rows.stop - rows.start
    output_shape = geometry.output_shape
    # Output channels of these groups, split as (groups, C_out/groups).
    target = out[images, groups.start * per_out : groups.stop * per_out, rows].reshape(
        (count, group_count, per_out, height, *output_shape[1:])
    )
    if flat:
        width = math.prod(geometry.padded_shape[1:])
        # The wide index of the last output actually needed, plus one: the last tap's run
        # then ends at the padded image's last element.
        inner_strides = [
            math.prod(geometry.padded_shape[2 + axis :]) for axis in range(len(output_shape) - 1)
        ]
        length = (
            (height - 1) * width
            + 1
            + sum(
                (size - 1) * step
                for size, step in zip(output_shape[1:], inner_strides, strict=True)
            )
        )
        padded = source.reshape((source.shape[0], source.shape[1], -1))
        shape = (count, group_count, per_out, height * width)
        accumulator = np.empty(shape, dtype=out.dtype)
        product = np.empty((count, group_count, per_out, length), dtype=out.dtype)
        running = accumulator[..., :length]
        offsets = _flat_offsets(geometry)
        for channel in range(per_group):
            # Input channels group * per_group + channel, for these groups: (count, groups, 1, L).
            inputs = padded[
                images, groups.start * per_group + channel : groups.stop * per_group : per_group
            ]
            for tap, offset in enumerate(offsets):
                start = (rows.start * width) + offset
                view = inputs[:, :, np.newaxis, start : start + length]
                scale = table[channel, tap, groups, :, np.newaxis]
                _multiply_add(view, scale, running, product, first=channel == 0 and tap == 0)
        wide = accumulator.reshape(
            (count, group_count, per_out, height, *geometry.padded_shape[1:])
        )
        crop: tuple[Any, ...] = (Ellipsis, *(slice(0, size) for size in output_shape[1:]))
        target[...] = wide[crop]
        return
    product = np.empty(target.shape, dtype=out.dtype)
    views = tap_slices(geometry, rows.start, rows.stop)
    spatial = (np.newaxis,) * len(output_shape)
    for channel in range(per_group):
        inputs = source[
            images, groups.start * per_group + channel : groups.stop * per_group : per_group
        ]
        for tap, (_, index) in enumerate(views):
            view = inputs[index][:, :, np.newaxis]
            scale = table[channel, tap, groups][(Ellipsis, *spatial)]
            _multiply_add(view, scale, target, product, first=channel == 0 and tap == 0)


def _multiply_add(
    view: NDArray[Any],
    scale: NDArray[Any],
    running: NDArray[Any],
    product: NDArray[Any],
    *,
    first: bool,
) -> None:
    """Set ``running`` to ``view * scale`` for the first term, else add ``view * scale``."""
    if first:
        np.multiply(view, scale, out=running)
    else:
        np.multiply(view, scale, out=product)
        np.add(running, product, out=running)


@lru_cache(maxsize=256)
def _flat_offsets(geometry: ConvGeometry) -> tuple[int, ...]:
    """Offset of every tap (C order) into the flattened padded image, for stride 1."""
    padded = geometry.padded_shape
    strides = [math.prod(padded[axis + 1 :]) for axis in range(len(padded))]
    offsets = [0]
    for taps, spacing, step in zip(geometry.kernel_shape, geometry.dilation, strides, strict=True):
        offsets = [base + tap * spacing * step for base in offsets for tap in range(taps)]
    return tuple(offsets)


def depthwise_work(geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> Work:
    """Count the work: per channel of a group and tap, one multiply and one add, elementwise.

    Each pass runs over the whole wide output (read the input, write the product; read two,
    write one), plus the final copy out of the wide accumulator when the views are flat.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=2, in_channels=4, out_channels=4, groups=4, input_shape=(6, 6),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> depthwise_work(g, 4, Chunking(2, 6)).bytes_moved  # 9 * 5 * (2*4*6*8) * 4 + 2*(2*4*36)*4
    71424
    """
    plan = plan_depthwise(geometry, itemsize, chunking)
    output_shape = geometry.output_shape
    wide = geometry.batch_size * geometry.out_channels * output_shape[0] * _row_width(geometry)
    moved = 5 * geometry.terms_per_output * wide * itemsize
    if plan.flat:
        moved += (
            2 * geometry.batch_size * geometry.out_channels * math.prod(output_shape) * itemsize
        )
    return Work(
        bytes_moved=moved,
        calls=max(1, len(plan.tasks)) * 2 * geometry.terms_per_output,
        products=0,
        product_rows=0,
        product_inner=0,
        elementwise=True,
        note="multiply-add per tap",
    )


#: The record of this path (:mod:`mimo_conv._paths.registry`).
PATH = PathSpec(
    name="depthwise",
    correlate=correlate_depthwise,
    summary="does per-tap elementwise multiply-adds over flat views (few channels per group)",
    chunk_name="accumulator and product of one output row",
    bytes_per_row=depthwise_bytes_per_row,
    granularity="rows",
    work=depthwise_work,
)
