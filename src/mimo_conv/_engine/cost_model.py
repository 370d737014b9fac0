"""The cost model: which path ``method="auto"`` takes for a call, and why.

A pure function of the geometry, the dtype plan and the memory budget (no arrays, no
timing), so it can be tested and printed without running anything
(:func:`explain_method` prints it for a call). Each candidate path gets

* ``flops``: real floating-point (or integer) operations, ``2 * multiply-adds``; a complex
  multiply-add counts 8;
* ``bytes_moved``: memory traffic outside the matrix-product kernel (im2col copies,
  per-tap additions, result copies), which NumPy does on one core;
* ``calls``: NumPy calls made from Python, each with a fixed overhead;
* ``workspace``: the peak temporary bytes, under the budget (or infeasible);

and a predicted time ``flops / rate + bytes_moved / COPY_BYTES_PER_SECOND + calls *
SECONDS_PER_CALL``. The fastest feasible path wins. Every constant below says where it came
from; they were measured on the benchmark machine (2-core AMD EPYC, OpenBLAS 0.3.31,
``benchmarks/results/latest.md``). Only their ratios matter for the choice, so a faster or
slower machine shifts every prediction alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from mimo_conv._core.budget import chunk_bytes, get_memory_budget, plan_chunks
from mimo_conv._core.budget import memory_budget as budget_scope
from mimo_conv._core.dtypes import DtypePlan
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.memory import format_bytes
from mimo_conv._paths.depthwise import depthwise_cost
from mimo_conv._paths.einsum import MAX_SPATIAL_DIMS, einsum_bytes_per_row
from mimo_conv._paths.fold import fold_bytes_per_row
from mimo_conv._paths.gemm import im2col_bytes_per_row
from mimo_conv._paths.im2col import im2col_bytes_per_image
from mimo_conv._paths.registry import input_copy_plan
from mimo_conv._paths.shift import shift_bytes_per_row

#: Sustained GEMM rate of OpenBLAS on large operands, FLOP/s, by compute dtype kind and
#: itemsize. Measured by ``benchmarks/bench_conv.py`` (the same-size GEMM column) on the
#: 2-core benchmark machine: ~70 GFLOP/s float64 and ~130 GFLOP/s float32 (AVX2 FMA, 2
#: threads). Complex types run the real rate of their component type.
BLAS_FLOPS_PER_SECOND: dict[tuple[str, int], float] = {
    ("f", 8): 70e9,
    ("f", 4): 130e9,
    ("c", 16): 70e9,
    ("c", 8): 130e9,
}
#: NumPy's own integer matrix product (no BLAS): measured ~1 GFLOP/s for int64 on the same
#: machine (a 256 x 256 int64 matmul).
INTEGER_FLOPS_PER_SECOND = 1e9
#: Python-level arithmetic on object arrays (ints, fractions): measured ~30 MFLOP/s for
#: small Python ints in an object matmul; fractions are slower, but every path does the
#: same object operations, so only the other terms decide between paths.
OBJECT_FLOPS_PER_SECOND = 30e6
#: GEMM dimension at which OpenBLAS reaches half its sustained rate. Issue 6 measured
#: OpenBLAS weak when ``C_out <= 64``; 16 reproduces the measured ordering of one large
#: product (``"gemm"``, inner dimension ``C_in * taps``) versus one product per tap
#: (``"shift"``, inner dimension ``C_in``) on the benchmark suite.
HALF_SPEED_DIMENSION = 16
#: Single-threaded NumPy copy/add bandwidth, bytes read plus written per second: ~5 GB/s
#: measured for the strided tap copies of the ResNet 3x3 layer (8 x 64 x 56 x 56 float32).
COPY_BYTES_PER_SECOND = 5e9
#: Fixed cost of one NumPy call made from Python (a copy, a matmul, an add): ~1.5 us measured
#: with ``timeit`` on a 1-element array.
SECONDS_PER_CALL = 1.5e-6
#: Fixed cost of one ``np.einsum`` call with an explicit path (parsing, tensordot's
#: reshapes and transposes): ~20 us measured on the textbook example.
EINSUM_CALL_SECONDS = 20e-6
#: NumPy's single-threaded elementwise multiply-and-sum (the naive path's arithmetic): ~1
#: GFLOP/s measured for float64 ``(a * b).sum()`` on 10**5 elements.
NUMPY_ELEMENTWISE_FLOPS_PER_SECOND = 1e9
#: One Python-level iteration of the naive loop (slicing a window, multiplying, summing):
#: ~10 us measured on a 3 x 3 kernel.
NAIVE_SECONDS_PER_OUTPUT = 10e-6

#: The paths the model knows, in the order the table lists them (ties go to the first).
MODELLED_METHODS = ("matmul", "gemm", "fold", "shift", "einsum", "depthwise", "naive")


@dataclass(frozen=True)
class PathCost:
    """Predicted cost of one computational path for one call.

    Attributes
    ----------
    method : str
        The path's name.
    flops : int
        Arithmetic operations (``2 *`` multiply-adds; 8 per complex multiply-add).
    bytes_moved : int
        Bytes read and written outside the matrix-product kernel.
    calls : int
        NumPy calls issued from Python.
    workspace : int
        Peak temporary bytes (the padded input copy plus the path's largest chunk).
    seconds : float
        Predicted time; ``inf`` when the path cannot run this call.
    note : str
        Why the path is infeasible, or what it does, for the printed table.
    """

    method: str
    flops: int
    bytes_moved: int
    calls: int
    workspace: int
    seconds: float
    note: str = ""

    @property
    def feasible(self) -> bool:
        """Whether the path can compute this call within the memory budget."""
        return math.isfinite(self.seconds)


@dataclass(frozen=True)
class MethodChoice:
    """The cost model's table for one call and the path ``method="auto"`` takes.

    ``str()`` (and ``repr()``) print a readable table; see :func:`explain_method`.
    """

    geometry: ConvGeometry
    plan: DtypePlan
    budget: int
    candidates: tuple[PathCost, ...]
    chosen: str

    def __str__(self) -> str:
        g = self.geometry
        lines = [
            (
                f"method='auto' for x {(g.batch_size, g.in_channels, *g.input_shape)} * weight "
                f"{(g.out_channels, g.in_channels_per_group, *g.kernel_shape)}, "
                f"groups={g.groups}, stride={g.stride}, dilation={g.dilation}, "
                f"padding={g.padding} -> {(g.batch_size, g.out_channels, *g.output_shape)}"
            ),
            f"compute dtype {self.plan.compute}, memory budget {format_bytes(self.budget)}",
            "",
            (
                f"  {'method':<8} {'FLOP':>9} {'moved':>10} {'calls':>7} {'workspace':>10} "
                f"{'predicted':>11}  note"
            ),
        ]
        for cost in self.candidates:
            mark = "*" if cost.method == self.chosen else " "
            seconds = _format_seconds(cost.seconds)
            lines.append(
                f"{mark} {cost.method:<8} {cost.flops:>9.3g} {format_bytes(cost.bytes_moved):>10} "
                f"{cost.calls:>7} {format_bytes(cost.workspace):>10} {seconds:>11}  {cost.note}"
            )
        lines.append("")
        lines.append(f"chosen: {self.chosen!r}")
        return "\n".join(lines)

    __repr__ = __str__


def _format_seconds(seconds: float) -> str:
    """Format a predicted time with a readable unit, ``-`` for an infeasible path."""
    if not math.isfinite(seconds):
        return "-"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def _rate(plan: DtypePlan) -> float:
    """Arithmetic rate of a full-size matrix product in the compute dtype, FLOP/s."""
    kind = plan.compute.kind
    if kind == "O":
        return OBJECT_FLOPS_PER_SECOND
    if kind in "iu":
        return INTEGER_FLOPS_PER_SECOND
    return BLAS_FLOPS_PER_SECOND.get((kind, plan.compute.itemsize), INTEGER_FLOPS_PER_SECOND)


def _efficiency(plan: DtypePlan, rows: int, inner: int) -> float:
    """Fraction of the full rate a product with this many rows and inner length reaches."""
    if plan.compute.kind not in "fc":
        return 1.0  # NumPy's own loops have no blocking to amortise
    half = HALF_SPEED_DIMENSION
    return (rows / (rows + half)) * (inner / (inner + half))


def padded_copy_bytes(geometry: ConvGeometry, plan: DtypePlan) -> int:
    """Bytes of the padded copy of the input (0 without padding).

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> plan = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
    >>> g = ConvGeometry(1, 2, 4, 1, (5, 5), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))
    >>> padded_copy_bytes(g, plan)  # 2 channels * 7 * 7 * 8 bytes
    784
    """
    if not geometry.is_padded:
        return 0
    count = geometry.batch_size * geometry.in_channels * math.prod(geometry.padded_shape)
    return count * plan.compute.itemsize


def path_cost(
    method: str, geometry: ConvGeometry, plan: DtypePlan, budget: int | None = None
) -> PathCost:
    """Predict the cost of one path for one call (``seconds`` is ``inf`` if it cannot run).

    Parameters
    ----------
    method : str
        One of :data:`MODELLED_METHODS`.
    geometry : ConvGeometry
    plan : DtypePlan
    budget : int, optional
        Memory budget in bytes; the current one (:func:`mimo_conv.get_memory_budget`) when
        None.

    Returns
    -------
    PathCost

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> plan = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
    >>> g = ConvGeometry(8, 64, 64, 1, (56, 56), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))
    >>> cost = path_cost("gemm", g, plan)
    >>> cost.flops  # 2 * 8 * 64 * 56 * 56 * 64 * 9
    1849688064
    >>> cost.workspace  # padded input (6.6 MiB) + im2col of one image (6.9 MiB)
    14114816
    >>> path_cost("matmul", g, plan).note
    'needs a 1 x 1 kernel'
    """
    limit = get_memory_budget() if budget is None else budget
    # As the engine does (mimo_conv._paths.registry.input_copy_plan): the padded copy, whole or in
    # chunks of images, leaves the path room for its smallest chunk; the path runs under
    # the rest.
    itemsize = plan.compute.itemsize
    with budget_scope(limit):
        try:
            copying = input_copy_plan(method, geometry, itemsize, copies=geometry.is_padded)
        except MemoryError:
            one_image = padded_copy_bytes(geometry, plan) // max(1, geometry.batch_size)
            result = geometry.out_channels * math.prod(geometry.output_shape) * itemsize
            return PathCost(method, 0, 0, 0, one_image + result, math.inf, "over the memory budget")
    with budget_scope(max(1, limit - copying.held)):
        return _path_cost(method, geometry, plan, copying.held)


def _path_cost(  # noqa: PLR0915 - one branch per path, to be read side by side
    method: str, geometry: ConvGeometry, plan: DtypePlan, padded_peak: int
) -> PathCost:
    """:func:`path_cost` with the path's share of the budget in force."""
    g = geometry
    itemsize = plan.compute.itemsize
    positions = g.batch_size * math.prod(g.output_shape)
    taps = math.prod(g.kernel_shape)
    per_group_in, per_group_out = g.in_channels_per_group, g.out_channels_per_group
    complex_factor = 4 if plan.compute.kind == "c" else 1
    flops = 2 * complex_factor * positions * g.out_channels * g.terms_per_output
    rate = _rate(plan)
    rows = g.output_shape[0]
    strided = any(step > 1 for step in g.stride)

    def cost(
        moved: int, calls: int, own: int, efficiency: float, extra: float = 0.0, note: str = ""
    ) -> PathCost:
        seconds = flops / (rate * efficiency) if flops else 0.0
        seconds += moved / COPY_BYTES_PER_SECOND + calls * SECONDS_PER_CALL + extra
        return PathCost(method, flops, moved, calls, padded_peak + own, seconds, note)

    def infeasible(note: str) -> PathCost:
        return PathCost(method, flops, 0, 0, padded_peak, math.inf, note)

    try:
        if method == "matmul":
            if not g.is_pointwise:
                return infeasible("needs a 1 x 1 kernel")
            per_image = g.in_channels * math.prod(g.output_shape) * itemsize if strided else 0
            images, _ = plan_chunks(g.batch_size, 1, per_image, "strided copy")
            chunk_count = math.ceil(g.batch_size / images)
            moved = 2 * positions * g.in_channels * itemsize if strided else 0
            efficiency = _efficiency(plan, per_group_out, per_group_in)
            return cost(moved, 2 * chunk_count, images * per_image, efficiency)
        if method == "gemm":
            per_row = im2col_bytes_per_row(g, itemsize)
            images, row_step = plan_chunks(g.batch_size, rows, per_row, "im2col buffer")
            chunk_count = math.ceil(g.batch_size / images) * math.ceil(rows / row_step)
            moved = 2 * positions * g.in_channels * taps * itemsize
            efficiency = _efficiency(plan, per_group_out, per_group_in * taps)
            own = images * min(rows, row_step) * per_row
            return cost(moved, chunk_count * (taps + 2), own, efficiency, note="im2col + GEMM")
        if method == "fold":
            if g.stride[0] != 1:  # the shifted rows are no view any more: "gemm" runs
                gemm = _path_cost("gemm", g, plan, padded_peak)
                return PathCost(
                    method,
                    gemm.flops,
                    gemm.bytes_moved,
                    gemm.calls,
                    gemm.workspace,
                    gemm.seconds,
                    "stride on axis 0: runs gemm",
                )
            per_row = fold_bytes_per_row(g, itemsize)
            images, row_step = plan_chunks(g.batch_size, rows, per_row, "fold buffer")
            chunk_count = math.ceil(g.batch_size / images) * math.ceil(rows / row_step)
            first = g.kernel_shape[0]
            rest = taps // first
            halo = g.dilation[0] * (first - 1)
            # Copies of the later taps over every padded row (none in 1-d); then per extra
            # first-axis tap one output-sized addition (2 reads, 1 write).
            copied_rows = chunk_count * halo + rows
            moved = 2 * g.batch_size * copied_rows * math.prod(g.output_shape[1:]) * itemsize
            moved *= g.in_channels * rest if g.spatial_dims > 1 else 0
            moved += 3 * (first - 1) * positions * g.out_channels * itemsize
            efficiency = _efficiency(plan, per_group_out, per_group_in * rest)
            own = images * min(rows, row_step) * per_row
            calls = chunk_count * (rest + 2 * first)
            return cost(moved, calls, own, efficiency, note="im2col of later taps + GEMM per row")
        if method == "shift":
            per_row = shift_bytes_per_row(g, itemsize)
            images, row_step = plan_chunks(g.batch_size, rows, per_row, "shift buffer")
            chunk_count = math.ceil(g.batch_size / images) * math.ceil(rows / row_step)
            # Per tap: copy the shifted input (read + write), add the product (2 reads, 1 write).
            moved = taps * positions * (2 * g.in_channels + 3 * g.out_channels) * itemsize
            efficiency = _efficiency(plan, per_group_out, per_group_in)
            own = images * min(rows, row_step) * per_row
            return cost(moved, chunk_count * 3 * taps, own, efficiency, note="GEMM per tap")
        if method == "einsum":
            if g.spatial_dims > MAX_SPATIAL_DIMS:
                return infeasible(f"at most {MAX_SPATIAL_DIMS} spatial dimensions")
            per_row = einsum_bytes_per_row(g, itemsize)
            images, row_step = plan_chunks(g.batch_size, rows, per_row, "einsum buffer")
            chunk_count = math.ceil(g.batch_size / images) * math.ceil(rows / row_step)
            moved = 2 * positions * (g.in_channels * taps + g.out_channels) * itemsize
            efficiency = _efficiency(plan, per_group_out, per_group_in * taps)
            own = images * min(rows, row_step) * per_row
            extra = chunk_count * EINSUM_CALL_SECONDS
            return cost(moved, chunk_count, own, efficiency, extra, note="tensordot")
        if method == "depthwise":
            # Elementwise passes, no matrix product: time is traffic plus calls, and for
            # objects the Python-level arithmetic every path pays alike.
            moved, calls, own = depthwise_cost(g, itemsize)
            seconds = moved / COPY_BYTES_PER_SECOND + calls * SECONDS_PER_CALL
            seconds += flops / rate if plan.compute.kind == "O" else 0.0
            return PathCost(method, flops, moved, calls, padded_peak + own, seconds, "per tap")
        if method == "naive":
            outputs = positions * g.out_channels
            extra = outputs * NAIVE_SECONDS_PER_OUTPUT
            # Its arithmetic is NumPy's elementwise multiply and sum, on one core, no BLAS.
            efficiency = min(1.0, NUMPY_ELEMENTWISE_FLOPS_PER_SECOND / rate)
            return cost(0, 0, g.terms_per_output * itemsize, efficiency, extra, note="Python loops")
    except MemoryError:
        return infeasible("over the memory budget")
    msg = f"method must be one of {MODELLED_METHODS!r}, got {method!r}"
    raise ValueError(msg)


