"""Exercise 1: two convolutions in a row are one convolution, and when one splits into two.

Without a nonlinearity between them, ``conv(conv(x, w1, b1, s1), w2, b2, s2)`` is linear
in ``x`` and commutes with shifts by ``s1 * s2``, so it is a single convolution:
:func:`compose` returns its kernel, bias and stride. :func:`decompose` goes the other
way, splitting a 2-d (or higher) kernel into a convolution over all axes but the last
followed by one along the last axis, with as many middle channels as a matrix rank.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._core.arguments import IntOrInts, int_per_axis
from mimo_conv._core.dtypes import check_integer_range, plan_dtypes
from mimo_conv._core.operands import as_numeric_array


def _bias(value: ArrayLike | None, name: str, channels: int, weight_name: str) -> NDArray[Any]:
    """Return the bias as an array of shape ``(channels,)``; zeros (int 0) when absent."""
    if value is None:
        return np.zeros(channels, dtype=np.int64)
    array = as_numeric_array(value, name)
    if array.shape != (channels,):
        msg = (
            f"{name} must have shape ({channels},) to match {weight_name}, "
            f"got {name} of shape {array.shape}"
        )
        raise ValueError(msg)
    return array


def compose(
    w1: ArrayLike,
    w2: ArrayLike,
    b1: ArrayLike | None = None,
    b2: ArrayLike | None = None,
    stride1: IntOrInts = 1,
    stride2: IntOrInts = 1,
) -> tuple[NDArray[Any], NDArray[Any] | None, tuple[int, ...]]:
    """Return the single convolution equal to two stacked ones without a nonlinearity.

    Parameters
    ----------
    w1 : array_like of shape (C_mid, C_in, *k1)
        Kernels of the first convolution.
    w2 : array_like of shape (C_out, C_mid, *k2)
        Kernels of the second convolution; same number of spatial axes as ``w1``.
    b1 : array_like of shape (C_mid,), optional
        Bias of the first convolution.
    b2 : array_like of shape (C_out,), optional
        Bias of the second convolution.
    stride1, stride2 : int or sequence of int, optional
        Strides of the two convolutions.

    Returns
    -------
    weight : ndarray of shape (C_out, C_in, *(k1 + (k2 - 1) * stride1))
        ``weight[o, c, u] = sum over m and over t1 + t2 * stride1 == u of
        w2[o, m, t2] * w1[m, c, t1]``.
    bias : ndarray of shape (C_out,) or None
        ``b2[o] + sum_{m, t2} w2[o, m, t2] * b1[m]``; None when both biases are None.
    stride : tuple of int
        ``stride1 * stride2`` per axis.

    Notes
    -----
    It holds, exactly, when:

    * there is no nonlinearity between the two (that is the point of exercise 1);
    * the second convolution has no padding: padding it would add zeros *after* the
      first bias, where the single convolution would see ``b1`` propagated instead. The
      first may be padded, with any ``padding_mode``: pass the same padding to the
      composed call, since ``conv(x, w1, padding=p)`` is ``conv(pad(x), w1)``;
    * both have ``groups=1`` and ``dilation=1``: expand a grouped kernel into a dense,
      block-diagonal one first (zeros outside the groups).

    The output shapes agree as well: ``floor((L - k1) / s1) + 1`` positions after the
    first, then ``floor((that - k2) / s2) + 1`` after the second, equals
    ``floor((L - K) / (s1 s2)) + 1`` with ``K = k1 + (k2 - 1) s1``. Integers are combined
    in int64 after the overflow check of :mod:`mimo_conv._core.dtypes`; ``dtype=object``
    kernels are combined exactly.

    Examples
    --------
    Exercise 1 (b): two 3 x 3 kernels act like one 5 x 5.

    >>> import mimo_conv as mc
    >>> w1 = np.arange(18).reshape(2, 1, 3, 3)
    >>> w2 = np.ones((1, 2, 3, 3), dtype=int)
    >>> weight, bias, stride = compose(w1, w2)
    >>> weight.shape, bias, stride
    ((1, 1, 5, 5), None, (1, 1))
    >>> x = np.arange(49).reshape(1, 7, 7)
    >>> np.array_equal(mc.conv(mc.conv(x, w1), w2), mc.conv(x, weight, bias, stride))
    True

    With strides the kernel size is ``k1 + (k2 - 1) * stride1``:

    >>> weight, bias, stride = compose([[[1, 2]]], [[[1, -1]]], [10], None, 2, 3)
    >>> weight, bias, stride
    (array([[[ 1,  2, -1, -2]]]), array([0]), (6,))
    """
    first = as_numeric_array(w1, "w1")
    second = as_numeric_array(w2, "w2")
    if first.ndim < 3 or second.ndim != first.ndim:
        msg = (
            "w1 and w2 must be kernels (C_out, C_in, *kernel) with the same number of "
            f"spatial dimensions, got w1 of shape {first.shape} and w2 of shape {second.shape}"
        )
        raise ValueError(msg)
    if second.shape[1] != first.shape[0]:
        msg = (
            f"w2 must read the channels w1 writes: w1 of shape {first.shape} has "
            f"{first.shape[0]} output channels, w2 of shape {second.shape} expects "
            f"{second.shape[1]}"
        )
        raise ValueError(msg)
    rank = first.ndim - 2
    steps1 = int_per_axis(stride1, "stride1", rank, minimum=1)
    steps2 = int_per_axis(stride2, "stride2", rank, minimum=1)
    bias1 = None if b1 is None else _bias(b1, "b1", first.shape[0], "w1")
    bias2 = None if b2 is None else _bias(b2, "b2", second.shape[0], "w2")

    operands = [first.dtype, second.dtype]
    operands += [b.dtype for b in (bias1, bias2) if b is not None]
    plan = plan_dtypes(*operands)
    if plan.compute.kind == "i":
        terms = second.shape[1] * math.prod(second.shape[2:])
        check_integer_range(first, second, None, terms)
        if bias1 is not None:
            check_integer_range(bias1, second, bias2, terms)
    first = first.astype(plan.compute, copy=False)
    second = second.astype(plan.compute, copy=False)

    k1, k2 = first.shape[2:], second.shape[2:]
    size = tuple(a + (b - 1) * s for a, b, s in zip(k1, k2, steps1, strict=True))
    weight = np.zeros((second.shape[0], first.shape[1], *size), dtype=plan.compute)
    for tap in np.ndindex(*k2):
        # Tap t2 of the second kernel reads the first layer's output t2 * stride1 further
        # on: the first kernel, shifted there, scaled by w2[:, :, t2] and summed over m.
        window = tuple(slice(t * s, t * s + a) for t, s, a in zip(tap, steps1, k1, strict=True))
        weight[(slice(None), slice(None), *window)] += np.tensordot(
            second[(slice(None), slice(None), *tap)], first, axes=(1, 0)
        )
    bias = None
    if bias1 is not None or bias2 is not None:
        bias = np.zeros(second.shape[0], dtype=plan.compute)
        if bias2 is not None:
            bias += bias2.astype(plan.compute, copy=False)
        if bias1 is not None:
            per_channel = second.sum(axis=tuple(range(2, second.ndim)))
            bias += per_channel @ bias1.astype(plan.compute, copy=False)
        bias = bias.astype(plan.output, copy=False)
    stride = tuple(a * b for a, b in zip(steps1, steps2, strict=True))
    return weight.astype(plan.output, copy=False), bias, stride


def _row_reduce(matrix: list[list[Fraction]]) -> tuple[list[list[Fraction]], list[int]]:
    """Reduced row echelon form, exactly, and the pivot columns (Gauss-Jordan)."""
    rows = [row[:] for row in matrix]
    pivots: list[int] = []
    columns = len(rows[0]) if rows else 0
    top = 0
    for column in range(columns):
        found = next((r for r in range(top, len(rows)) if rows[r][column] != 0), None)
        if found is None:
            continue
        rows[top], rows[found] = rows[found], rows[top]
        lead = rows[top][column]
        rows[top] = [value / lead for value in rows[top]]
        for r, row in enumerate(rows):
            if r != top and row[column] != 0:
                factor = row[column]
                rows[r] = [a - factor * b for a, b in zip(row, rows[top], strict=True)]
        pivots.append(column)
        top += 1
        if top == len(rows):
            break
    return rows[:top], pivots


def _fraction(value: object) -> Fraction:
    """Return an exact rational copy of a number (ints, floats and fractions are all exact)."""
    if isinstance(value, (complex, np.complexfloating)):
        msg = f"weight must be real to be decomposed exactly, got {value!r}"
        raise TypeError(msg)
    return Fraction(value.item() if isinstance(value, np.generic) else value)  # type: ignore[arg-type]


def _simplest(value: Fraction) -> int | Fraction:
    """Turn a Fraction with denominator 1 into a plain int, for readable object arrays."""
    return value.numerator if value.denominator == 1 else value


def decompose(weight: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    """Split a kernel into a convolution over all axes but the last, then one along it.

    Exercise 1 (c): can a convolution be split into two? Always, into a ``kh x 1`` and a
    ``1 x kw`` convolution (for a 2-d kernel), with ``r`` channels in between, where ``r``
    is the rank of the kernel written as the matrix ``M[(o, b), (c, a)] = weight[o, c, a,
    b]``. The split saves work only when ``r`` is small; a single-channel kernel splits
    with one middle channel (it is *separable*) exactly when it is an outer product, i.e.
    when its matrix has rank 1.

    Parameters
    ----------
    weight : array_like of shape (C_out, C_in, *kernel) with at least 2 kernel axes
        Real numbers (ints, floats or ``fractions.Fraction``); the rank is computed
        exactly with fractions, so floats are taken at their exact binary value.

    Returns
    -------
    w1 : ndarray of dtype object and shape (r, C_in, *kernel[:-1], 1)
        The first convolution: every axis but the last.
    w2 : ndarray of dtype object and shape (C_out, r, 1, ..., 1, kernel[-1])
        The second convolution: the last axis only.
        ``compose(w1, w2)[0] == weight`` exactly. Entries are Python ints or Fractions.

    Notes
    -----
    The factors come from the rank factorisation ``M = C R``: ``R`` holds the non-zero
    rows of the reduced row echelon form of ``M`` and ``C`` the pivot columns of ``M``
    (exact Gauss-Jordan elimination with :class:`fractions.Fraction`). Cost: ``O(m n
    min(m, n))`` fraction operations for ``M`` of shape ``(m, n)``: meant for the small
    kernels of a lesson. For floating-point kernels from training, which are never
    exactly low rank, use a truncated SVD instead and accept the approximation.

    Examples
    --------
    The Sobel kernel is an outer product, so it splits with one middle channel:

    >>> sobel = np.array([[[[1, 0, -1], [2, 0, -2], [1, 0, -1]]]])
    >>> w1, w2 = decompose(sobel)
    >>> w1.shape, w2.shape
    ((1, 1, 3, 1), (1, 1, 1, 3))
    >>> w1[0, 0, :, 0], w2[0, 0, 0, :]
    (array([1, 2, 1], dtype=object), array([1, 0, -1], dtype=object))
    >>> np.array_equal(compose(w1, w2)[0], sobel)
    True

    A kernel of rank 2 needs two middle channels:

    >>> w1, w2 = decompose([[[[1, 0], [0, 1]]]])
    >>> w1.shape[0]
    2
    """
    array = as_numeric_array(weight, "weight")
    if array.ndim < 4:
        msg = (
            "weight must have at least 2 kernel axes (C_out, C_in, *kernel) to be split "
            f"along its last axis, got weight of shape {array.shape}"
        )
        raise ValueError(msg)
    out_channels, in_channels = array.shape[:2]
    kernel = array.shape[2:]
    last = kernel[-1]
    # Rows (o, b), columns (c, a...): weight[o, c, a..., b].
    moved = np.moveaxis(array, -1, 1)  # (C_out, last, C_in, *kernel[:-1])
    rows_count = out_channels * last
    matrix_array = moved.reshape((rows_count, -1))
    matrix = [[_fraction(value) for value in row] for row in matrix_array]
    reduced, pivots = _row_reduce(matrix)
    rank = len(pivots)
    left = np.empty((rows_count, rank), dtype=object)
    for i in range(rows_count):
        for j, column in enumerate(pivots):
            left[i, j] = _simplest(matrix[i][column])
    right = np.empty((rank, matrix_array.shape[1]), dtype=object)
    for i in range(rank):
        for j in range(matrix_array.shape[1]):
            right[i, j] = _simplest(reduced[i][j])
    ones = (1,) * (len(kernel) - 1)
    w1 = right.reshape((rank, in_channels, *kernel[:-1], 1))
    w2 = np.moveaxis(left.reshape((out_channels, last, rank)), 1, 2)
    return w1, np.ascontiguousarray(w2).reshape((out_channels, rank, *ones, last))
