"""The cost model's formulas: a path's counted work turned into a predicted time.

A path counts its work (:class:`~mimo_conv._paths.spec.Work`) and its operations; the
machine's rates (:class:`Rates`, by default the measured constants of
:mod:`mimo_conv._engine.constants`) turn them into seconds, term by term:

* **products** (:func:`products_seconds`): each matrix product's arithmetic at BLAS's rate
  for its dtype, scaled by its shape's efficiency (:func:`efficiency`: thin products run
  below the full rate) and by the threads BLAS gives it (:func:`blas_speedup`: small products
  run on one thread); a product that is one of a batch of tiny ones costs instead a fixed
  time plus its arithmetic at the small-product rate, whichever is less;
* **NumPy-side work** (:func:`numpy_seconds`): the bytes the copies and additions move at the
  copy bandwidth, the strided part of them at the strided bandwidth, a fixed time per
  contiguous run they start, all divided over the threads the path splits them on (NumPy's
  own loops run on the calling thread);
* **calls**: a fixed cost per NumPy call, per ``np.einsum`` call and per sliding-window
  view;
* **Python loops**: a fixed cost per iteration (the naive path);
* **depthwise passes**: the depthwise path's float arithmetic is its counted products at
  ``DEPTHWISE_SECONDS_PER_PRODUCT`` each (scaled by the itemsize), split over its threads.

``threads`` is :func:`mimo_conv._core.workers.get_threads`, which by default follows the
BLAS thread count of the environment: the model takes BLAS to run on that many threads.

Examples
--------
>>> import numpy as np
>>> from mimo_conv._core.dtypes import plan_dtypes
>>> f32 = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
>>> rate(f32) == gemm_rate("f", 4)  # the measured rate, scaled for the kernels in use
True
>>> gemm_rate("f", 4, kernels="Haswell") == BLAS_FLOPS_PER_SECOND[("f", 4)]
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from mimo_conv._core.dtypes import DtypePlan
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.machine import AVX512_KERNELS, openblas_kernels
from mimo_conv._core.workers import get_threads
from mimo_conv._engine.constants import (
    BLAS_FLOPS_PER_SECOND,
    BLAS_KERNEL_SPEEDUP,
    BLAS_SINGLE_THREAD_WORK,
    BLAS_THREAD_EFFICIENCY,
    COPY_BYTES_PER_SECOND,
    DEPTHWISE_ELEMENTS_PER_PRODUCT,
    DEPTHWISE_SECONDS_PER_PRODUCT,
    EINSUM_CALL_SECONDS,
    EINSUM_LOOP_FLOPS_PER_SECOND,
    HALF_SPEED_COLUMNS,
    HALF_SPEED_INNER,
    HALF_SPEED_ROWS,
    INTEGER_FLOPS_PER_SECOND,
    NAIVE_SECONDS_PER_OUTPUT,
    NUMPY_ELEMENTWISE_FLOPS_PER_SECOND,
    NUMPY_THREAD_EFFICIENCY,
    OBJECT_FLOPS_PER_SECOND,
    SECONDS_PER_CALL,
    SECONDS_PER_PRODUCT,
    SECONDS_PER_RUN,
    SMALL_PRODUCT_FLOPS_PER_SECOND,
    STRIDED_BYTES_PER_SECOND,
    WINDOW_VIEW_SECONDS,
)
from mimo_conv._paths.spec import Work


def _blas_rates() -> dict[tuple[str, int], float]:
    return dict(BLAS_FLOPS_PER_SECOND)


def _kernel_speedups() -> dict[int, float]:
    return dict(BLAS_KERNEL_SPEEDUP)


@dataclass(frozen=True)
class Rates:
    """The machine's rates the formulas read: each field is the constant of its name, upper-cased.

    The defaults are :mod:`mimo_conv._engine.constants`; ``benchmarks/calibrate.py`` builds
    other ones (``dataclasses.replace``) to compare a fresh measurement with them.

    Examples
    --------
    >>> Rates().copy_bytes_per_second == COPY_BYTES_PER_SECOND
    True
    """

    blas_flops_per_second: Mapping[tuple[str, int], float] = field(default_factory=_blas_rates)
    blas_kernel_speedup: Mapping[int, float] = field(default_factory=_kernel_speedups)
    half_speed_rows: float = HALF_SPEED_ROWS
    half_speed_inner: float = HALF_SPEED_INNER
    half_speed_columns: float = HALF_SPEED_COLUMNS
    blas_thread_efficiency: float = BLAS_THREAD_EFFICIENCY
    blas_single_thread_work: float = BLAS_SINGLE_THREAD_WORK
    integer_flops_per_second: float = INTEGER_FLOPS_PER_SECOND
    object_flops_per_second: float = OBJECT_FLOPS_PER_SECOND
    copy_bytes_per_second: float = COPY_BYTES_PER_SECOND
    strided_bytes_per_second: float = STRIDED_BYTES_PER_SECOND
    seconds_per_run: float = SECONDS_PER_RUN
    numpy_thread_efficiency: float = NUMPY_THREAD_EFFICIENCY
    seconds_per_call: float = SECONDS_PER_CALL
    window_view_seconds: float = WINDOW_VIEW_SECONDS
    seconds_per_product: float = SECONDS_PER_PRODUCT
    small_product_flops_per_second: float = SMALL_PRODUCT_FLOPS_PER_SECOND
    einsum_call_seconds: float = EINSUM_CALL_SECONDS
    einsum_loop_flops_per_second: float = EINSUM_LOOP_FLOPS_PER_SECOND
    numpy_elementwise_flops_per_second: float = NUMPY_ELEMENTWISE_FLOPS_PER_SECOND
    naive_seconds_per_output: float = NAIVE_SECONDS_PER_OUTPUT
    depthwise_seconds_per_product: float = DEPTHWISE_SECONDS_PER_PRODUCT
    depthwise_elements_per_product: float = DEPTHWISE_ELEMENTS_PER_PRODUCT


#: The measured constants, as the planner uses them.
MEASURED = Rates()


def flop_count(geometry: ConvGeometry, dtypes: DtypePlan) -> int:
    """Real operations of the direct convolution: ``2 *`` multiply-adds, 8 per complex one.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=4, groups=1, input_shape=(5, 5),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> flop_count(g, plan_dtypes(np.dtype(np.float64), np.dtype(np.float64)))  # 2*36*18
    1296
    """
    g = geometry
    complex_factor = 4 if dtypes.compute.kind == "c" else 1
    positions = g.batch_size * math.prod(g.output_shape)
    return 2 * complex_factor * positions * g.out_channels * g.terms_per_output


def rate(dtypes: DtypePlan, rates: Rates = MEASURED) -> float:
    """Arithmetic rate of a large matrix product on one thread in the compute dtype, FLOP/s.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> rate(plan_dtypes(np.dtype(np.int64), np.dtype(np.int64))) == INTEGER_FLOPS_PER_SECOND
    True
    """
    kind = dtypes.compute.kind
    if kind == "O":
        return rates.object_flops_per_second
    if kind in "iu":
        return rates.integer_flops_per_second
    return gemm_rate(kind, dtypes.compute.itemsize, rates)


def gemm_rate(
    kind: str, itemsize: int, rates: Rates = MEASURED, kernels: str | None = None
) -> float:
    """Return BLAS's rate for a float or complex dtype, for the kernels OpenBLAS runs here.

    ``kernels`` (default: :func:`~mimo_conv._core.machine.openblas_kernels`) names the
    kernel family; an AVX-512 one multiplies the measured rate by its speed-up.

    Examples
    --------
    >>> gemm_rate("f", 4, kernels="Haswell") == BLAS_FLOPS_PER_SECOND[("f", 4)]
    True
    >>> gemm_rate("f", 4, kernels="SkylakeX") / BLAS_FLOPS_PER_SECOND[("f", 4)]
    1.7
    >>> gemm_rate("c", 16, kernels="SkylakeX") / BLAS_FLOPS_PER_SECOND[("c", 16)]  # 2 float64
    1.5
    """
    measured = rates.blas_flops_per_second.get((kind, itemsize), rates.integer_flops_per_second)
    if (openblas_kernels() if kernels is None else kernels) not in AVX512_KERNELS:
        return measured
    component = itemsize // 2 if kind == "c" else itemsize
    return measured * rates.blas_kernel_speedup.get(component, 1.0)


def efficiency(
    dtypes: DtypePlan, rows: int, inner: int, columns: int = 0, rates: Rates = MEASURED
) -> float:
    """Fraction of the full rate a product of this shape reaches: ``d / (d + half)`` per axis.

    Each of the product's rows ``m``, inner length ``k`` and columns ``n`` (0: not counted,
    taken as many) contributes a factor ``d / (d + half_d)``: a dimension of ``half_d``
    alone halves the rate. A short inner length leaves the product memory-bound (each output
    written after few multiply-adds); few rows or columns leave BLAS's register blocks
    part-empty.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> f32 = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
    >>> half = Rates(half_speed_rows=4, half_speed_inner=8, half_speed_columns=16)
    >>> efficiency(f32, 4, 8, 16, half)
    0.125
    >>> efficiency(plan_dtypes(np.dtype(np.int64), np.dtype(np.int64)), 1, 1)
    1.0
    """
    if dtypes.compute.kind not in "fc":
        return 1.0  # NumPy's own loops have no blocking to amortise
    factor = (rows / (rows + rates.half_speed_rows)) * (inner / (inner + rates.half_speed_inner))
    if columns:
        factor *= columns / (columns + rates.half_speed_columns)
    return factor


def blas_speedup(work: Work, threads: int, rates: Rates = MEASURED) -> float:
    """How much faster than on one thread BLAS runs one of ``work``'s products.

    OpenBLAS runs a product whose ``m * n * k`` is at most
    :data:`~mimo_conv._engine.constants.BLAS_SINGLE_THREAD_WORK` on one thread; a larger one
    gains :data:`~mimo_conv._engine.constants.BLAS_THREAD_EFFICIENCY` of a thread for each
    thread beyond the first.

    Examples
    --------
    >>> big = Work(0, 1, 1, 256, 2304, product_columns=196)
    >>> blas_speedup(big, 2, Rates(blas_thread_efficiency=0.8))
    1.8
    >>> blas_speedup(Work(0, 1, 1, 16, 16, product_columns=16), 2)
    1.0
    """
    if threads <= 1:
        return 1.0
    columns = work.product_columns or 2**20
    if work.product_rows * work.product_inner * columns <= rates.blas_single_thread_work:
        return 1.0
    return 1.0 + (threads - 1) * rates.blas_thread_efficiency


def products_seconds(
    work: Work, flops: int, dtypes: DtypePlan, threads: int = 1, rates: Rates = MEASURED
) -> float:
    """Time of a path's matrix products: at BLAS's rate, or as many small products.

    Each of ``work.products`` products costs the faster of its arithmetic at BLAS's rate
    for its shape (:func:`efficiency`) on its threads (:func:`blas_speedup`) and, as one of
    a batch of small products, the fixed
    :data:`~mimo_conv._engine.constants.SECONDS_PER_PRODUCT` plus its arithmetic at
    :data:`~mimo_conv._engine.constants.SMALL_PRODUCT_FLOPS_PER_SECOND` (scaled like BLAS's
    rate for other dtypes). Integer and object products run NumPy's own loop, on one thread.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> f32 = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
    >>> tiny = Work(0, 0, 1152, 1, 25)  # 1152 products of (1, 25) @ (25, 9)
    >>> rates = Rates(seconds_per_product=25e-9, small_product_flops_per_second=14e9,
    ...               blas_flops_per_second={("f", 4): 65e9}, half_speed_rows=16)
    >>> round(products_seconds(tiny, 1152 * 450, f32, 1, rates) / 1152 * 1e9)  # 25 + 32 ns
    57
    """
    if not flops:  # nothing to multiply (an empty call)
        return 0.0
    full = rate(dtypes, rates)
    shape = efficiency(dtypes, work.product_rows, work.product_inner, work.product_columns, rates)
    blas = dtypes.compute.kind in "fc"
    blas_rate = full * shape * (blas_speedup(work, threads, rates) if blas else 1.0)
    if not work.products:
        return flops / blas_rate
    each = flops / work.products
    if blas:
        reference = gemm_rate("f", 4, rates)
        small_rate = rates.small_product_flops_per_second * full / reference
    else:
        small_rate = full
    return work.products * min(each / blas_rate, rates.seconds_per_product + each / small_rate)


def numpy_threads_speedup(work: Work, rates: Rates = MEASURED) -> float:
    """How much faster than on one thread a path's NumPy-side work runs on its threads.

    Examples
    --------
    >>> two = Work(0, 0, 0, 0, 0, numpy_threads=2)
    >>> numpy_threads_speedup(two, Rates(numpy_thread_efficiency=0.7))
    1.7
    """
    return 1.0 + (max(1, work.numpy_threads) - 1) * rates.numpy_thread_efficiency


def numpy_seconds(work: Work, copied_bytes: int = 0, rates: Rates = MEASURED) -> float:
    """Time of the copies and additions: bandwidth, strided bandwidth, runs, threads.

    ``work.bytes_moved`` at the contiguous copy bandwidth except its ``strided_bytes`` at
    the strided one, plus a fixed time per contiguous run, divided over the path's threads;
    then the input copy (``copied_bytes`` read and written once) on the calling thread.

    Examples
    --------
    >>> rates = Rates(copy_bytes_per_second=1e10, strided_bytes_per_second=5e9,
    ...               seconds_per_run=1e-8)
    >>> numpy_seconds(Work(10**6, 0, 0, 0, 0, strided_bytes=10**5, copy_runs=1000), 0, rates)
    0.00012
    """
    contiguous = work.bytes_moved - work.strided_bytes
    seconds = contiguous / rates.copy_bytes_per_second
    seconds += work.strided_bytes / rates.strided_bytes_per_second
    seconds += work.copy_runs * rates.seconds_per_run
    seconds /= numpy_threads_speedup(work, rates)
    return seconds + 2 * copied_bytes / rates.copy_bytes_per_second


def predict_seconds(
    work: Work,
    flops: int,
    dtypes: DtypePlan,
    copied_bytes: int = 0,
    *,
    threads: int | None = None,
    rates: Rates = MEASURED,
) -> float:
    """Predicted time of a path's work, plus ``copied_bytes`` of input copy, in seconds.

    ``threads`` defaults to :func:`~mimo_conv._core.workers.get_threads`.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> f64 = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
    >>> rates = Rates(seconds_per_call=1.5e-6)
    >>> predict_seconds(Work(0, 2, 1, 1, 1), 0, f64, rates=rates)  # two calls, no product
    3e-06
    """
    threads = get_threads() if threads is None else threads
    full = rate(dtypes, rates)
    flops = round(flops * work.multiply_fraction)  # "winograd" multiplies less
    if work.stacked_products and dtypes.compute.kind in "fc":  # the depthwise path
        scale = max(1.0, dtypes.compute.itemsize / 4)  # wider elements: fewer per vector
        # stacked_products already counts the busiest thread's share (the path's own split).
        seconds = work.stacked_products * rates.depthwise_seconds_per_product * scale
    elif work.elementwise:
        loop = (
            rates.einsum_loop_flops_per_second
            if work.einsum_calls
            else rates.numpy_elementwise_flops_per_second
        )
        seconds = flops / min(full, loop) / numpy_threads_speedup(work, rates) if flops else 0.0
        # Depthwise products without float SIMD: their passes' traffic, as a copy's.
        passes = rates.depthwise_elements_per_product * work.stacked_products
        seconds += passes * dtypes.compute.itemsize / rates.copy_bytes_per_second
    else:
        seconds = products_seconds(work, flops, dtypes, threads, rates)
    seconds += numpy_seconds(work, copied_bytes, rates)
    seconds += work.calls * rates.seconds_per_call
    seconds += work.einsum_calls * rates.einsum_call_seconds
    seconds += work.window_views * rates.window_view_seconds
    return seconds + work.python_iterations * rates.naive_seconds_per_output