def explain_choice(
    geometry: ConvGeometry, plan: DtypePlan, budget: int | None = None
) -> MethodChoice:
    """Cost every modelled path for a call and pick the fastest feasible one.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> plan = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
    >>> g = ConvGeometry(1, 2, 4, 1, (5, 5), (3, 3), (1, 1), (1, 1), ((0, 0), (0, 0)))
    >>> explain_choice(g, plan).chosen
    'fold'
    """
    return _explain_cached(geometry, plan, get_memory_budget() if budget is None else budget)


@lru_cache(maxsize=512)
def _explain_cached(geometry: ConvGeometry, plan: DtypePlan, limit: int) -> MethodChoice:
    """Cost every path for :func:`explain_choice`, cached: the model is pure.

    Costing every path takes ~0.1 ms, more than a whole small convolution.
    """
    candidates = tuple(path_cost(name, geometry, plan, limit) for name in MODELLED_METHODS)
    feasible = [cost for cost in candidates if cost.feasible]
    # The naive path's temporary is one window, so it is feasible whenever anything is.
    chosen = min(feasible, key=lambda cost: cost.seconds).method if feasible else "gemm"
    return MethodChoice(geometry, plan, limit, candidates, chosen)


def choose_method(geometry: ConvGeometry, plan: DtypePlan, budget: int | None = None) -> str:
    """Return the name of the path ``method="auto"`` uses for this call.

    The fastest path by the cost model among those that can run within the memory budget:
    ``"matmul"`` for a 1 x 1 kernel, ``"gemm"`` or ``"fold"`` for most other float kernels
    (whichever copies less for its BLAS time), ``"shift"`` when an im2col buffer would not
    fit, ``"naive"`` only when nothing else fits.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> plan = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
    >>> pointwise = ConvGeometry(1, 4, 2, 1, (5, 5), (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0)))
    >>> choose_method(pointwise, plan)
    'matmul'
    >>> g = ConvGeometry(8, 64, 64, 1, (56, 56), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))
    >>> choose_method(g, plan)  # saves 6 of the 9 tap copies of "gemm"
    'fold'
    >>> stride_2 = ConvGeometry(8, 64, 128, 1, (56, 56), (3, 3), (2, 2), (1, 1), ((1, 1),) * 2)
    >>> choose_method(stride_2, plan)
    'gemm'
    >>> valid = ConvGeometry(8, 64, 64, 1, (56, 56), (3, 3), (1, 1), (1, 1), ((0, 0), (0, 0)))
    >>> choose_method(valid, plan, budget=100_000)  # one im2col row needs 124416 bytes
    'shift'
    """
    return explain_choice(geometry, plan, budget).chosen


