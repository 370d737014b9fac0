"""The ``"depthwise"`` method: per-tap multiply-adds, for convolutions with few channels per group.

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
one chunk, ``2 * C_out * prod(wide output) * itemsize`` bytes per image (wide: padded inner
shape), chunked to :func:`mimo_conv._core.budget.chunk_bytes` and never above the memory
budget.
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
from mimo_conv._core.workers import get_threads, run_tasks, task_count

#: What the smallest chunk of this path holds, for the engine's error messages.
MINIMUM_CHUNK_NAME = "accumulator and product of one output row"

#: Bytes of accumulator a task aims at: small enough that the accumulator and the product
#: stay in the core's L2 cache across the taps (measured fastest between 128 and 512 KiB on
#: the benchmark machine's 512 KiB L2, for the 3x3 depthwise layers of the suite).
TASK_BYTES = 256 * 2**10


def uses_flat_views(geometry: ConvGeometry) -> bool:
    """Whether every tap reads one contiguous run of the flattened image (stride 1).

    Examples
    --------
    >>> uses_flat_views(ConvGeometry(1, 4, 4, 4, (8, 8), (3, 3), (1, 1), (2, 2), ((2, 2),) * 2))
    True
    >>> uses_flat_views(ConvGeometry(1, 4, 4, 4, (8, 8), (3, 3), (2, 2), (1, 1), ((1, 1),) * 2))
    False
    """
    return all(step == 1 for step in geometry.stride)


def _row_width(geometry: ConvGeometry) -> int:
    """Elements per output row of the accumulator: padded inner shape when wide."""
    if uses_flat_views(geometry):
        return math.prod(geometry.padded_shape[1:])
    return math.prod(output_shape_of(geometry)[1:])


def depthwise_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Temporary bytes one image needs per output row: accumulator plus one product.

    Examples
    --------
    >>> g = ConvGeometry(8, 32, 32, 32, (112, 112), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))
    >>> depthwise_bytes_per_row(g, 4)  # 2 buffers * 32 channels * 114 wide columns * 4 bytes
    29184
    """
    return 2 * geometry.out_channels * _row_width(geometry) * itemsize


def depthwise_applies(geometry: ConvGeometry) -> str:
    """Why this path cannot compute a call (an empty string: it can; it computes any call).

    Examples
    --------
    >>> depthwise_applies(ConvGeometry(1, 2, 2, 2, (3,), (2,), (1,), (1,), ((0, 0),)))
    ''
    """
    del geometry  # every geometry: the loop over channels per group handles dense kernels
    return ""


def depthwise_cost(geometry: ConvGeometry, itemsize: int) -> tuple[int, int, int]:
    """Bytes moved, NumPy calls and peak temporary bytes of this path, for the cost model.

    Per channel of a group and per tap: one multiply (read the input, write the product)
    and one add (read two, write one) over the whole wide output; plus the final copy out
    of the wide accumulator when the views are flat. The workspace is
    :func:`plan_depthwise`'s, under the budget in force.

    Examples
    --------
    >>> g = ConvGeometry(2, 4, 4, 4, (6, 6), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))
    >>> depthwise_cost(g, 4)  # 9 * 5 passes * (2 * 4 * 6 * 8 wide) * 4 B + 2 * 2 * 4 * 36 * 4 B
    (71424, 18, 3072)
    """
    plan = plan_depthwise(geometry, itemsize)
    rows = output_shape_of(geometry)[0]
    wide = geometry.batch_size * geometry.out_channels * rows * _row_width(geometry)
    moved = 5 * geometry.terms_per_output * wide * itemsize
    if plan.flat:
        cropped = geometry.batch_size * geometry.out_channels * math.prod(output_shape_of(geometry))
        moved += 2 * cropped * itemsize
    calls = max(1, len(plan.tasks)) * 2 * geometry.terms_per_output
    return moved, calls, plan.workspace


def correlate_depthwise(
    x_padded: NDArray[Any], weight: NDArray[Any], geometry: ConvGeometry
) -> NDArray[Any]:
    """Cross-correlate by per-tap multiply-adds over flat (or strided) views.

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
        If the accumulator of a single output row exceeds the memory budget.

    Examples
    --------
    >>> x = np.arange(9).reshape(1, 1, 3, 3)
    >>> w = np.array([[[[0, 1], [2, 3]]]])
    >>> g = ConvGeometry(1, 1, 1, 1, (3, 3), (2, 2), (1, 1), (1, 1), ((0, 0), (0, 0)))
    >>> correlate_depthwise(x, w, g)
    array([[[[19, 25],
             [37, 43]]]])

    Two channels, each with its own kernel, and a channel multiplier of 2:

    >>> x = np.array([[[1, 2, 3], [10, 20, 30]]])
    >>> w = np.array([[[1, 1]], [[1, -1]], [[2, 0]], [[0, 3]]])
    >>> g = ConvGeometry(1, 2, 4, 2, (3,), (2,), (1,), (1,), ((0, 0),))
    >>> correlate_depthwise(x, w, g)
    array([[[ 3,  5],
            [-1, -1],
            [20, 40],
            [60, 90]]])
    """
    plan = plan_depthwise(geometry, x_padded.itemsize)
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


def plan_depthwise(geometry: ConvGeometry, itemsize: int) -> _DepthwisePlan:
    """Split a call into tasks under the budget in force and the thread count.

    Each task holds an accumulator and a product for some images, groups and output rows.
    As many tasks run at once as there are threads, but never more than the memory budget
    holds: ``workspace`` is that many times the largest task's buffers. Tasks are then split
    over groups until each is near :data:`TASK_BYTES`, so its buffers stay in cache.

    Examples
    --------
    >>> g = ConvGeometry(8, 32, 32, 32, (112, 112), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))
    >>> plan = plan_depthwise(g, 4)
    >>> plan.workspace <= 2 * 2**20  # a few cache-sized tasks at a time
    True
    >>> len(plan.tasks) > 1
    True
    """
    return _plan(geometry, itemsize, get_memory_budget(), get_threads())


@lru_cache(maxsize=256)
def _plan(geometry: ConvGeometry, itemsize: int, budget: int, threads: int) -> _DepthwisePlan:
    """:func:`plan_depthwise`, cached: the budget and the thread count are its cache key."""
    batch, groups = geometry.batch_size, geometry.groups
    output_shape = output_shape_of(geometry)
    rows = output_shape[0]
    per_row = depthwise_bytes_per_row(geometry, itemsize)
    at_once = max(1, min(threads, budget // max(1, per_row)))
    images, row_step = plan_chunks(batch, rows, per_row * at_once, "depthwise accumulator")
    height = min(rows, row_step)
    chunk = min(images, batch) * height * per_row
    # Split the groups so that one task's buffers stay near TASK_BYTES, and into at least as
    # many tasks as run at once when the work is large enough.
    wanted = max(math.ceil(chunk / TASK_BYTES), task_count(chunk // max(1, itemsize), at_once))
    group_step = max(1, math.ceil(groups / max(1, wanted)))
    tasks = tuple(
        (image_slice, group_slice, row_slice)
        for row_slice in chunks(rows, row_step)
        for image_slice in chunks(batch, images)
        for group_slice in chunks(groups, group_step)
    )
    largest = math.ceil(chunk * min(groups, group_step) / max(1, groups))
    workspace = min(at_once, len(tasks)) * largest
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
    output_shape = output_shape_of(geometry)
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
