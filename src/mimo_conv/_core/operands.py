"""Operand preparation: turn the caller's arrays into checked arrays, a geometry and a plan.

:func:`prepare_call` is the public boundary of a forward call: it converts ``x``,
``weight`` and ``bias`` (:func:`as_operands`), validates the geometry
(:func:`mimo_conv._core.geometry_cache.build_geometry`), plans the dtypes
(:func:`operands_plan`), checks the output fits in memory and makes exact arithmetic stay
exact (:func:`exact_operands`). What it returns needs no further validation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.dtypes import (
    DtypePlan,
    check_integer_range,
    check_numeric_dtype,
    plan_dtypes,
    python_integers,
)
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.geometry_cache import build_geometry
from mimo_conv._core.memory import check_output_fits

Operands = tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None]


def as_numeric_array(value: object, name: str) -> NDArray[Any]:
    """Convert an array-like to an ndarray of numbers without copying when possible.

    Object arrays have each stored element checked once (a broadcast view's stored
    elements only: see :func:`mimo_conv._core.dtypes.distinct_elements`).

    Examples
    --------
    >>> as_numeric_array([[1, 2], [3, 4]], "x").shape
    (2, 2)
    >>> as_numeric_array([[1, 2], [3]], "x")
    Traceback (most recent call last):
    ...
    ValueError: x must be a rectangular array-like of numbers, got a ragged nested sequence
    """
    try:
        array = np.asarray(value)
    except ValueError as error:
        msg = f"{name} must be a rectangular array-like of numbers, got a ragged nested sequence"
        raise ValueError(msg) from error
    check_numeric_dtype(array, name)
    return array


def prepare_call(
    x: object,
    weight: object,
    bias: object,
    *,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
    padding_mode: object,
    spatial_dims: int | None = None,
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None, ConvGeometry, DtypePlan]:
    """Validate a whole call: arrays, geometry, dtype plan, integer range, output size.

    Returns
    -------
    x, weight, bias : ndarray
        The arguments as arrays (views of the caller's arrays where possible; never
        written to).
    geometry : ConvGeometry
    plan : DtypePlan

    Examples
    --------
    >>> x, weight, bias, geometry, plan = prepare_call(
    ...     [[1, 2, 3]], [[[1, 1]]], None, stride=1, padding=0, dilation=1, groups=1,
    ...     padding_mode="zeros")
    >>> geometry.out_shape, plan.compute
    ((1, 2), dtype('int64'))
    """
    x_array, weight_array, bias_array = as_operands(x, weight, bias)
    geometry = build_geometry(
        x_array.shape,
        weight_array.shape,
        None if bias_array is None else bias_array.shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
        spatial_dims=spatial_dims,
    )
    plan = operands_plan(x_array, weight_array, bias_array)
    check_output_fits(geometry.out_shape, plan.compute)
    x_array, weight_array, bias_array = exact_operands(
        x_array, weight_array, bias_array, plan, geometry.terms_per_output
    )
    return x_array, weight_array, bias_array, geometry, plan


def as_operands(x: object, weight: object, bias: object) -> Operands:
    """Convert ``x``, ``weight`` and ``bias`` (may be None) to arrays of numbers.

    Scans of the data (object elements, integer range) read each stored element once, so
    a huge ``np.broadcast_to`` view costs no more than the values it stores.

    Examples
    --------
    >>> x, weight, bias = as_operands([[1, 2]], [[[1]]], None)
    >>> x.shape, weight.shape, bias
    ((1, 2), (1, 1, 1), None)
    """
    x_array = as_numeric_array(x, "x")
    weight_array = as_numeric_array(weight, "weight")
    bias_array = None if bias is None else as_numeric_array(bias, "bias")
    return x_array, weight_array, bias_array


def operands_plan(x: NDArray[Any], weight: NDArray[Any], bias: NDArray[Any] | None) -> DtypePlan:
    """Plan the dtypes of a call: :func:`mimo_conv._core.dtypes.plan_dtypes` of its operands.

    Examples
    --------
    >>> operands_plan(np.ones(2, np.float16), np.ones(2, np.float16), None).compute
    dtype('float32')
    """
    if bias is None:
        return plan_dtypes(x.dtype, weight.dtype)
    return plan_dtypes(x.dtype, weight.dtype, bias.dtype)


def exact_operands(
    x: NDArray[Any],
    weight: NDArray[Any],
    bias: NDArray[Any] | None,
    plan: DtypePlan,
    terms_per_output: int,
) -> Operands:
    """Make exact arithmetic stay exact: check the int64 range, lift object ints.

    An int64 plan raises ``OverflowError`` when a sum of ``terms_per_output`` products
    (plus the bias) could leave the int64 range; an object plan gets NumPy integers inside
    object arrays replaced by Python ints, which never wrap around. Other plans pass
    through unchanged.

    Examples
    --------
    >>> x = np.array([np.int64(2**62)], dtype=object)
    >>> plan = operands_plan(x, x, None)
    >>> exact_operands(x, x, None, plan, 1)[0] * 4
    array([18446744073709551616], dtype=object)
    """
    if plan.compute.kind == "O":
        x, weight = python_integers(x), python_integers(weight)
        bias = None if bias is None else python_integers(bias)
    if plan.compute.kind == "i":
        check_integer_range(x, weight, bias, terms_per_output)
    return x, weight, bias
