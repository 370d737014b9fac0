"""One plan per call: which path runs, how the input is copied, in which chunks, and why.

:func:`plan_conv` is a pure function of the geometry, the dtypes (the compute and output
dtypes *and* the operands' own dtypes, since a conversion is a copy), the input's memory
layout and an explicit int budget. It costs every path that can compute the call
(:data:`mimo_conv._paths.registry.PATHS`), each with the chunks it would run in, and picks
the fastest that fits. :func:`mimo_conv._engine.execute.run_conv` executes exactly this plan
and :func:`mimo_conv.explain_method` prints exactly it. A plan is a few ints per path, so
caching it costs little.

What a path holds at its peak, all counted against the budget:

* the copy of the input (padding, a dtype conversion, or a C-contiguous copy for
  ``"matmul"``, a channels-last one for ``"channels_last"``), whole or in chunks of
  images; when chunked, each chunk's result too;
* when the result is rounded to another dtype (float16) or is asked for in another memory
  order than the path writes (:class:`~mimo_conv._core.layouts.MemoryOrders`: a
  channels-first path's result for ``layout="NHWC"``), the path's own result;
* converted or re-laid-out kernels and the bias;
* the path's own largest chunk (:meth:`mimo_conv._paths.spec.PathSpec.chunk_bytes`).

Examples
--------
>>> import numpy as np
>>> from mimo_conv._core.dtypes import plan_dtypes
>>> f32 = np.dtype(np.float32)
>>> g = ConvGeometry(
...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
... )
>>> plan = plan_conv(g, plan_dtypes(f32, f32), (f32, f32), True, 2**28)
>>> plan.chosen, plan.cost.chunking
('row_gemm', Chunking(images=1, rows=56))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from mimo_conv._core.budget import Chunking, InputCopyPlan, chunk_bytes, plan_input_copy
from mimo_conv._core.dtypes import DtypePlan
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.layouts import CANONICAL_ORDERS, CHANNELS_LAST, MemoryOrders
from mimo_conv._core.memory import format_bytes
from mimo_conv._core.workers import get_threads
from mimo_conv._engine.formulas import flop_count, predict_seconds
from mimo_conv._engine.rendering import render_plan
from mimo_conv._paths.registry import PATH_SPECS, PATHS
from mimo_conv._paths.spec import PathSpec


@dataclass(frozen=True)
class PathCost:
    """One path's plan and predicted cost for one call.

    Attributes
    ----------
    method : str
        The path's name.
    flops : int
        Arithmetic operations (``2 *`` multiply-adds; 8 per complex multiply-add).
    bytes_moved : int
        Bytes read and written outside the matrix-product kernel, the input copy included.
    calls : int
        NumPy calls issued from Python.
    workspace : int
        Peak temporary bytes under this plan; for a path that cannot run, its smallest
        working set.
    seconds : float
        Predicted time; ``inf`` when the path cannot run this call.
    note : str
        What the path does, or why it cannot run.
    needs : int
        The smallest budget under which the path runs (0 when it does not apply at all).
    copy : InputCopyPlan or None
        How the input is copied (None when the path cannot run).
    chunking : Chunking or None
        The path's chunks (None when it cannot run).
    copies_input : bool
        Whether the input is copied (padding, conversion, layout).
    """

    method: str
    flops: int
    bytes_moved: int
    calls: int
    workspace: int
    seconds: float
    note: str = ""
    needs: int = 0
    copy: InputCopyPlan | None = None
    chunking: Chunking | None = None
    copies_input: bool = False

    @property
    def feasible(self) -> bool:
        """Whether the path can compute this call within the memory budget."""
        return math.isfinite(self.seconds)


@dataclass(frozen=True)
class ConvPlan:
    """The plan of one call: every candidate path's cost and the one that runs.

    ``str()`` (and ``repr()``) print the table :func:`mimo_conv.explain_method` shows.

    Attributes
    ----------
    geometry : ConvGeometry
    plan : DtypePlan
        The compute and output dtypes.
    budget : int
        The memory budget in bytes.
    candidates : tuple of PathCost
        Every path costed (one for a named ``method``).
    chosen : str or None
        The path that runs; None when no path fits the budget.
    layouts : MemoryOrders
        The input's memory order and the one asked of the result.
    threads : int
        The worker thread count the plan was made for (:func:`mimo_conv.get_threads`).
    """

    geometry: ConvGeometry
    plan: DtypePlan
    budget: int
    candidates: tuple[PathCost, ...]
    chosen: str | None
    layouts: MemoryOrders = CANONICAL_ORDERS
    threads: int = 1

    @property
    def cost(self) -> PathCost:
        """The chosen path's :class:`PathCost`; ``MemoryError`` when none fits."""
        if self.chosen is None:
            raise MemoryError(self.memory_error())
        return next(cost for cost in self.candidates if cost.method == self.chosen)

    def memory_error(self) -> str:
        """Why nothing runs: each path's smallest working set and the budget needed."""
        applicable = [cost for cost in self.candidates if cost.needs > 0]
        if len(self.candidates) == 1 and applicable:
            return applicable[0].note
        sets = ", ".join(f"{c.method!r} {format_bytes(c.needs)}" for c in applicable)
        least = min(applicable, key=lambda cost: cost.needs)
        return (
            f"no computational path fits the memory budget of {self.budget} bytes "
            f"({format_bytes(self.budget)}); their smallest working sets: {sets}; "
            f"a budget of at least {least.needs} bytes runs {least.method!r}: raise it with "
            "mimo_conv.set_memory_budget(...) or memory_budget=..."
        )

    def __str__(self) -> str:
        return render_plan(self)

    __repr__ = __str__


