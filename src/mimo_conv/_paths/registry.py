"""The registry of computational paths, and the check that a requested one applies.

Every path has the same signature, ``(x_padded, weight, geometry) -> out``: the padded
input ``(N, C_in, *padded_shape)`` and the kernels in the compute dtype, and a new array
``(N, C_out, *output_shape)`` without bias. The engine adds the bias and casts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from numpy.typing import NDArray

from mimo_conv._core.budget import InputCopyPlan, plan_input_copy
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._paths import depthwise
from mimo_conv._paths.einsum import MAX_SPATIAL_DIMS, correlate_einsum, einsum_bytes_per_row
from mimo_conv._paths.fold import correlate_fold, fold_bytes_per_row
from mimo_conv._paths.gemm import correlate_gemm, im2col_bytes_per_row
from mimo_conv._paths.im2col import correlate_im2col, im2col_bytes_per_image
from mimo_conv._paths.matmul import correlate_matmul
from mimo_conv._paths.naive import correlate_naive
from mimo_conv._paths.shift import correlate_shift, shift_bytes_per_row

Correlate = Callable[[NDArray[Any], NDArray[Any], ConvGeometry], NDArray[Any]]

#: The computational paths by name. ``"auto"`` is not among them: it names the choice
#: that :func:`mimo_conv._engine.cost_model.choose_method` makes.
METHODS: dict[str, Correlate] = {
    "naive": correlate_naive,
    "einsum": correlate_einsum,
    "matmul": correlate_matmul,
    "im2col": correlate_im2col,
    "gemm": correlate_gemm,
    "shift": correlate_shift,
    "fold": correlate_fold,
    "depthwise": depthwise.correlate_depthwise,
}

#: Factor by which a path's worst rounding error may exceed the dot-product bound
#: ``gamma_n * conv(|x|, |w|)`` (Higham, section 3.1) that the property tests check. Every
#: path listed so far sums the same ``n`` products of a direct convolution, only in a
#: different order, and that bound holds for every order, so each factor is 1. A path that
#: changes the arithmetic (Winograd, FFT) would list its derived factor here; a path missing
#: from this mapping has factor 1.
ERROR_BOUND_FACTORS: dict[str, float] = {"gemm": 1.0, "shift": 1.0, "fold": 1.0}

#: Every value ``method=`` accepts.
METHOD_NAMES: tuple[str, ...] = ("auto", *METHODS)


def check_method(method: object, geometry: ConvGeometry) -> None:
    """Raise ``ValueError`` if ``method`` is unknown or cannot compute this geometry.

    Examples
    --------
    >>> g = ConvGeometry(1, 1, 1, 1, (3,), (2,), (1,), (1,), ((0, 0),))
    >>> check_method("einsum", g)
    >>> check_method("matmul", g)
    Traceback (most recent call last):
    ...
    ValueError: method='matmul' needs a 1 x 1 kernel, got kernel shape (2,); use ...
    """
    if not isinstance(method, str) or method not in METHOD_NAMES:
        msg = f"method must be one of {METHOD_NAMES!r}, got {method!r}"
        raise ValueError(msg)
    if method == "einsum" and geometry.spatial_dims > MAX_SPATIAL_DIMS:
        msg = (
            f"method='einsum' names each spatial axis with a letter and supports at most "
            f"{MAX_SPATIAL_DIMS} spatial dimensions, got {geometry.spatial_dims}; "
            "use method='gemm' or 'auto'"
        )
        raise ValueError(msg)
    if method == "matmul" and not geometry.is_pointwise:
        msg = (
            "method='matmul' needs a 1 x 1 kernel, "
            f"got kernel shape {geometry.kernel_shape}; use method='einsum' or 'auto'"
        )
        raise ValueError(msg)


#: What each path's smallest chunk (:func:`minimum_chunk_bytes`) holds, for error messages.
MINIMUM_CHUNK_NAMES: dict[str, str] = {
    "naive": "window",
    "einsum": "window copy of one output row",
    "matmul": "strided copy of one image",
    "im2col": "im2col column matrix of one image",
    "gemm": "im2col buffer of one output row",
    "shift": "shifted input and product of one output row",
    "fold": "fold buffer of one output row",
    "depthwise": depthwise.MINIMUM_CHUNK_NAME,
}


def input_copy_plan(
    method: str, geometry: ConvGeometry, itemsize: int, *, copies: bool
) -> InputCopyPlan:
    """How the padded input copy is chunked so that the path ``method`` fits beside it.

    :func:`mimo_conv._core.budget.plan_input_copy` for this geometry under the budget in force;
    ``copies`` says whether the input is copied at all (padding or a dtype conversion). The
    engine runs by it and the cost model predicts by it.

    Examples
    --------
    >>> g = ConvGeometry(8, 16, 16, 1, (32, 32), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))
    >>> input_copy_plan("gemm", g, 4, copies=True)  # 8 padded images of 16 * 34 * 34 * 4 B
    InputCopyPlan(images=8, held=591872, chunked=False)
    """
    per_image = geometry.in_channels * math.prod(geometry.padded_shape) * itemsize
    result = geometry.out_channels * math.prod(geometry.output_shape) * itemsize
    return plan_input_copy(
        geometry.batch_size,
        per_image if copies else 0,
        result,
        minimum_chunk_bytes(method, geometry, itemsize),
        method,
        MINIMUM_CHUNK_NAMES[method],
    )


def minimum_chunk_bytes(method: str, geometry: ConvGeometry, itemsize: int) -> int:
    """Temporary bytes of the smallest chunk the path ``method`` can compute in.

    One output row of one image for the paths that chunk over rows (``"gemm"``,
    ``"fold"``, ``"shift"``, ``"einsum"``), one image for ``"im2col"`` and for
    ``"matmul"`` with a stride (its strided copy), one window for ``"naive"``. The engine
    leaves at least this much of the budget to the path when it sizes the chunks of the
    padded input copy.

    Examples
    --------
    >>> g = ConvGeometry(8, 16, 16, 1, (32, 32), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))
    >>> minimum_chunk_bytes("gemm", g, 4)  # 16 channels * 9 taps * 32 positions * 4 bytes
    18432
    >>> minimum_chunk_bytes("im2col", g, 4)  # (16 * 9 + 16) * 32 * 32 * 4 bytes
    655360
    """
    if method == "gemm" or (method == "fold" and geometry.stride[0] != 1):
        return im2col_bytes_per_row(geometry, itemsize)
    if method == "fold":
        return fold_bytes_per_row(geometry, itemsize)
    if method == "shift":
        return shift_bytes_per_row(geometry, itemsize)
    if method == "einsum":
        return einsum_bytes_per_row(geometry, itemsize)
    if method == "im2col":
        return im2col_bytes_per_image(geometry, itemsize)
    if method == "depthwise":
        return depthwise.depthwise_bytes_per_row(geometry, itemsize)
    if method == "matmul":
        strided = any(step > 1 for step in geometry.stride)
        return geometry.in_channels * math.prod(geometry.output_shape) * itemsize if strided else 0
    return geometry.terms_per_output * itemsize  # "naive": one window
