"""The exact result of a call, at the speed of the library's own float64 paths.

**The Ozaki scheme.** Each float operand is scaled by a power of two (exact) so that its
largest magnitude is below 1, then cut into slices on a common grid: slice ``k`` holds the
bits of weight ``2**(-beta k)`` down to ``2**(-beta (k + 1))``, so it is an integer
below ``2**beta`` times ``2**(-beta (k + 1))``. A product of two slices is an integer
below ``2**(2 beta)`` times one power of two, and a sum of ``n`` of them, in any order, is
an integer below ``n 2**(2 beta) <= 2**53`` times that power: every rounding in the
float64 operation is exact when ``beta = floor((53 - ceil(log2 n)) / 2)``. So one ordinary
float64 call of the operation per pair of slices gives that pair's part of the result
exactly, and the parts are added in double-double (``hi + lo``, error-free
transformations ``TwoSum``), whose own error is bounded and returned (:class:`Exact`'s
``error``). float32 operands need two or three slices, float64 ones three to five.

When an operand's bits span more than the slices cover (values of very different sizes),
the bits below the last slice are dropped and their contribution is bounded with one more
call of the operation on magnitudes (``|a - a~| |b| + |a~| |b - b~|``), and added to
``error``. The assertion falls back to exact rational arithmetic (:func:`fraction_exact`)
when that bound is not negligible next to the tolerance, and for object and longdouble
operands.

Examples
--------
>>> from mimo_conv.testing.operations import parse_call
>>> call = parse_call("conv", (np.array([[0.1, 0.2, 0.3]]), np.array([[[1.0, 1.0]]])), {})
>>> exact = ozaki_exact(call, n=2)
>>> from fractions import Fraction
>>> Fraction(exact.hi[0, 0]) + Fraction(exact.lo[0, 0]) == Fraction(0.1) + Fraction(0.2)
True
>>> bool(exact.error.max() < 1e-30)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv.testing.operations import OpCall

_U64 = 2.0**-53
_ETA64 = 2.0**-1074

F64 = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Exact:
    """A real array known to within ``error``: ``|exact - (hi + lo)| <= error`` elementwise.

    Attributes
    ----------
    hi, lo : ndarray of float64
        ``hi`` is ``hi + lo`` rounded to float64; ``lo`` the rest.
    error : ndarray of float64
        Zero where the result is exact.
    method : str
        ``"ozaki"``, ``"fractions"`` or ``"integers"``.
    """

    hi: F64
    lo: F64
    error: F64
    method: str

    def negative(self) -> Exact:
        """``-self``, exactly."""
        return Exact(-self.hi, -self.lo, self.error, self.method)


def two_sum(a: F64, b: F64) -> tuple[F64, F64]:
    """Knuth's TwoSum: ``s + e == a + b`` exactly, ``s = fl(a + b)``.

    Examples
    --------
    >>> s, e = two_sum(np.array([1.0]), np.array([2.0**-60]))
    >>> float(s[0]), float(e[0])
    (1.0, 8.673617379884035e-19)
    """
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def add(first: Exact, second: Exact | F64) -> Exact:
    """``first + second`` in double-double, the rounding of the low parts added to ``error``.

    Examples
    --------
    >>> one = Exact(np.array([1.0]), np.array([0.0]), np.array([0.0]), "ozaki")
    >>> total = add(one, np.array([2.0**-70]))
    >>> float(total.hi[0]), float(total.lo[0]), bool(total.error[0] < 1e-36)
    (1.0, 8.470329472543003e-22, True)
    """
    if isinstance(second, Exact):
        s, e = two_sum(first.hi, second.hi)
        low = first.lo + second.lo
        rounding = _U64 * np.abs(low)
        low2 = low + e
        error = first.error + second.error
    else:
        s, e = two_sum(first.hi, np.asarray(second, dtype=np.float64))
        low2 = first.lo + e
        rounding = np.zeros_like(low2)
        error = first.error
    rounding = rounding + _U64 * np.abs(low2)
    hi, lo = two_sum(s, low2)
    # No underflow term: an addition whose result is subnormal is exact.
    return Exact(hi, lo, error + rounding * (1 + 4 * _U64), first.method)


def _grid_bits(array: F64) -> tuple[int, int]:
    """``(E, L)``: ``max|a| < 2**E`` and every element a multiple of ``2**L``."""
    nonzero = array[array != 0]
    if nonzero.size == 0:
        return 0, 0
    _, top = np.frexp(np.max(np.abs(nonzero)))
    mantissa, exponent = np.frexp(nonzero)
    ints = np.ldexp(mantissa, 53).astype(np.int64)
    lowest = np.log2((ints & -ints).astype(np.float64)).astype(np.int64) + exponent - 53
    return int(top), int(lowest.min())


def split(array: F64, beta: int, most: int) -> tuple[list[F64], int, F64]:
    """Cut ``array`` into at most ``most`` slices of ``beta`` bits on a common grid.

    Returns the slices scaled by ``2**-E`` (so each is an integer below ``2**beta`` times
    ``2**(-beta (k + 1))``), the exponent ``E``, and the unscaled remainder (exact: the
    dropped low bits, zero when the slices hold every bit).

    Examples
    --------
    >>> slices, top, rest = split(np.array([1.0 + 2.0**-30, -0.75]), 20, 4)
    >>> len(slices), top, rest.tolist()
    (2, 1, [0.0, 0.0])
    """
    top, lowest = _grid_bits(array)
    needed = max(1, math.ceil((top - lowest) / beta))
    count = min(needed, most)
    slices = []
    rest = np.array(array, dtype=np.float64, copy=True)
    for k in range(count):
        shift = beta * (k + 1) - top
        whole = np.trunc(np.ldexp(rest, shift))
        if not whole.any():
            continue
        rest = rest - np.ldexp(whole, -shift)
        slices.append(np.ldexp(whole, -beta * (k + 1)))
    return slices, top, rest


def beta_for(n: int) -> int:
    """Bits per slice so that a sum of ``n`` slice products is exact in float64.

    Examples
    --------
    >>> beta_for(144), beta_for(1)
    (22, 26)
    """
    return (53 - math.ceil(math.log2(max(n, 1)))) // 2


def ozaki_exact(call: OpCall, n: int, *, most: int = 6, negligible: float = 0.0) -> Exact:
    """Return the exact result of a real float call, or within a bounded ``error`` (module doc).

    Parameters
    ----------
    call : OpCall
    n : int
        The largest number of terms of an output.
    most : int, optional
        Slices per operand at most.
    negligible : float, optional
        A pair of slices ``k, m`` whose part is at most ``n 2**(-beta (k + m))`` (scaled
        back) is not computed when that is below ``negligible``; the bound is added to
        ``error`` instead (the Ozaki scheme's usual saving).

    Raises
    ------
    ValueError
        If an operand holds NaN or Inf.
    """
    left = np.asarray(call.left, dtype=np.float64)
    right = None if call.right is None else np.asarray(call.right, dtype=np.float64)
    for array in (left, right, call.bias):
        if array is not None and not np.all(np.isfinite(np.asarray(array, dtype=np.float64))):
            msg = "the exact reference needs finite inputs, got an array with NaN or Inf"
            raise ValueError(msg)
    beta = beta_for(n)
    left_slices, left_top, left_rest = split(left, beta, most)
    right_slices: list[F64 | None]
    if right is None:
        right_slices, right_top, right_rest = [None], 0, None
    else:
        found, right_top, right_rest = split(right, beta, most)
        right_slices = list(found)
    scale = left_top + right_top
    pairs = []
    dropped = 0.0
    for k, a in enumerate(left_slices):
        for m, b in enumerate(right_slices):
            most_part = math.ldexp(n, scale - beta * (k + m))
            if k + m > 0 and most_part < negligible:
                dropped += most_part
            else:
                pairs.append((a, b))
    total: Exact | None = None
    parts: Iterable[F64]
    if (
        call.op == "conv"
        and right is not None
        and len(pairs) > 1
        and left.size * len(pairs) <= _STACK_LIMIT
    ):
        parts = _stacked_conv_parts(call, left_slices, right_slices)
    else:
        parts = (np.asarray(call.run(a, b, None), dtype=np.float64) for a, b in pairs)
    for part in parts:
        total = (
            Exact(part, np.zeros_like(part), np.zeros_like(part), "ozaki")
            if total is None
            else add(total, part)
        )
    if total is None:
        shape_source = call.run(
            np.zeros(left.shape), None if right is None else np.zeros(right.shape), None
        )
        zero = np.zeros(np.shape(shape_source))
        total = Exact(zero, zero.copy(), zero.copy(), "ozaki")
    # Scaling back by a power of two is exact unless it underflows (half a subnormal each).
    hi, lo = np.ldexp(total.hi, scale), np.ldexp(total.lo, scale)
    if not (np.all(np.isfinite(hi)) and np.all(np.isfinite(lo))):
        msg = "the exact result leaves the float64 range; use dtype=object inputs"
        raise ValueError(msg)
    error = np.ldexp(total.error, scale) * (1 + 2 * _U64)
    if scale < 0:
        error = error + 2 * _ETA64  # hi and lo may each lose half a subnormal
    if dropped:
        error = error + dropped * (1 + 4 * _U64)
    truncated = bool(np.any(left_rest)) or (right_rest is not None and bool(np.any(right_rest)))
    if truncated:
        error = error + _truncation_bound(call, n, left, left_rest, right, right_rest)
    exact = Exact(hi, lo, error, "ozaki")
    if call.bias is not None:
        bias = np.asarray(call.bias, dtype=np.float64).reshape(
            (-1,) + (1,) * (call.left.ndim - 2 if right is None else right.ndim - 2)
        )
        exact = add(exact, np.broadcast_to(bias, hi.shape).astype(np.float64))
    return exact


#: Small conv calls run all slice pairs in one engine call (slices stacked along the batch
#: and the output channels): one call's overhead instead of one per pair.
_STACK_LIMIT = 1 << 15


def _stacked_conv_parts(
    call: OpCall, left_slices: list[F64], right_slices: list[F64 | None]
) -> list[F64]:
    """Return every slice pair's part of a conv, from one call.

    ``x`` slices go along the batch axis, weight slices inside each group's output channels
    (so the groups still line up).
    """
    weight = right_slices[0]
    assert weight is not None
    spatial = weight.ndim - 2
    batched = left_slices[0].ndim == spatial + 2
    xs = [s if batched else s[np.newaxis] for s in left_slices]
    batch = xs[0].shape[0]
    groups = _groups(call)
    out_channels = weight.shape[0]
    per_group = out_channels // groups if groups else 0
    stacked_w = np.stack(
        [np.reshape(np.asarray(w), (groups, per_group, *weight.shape[1:])) for w in right_slices],
        axis=1,
    ).reshape((groups * len(right_slices) * per_group, *weight.shape[1:]))
    out = np.asarray(call.run(np.concatenate(xs), stacked_w, None), dtype=np.float64)
    out = out.reshape((len(xs), batch, groups, len(right_slices), per_group, *out.shape[2:]))
    parts = []
    for k in range(len(xs)):
        for m in range(len(right_slices)):
            part = out[k, :, :, m].reshape((batch, out_channels, *out.shape[5:]))
            parts.append(part if batched else part[0])
    return parts


def _groups(call: OpCall) -> int:
    """Return the ``groups`` of a conv call: ``C_in / weight.shape[1]``."""
    assert call.right is not None
    spatial = call.right.ndim - 2
    channel_axis = 1 if call.left.ndim == spatial + 2 else 0
    per_group = call.right.shape[1]
    return call.left.shape[channel_axis] // per_group if per_group else 1


def _truncation_bound(
    call: OpCall, n: int, left: F64, left_rest: F64, right: F64 | None, right_rest: F64 | None
) -> F64:
    """Bound ``|a b - a~ b~| <= |a - a~| |b| + |a~| |b - b~|`` summed, rounded up."""
    if right is None or right_rest is None:
        dropped = np.asarray(call.run(np.abs(left_rest), None, None), dtype=np.float64)
    else:
        kept = np.abs(left - left_rest)
        dropped = np.asarray(call.run(np.abs(left_rest), np.abs(right), None), dtype=np.float64)
        if np.any(right_rest):
            dropped = dropped + np.asarray(
                call.run(kept, np.abs(right_rest), None), dtype=np.float64
            )
    nu = (n + 8) * _U64
    result: F64 = dropped * (1 + 2 * nu / (1 - nu)) + (2 * n + 4) * _ETA64
    return result


# --- exact rational arithmetic: object operands, longdouble, and the fallback -----------


def to_fraction(value: Any) -> Fraction:
    """Return the exact value of a real number (Python or NumPy) as a fraction.

    Examples
    --------
    >>> to_fraction(np.float32(0.1))
    Fraction(13421773, 134217728)
    """
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int | np.integer):
        return Fraction(int(value))
    numerator, denominator = value.as_integer_ratio()
    return Fraction(numerator, denominator)


def scaled_integers(array: NDArray[Any]) -> tuple[NDArray[Any], int]:
    """Write a finite real array exactly as ``ints * 2**exponent`` (object ints).

    Examples
    --------
    >>> ints, exponent = scaled_integers(np.array([0.75, -2.0, 0.0]))
    >>> ints.tolist(), exponent
    ([3, -8, 0], -2)
    """
    if array.dtype.kind in "iub":
        return np.asarray(array.astype(object)), 0
    if array.dtype.kind == "O" or np.finfo(array.dtype).precision > 15:
        return np.asarray(np.frompyfunc(to_fraction, 1, 1)(array), dtype=object), 0
    if not np.all(np.isfinite(array)):
        msg = "the exact reference needs finite inputs, got an array with NaN or Inf"
        raise ValueError(msg)
    values = np.asarray(array, dtype=np.float64)
    mantissa, exponent = np.frexp(values)
    ints = np.ldexp(mantissa, 53).astype(np.int64)
    shifts = exponent.astype(np.int64) - 53
    nonzero = ints != 0
    trailing = np.log2(np.where(nonzero, ints & -ints, 1)).astype(np.int64)
    ints = ints >> trailing
    shifts = shifts + trailing
    lowest = int(shifts[nonzero].min()) if nonzero.any() else 0
    shifts = np.where(nonzero, shifts - lowest, 0)
    scaled = np.left_shift(ints.astype(object), shifts.astype(object))
    return np.asarray(scaled, dtype=object), lowest


def parts(array: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Split into real and imaginary parts (None when the array is real).

    Examples
    --------
    >>> parts(np.array([1 + 2j]))[1].tolist()
    [2.0]
    """
    if array.dtype.kind == "c":
        return array.real, array.imag
    if array.dtype.kind == "O" and any(
        isinstance(v, complex | np.complexfloating) for v in array.flat
    ):
        real = np.frompyfunc(lambda v: v.real, 1, 1)(array)
        imag = np.frompyfunc(lambda v: v.imag, 1, 1)(array)
        return np.asarray(real, dtype=object), np.asarray(imag, dtype=object)
    return array, None


def _rational_run(call: OpCall, left: NDArray[Any], right: NDArray[Any] | None) -> NDArray[Any]:
    """Return the call on exact real operands, as an object array of fractions."""
    left_ints, left_exp = scaled_integers(left)
    if right is None:
        product = call.run(left_ints, None, None)
        exponent = left_exp
    else:
        right_ints, right_exp = scaled_integers(right)
        product = call.run(left_ints, right_ints, None)
        exponent = left_exp + right_exp
    return np.asarray(np.asarray(product, dtype=object) * (Fraction(2) ** exponent), dtype=object)


def fraction_exact(call: OpCall) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Return the exact real and imaginary parts as fractions (imag None for real operands).

    Examples
    --------
    >>> from mimo_conv.testing.operations import parse_call
    >>> call = parse_call("conv", (np.array([[0.5j, 1.0]]), np.array([[[2.0]]])), {})
    >>> [v.tolist() for v in fraction_exact(call)]
    [[[Fraction(0, 1), Fraction(2, 1)]], [[Fraction(1, 1), Fraction(0, 1)]]]
    """
    l_re, l_im = parts(np.asarray(call.left))
    r_re, r_im = (None, None) if call.right is None else parts(np.asarray(call.right))
    real = _rational_run(call, l_re, r_re)
    imag = None
    if l_im is not None or r_im is not None:
        imag = np.zeros_like(real)
        if l_im is not None and r_im is not None:
            real = real - _rational_run(call, l_im, r_im)
        if r_im is not None:
            imag = imag + _rational_run(call, l_re, r_im)
        if l_im is not None:
            imag = imag + _rational_run(call, l_im, r_re)
    if call.bias is not None and call.right is not None:
        b_re, b_im = parts(np.asarray(call.bias))
        shape = (-1,) + (1,) * (call.right.ndim - 2)
        ints, exponent = scaled_integers(b_re)
        real = real + (ints * (Fraction(2) ** exponent)).reshape(shape)
        if b_im is not None:
            ints, exponent = scaled_integers(b_im)
            imag = (np.zeros_like(real) if imag is None else imag) + (
                ints * (Fraction(2) ** exponent)
            ).reshape(shape)
    return np.asarray(real, dtype=object), None if imag is None else np.asarray(imag, dtype=object)


def _split_fraction(value: Fraction) -> tuple[float, float, float]:
    hi = float(value)
    rest = value - Fraction(hi)
    lo = float(rest)
    error = abs(rest - Fraction(lo))
    return hi, lo, float(error) * (1 + 2 * _U64) + _ETA64 if error else 0.0


def from_fractions(values: NDArray[Any]) -> Exact:
    """Return an :class:`Exact` (double-double) of an object array of fractions.

    Examples
    --------
    >>> exact = from_fractions(np.array([Fraction(1, 3)], dtype=object))
    >>> float(exact.error[0]) < 1e-32
    True
    """
    hi, lo, error = (
        (
            np.asarray(part, dtype=np.float64).reshape(values.shape)
            for part in zip(*(_split_fraction(v) for v in values.ravel().tolist()), strict=True)
        )
        if values.size
        else (np.zeros(values.shape),) * 3
    )
    return Exact(np.asarray(hi), np.asarray(lo), np.asarray(error), "fractions")