def plan_conv(
    geometry: ConvGeometry,
    plan: DtypePlan,
    operands: tuple[np.dtype[Any], ...],
    contiguous: bool,
    budget: int,
    method: str = "auto",
    *,
    layouts: MemoryOrders = CANONICAL_ORDERS,
) -> ConvPlan:
    """Plan one call: cost each candidate path and choose (cached: the model is pure).

    Parameters
    ----------
    geometry : ConvGeometry
    plan : DtypePlan
        Compute and output dtypes.
    operands : (dtype, dtype) or (dtype, dtype, dtype)
        The dtypes of ``x``, ``weight`` and (if given) ``bias`` as given: converting them
        is a copy.
    contiguous : bool
        Whether ``x`` (batched) is C-contiguous.
    budget : int
        The memory budget in bytes.
    method : str, optional
        ``"auto"`` costs every path that applies and picks the fastest that fits; a path's
        name plans that path alone.
    layouts : MemoryOrders, optional
        Whether ``x`` is channels-last contiguous, and the memory order asked of the
        result. A path that writes another order is costed with the copy into it;
        ``"auto"`` considers a channels-last path only for a channels-last result.

    Returns
    -------
    ConvPlan

    Examples
    --------
    >>> f16, f32 = np.dtype(np.float16), np.dtype(np.float32)
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=16, out_channels=16, groups=1, input_shape=(32, 32),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> half = plan_dtypes(f16, f16)  # computes in float32: converting x is a copy
    >>> print(plan_conv(g, half, (f16, f16), True, 100_000).chosen)
    None
    >>> plan_conv(g, half, (f16, f16), True, 400_000).chosen  # in chunks of images
    'row_gemm'
    """
    # The thread count is part of the key: a path whose threads each hold a chunk's buffers
    # (depthwise) plans smaller chunks for more threads.
    return _plan_cached(
        geometry, plan, operands, contiguous, budget, method, get_threads(), layouts
    )


@lru_cache(maxsize=1024)
def _plan_cached(
    geometry: ConvGeometry,
    plan: DtypePlan,
    operands: tuple[np.dtype[Any], ...],
    contiguous: bool,
    budget: int,
    method: str,
    threads: int,
    layouts: MemoryOrders,
) -> ConvPlan:
    """:func:`plan_conv`, cached: costing every path takes more than a tiny convolution."""
    # The paths read the setting themselves; the plan records it for its printed table.
    specs = PATHS if method == "auto" else (PATH_SPECS[method],)
    costs = []
    for spec in specs:
        cost = path_plan(spec, geometry, plan, operands, contiguous, budget, layouts)
        channels_first_call = layouts.result != CHANNELS_LAST
        if method == "auto" and spec.layout == CHANNELS_LAST and channels_first_call:
            cost = _left_out(cost)
        elif method == "auto" and not spec.offered_to_auto:
            cost = _by_name_only(cost)
        costs.append(cost)
    candidates = tuple(costs)
    offered = {spec.name for spec in specs if spec.offered_to_auto or method != "auto"}
    feasible = [cost for cost in candidates if cost.feasible and cost.method in offered]
    chosen = min(feasible, key=lambda cost: cost.seconds).method if feasible else None
    return ConvPlan(geometry, plan, budget, candidates, chosen, layouts, threads)


