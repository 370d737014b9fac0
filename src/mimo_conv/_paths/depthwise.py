"""The ``"depthwise"`` path: per-tap elementwise multiply-adds, for few channels per group.

A depthwise convolution (``groups == C_in``, any channel multiplier ``C_out / C_in``) sums
only ``prod(kernel)`` products per output, one per tap, each a scalar weight times one input
channel. A matrix product has nothing to batch there (its inner dimension is the tap count,
its row count the multiplier), so this path does the arithmetic elementwise instead:

    out[n, o] = sum_c sum_t weight[o, c, t] * x_padded[n, group(o) * C_in/groups + c,
                                                      tap t's window positions]

**Four layouts**, chosen from the geometry alone (:func:`depthwise_layout`, never from the
batch size, the chunking or the thread count):

* ``"flat"`` (stride 1): output position ``(r, *p)`` is computed at "wide" index
  ``r * W + flat(p)`` of the padded image's inner shape ``W``, so a tap is a constant
  offset into the flattened image and its view one contiguous run per channel (a SIMD loop,
  not a loop of short rows). The wide result holds ``prod(padded_shape[1:]) -
  prod(output_shape[1:])`` extra columns per row, dropped at the end.
* ``"phases"`` (a stride > 1): a task first copies its part of the padded image into its
  stride phases (``x[..., a::s0, b::s1]`` for every ``(a, b)``, each contiguous; under zero
  padding straight from the unpadded input into zeroed buffers); tap ``i`` along an axis
  of stride ``s`` and dilation ``d`` reads phase ``(d * i) % s`` at offset
  ``(d * i) // s``, so every tap is again one contiguous run of one phase, in the wide
  indexing of the flat layout over the phase's shape. On the suite's stride-2 3 x 3 layer
  (8 x 144 x 56 x 56, float32, 1 thread) it took 6.4 ms, against 14 ms for the strided
  views it replaced and 8-11 ms for the GEMM paths.
* ``"strided"`` (stride 1, an input that is not C-contiguous): the taps read strided views
  of the padded image.
* ``"channels_last"`` (one channel per group, a small map or many channels): the task's
  slab of the input is copied channels-last, and one ``np.einsum`` over its windows sums
  every tap: its inner loop runs over the channels (hundreds of contiguous elements, not a
  row of two to four outputs), and it multiplies and adds in one pass, where a multiply
  and an add per tap make two (2.2-2.5x faster on 7 x 7 maps of 960 channels).
* ``"matrix"`` (one channel per group, a map with no more positions than the kernel has
  taps, zero padding: the 4 x 4, 3 x 3 and 2 x 2 maps of a network's last stages): a
  channel's convolution is a small linear map from its ``Q`` input positions to its ``P``
  outputs, a ``P x Q`` matrix whose entry ``(p, q)`` is the weight of the tap that reads
  ``q`` from ``p``, or 0 where no tap does. Gathering those matrices from the weights (one
  fancy index per call) and summing ``Q`` products per output computes no product with a
  padded zero at all: on a 4 x 4 map with a 5 x 5 kernel, 16 products per output instead of
  25 (a third of them padding), in three NumPy calls instead of a slab copy and 25 views.

**One order of summation.** Every tap's input is a strided view of one array, so one
read-only view (:func:`numpy.lib.stride_tricks.as_strided`) with the channels of a group and
the taps as leading axes holds all the terms. Channel-first, each term is one NumPy multiply
and one add into the running sum. Channels-last, ``np.einsum`` iterates the taps as its
outer loops, in C order (their strides are the image's, row before column), and the
channels as its inner loop, adding each product to its output as it goes. Either way each
output is the same recursive sum ``((p_0 + p_1) + p_2) + ...``, channels of a group outer,
taps in C order inner, whatever the layout, the chunking or the thread count: results are
bit for bit the same for all of them (NumPy's einsum loop multiplies and adds separately
in its x86 builds, whose baseline has no fused multiply-add; a build whose loop fused them
would round channels-last results once less per product, still within the bound).
The ``"matrix"`` layout sums the same nonzero products in the same order (input position
``q`` grows with the tap index for a fixed output) and adds exact zeros in between where
the others add the products of padded zeros, so its values are the same too; only the sign
of a zero result may differ. Inputs with a NaN or an infinity keep the direct meaning: a
product of a window position is formed even when its weight is 0 (``inf * 0`` is NaN),
positions outside a window are masked out, and a non-finite weight meeting a padded zero
makes its output NaN, as a product with that zero would.

Work is split into tasks over images, groups and output rows that write disjoint outputs,
run on :func:`mimo_conv._core.workers.get_threads` threads; each thread reuses its buffers
from task to task. A task's buffers (running sum and product, the stride phases, the
channels-last slab and sum, the matrices' stack) aim at a few MiB (:data:`TASK_BYTES` and
its kin): the calls of a smaller task cost more than the cache misses of a larger one.
Temporary memory of a chunk of the plan: two output-sized buffers per image and output row
channel-first (and the phases of its input rows), one channels-last (and the slab), one per
input position plus one for the matrices (and the matrices themselves, built once per range
of rows and shared), for each of the threads that run at once
(:func:`depthwise_bytes_per_row`).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

from mimo_conv._core.budget import Chunking, chunks
from mimo_conv._core.dtypes import nonfinite
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.workers import get_threads, run_tasks, task_count
from mimo_conv._paths.spec import PathSpec, Work

#: How the time of a product in the ``"flat"`` layout compares with the measured rate
#: (``DEPTHWISE_SECONDS_PER_PRODUCT``): its tasks of :data:`TASK_BYTES` make fewer calls than
#: the smaller ones this product rate was measured with. ``calibrate.py`` (2026-12-02, 1
#: thread, OpenBLAS's own kernels) measured 0.67 (float32) and 0.73 (float64) of the
#: prediction at 1 on the suite's 3 x 3 layer on 56 x 56 maps of 64 channels.
FLAT_PRODUCT_FACTOR = 0.7

#: The same for the ``"phases"`` layout, its phase copies counted apart: each product reads
#: a contiguous run, but from one of several phase buffers, and its tasks are larger than
#: the cache. Measured by ``benchmarks/calibrate.py`` (2026-12-02, 1 thread, another job on
#: the other core): 6.4 ms float32 and 18.7 ms float64 on the suite's stride-2 layer, 2.3 and
#: 5.6 ms on 144 channels of one 56 x 56 image, 1.4-2.3 times the stride-1 rate's prediction.
PHASES_PRODUCT_FACTOR = 1.6

#: Bytes of buffers a channel-first task aims at (running sum, product, and the phases of
#: the ``"phases"`` layout). Measured (2026-12-02, 1 thread, float32 and float64): from
#: 1 MiB up the flat layout's calls cost less than a larger task's cache misses (the
#: ResNet-style 3 x 3 layer of 8 x 64 x 56 x 56 took 5.6 ms at 512 KiB, 5.1 from 1 MiB;
#: float64 12.2 and 10.7 ms), and the phases layout's twenty-odd calls per task, 1.5-2x
#: faster at 4 MiB than at 512 KiB, on six strided layers of 32-672 channels.
TASK_BYTES = 4 * 2**20

#: The same for a channels-last task (its slab and sum): one einsum call each, whose set-up
#: costs more than the cache misses of a larger task (measured best at 2 MiB over 128 KiB
#: to 8 MiB on 7 x 7 to 28 x 28 maps of 192-960 channels).
STACK_TASK_BYTES = 2 * 2**20

#: The same for a ``"matrix"`` task: its three calls (multiply, sum, result) cost more
#: than a stack beyond the cache; measured on the 4 x 4 layer of 672 channels (2 and 8
#: images, float32, 1 thread): 2.3 ms at 256 KiB per task, 0.78 ms at 2 MiB, 0.59 ms at
#: 4 MiB and above.
MATRIX_TASK_BYTES = 8 * 2**20

#: Channels (one per group) from which a map of any size goes channels-last at stride 1:
#: the einsum's inner loop over them is then long enough to beat two passes per tap.
#: Measured, float32, 1 thread: 14 x 14 maps of 384 channels 2.5 against 4.3 ms, 28 x 28
#: of 192 channels 5.6 against 7.2 ms; 28 x 28 of 96 channels 2.7 against 2.6 ms, 112 x 112
#: of 32 channels 34 against 11 ms. (At stride 2 both lose to the GEMM paths.)
CHANNELS_LAST_FROM = 128

#: The channels-last einsum's time per output, in stacked products
#: (``DEPTHWISE_SECONDS_PER_PRODUCT``, float32): :data:`EINSUM_PRODUCT_FACTOR` per tap (it
#: multiplies and adds in one pass, where the channel-first layouts make two), scaled by
#: the itemsize like every product, plus :data:`EINSUM_OUTPUT_COST` per output that does
#: not scale with it (the loop's own work per element and tap row). Fitted to 22 layers (3 x 3
#: and 5 x 5 kernels, 6 x 6 to 28 x 28 maps of 96-960 channels, batch 1-8, float32 and
#: float64, 1 thread, 2026-12-02): the per-tap factor alone (0.4, the previous model)
#: under-predicted the 3 x 3 layers 2-3x in float32, so ``auto`` took the einsum where
#: row_gemm was faster (28 x 28 maps of 192 channels: 1.33 against 0.97 ms).
EINSUM_PRODUCT_FACTOR = 0.2
EINSUM_OUTPUT_COST = 8.5

#: Output positions per image and channel (stride 1: of the wide run) below which one
#: channel per group goes channels-last: NumPy's per-run overhead dominates runs of a few
#: dozen elements (the 4 x 4, 3 x 3 and 2 x 2 maps of the suite; the 56 x 56 and 28 x 28
#: maps stay channel-first).
CHANNELS_LAST_BELOW = 128

Layout = Literal["flat", "phases", "strided", "channels_last", "matrix"]


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


def _wide_length(geometry: ConvGeometry, height: int) -> int:
    """Elements of the flat run that ``height`` output rows need (stride 1; phases: in one)."""
    padded, output_shape = _wide_shape(geometry), geometry.output_shape
    width = math.prod(padded[1:])
    inner = sum(
        (size - 1) * math.prod(padded[2 + axis :]) for axis, size in enumerate(output_shape[1:])
    )
    return (height - 1) * width + 1 + inner


def _wide_shape(geometry: ConvGeometry) -> tuple[int, ...]:
    """Return the shape the wide index runs over: the padded image's, or a stride phase's.

    A phase along an axis of padded length ``P`` and stride ``s`` holds ``ceil(P / s)``
    positions (the later phases one fewer where ``s`` does not divide ``P``, the buffer's
    last slot then a zero).
    """
    if uses_flat_views(geometry):
        return geometry.padded_shape
    return tuple(
        -(-size // step) for size, step in zip(geometry.padded_shape, geometry.stride, strict=True)
    )


def _phase_rows(geometry: ConvGeometry, height: int) -> int:
    """Rows of one phase that a task of ``height`` output rows reads: its input rows / s0."""
    span = geometry.dilation[0] * (geometry.kernel_shape[0] - 1) + 1
    return -(-((height - 1) * geometry.stride[0] + span) // geometry.stride[0])


def depthwise_layout(geometry: ConvGeometry) -> Layout:
    """Return the layout the path computes a geometry in (the batch size plays no part).

    Examples
    --------
    >>> def g(channels, size, stride):
    ...     return ConvGeometry(
    ...         batch_size=2, in_channels=channels, out_channels=channels, groups=channels,
    ...         input_shape=(size, size), kernel_shape=(3, 3), stride=(stride, stride),
    ...         dilation=(1, 1), padding=((1, 1),) * 2,
    ...     )
    >>> depthwise_layout(g(64, 56, 1)), depthwise_layout(g(64, 56, 2))
    ('flat', 'phases')
    >>> depthwise_layout(g(672, 6, 1))  # 6 x 6 outputs: a wide run of 46 elements
    'channels_last'
    >>> depthwise_layout(g(672, 3, 1))  # 9 input positions, no more than the 9 taps
    'matrix'
    """
    flat = uses_flat_views(geometry)
    if geometry.in_channels_per_group == 1:
        if 0 < _matrix_positions(geometry) <= geometry.terms_per_output:
            return "matrix"
        output_shape = geometry.output_shape
        run = _wide_length(geometry, output_shape[0]) if flat else math.prod(output_shape)
        many = geometry.groups >= CHANNELS_LAST_FROM and flat
        if run < CHANNELS_LAST_BELOW or many:
            return "channels_last"
    return "flat" if flat else "phases"


def _matrix_positions(geometry: ConvGeometry) -> int:
    """Input positions ``Q`` a ``"matrix"`` layout's channel reads; huge where it does not apply.

    Under zero padding the padded zeros need no column (their products are 0), so ``Q``
    is the image's own size; other padding modes copy image values into the border, where
    one matrix entry would have to add several weights (another rounding): not this layout.
    """
    if geometry.is_padded and geometry.padding_mode != "zeros":
        return 2**62
    return math.prod(geometry.input_shape)


def _row_width(geometry: ConvGeometry) -> int:
    """Elements per output row of the running sum: padded (or phase) inner shape when wide."""
    if depthwise_layout(geometry) in ("flat", "phases"):
        return math.prod(_wide_shape(geometry)[1:])
    return math.prod(geometry.output_shape[1:])


def _slab_per_row(geometry: ConvGeometry) -> int:
    """Elements of channels-last input slab per output row (at most), over all channels.

    ``"matrix"``: an image's input, channels-last (its matrices are shared by the threads,
    :func:`_matrix_bytes_per_row`).
    """
    layout = depthwise_layout(geometry)
    if layout == "matrix":
        return _matrix_positions(geometry) * geometry.in_channels
    if layout == "phases":  # every phase's rows for one output row (halo included)
        phases = math.prod(geometry.stride) * math.prod(_wide_shape(geometry)[1:])
        return _phase_rows(geometry, 1) * phases * geometry.in_channels
    if layout != "channels_last":
        return 0
    span = geometry.dilation[0] * (geometry.kernel_shape[0] - 1) + 1
    rows = max(geometry.stride[0], span)
    return rows * math.prod(geometry.padded_shape[1:]) * geometry.in_channels


def _output_buffers(geometry: ConvGeometry) -> int:
    """Output-sized buffers a task holds: the running sum and its products.

    Channel-first, one product at a time is added into the running sum; channels-last, the
    einsum adds every product into its result as it goes; the matrices stack them.
    """
    layout = depthwise_layout(geometry)
    if layout == "matrix":  # a product per input position, stacked, and their sum
        return 1 + _matrix_positions(geometry)
    if layout == "channels_last":
        return 1
    return 2


def depthwise_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Temporary bytes per image and output row: the task's buffers and slab, per thread.

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
    outputs = _output_buffers(geometry) * geometry.out_channels * _row_width(geometry)
    per_thread = (outputs + _slab_per_row(geometry)) * itemsize * get_threads()
    return per_thread + _matrix_bytes_per_row(geometry, itemsize)


def _matrix_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Bytes of the ``"matrix"`` layout's matrices for one output row (0 in the others).

    Built once per range of output rows, for every channel, and read by all the threads.
    """
    if depthwise_layout(geometry) != "matrix":
        return 0
    row = math.prod(geometry.output_shape[1:])
    return _matrix_positions(geometry) * row * geometry.out_channels * itemsize