def workspace_bytes(method: str, geometry: ConvGeometry, plan: DtypePlan) -> int:
    """Peak bytes of temporary memory the path ``method`` allocates besides its output.

    Counts the padded copy of the input (when there is padding) and each path's largest
    chunk under the current memory budget: ``"naive"`` one window, ``"gemm"`` one chunk of
    the im2col buffer, ``"shift"`` one chunk of the shifted input and one of a product,
    ``"einsum"`` one chunk of the window copy ``tensordot`` makes plus its result,
    ``"matmul"`` one chunk of the strided copy of the input when ``stride > 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> plan = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
    >>> g = ConvGeometry(1, 2, 4, 1, (5, 5), (3, 3), (1, 1), (1, 1), ((0, 0), (0, 0)))
    >>> workspace_bytes("gemm", g, plan)  # 2 channels * 3*3 taps * 3*3 outputs * 8 bytes
    1296
    """
    if method == "im2col":  # copies the windows of a few images at a time into columns
        per_image = im2col_bytes_per_image(geometry, plan.compute.itemsize)
        images = max(1, min(geometry.batch_size, chunk_bytes() // max(1, per_image)))
        return padded_copy_bytes(geometry, plan) + images * per_image
    if method not in MODELLED_METHODS:
        msg = f"method must be one of {(*MODELLED_METHODS, 'im2col')!r}, got {method!r}"
        raise ValueError(msg)
    return path_cost(method, geometry, plan).workspace


def explain_method(
    x: object,
    weight: object,
    bias: object = None,
    stride: object = 1,
    padding: object = 0,
    dilation: object = 1,
    groups: object = 1,
    *,
    padding_mode: str = "zeros",
    memory_budget: int | None = None,
) -> MethodChoice:
    """Show which path ``method="auto"`` takes for a call, and the cost model behind it.

    Takes the arguments of :func:`mimo_conv.conv` (validated the same way) and computes
    nothing: it returns the cost model's table, whose ``str`` lists every path with its
    operation count, memory traffic, NumPy calls, peak temporary memory and predicted time,
    the chosen path marked with ``*``.

    Parameters
    ----------
    x, weight, bias, stride, padding, dilation, groups, padding_mode, memory_budget
        As in :func:`mimo_conv.conv`.

    Returns
    -------
    MethodChoice
        ``.chosen`` is the path's name; ``.candidates`` the per-path :class:`PathCost`.

    Examples
    --------
    >>> import numpy as np
    >>> import mimo_conv as mc
    >>> choice = mc.explain_method(np.ones((8, 64, 56, 56), np.float32),
    ...                            np.ones((64, 64, 3, 3), np.float32), padding=1)
    >>> choice.chosen
    'fold'
    >>> print(choice)  # doctest: +SKIP
    method='auto' for x (8, 64, 56, 56) * weight (64, 64, 3, 3), groups=1, ...
    compute dtype float32, memory budget 256.0 MiB
    <BLANKLINE>
      method        FLOP      moved   calls  workspace   predicted  note
      matmul    1.85e+09        0 B       0    6.6 MiB           -  needs a 1 x 1 kernel
      gemm      1.85e+09  110.2 MiB      88   13.5 MiB     41.5 ms  im2col + GEMM
    * fold      1.85e+09   84.0 MiB      72   14.2 MiB       37 ms  im2col of later taps + ...
      shift     1.85e+09  275.6 MiB      54   14.2 MiB     80.1 ms  GEMM per tap
      einsum    1.85e+09  122.5 MiB      16   14.4 MiB     44.3 ms  tensordot
      depthwise  1.85e+09   17.9 GiB    4608   12.9 MiB      3.84 s  per tap
      naive     1.85e+09        0 B       0    6.6 MiB      17.9 s  Python loops
    <BLANKLINE>
    chosen: 'fold'
    """
    from mimo_conv._core.arguments import prepare_call  # noqa: PLC0415 - avoids an import cycle

    _, _, _, geometry, plan = prepare_call(
        x,
        weight,
        bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    return explain_choice(geometry, plan, memory_budget)