def _left_out(cost: PathCost) -> PathCost:
    """Mark a channels-last path's cost as left out: ``"auto"`` does not consider it here.

    On channels-first data it would transpose the input and its result, two copies the
    channels-first paths do not make; naming it (``method="channels_last"``) still runs it,
    with the workspace shown.
    """
    note = "auto: for channels-last data only (layout='NHWC')"
    return replace(cost, seconds=math.inf, note=note, needs=0, copy=None, chunking=None)


def _by_name_only(cost: PathCost) -> PathCost:
    """Mark the cost of a path ``"auto"`` never runs (``"winograd"``), keeping its prediction.

    The table still shows what it would cost; it is not a candidate, so it neither runs nor
    counts among the smallest working sets of a ``MemoryError``.
    """
    if not cost.feasible:  # does not apply, or does not fit: the table says why
        return replace(cost, needs=0)
    note = f"{cost.note}; auto: only by name (method={cost.method!r}), a normwise error bound"
    return replace(cost, note=note, needs=0)


def path_plan(
    spec: PathSpec,
    geometry: ConvGeometry,
    plan: DtypePlan,
    operands: tuple[np.dtype[Any], ...],
    contiguous: bool,
    budget: int,
    layouts: MemoryOrders = CANONICAL_ORDERS,
) -> PathCost:
    """Plan one path for one call: its input copy, chunks, workspace and predicted time.

    Examples
    --------
    >>> f64 = np.dtype(np.float64)
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> from mimo_conv._paths.gemm import PATH
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=4, groups=1, input_shape=(5, 5),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> cost = path_plan(PATH, g, plan_dtypes(f64, f64), (f64, f64), True, 2**28)
    >>> cost.workspace  # 2 channels * 9 taps * 9 outputs * 8 bytes
    1296
    """
    g = geometry
    compute = plan.compute
    itemsize = compute.itemsize
    flops = flop_count(g, plan)
    reason = spec.applies(g) or spec.accepts(compute)
    if reason is not None:
        return PathCost(spec.name, flops, 0, 0, 0, math.inf, reason)
    converts = operands[0] != compute
    if spec.layout == CHANNELS_LAST:
        relayout = not layouts.input_channels_last
    else:
        relayout = spec.contiguous_input and not contiguous
    pads = g.is_padded and not spec.reads_unpadded(g)
    copies = pads or converts or relayout
    in_image = g.in_channels * math.prod(g.input_shape) * itemsize
    padded_image = g.in_channels * math.prod(g.padded_shape if pads else g.input_shape) * itemsize
    # A converted (or re-laid-out) and padded image is two copies at once: converted, then
    # padded.
    twice = (converts or relayout) and pads
    copy_per_image = (padded_image + (in_image if twice else 0)) if copies else 0
    result_per_image = g.out_channels * math.prod(g.output_shape) * itemsize
    # The path's own result is held while it is rounded (float16) or copied into the
    # memory order asked for.
    moves_result = spec.layout != layouts.result
    rounds = plan.output != compute or moves_result
    kernel_bytes = g.out_channels * g.terms_per_output * itemsize
    bias_bytes = g.out_channels * itemsize if operands[2:] and operands[2] != compute else 0
    own_kernels = (
        spec.weight_bytes(g, itemsize) if spec.weight_bytes is not None
        else kernel_bytes * spec.weight_copy
    )  # fmt: skip
    fixed = kernel_bytes * (operands[1] != compute) + own_kernels + bias_bytes
    smallest = spec.smallest_chunk(g, itemsize) + fixed
    copying = plan_input_copy(
        g.batch_size, copy_per_image, result_per_image, smallest, budget, rounds=rounds
    )
    needs = _smallest_budget(g.batch_size, copy_per_image, result_per_image, smallest, rounds)
    if copying is None:
        contiguous_kind = "channels-last" if spec.layout == CHANNELS_LAST else "C-contiguous"
        what = "padded" if pads else "converted" if converts else contiguous_kind
        note = (
            f"the smallest working set of the {spec.name!r} path (the {what} copy of one input "
            f"image {format_bytes(copy_per_image)}, its result {format_bytes(result_per_image)}, "
            f"and the path's {spec.chunk_name} {format_bytes(smallest - fixed)}"
            + (f", kernels and bias {format_bytes(fixed)}" if fixed else "")
            + f") needs {needs} bytes ({format_bytes(needs)}), more than the memory budget of "
            f"{budget} bytes ({format_bytes(budget)}); raise it with "
            "mimo_conv.set_memory_budget(...) or memory_budget=..."
        )
        if not copies:
            beside = f" with its kernels and bias ({format_bytes(fixed)})" if fixed else ""
            note = (
                f"the {spec.name!r} path's {spec.chunk_name}{beside} needs {needs} bytes "
                f"({format_bytes(needs)}), more than the memory budget of {budget} bytes "
                f"({format_bytes(budget)}); raise it with mimo_conv.set_memory_budget(...) "
                "or memory_budget=..."
            )
        return PathCost(spec.name, flops, 0, 0, needs, math.inf, note, needs)
    part = replace(g, batch_size=copying.images) if copying.chunked else g
    room = budget - copying.held - fixed
    chunking = _chunking(spec, part, itemsize, room)
    workspace = copying.held + fixed + spec.chunk_bytes(part, itemsize, chunking)
    work = spec.work(g, itemsize, chunking)
    if copying.chunked:  # per chunk of images: its copy and the write into the output
        work = replace(work, calls=work.calls + 2 * -(-g.batch_size // copying.images))
    if moves_result:  # the result read and written once more, into the order asked for
        result_bytes = 2 * g.batch_size * result_per_image
        note = f"{work.note}, result copied to {layouts.result.replace('_', ' ')}"
        work = replace(
            work, bytes_moved=work.bytes_moved + result_bytes, calls=work.calls + 1, note=note
        )
    copied = g.batch_size * copy_per_image
    seconds = predict_seconds(work, flops, plan, copied)
    return PathCost(
        spec.name,
        round(flops * work.multiply_fraction),
        work.bytes_moved + 2 * copied,
        work.calls,
        workspace,
        seconds,
        work.note,
        needs,
        copying,
        chunking,
        copies,
    )


def _chunking(spec: PathSpec, geometry: ConvGeometry, itemsize: int, room: int) -> Chunking:
    """Return the largest chunks of ``spec`` within ``room`` bytes, at most the preferred size."""
    rows = max(1, geometry.output_shape[0])
    batch = max(1, geometry.batch_size)
    if spec.granularity == "window":
        return Chunking(batch, rows)
    per_row = spec.bytes_per_row(geometry, itemsize)
    preferred = (
        chunk_bytes(room) if spec.preferred_chunk is None else min(room, spec.preferred_chunk)
    )
    target = max(preferred, spec.smallest_chunk(geometry, itemsize))
    per_image = per_row * rows
    if per_image <= target:
        return Chunking(max(1, min(batch, target // max(1, per_image))), rows)
    if spec.granularity == "images":  # whole images only: one at a time
        return Chunking(1, rows)
    return Chunking(1, max(1, min(rows, target // max(1, per_row))))


def _smallest_budget(
    batch: int, copy_per_image: int, result_per_image: int, smallest: int, rounds: bool
) -> int:
    """Return the least budget under which :func:`plan_input_copy` finds a plan (exact)."""
    whole = batch * (copy_per_image + (result_per_image if rounds else 0))
    if whole == 0:
        return smallest
    at_once = max(2 * whole, whole + smallest)
    return min(at_once, copy_per_image + result_per_image + smallest)