def correlate_depthwise(
    x_padded: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    chunking: Chunking | None = None,
) -> NDArray[Any]:
    """Cross-correlate by per-tap products over flat, strided or channels-last views.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C_in, *padded_shape)
        The padded input, in the compute dtype; the engine hands the ``"matrix"`` layout
        the input without its border (:func:`reads_unpadded`), and either works there.
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
    layout = plan.layout
    # Flat runs need a C-contiguous image; another layout (an unpadded input passed as it
    # is) takes the strided views, the same products summed in the same order.
    if layout == "flat" and not x_padded.flags.c_contiguous:
        layout = "strided"
    buffers = _Buffers(out.dtype)
    if layout == "matrix":
        operands = _matrix_operands(x_padded, weight, geometry)
        tasks = plan.tasks
        for rows in chunks(plan.extent[1], plan.row_step):
            matrices = _matrices(operands, rows)  # every channel's: shared by the tasks
            compute = partial(_matrix_task, operands, matrices, out, buffers)
            run_tasks([partial(compute, task) for task in tasks if task[2] == rows])
            del matrices
        return out
    if layout == "channels_last":
        # (kernel..., C_out/groups, groups): the weights of a tap, channels innermost.
        taps = math.prod(geometry.kernel_shape)
        shape = (geometry.groups, geometry.out_channels_per_group, taps)
        table = np.ascontiguousarray(weight.reshape(shape).transpose(2, 1, 0))
        compute = partial(_channels_last_task, x_padded, table, out, geometry, buffers)
    else:
        compute = partial(_channel_first_task, x_padded, weight, out, geometry, buffers, layout)
    run_tasks([partial(compute, task) for task in plan.tasks])
    return out


class _Buffers(threading.local):
    """Each thread's buffers for one call, allocated by its first task and reused after.

    A fresh allocation per task of a few hundred KiB is mapped (and faulted in) anew by
    the allocator each time; reusing them keeps them in the cache as well.
    """

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = dtype
        self.arrays: dict[str, NDArray[Any]] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> NDArray[Any]:
        """Return an uninitialised ``shape`` array: the start of this thread's ``name`` buffer."""
        size = math.prod(shape)
        array = self.arrays.get(name)
        if array is None or array.size < size:
            array = self.arrays[name] = np.empty(size, dtype=self.dtype)
        return array[:size].reshape(shape)


