"""The cost model's formulas: a path's counted work turned into a predicted time.

A path counts its work (:class:`~mimo_conv._paths.spec.Work`) and its operations; the
machine's rates (:mod:`mimo_conv._engine.constants`) turn them into seconds:

``seconds = products_seconds + bytes_moved / COPY_BYTES_PER_SECOND + calls *
SECONDS_PER_CALL + einsum_calls * EINSUM_CALL_SECONDS + python_iterations *
NAIVE_SECONDS_PER_OUTPUT``, where each matrix product costs the faster of its arithmetic at
BLAS's rate for its shape and, as one of a batch of small products, a fixed time plus its
arithmetic at the small-product rate (:func:`products_seconds`). The depthwise path's
float arithmetic is its counted products at ``DEPTHWISE_SECONDS_PER_PRODUCT`` instead.

Examples
--------
>>> import numpy as np
>>> from mimo_conv._core.dtypes import plan_dtypes
>>> rate(plan_dtypes(np.dtype(np.float32), np.dtype(np.float32)))
130000000000.0
"""

from __future__ import annotations

import math

from mimo_conv._core.dtypes import DtypePlan
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._engine.constants import (
    BLAS_FLOPS_PER_SECOND,
    COPY_BYTES_PER_SECOND,
    DEPTHWISE_ELEMENTS_PER_PRODUCT,
    DEPTHWISE_SECONDS_PER_PRODUCT,
    EINSUM_CALL_SECONDS,
    EINSUM_LOOP_FLOPS_PER_SECOND,
    HALF_SPEED_DIMENSION,
    INTEGER_FLOPS_PER_SECOND,
    NAIVE_SECONDS_PER_OUTPUT,
    NUMPY_ELEMENTWISE_FLOPS_PER_SECOND,
    OBJECT_FLOPS_PER_SECOND,
    SECONDS_PER_CALL,
    SECONDS_PER_PRODUCT,
    SMALL_PRODUCT_FLOPS_PER_SECOND,
)
from mimo_conv._paths.spec import Work


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


def rate(dtypes: DtypePlan) -> float:
    """Arithmetic rate of a full-size matrix product in the compute dtype, FLOP/s.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> rate(plan_dtypes(np.dtype(np.int64), np.dtype(np.int64)))
    1000000000.0
    """
    kind = dtypes.compute.kind
    if kind == "O":
        return OBJECT_FLOPS_PER_SECOND
    if kind in "iu":
        return INTEGER_FLOPS_PER_SECOND
    return BLAS_FLOPS_PER_SECOND.get((kind, dtypes.compute.itemsize), INTEGER_FLOPS_PER_SECOND)


def efficiency(dtypes: DtypePlan, rows: int, inner: int) -> float:
    """Fraction of the full rate a product with this many rows and inner length reaches.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> efficiency(plan_dtypes(np.dtype(np.float32), np.dtype(np.float32)), 16, 16)
    0.25
    """
    if dtypes.compute.kind not in "fc":
        return 1.0  # NumPy's own loops have no blocking to amortise
    half = HALF_SPEED_DIMENSION
    return (rows / (rows + half)) * (inner / (inner + half))


def products_seconds(work: Work, flops: int, dtypes: DtypePlan) -> float:
    """Time of a path's matrix products: at BLAS's rate, or as many small products.

    Each of ``work.products`` products costs the faster of its arithmetic at BLAS's rate
    for its shape (:func:`efficiency`) and, as one of a batch of small products, the fixed
    :data:`~mimo_conv._engine.constants.SECONDS_PER_PRODUCT` plus its arithmetic at
    :data:`~mimo_conv._engine.constants.SMALL_PRODUCT_FLOPS_PER_SECOND` (scaled like BLAS's
    rate for other dtypes).

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> f32 = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
    >>> tiny = Work(0, 0, 1152, 1, 25)  # 1152 products of (1, 25) @ (25, 9)
    >>> round(products_seconds(tiny, 1152 * 450, f32) / 1152 * 1e9)  # ns each: 25 + 32
    57
    """
    if not flops:  # nothing to multiply (an empty call)
        return 0.0
    full = rate(dtypes)
    blas_rate = full * efficiency(dtypes, work.product_rows, work.product_inner)
    if not work.products:
        return flops / blas_rate
    each = flops / work.products
    if dtypes.compute.kind in "fc":
        small_rate = SMALL_PRODUCT_FLOPS_PER_SECOND * full / BLAS_FLOPS_PER_SECOND[("f", 4)]
    else:
        small_rate = full
    return work.products * min(each / blas_rate, SECONDS_PER_PRODUCT + each / small_rate)


def predict_seconds(work: Work, flops: int, dtypes: DtypePlan, copied_bytes: int = 0) -> float:
    """Predicted time of a path's work, plus ``copied_bytes`` of input copy, in seconds.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> f64 = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
    >>> predict_seconds(Work(0, 2, 1, 1, 1), 0, f64)  # two calls and one empty product
    3e-06
    """
    full = rate(dtypes)
    if work.stacked_products and dtypes.compute.kind in "fc":  # the depthwise path
        scale = max(1.0, dtypes.compute.itemsize / 4)  # wider elements: fewer per vector
        seconds = work.stacked_products * DEPTHWISE_SECONDS_PER_PRODUCT * scale
    elif work.elementwise:
        loop = (
            EINSUM_LOOP_FLOPS_PER_SECOND
            if work.einsum_calls
            else NUMPY_ELEMENTWISE_FLOPS_PER_SECOND
        )
        seconds = flops / min(full, loop) if flops else 0.0
        # Depthwise products without float SIMD: their passes' traffic, as a copy's.
        passes = DEPTHWISE_ELEMENTS_PER_PRODUCT * work.stacked_products
        seconds += passes * dtypes.compute.itemsize / COPY_BYTES_PER_SECOND
    else:
        seconds = products_seconds(work, flops, dtypes)
    seconds += (work.bytes_moved + 2 * copied_bytes) / COPY_BYTES_PER_SECOND
    seconds += work.calls * SECONDS_PER_CALL
    seconds += work.einsum_calls * EINSUM_CALL_SECONDS
    return seconds + work.python_iterations * NAIVE_SECONDS_PER_OUTPUT