@dataclass(frozen=True)
class _DepthwisePlan:
    """Layout, the split of a call into tasks and workspace, per call shape.

    A few ints whatever the call's size (the plans are cached): the tasks are generated
    from the steps when the path runs (:attr:`tasks`), and counted without it
    (:attr:`task_count`).
    """

    out_shape: tuple[int, ...]
    layout: Layout
    workspace: int
    #: (batch, rows, groups) of the call; the images per chunk and per task; the groups
    #: and output rows per task.
    extent: tuple[int, int, int]
    images: int
    image_step: int
    group_step: int
    row_step: int

    @property
    def tasks(self) -> tuple[tuple[slice, slice, slice], ...]:
        """Every task: (images, groups, output rows), rows outermost."""
        batch, rows, groups = self.extent
        return tuple(
            (image_slice, group_slice, row_slice)
            for row_slice in chunks(rows, self.row_step)
            for image_chunk in chunks(batch, self.images)
            for image_slice in _pieces(image_chunk, self.image_step)
            for group_slice in chunks(groups, self.group_step)
        )

    @property
    def task_count(self) -> int:
        """``len(self.tasks)``, counted without building them."""
        batch, rows, groups = self.extent
        per_rows = sum(
            -(-(chunk.stop - chunk.start) // self.image_step)  # ceiling division
            for chunk in chunks(batch, self.images)
        )
        row_tasks, group_tasks = -(-rows // self.row_step), -(-groups // self.group_step)
        return int(row_tasks * per_rows * group_tasks)


def plan_depthwise(
    geometry: ConvGeometry, itemsize: int, chunking: Chunking | None = None
) -> _DepthwisePlan:
    """Split a call into tasks (the plan's chunks, split for the cache).

    Each task holds a running sum (and a product, channel-first; a stack of products, for
    the matrices) for some images, groups and output rows (channels-last: also its input
    slab); up to :func:`~mimo_conv._core.workers.get_threads` tasks run at once, each within
    one chunk of the plan (whose bytes :func:`depthwise_bytes_per_row` counts once per
    thread). Chunks are split until each task is near its layout's target: channel-first
    over groups (a task's runs are whole images or rows), channels-last over images first
    (its runs are the channels).

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


def _task_bytes(
    geometry: ConvGeometry, itemsize: int, images: int, groups: int, rows: int
) -> tuple[int, int]:
    """Bytes of one output-sized buffer of a task, and of its slab (channels-last)."""
    channels = groups * geometry.out_channels_per_group
    per_output = images * channels * rows * _row_width(geometry) * itemsize
    slab = 0
    layout = depthwise_layout(geometry)
    if layout == "matrix":  # the task's input, channels-last
        return per_output, images * groups * _matrix_positions(geometry) * itemsize
    if layout == "phases":  # the stride phases of the task's input rows
        phase = _phase_rows(geometry, rows) * math.prod(_wide_shape(geometry)[1:])
        inputs = images * groups * geometry.in_channels_per_group
        return per_output, inputs * math.prod(geometry.stride) * phase * itemsize
    if layout == "channels_last":
        span = geometry.dilation[0] * (geometry.kernel_shape[0] - 1) + 1
        slab_rows = (rows - 1) * geometry.stride[0] + span
        slab = images * groups * slab_rows * math.prod(geometry.padded_shape[1:]) * itemsize
    return per_output, slab


@lru_cache(maxsize=256)
def _plan(
    geometry: ConvGeometry, itemsize: int, images: int, row_step: int, threads: int
) -> _DepthwisePlan:
    """:func:`plan_depthwise`, cached: the chunk sizes and the thread count are its key."""
    batch, groups = geometry.batch_size, geometry.groups
    output_shape = geometry.output_shape
    rows = output_shape[0]
    layout = depthwise_layout(geometry)
    terms = geometry.terms_per_output
    images, row_step = min(images, max(1, batch)), min(rows, row_step)
    output, slab = _task_bytes(geometry, itemsize, images, groups, row_step)
    # What the plan budgets per thread (depthwise_bytes_per_row): the buffers and the slab.
    # Channel-first runs are long and a task small; channels-last and matrix tasks are a
    # few calls each, and larger.
    stacked = layout in ("channels_last", "matrix")
    buffers = _output_buffers(geometry)
    chunk = buffers * output + slab
    elements = max(1, output // max(1, itemsize)) * terms  # products: the work per thread
    target = STACK_TASK_BYTES if stacked else TASK_BYTES
    if layout == "matrix":
        target = MATRIX_TASK_BYTES
    wanted = max(math.ceil(chunk / target), task_count(elements, threads))
    image_step = images
    if layout == "channels_last":  # channels innermost: split the images first
        image_step = max(1, math.ceil(images / wanted))
        wanted = math.ceil(wanted / math.ceil(images / image_step))
    group_step = max(1, math.ceil(groups / max(1, wanted)))
    task_output, task_slab = _task_bytes(geometry, itemsize, image_step, group_step, row_step)
    largest = task_slab + buffers * task_output
    plan = _DepthwisePlan(
        (batch, geometry.out_channels, *output_shape), layout, 0,
        (batch, rows, groups), images, image_step, group_step, max(1, row_step),
    )  # fmt: skip
    workspace = min(threads, plan.task_count) * largest
    workspace += row_step * _matrix_bytes_per_row(geometry, itemsize)  # shared by the tasks
    return dataclasses.replace(plan, workspace=workspace)


@dataclass(frozen=True)
class _MatrixOperands:
    """What every ``"matrix"`` task of one call reads (built once per call).

    ``source`` is the image without its zero border, ``table`` the weights as (taps + 1,
    C_out/groups, groups) with a last row of zeros (the entry of a position no tap reads);
    ``finite`` says whether the image holds only finite numbers (else the products outside
    the windows are masked out), ``nonfinite_weights`` which weights are NaN or infinite
    (None when none is).
    """

    geometry: ConvGeometry
    source: NDArray[Any]
    table: NDArray[Any]
    finite: bool
    nonfinite_weights: NDArray[np.bool_] | None


def _matrix_operands(
    x_padded: NDArray[Any], weight: NDArray[Any], geometry: ConvGeometry
) -> _MatrixOperands:
    """Prepare a ``"matrix"`` call: the image's view, the weight table and the finiteness checks."""
    inside = tuple(
        slice(before, before + size)
        for (before, _), size in zip(geometry.padding, geometry.input_shape, strict=True)
    )
    source = x_padded
    if x_padded.shape[2:] != geometry.input_shape:  # the engine padded it: drop the zeros
        source = x_padded[(slice(None), slice(None), *inside)]
    taps = math.prod(geometry.kernel_shape)
    per_out, groups = geometry.out_channels_per_group, geometry.groups
    table = np.zeros((taps + 1, per_out, groups), dtype=weight.dtype)
    table[:taps] = weight.reshape((groups, per_out, taps)).transpose(2, 1, 0)
    weights_nonfinite = nonfinite(table[:taps])
    return _MatrixOperands(
        geometry=geometry,
        source=source,
        table=table,
        finite=not nonfinite(source).any(),
        nonfinite_weights=weights_nonfinite if weights_nonfinite.any() else None,
    )


@lru_cache(maxsize=64)
def _matrix_index(
    input_shape: tuple[int, ...],
    output_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    before: tuple[int, ...],
) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Which tap of output ``p`` reads input position ``q``: a ``(P, Q)`` table of tap indices.

    Entry ``taps`` (one past the last tap) where no tap does; and a ``(P, taps)`` table of
    which taps of each output read a padded zero. Both read-only (they are cached).

    Examples
    --------
    A 1-d image of 3 positions, a kernel of 3 taps and padding 1: output 0 reads positions
    0 and 1 with taps 1 and 2 (its tap 0 reads the padded zero before the image).

    >>> index, padded = _matrix_index((3,), (3,), (3,), (1,), (1,), (1,))
    >>> index
    array([[1, 2, 3],
           [0, 1, 2],
           [3, 0, 1]])
    >>> padded.astype(int)
    array([[1, 0, 0],
           [0, 0, 0],
           [0, 0, 1]])
    """
    taps = math.prod(kernel_shape)
    axes = len(input_shape)
    index = np.zeros((*output_shape, *input_shape), dtype=np.intp)
    valid = np.ones(index.shape, dtype=bool)
    padded = np.zeros((*output_shape, *kernel_shape), dtype=bool)
    for axis, (size, outputs, k, step, spacing, start) in enumerate(
        zip(input_shape, output_shape, kernel_shape, stride, dilation, before, strict=True)
    ):
        # Tap t of output p reads padded coordinate p * step + t * spacing, which is input
        # position q = p * step + t * spacing - start: the tap is (q + start - p * step) /
        # spacing, where that is a whole number of taps.
        offset = np.arange(size)[None, :] + start - step * np.arange(outputs)[:, None]
        tap, rest = np.divmod(offset, spacing)
        ok = (rest == 0) & (tap >= 0) & (tap < k)
        shape = [1] * (2 * axes)
        shape[axis], shape[axes + axis] = outputs, size
        index += (np.where(ok, tap, 0) * math.prod(kernel_shape[axis + 1 :])).reshape(shape)
        valid &= ok.reshape(shape)
        read = step * np.arange(outputs)[:, None] + spacing * np.arange(k)[None, :]
        outside = (read < start) | (read >= start + size)
        shape[axis], shape[axes + axis] = outputs, k
        padded |= outside.reshape(shape)
    index[~valid] = taps
    table = index.reshape((math.prod(output_shape), math.prod(input_shape)))
    hits = padded.reshape((math.prod(output_shape), taps))
    table.flags.writeable = hits.flags.writeable = False
    return table, hits


def _matrices(operands: _MatrixOperands, rows: slice) -> NDArray[Any]:
    """Every channel's matrix rows for outputs in ``rows``: (P_rows, Q, C_out/groups, groups)."""
    g = operands.geometry
    row = math.prod(g.output_shape[1:])
    index, _ = _matrix_index(
        g.input_shape, g.output_shape, g.kernel_shape, g.stride, g.dilation,
        tuple(before for before, _ in g.padding),
    )  # fmt: skip
    # One fancy index of the weight table: entry (p, q) is the weights of the tap that
    # reads q from p (its row of zeros where none does).
    return np.take(operands.table, index[rows.start * row : rows.stop * row], axis=0)


def _matrix_task(
    operands: _MatrixOperands,
    matrices: NDArray[Any],
    out: NDArray[Any],
    buffers: _Buffers,
    task: tuple[slice, slice, slice],
) -> None:
    """Compute one ``"matrix"`` task: gather its matrices, stack the products, sum them.

    The stack is (images, outputs, input positions, C_out/groups, groups): the products of
    one output are a run of (input positions x channels) elements, which the multiply
    walks in one inner loop, and the sum over the input positions adds slot by slot.
    """
    images, groups, rows = task
    g = operands.geometry
    per_out, positions = g.out_channels_per_group, _matrix_positions(g)
    count, group_count = images.stop - images.start, groups.stop - groups.start
    row = math.prod(g.output_shape[1:])
    first, last = rows.start * row, rows.stop * row
    taps = math.prod(g.kernel_shape)
    index, padded = _matrix_index(
        g.input_shape, g.output_shape, g.kernel_shape, g.stride, g.dilation,
        tuple(before for before, _ in g.padding),
    )  # fmt: skip
    index = index[first:last]
    # The task's input, channels-last: (images, Q, groups).
    slab = buffers.get("slab", (count, positions, group_count))
    np.copyto(
        slab.reshape((count, *g.input_shape, group_count)),
        np.moveaxis(operands.source[images, groups], 1, -1),
    )
    stack = buffers.get("stack", (count, last - first, positions, per_out, group_count))
    # These groups' matrices (P_task, Q, C_out/groups, groups): a view.
    left, right = slab[:, None, :, None, :], matrices[None, :, :, :, groups]
    if operands.finite and out.dtype != object:
        np.multiply(left, right, out=stack)
    else:  # an inf or NaN outside a window must not meet that window's 0 entry
        stack[...] = out.dtype.type(0)
        np.multiply(left, right, out=stack, where=(index != taps)[None, :, :, None, None])
    total = buffers.get("sum", (count, last - first, per_out, group_count))
    if per_out * group_count > 1:
        # Over an outer axis of a contiguous stack NumPy adds slot by slot, in order.
        np.add.reduce(stack, axis=2, out=total)
    else:  # one channel: the positions would be the inner loop, summed pairwise
        np.copyto(total, stack[:, :, 0])
        for position in range(1, positions):
            np.add(total, stack[:, :, position], out=total)
    if operands.nonfinite_weights is not None:
        # A non-finite weight times a padded zero is NaN, in every output where that tap
        # reads the border (the products the matrices leave out).
        hits = np.einsum(
            "pt,tmg->pmg",
            padded[first:last].astype(np.intp),
            operands.nonfinite_weights[:, :, groups].astype(np.intp),
        )
        total[:, hits > 0] = np.nan
    target = out.reshape((out.shape[0], g.groups, per_out, -1))[images, groups, :, first:last]
    target[...] = total.transpose(0, 3, 2, 1)


def _pieces(outer: slice, step: int) -> list[slice]:
    """Split a slice into consecutive pieces of ``step`` (the last may be shorter)."""
    return [
        slice(start, min(outer.stop, start + step))
        for start in range(outer.start, outer.stop, step)
    ]


def _channel_first_task(
    source: NDArray[Any],
    weight: NDArray[Any],
    out: NDArray[Any],
    geometry: ConvGeometry,
    buffers: _Buffers,
    layout: Layout,
    task: tuple[slice, slice, slice],
) -> None:
    """Compute one task in the flat or strided layout: some images, groups and output rows."""
    images, groups, rows = task
    per_group, per_out = geometry.in_channels_per_group, geometry.out_channels_per_group
    count, group_count = images.stop - images.start, groups.stop - groups.start
    height = rows.stop - rows.start
    output_shape, padded = geometry.output_shape, geometry.padded_shape
    kernel = geometry.kernel_shape
    target = out.reshape((out.shape[0], geometry.groups, per_out, *output_shape))[
        images, groups, :, rows
    ]
    # (C_in/groups, *kernel, 1, groups, C_out/groups, 1...): a weight per channel and tap.
    table = np.moveaxis(
        weight[groups.start * per_out : groups.stop * per_out].reshape(
            (group_count, per_out, per_group, *kernel)
        ),
        (0, 1),
        (-2, -1),
    )
    channel = groups.start * per_group
    sample, plane = source.strides[0], source.strides[1]
    lead = (per_group, *kernel)
    if layout == "flat":
        width = math.prod(padded[1:])
        length = _wide_length(geometry, height)
        flat = source.reshape((source.shape[0], source.shape[1], -1))
        base = flat[images.start, channel, rows.start * width :]
        item = flat.strides[2]
        taps = tuple(
            spacing * math.prod(padded[axis + 1 :]) * item
            for axis, spacing in enumerate(geometry.dilation)
        )
        view = as_strided(
            base,
            shape=(*lead, count, group_count, per_out, length),
            strides=(plane, *taps, sample, per_group * plane, 0, item),
            writeable=False,
        )
        weights = _lead_weights(table, len(lead), 1)
        # A contiguous running sum: NumPy's reduce into a strided one ran ~1.8x slower.
        accumulator = buffers.get("sum", (count, group_count, per_out, length))
        _sum_terms(view, weights, len(lead), accumulator, buffers)
        _crop_wide(accumulator, geometry, height, target)
        return
    if layout == "phases":
        accumulator = buffers.get(
            "sum", (count, group_count, per_out, _wide_length(geometry, height))
        )
        _sum_phases(source, table, geometry, task, buffers, accumulator)
        _crop_wide(accumulator, geometry, height, target)
        return
    base = source[images.start :, channel:, rows.start * geometry.stride[0] :]  # a view
    spatial = source.strides[2:]
    view = as_strided(
        base,
        shape=(*lead, count, group_count, per_out, height, *output_shape[1:]),
        strides=(
            plane,
            *(spacing * step for spacing, step in zip(geometry.dilation, spatial, strict=True)),
            sample,
            per_group * plane,
            0,
            *(jump * step for jump, step in zip(geometry.stride, spatial, strict=True)),
        ),
        writeable=False,
    )
    weights = _lead_weights(table, len(lead), len(output_shape))
    _sum_terms(view, weights, len(lead), target, buffers)


def _sum_phases(
    source: NDArray[Any],
    table: NDArray[Any],
    geometry: ConvGeometry,
    task: tuple[slice, slice, slice],
    buffers: _Buffers,
    running: NDArray[Any],
) -> None:
    """Copy a task's input rows into their stride phases, then sum the taps' contiguous runs.

    ``running`` (images, groups, C_out/groups, wide positions) receives the same products,
    summed in the same order, as the strided views would give: channels of a group outer,
    taps in C order inner.
    """
    images, groups, rows = task
    per_group, per_out = geometry.in_channels_per_group, geometry.out_channels_per_group
    count, group_count = images.stop - images.start, groups.stop - groups.start
    height = rows.stop - rows.start
    steps, dilation, kernel = geometry.stride, geometry.dilation, geometry.kernel_shape
    spatial = len(steps)
    shape = (_phase_rows(geometry, height), *_wide_shape(geometry)[1:])
    channel = groups.start * per_group
    block = source[images, channel : channel + group_count * per_group]
    # The engine hands over the input without its border under zero padding
    # (:func:`reads_unpadded`): the border is then the buffer's zeros, not a padded copy.
    unpadded = source.shape[2:] != geometry.padded_shape
    border = tuple(before if unpadded else 0 for before, _ in geometry.padding)
    first = rows.start * steps[0]  # the task's first padded input row
    phases = buffers.get("phases", (*steps, count, group_count * per_group, *shape))
    phases[...] = 0  # the border, and the slots past a shorter phase's end
    for phase in np.ndindex(*steps):
        starts = (first + phase[0], *phase[1:])  # padded coordinates of the phase's first slot
        into, taken = [], []
        for start, step, size, before, length in zip(
            starts, steps, block.shape[2:], border, shape, strict=True
        ):
            # Slots j with 0 <= start + j * step - before < size hold input values.
            low = max(0, -(-(before - start) // step))
            high = min(length, -(-(size + before - start) // step))
            into.append(slice(low, max(low, high)))
            origin = start + low * step - before
            taken.append(slice(origin, origin + (max(low, high) - low - 1) * step + 1, step))
        if all(part.stop > part.start for part in into):
            source_index: tuple[Any, ...] = (..., *taken)
            phases[phase][(slice(None), slice(None), *into)] = block[source_index]
    item = phases.itemsize
    inner = tuple(math.prod(shape[axis + 1 :]) * item for axis in range(spatial))
    offsets = tuple((d * (k - 1)) // s + 1 for d, k, s in zip(dilation, kernel, steps, strict=True))
    # Lead axes: the channel of the group, then (offset, phase) per spatial axis.
    lead_shape = (per_group, *(n for pair in zip(offsets, steps, strict=True) for n in pair))
    plane = math.prod(shape) * item
    view = as_strided(
        phases,
        shape=(*lead_shape, count, group_count, per_out, running.shape[3]),
        strides=(
            plane,
            *(n for pair in zip(inner, phases.strides[:spatial], strict=True) for n in pair),
            phases.strides[spatial],
            per_group * plane,
            0,
            item,
        ),
        writeable=False,
    )
    # (C_in/groups, *kernel, 1, groups, C_out/groups, 1): a weight per channel and tap.
    weights = _lead_weights(table, 1 + spatial, 1)
    terms = _phase_terms(per_group, kernel, dilation, steps)
    _sum_products(view, weights, terms, running, buffers.get("stack", running.shape))


@lru_cache(maxsize=256)
def _phase_terms(
    channels: int, kernel: tuple[int, ...], dilation: tuple[int, ...], steps: tuple[int, ...]
) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """Every term in C order of (channel, tap): its index into the phase view and the weights.

    Examples
    --------
    >>> _phase_terms(1, (3,), (1,), (2,))  # taps 0, 1, 2: phase 0, 1, 0 at offsets 0, 0, 1
    (((0, 0, 0), (0, 0)), ((0, 0, 1), (0, 1)), ((0, 1, 0), (0, 2)))
    """
    terms = []
    for channel, *tap in np.ndindex(channels, *kernel):
        lead = [channel]
        for index, d, s in zip(tap, dilation, steps, strict=True):
            lead += [(d * index) // s, (d * index) % s]
        terms.append((tuple(lead), (channel, *tap)))
    return tuple(terms)


def _crop_wide(
    accumulator: NDArray[Any], geometry: ConvGeometry, height: int, target: NDArray[Any]
) -> None:
    """Copy the outputs out of a wide running sum (stride-1 images or stride phases)."""
    output_shape, wide = geometry.output_shape, _wide_shape(geometry)
    inner = accumulator.strides[3]
    positions = as_strided(  # output (r, *p) sits at wide index r * width + flat(p)
        accumulator,
        shape=(*accumulator.shape[:3], height, *output_shape[1:]),
        strides=(
            *accumulator.strides[:3],
            math.prod(wide[1:]) * inner,
            *(math.prod(wide[2 + axis :]) * inner for axis in range(len(wide) - 1)),
        ),
        writeable=False,
    )
    target[...] = positions


def _channels_last_task(
    source: NDArray[Any],
    table: NDArray[Any],
    out: NDArray[Any],
    geometry: ConvGeometry,
    buffers: _Buffers,
    task: tuple[slice, slice, slice],
) -> None:
    """Compute one task channels-last (one channel per group): copy its slab, one einsum."""
    images, groups, rows = task
    per_out = geometry.out_channels_per_group
    count, group_count = images.stop - images.start, groups.stop - groups.start
    height = rows.stop - rows.start
    output_shape, kernel = geometry.output_shape, geometry.kernel_shape
    span = geometry.dilation[0] * (kernel[0] - 1) + 1
    first = rows.start * geometry.stride[0]
    last = (rows.stop - 1) * geometry.stride[0] + span
    slab = buffers.get("slab", (count, last - first, *geometry.padded_shape[1:], group_count))
    if geometry.padding_mode == "zeros" and geometry.is_padded:
        # Only the image is transposed (the slow copy); its zero border is written as such.
        slab[...] = 0
        inside = _inside(geometry, first, last)
        image = source[images, groups, first:last][(slice(None), slice(None), *inside)]
        np.copyto(slab[(slice(None), *inside)], np.moveaxis(image, 1, -1))
    else:
        np.copyto(slab, np.moveaxis(source[images, groups, first:last], 1, -1))
    spatial = slab.strides[1:-1]
    # (*kernel, images, rows, *output[1:], groups): every tap's window, channels innermost.
    view = as_strided(
        slab,
        shape=(*kernel, count, height, *output_shape[1:], group_count),
        strides=(
            *(spacing * step for spacing, step in zip(geometry.dilation, spatial, strict=True)),
            slab.strides[0],
            *(jump * step for jump, step in zip(geometry.stride, spatial, strict=True)),
            slab.strides[-1],
        ),
        writeable=False,
    )
    # table: (taps, C_out/groups, groups); these groups' weights per tap, channels inner.
    weights = table[:, :, groups].reshape((*kernel, per_out, group_count))
    accumulator = buffers.get("sum", (count, height, *output_shape[1:], per_out, group_count))
    # Sum over the taps (labels 0 .. K-1); the multiplier m only in the weights.
    lead = len(kernel)
    taps = list(range(lead))
    positions = list(range(lead + 1, lead + 1 + len(output_shape)))
    picture, multiplier, channel = lead, positions[-1] + 1, positions[-1] + 2
    np.einsum(
        view, [*taps, picture, *positions, channel],
        weights, [*taps, multiplier, channel],
        [picture, *positions, multiplier, channel],
        out=accumulator,
    )  # fmt: skip
    target = out.reshape((out.shape[0], geometry.groups, per_out, *output_shape))[
        images, groups, :, rows
    ]
    spatial_axes = tuple(range(1, len(output_shape) + 1))
    ndim = accumulator.ndim
    target[...] = accumulator.transpose((0, ndim - 1, ndim - 2, *spatial_axes))


def _inside(geometry: ConvGeometry, first: int, last: int) -> tuple[slice, ...]:
    """Where the image sits in padded rows ``first:last`` (relative slices), per axis."""
    (before, _), size = geometry.padding[0], geometry.input_shape[0]
    rows = slice(max(before, first) - first, max(0, min(before + size, last) - first))
    inner = (
        slice(start, start + length)
        for (start, _), length in zip(geometry.padding[1:], geometry.input_shape[1:], strict=True)
    )
    return (rows, *inner)


def _lead_weights(table: NDArray[Any], lead: int, spatial: int) -> NDArray[Any]:
    """``table`` (lead axes, groups, C_out/groups) with axes of 1 for images and positions."""
    shape = table.shape
    return table.reshape((*shape[:lead], 1, *shape[lead:], *(1,) * spatial))


def _sum_terms(
    view: NDArray[Any],
    weights: NDArray[Any],
    lead: int,
    running: NDArray[Any],
    buffers: _Buffers,
) -> None:
    """Set ``running`` to the sum over the ``lead`` axes of ``view * weights``, in C order.

    One product at a time, added at once: ``((p_0 + p_1) + p_2) + ...``.
    """
    lead_shape, body = view.shape[:lead], view.shape[lead:]
    _sum_products(view, weights, _indices(lead_shape), running, buffers.get("stack", body))


def _sum_products(
    view: NDArray[Any],
    weights: NDArray[Any],
    terms: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...],
    running: NDArray[Any],
    product: NDArray[Any],
) -> None:
    """Set ``running`` to the sum of ``view[a] * weights[b]`` over ``terms`` (a, b), in order."""
    for term, (lead, tap) in enumerate(terms):
        if term == 0:
            np.multiply(view[lead], weights[tap], out=running)
        else:
            np.multiply(view[lead], weights[tap], out=product)
            np.add(running, product, out=running)


@lru_cache(maxsize=256)
def _indices(shape: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """Every index of ``shape`` in C order, twice: the view's and the weights' (cached)."""
    return tuple((index, index) for index in np.ndindex(*shape))


def reads_unpadded(geometry: ConvGeometry) -> bool:
    """Whether the path takes the input without its border (then it writes the zeros itself).

    The ``"matrix"`` layout does, and the ``"phases"`` layout under zero padding: its tasks
    copy their input into zeroed stride phases, so a padded copy of the whole input first
    would only add a pass over memory (and page faults on a large one).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=2, in_channels=8, out_channels=8, groups=8, input_shape=(4, 4),
    ...     kernel_shape=(5, 5), stride=(1, 1), dilation=(1, 1), padding=((2, 2),) * 2,
    ... )
    >>> reads_unpadded(g)  # 16 positions, 25 taps: per-channel matrices, no padded copy
    True
    """
    layout = depthwise_layout(geometry)
    return layout == "matrix" or (layout == "phases" and geometry.padding_mode == "zeros")


def depthwise_work(geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> Work:
    """Count the work: every product goes once into a stack and once through the sum.

    ``stacked_products`` counts the products on the busiest thread (the tasks spread
    over :func:`~mimo_conv._core.workers.get_threads` threads), each written by one
    multiply and read by one reduce over cache-resident stacks; the copies around them
    (the wide crop, the channels-last slab and transposed result, the running sum copied
    into a later stack) are ``bytes_moved``; the calls are those of every task.

    Examples
    --------
    >>> from mimo_conv._core.workers import set_threads
    >>> g = ConvGeometry(
    ...     batch_size=2, in_channels=4, out_channels=4, groups=4, input_shape=(16, 16),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> previous = set_threads(1)
    >>> work = depthwise_work(g, 8, Chunking(2, 16))
    >>> work.stacked_products  # 0.7 * 9 taps * 2 images * 4 channels * (15 * 18 + 16) positions
    14415
    >>> _ = set_threads(previous)
    """
    plan = plan_depthwise(geometry, itemsize, chunking)
    g = geometry
    output_shape, terms = g.output_shape, g.terms_per_output
    outputs = g.batch_size * g.out_channels * math.prod(output_shape)
    if plan.layout in ("flat", "phases"):
        positions = g.batch_size * g.out_channels * _wide_length(g, output_shape[0])
        copied = 2 * outputs  # the crop out of the wide sum
        if plan.layout == "phases":  # and the copy into the phases, halo rows included
            ranges = -(-output_shape[0] // max(1, plan.row_step))
            rows = output_shape[0] + ranges * (_phase_rows(g, 1) - 1)
            phase = rows * math.prod(g.stride) * math.prod(_wide_shape(g)[1:])
            copied += 2 * g.batch_size * g.in_channels * phase
    else:
        positions = outputs
        copied = 0
    tasks = max(1, plan.task_count)
    parallel = min(get_threads(), tasks)
    if plan.layout in ("matrix", "channels_last"):
        products: float  # per output
        if plan.layout == "matrix":  # Q products per output; the slab in, matrices, result out
            depth = _matrix_positions(g)
            splits = -(-g.batch_size // max(1, plan.image_step))  # each rebuilds its matrices
            inputs = g.batch_size * g.in_channels * math.prod(g.input_shape)
            moved = 2 * inputs + splits * depth * math.prod(output_shape) * g.out_channels
            calls, products = 6, depth  # slab, gather, multiply, reduce, result; buffers
            note = "per-channel matrices of a small map"
        else:  # the slab in (each row range with its halo rows), one einsum, the result out
            halo = max(0, g.dilation[0] * (g.kernel_shape[0] - 1) + 1 - g.stride[0])
            ranges = -(-g.output_shape[0] // plan.row_step)
            rows = g.output_shape[0] * g.stride[0] + halo * ranges
            moved = 2 * g.batch_size * g.in_channels * rows * math.prod(g.padded_shape[1:])
            scale = max(1.0, itemsize / 4)  # the formulas scale every product by it
            products = EINSUM_PRODUCT_FACTOR * terms + EINSUM_OUTPUT_COST / scale
            calls = 5  # the slab's zeros and copy, the einsum, the result
            note = "one einsum over channels-last windows"
        return Work(
            bytes_moved=math.ceil((moved + 2 * outputs) * itemsize / parallel),
            calls=tasks * calls,
            products=0,
            product_rows=0,
            product_inner=0,
            elementwise=True,
            stacked_products=math.ceil(products * outputs / parallel),
            note=note,
        )
    calls = 2 * terms  # a multiply and an add per term
    # Each channel-first layout's time per product, relative to the measured rate.
    slower = {
        "flat": FLAT_PRODUCT_FACTOR,
        "phases": PHASES_PRODUCT_FACTOR,
    }[plan.layout]
    return Work(
        bytes_moved=math.ceil(copied * itemsize / parallel),
        calls=tasks * calls,
        products=0,
        product_rows=0,
        product_inner=0,
        elementwise=True,
        stacked_products=math.ceil(slower * terms * positions / parallel),
        note="stacked multiply-adds per tap",
    )


#: The record of this path (:mod:`mimo_conv._paths.registry`).
PATH = PathSpec(
    name="depthwise",
    correlate=correlate_depthwise,
    summary="does stacked per-tap elementwise multiply-adds (few channels per group)",
    chunk_name="running sum and stack of products of one output row",
    bytes_per_row=depthwise_bytes_per_row,
    granularity="rows",
    work=depthwise_work,
    weight_copy=True,
    reads_unpadded=reads_unpadded,
)
