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

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv.testing.operations import OpCall
from mimo_conv.testing.stacked_calls import run_pairs

_U64 = 2.0**-53
_ETA64 = 2.0**-1074

F64 = NDArray[np.float64]


@functools.lru_cache(maxsize=32)
def _digits(dtype: np.dtype[Any]) -> int:
    """``np.finfo(dtype).precision`` (decimal digits) of a float dtype, read once per dtype."""
    return int(np.finfo(dtype).precision)


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
        rounding = rounding + _U64 * np.abs(low2)
    else:  # an array, broadcast against first
        s, e = two_sum(first.hi, np.asarray(second, dtype=np.float64))
        low2 = first.lo + e
        rounding = _U64 * np.abs(low2)
        error = first.error
    hi, lo = two_sum(s, low2)
    # No underflow term: an addition whose result is subnormal is exact.
    return Exact(hi, lo, error + rounding * (1 + 4 * _U64), first.method)


def _grid_bits(array: F64) -> tuple[int, int]:
    """``(E, L)``: ``max|a| < 2**E`` and every element a multiple of ``2**L``.

    ``L`` is read from the lowest set bit of each element's significand (its value
    ``2**L_i`` is a float64 number, at least ``2**-1074``); zeros are left out.
    """
    mantissa, exponent = np.frexp(array)
    ints = (mantissa * 2.0**53).astype(np.int64)
    lowest_bits = np.ldexp((ints & -ints).astype(np.float64), exponent - 53)  # 0 for zeros
    lowest = float(np.min(lowest_bits, where=lowest_bits > 0, initial=np.inf))
    if lowest == np.inf:
        return 0, 0
    return top_bits(array), math.frexp(lowest)[1] - 1


def top_bits(array: F64) -> int:
    """``E`` with ``max|a| < 2**E`` (the exponent of ``frexp``), 0 for an empty or zero array.

    Examples
    --------
    >>> top_bits(np.array([0.75, -2.0])), top_bits(np.zeros(2))
    (2, 0)
    """
    return math.frexp(_largest_value(array))[1]


def _largest_value(array: NDArray[Any]) -> float:
    """``max |a|`` of a real float array, exactly (NaN if it holds one), 0 when empty."""
    if not array.size:
        return 0.0
    return float(max(-array.min(), array.max()))


def extremes(call: OpCall, which: int) -> tuple[Any, Any]:
    """``(min, max)`` of real float operand ``which`` (0 left, 1 right, 2 bias), read once.

    NaN when the operand holds one, ``(0, 0)`` when it is empty. The finiteness check,
    the largest magnitudes of the bound and the slices' top exponents all read them.
    """
    key = f"extremes{which}"
    if key not in call.memo:
        array = (call.left, call.right, call.bias)[which]
        assert array is not None
        call.memo[key] = (array.min(), array.max()) if array.size else (0.0, 0.0)
    found: tuple[Any, Any] = call.memo[key]
    return found


def largest_of(call: OpCall, which: int) -> float:
    """``max |operand|`` of a real float operand as a float (exact up to float64), read once."""
    low, high = extremes(call, which)
    return float(max(-low, high))


def grid_of(call: OpCall, which: int) -> tuple[int, int]:
    """:func:`_grid_bits` of operand ``which`` (0 left, 1 right) in float64, computed once."""
    key = f"grid{which}"
    if key not in call.memo:
        array = call.left if which == 0 else call.right
        assert array is not None
        call.memo[key] = _grid_bits(np.asarray(array, dtype=np.float64))
    found: tuple[int, int] = call.memo[key]
    return found


def _scaled(array: F64, shift: int) -> F64:
    """``array * 2**shift`` (a new array), as ``np.ldexp`` rounds it: a product by a power of two.

    A multiplication by the float64 number ``2**shift`` is correctly rounded, like
    ``ldexp``; it is used where that number is a normal float64.
    """
    if -1022 <= shift <= 1023:
        return array * math.ldexp(1.0, shift)
    return np.ldexp(array, shift)


def split(array: F64, beta: int, most: int, top: int | None = None) -> tuple[list[F64], int, F64]:
    """Cut ``array`` into at most ``most`` slices of ``beta`` bits on a common grid.

    Returns the slices scaled by ``2**-E`` (so each is an integer below ``2**beta`` times
    ``2**(-beta (k + 1))``), the exponent ``E`` (``max|a| < 2**E``, given as ``top`` or
    read from the array), and the unscaled remainder (exact: the dropped low bits, zero
    when the slices hold every bit). Slicing stops when nothing is left; a level that holds
    no bit of any element gives no slice.

    Examples
    --------
    >>> slices, top, rest = split(np.array([1.0 + 2.0**-30, -0.75]), 20, 4)
    >>> len(slices), top, rest.tolist()
    (2, 1, [0.0, 0.0])
    """
    if top is None:
        top = top_bits(array)
    slices = []
    rest = np.array(array, dtype=np.float64, copy=True)
    for k in range(most):
        shift = beta * (k + 1) - top
        # Exact unless it underflows, and then below 1: truncated to 0 either way.
        whole = _scaled(rest, shift)
        np.trunc(whole, out=whole)
        if not whole.any():
            if not rest.any():
                break
            continue
        rest -= _scaled(whole, -shift)  # the leading bits of rest: exact
        slices.append(whole * math.ldexp(1.0, -beta * (k + 1)))  # exact: no underflow
        if not rest.any():
            break
    return slices, top, rest


def split_pair(
    left: F64, right: F64, beta: int, most: int, tops: tuple[int, int]
) -> tuple[list[F64], F64, list[F64], F64, bool] | None:
    """:func:`split` of two operands at once: the same slices and remainders, fewer NumPy calls.

    Both operands are sliced level by level in one buffer, each element scaled by the power
    of two of its own operand (``2**(beta (k + 1) - E)``, a product as exact as ``ldexp``),
    until both remainders are zero or ``most`` levels are cut; a level that holds no bit of
    an operand gives that operand no slice, as in :func:`split`. Returns ``(left_slices,
    left_rest, right_slices, right_rest)``, or None when a scale factor of some level would
    leave float64's normal range (tiny or huge operands: :func:`split` handles them).
    A fifth item tells whether a remainder is nonzero.

    Examples
    --------
    >>> left, right = np.array([1.0 + 2.0**-30, -0.75]), np.array([3.0])
    >>> left_slices, left_rest, right_slices, right_rest, held = split_pair(
    ...     left, right, 20, 4, (1, 2)
    ... )
    >>> len(left_slices), len(right_slices), left_rest.tolist(), right_rest.tolist(), held
    (2, 1, [0.0, 0.0], [0.0], False)
    """
    if min(beta - top for top in tops) < -1022 or max(beta * most - top for top in tops) > 1022:
        return None
    size = left.size
    rest = np.concatenate((left.reshape(-1), right.reshape(-1)))  # a new float64 array
    counts = (size, right.size)
    up = np.repeat(np.array([math.ldexp(1.0, beta - top) for top in tops]), counts)
    down = np.repeat(np.array([math.ldexp(1.0, top - beta) for top in tops]), counts)
    levels = np.empty((most, rest.size))
    cut = 0
    held_bits = True
    while cut < most:
        whole = levels[cut]
        np.multiply(rest, up, out=whole)  # below 1 where it underflows: truncated to 0
        np.trunc(whole, out=whole)
        rest -= whole * down  # the leading bits of rest: exact
        whole *= math.ldexp(1.0, -beta * (cut + 1))  # exact: no underflow
        cut += 1
        held_bits = bool(rest.any())
        if not held_bits:
            break
        up *= math.ldexp(1.0, beta)
        down *= math.ldexp(1.0, -beta)
    held = levels[:cut]
    left_held = np.any(held[:, :size], axis=1).tolist()
    right_held = np.any(held[:, size:], axis=1).tolist()
    return (
        [held[k, :size].reshape(left.shape) for k in range(cut) if left_held[k]],
        rest[:size].reshape(left.shape),
        [held[k, size:].reshape(right.shape) for k in range(cut) if right_held[k]],
        rest[size:].reshape(right.shape),
        held_bits,
    )


def beta_for(n: int) -> int:
    """Bits per slice so that a sum of ``n`` slice products is exact in float64.

    Examples
    --------
    >>> beta_for(144), beta_for(1)
    (22, 26)
    """
    return (53 - math.ceil(math.log2(max(n, 1)))) // 2


def check_finite(call: OpCall) -> None:
    """Raise ``ValueError`` unless every operand of a float call is finite (checked once).

    Real float operands by their extremes (:func:`extremes`, which a NaN or an infinity
    reaches), complex ones element by element.

    Examples
    --------
    >>> from mimo_conv.testing.operations import parse_call
    >>> check_finite(parse_call("unfold", (np.array([[[np.nan]]]), 1), {}))
    Traceback (most recent call last):
    ...
    ValueError: the exact reference needs finite inputs, got an array with NaN or Inf
    """
    for which, array in enumerate((call.left, call.right, call.bias)):
        if array is None:
            continue
        kind = array.dtype.kind
        if kind == "f":
            low, high = extremes(call, which)
            if array.dtype.itemsize <= 8:  # float16, float32, float64: read as a float exactly
                finite = math.isfinite(low) and math.isfinite(high)
            else:
                finite = bool(np.isfinite(low) and np.isfinite(high))
        elif kind == "c":
            finite = bool(np.all(np.isfinite(array)))
        else:
            continue
        if not finite:
            msg = "the exact reference needs finite inputs, got an array with NaN or Inf"
            raise ValueError(msg)


@dataclass(frozen=True, eq=False)
class OzakiSplit:
    """The operands of a real float call cut into slices (module docstring), not yet run.

    Attributes
    ----------
    call : OpCall
    n : int
        The largest number of terms of an output.
    beta : int
        Bits per slice.
    left, right : ndarray of float64
        The operands (``right`` None for a linear operation).
    left_slices, right_slices : list of ndarray
        The slices, scaled by ``2**-left_top`` and ``2**-right_top``; ``[None]`` for the
        missing right operand of a linear operation.
    left_top, right_top : int
    left_rest, right_rest : ndarray
        The bits the slices do not hold (unscaled), zero when they hold every bit.
    rest_held : bool or None
        Whether a remainder is nonzero, when the slicing found it (else read from them).
    """

    call: OpCall
    n: int
    beta: int
    left: F64
    right: F64 | None
    left_slices: list[F64]
    right_slices: list[F64 | None]
    left_top: int
    right_top: int
    left_rest: F64
    right_rest: F64 | None
    rest_held: bool | None = None

    @property
    def scale(self) -> int:
        """The exponent the slices' parts are scaled back by."""
        return self.left_top + self.right_top

    def pairs(self, negligible: float = 0.0) -> tuple[list[tuple[F64, F64 | None]], float]:
        """Return the slice pairs to run and the bound on the parts of those left out.

        A pair ``k, m`` whose part is at most ``n 2**(scale - beta (k + m))`` is left out
        when that is below ``negligible`` (never the first pair).
        """
        kept = self._kept(negligible)
        pairs = [(self.left_slices[k], self.right_slices[m]) for k, m in kept]
        dropped = 0.0
        if negligible <= 0:  # every pair is kept
            return pairs, dropped
        for k in range(len(self.left_slices)):
            for m in range(len(self.right_slices)):
                if (k, m) not in kept:
                    dropped += math.ldexp(self.n, self.scale - self.beta * (k + m))
        return pairs, dropped

    def _kept(self, negligible: float) -> list[tuple[int, int]]:
        if negligible <= 0:  # n 2**(...) >= 0: every pair
            return [
                (k, m) for k in range(len(self.left_slices)) for m in range(len(self.right_slices))
            ]
        return [
            (k, m)
            for k in range(len(self.left_slices))
            for m in range(len(self.right_slices))
            if k + m == 0 or math.ldexp(self.n, self.scale - self.beta * (k + m)) >= negligible
        ]

    def diagonals(self, parts: list[F64], negligible: float = 0.0) -> list[F64]:
        """Add the parts of each diagonal ``k + m = d``, largest diagonal first.

        Exact: ``beta`` leaves room for ``most`` parts in a sum.
        """
        sums: dict[int, F64] = {}
        for (k, m), part in zip(self._kept(negligible), parts, strict=True):
            d = k + m
            sums[d] = part if d not in sums else sums[d] + part
        return [sums[d] for d in sorted(sums)]

    @functools.cached_property
    def truncated(self) -> bool:
        """Whether the slices leave bits out (then :meth:`truncation_pairs` bound them)."""
        if self.rest_held is not None:  # known from slicing
            return self.rest_held
        return bool(np.any(self.left_rest)) or (
            self.right_rest is not None and bool(np.any(self.right_rest))
        )

    def truncation_pairs(self) -> list[tuple[F64, F64 | None]]:
        """Return the magnitude pairs whose results bound ``|a b - a~ b~|``.

        ``|a - a~| |b|`` and ``|a~| |b - b~|`` (one pair ``|a - a~|`` for a linear operation).
        """
        if self.right is None or self.right_rest is None:
            return [(np.abs(self.left_rest), None)]
        found: list[tuple[F64, F64 | None]] = [(np.abs(self.left_rest), np.abs(self.right))]
        if np.any(self.right_rest):
            found.append((np.abs(self.left - self.left_rest), np.abs(self.right_rest)))
        return found

    def finish(
        self,
        parts: list[F64],
        shape: tuple[int, ...],
        dropped: float = 0.0,
        truncation_parts: list[F64] | None = None,
        negligible: float = 0.0,
    ) -> Exact:
        """Add the pairs' ``parts`` (and the bias) into the exact result within ``error``.

        ``parts`` are the results of :meth:`pairs` with the same ``negligible``;
        ``truncation_parts`` those of :meth:`truncation_pairs` (needed when
        :attr:`truncated`).
        """
        total = (
            sum_levels(self.diagonals(parts, negligible))
            if parts
            else Exact(np.zeros(shape), np.zeros(shape), np.zeros(shape), "ozaki")
        )
        scale = self.scale
        # Scaling back by a power of two is exact unless it underflows (half a subnormal each).
        with np.errstate(over="ignore"):  # an overflow is refused just below
            hi, lo = np.ldexp(total.hi, scale), np.ldexp(total.lo, scale)
        # |lo| <= |hi| (TwoSum's low part), so a finite hi has a finite lo.
        if not np.isfinite(hi).all():
            msg = "the exact result leaves the float64 range; use dtype=object inputs"
            raise ValueError(msg)
        error = np.ldexp(total.error, scale) * (1 + 2 * _U64)
        if scale < 0:
            error = error + 2 * _ETA64  # hi and lo may each lose half a subnormal
        if dropped:
            error = error + dropped * (1 + 4 * _U64)
        if self.truncated:
            if truncation_parts is None:
                truncation_parts = [
                    np.asarray(self.call.run(a, b, None), dtype=np.float64)
                    for a, b in self.truncation_pairs()
                ]
            error = error + truncation_from_parts(truncation_parts, self.n)
        return with_bias(Exact(hi, lo, error, "ozaki"), self.call)


def ozaki_split(call: OpCall, n: int, *, most: int = 6) -> OzakiSplit:
    """Cut the operands of a real float call into at most ``most`` slices each.

    Examples
    --------
    >>> from mimo_conv.testing.operations import parse_call
    >>> call = parse_call("conv", (np.array([[0.1, 0.2]]), np.array([[[3.0]]])), {})
    >>> chopped = ozaki_split(call, 1)
    >>> chopped.beta, len(chopped.left_slices), len(chopped.right_slices), chopped.truncated
    (25, 3, 1, False)
    """
    left = np.asarray(call.left, dtype=np.float64)
    right = None if call.right is None else np.asarray(call.right, dtype=np.float64)
    # Headroom for the ``most`` parts of a diagonal k + m = d, added in float64 exactly.
    beta = beta_for(n * most)
    left_top = _top_of(call, 0)
    rest_held = None
    right_slices: list[F64 | None]
    if right is None:
        left_slices, left_top, left_rest = split(left, beta, most, left_top)
        right_slices, right_top, right_rest = [None], 0, None
    else:
        right_top = _top_of(call, 1)
        together = split_pair(left, right, beta, most, (left_top, right_top))
        if together is None:
            left_slices, left_top, left_rest = split(left, beta, most, left_top)
            found, right_top, right_rest = split(right, beta, most, right_top)
        else:
            left_slices, left_rest, found, right_rest, rest_held = together
        right_slices = list(found)
    return OzakiSplit(
        call, n, beta, left, right, left_slices, right_slices, left_top, right_top,
        left_rest, right_rest, rest_held,
    )  # fmt: skip


def _top_of(call: OpCall, which: int) -> int:
    """:func:`top_bits` of a real operand (0 left, 1 right), from its extremes when a float."""
    array = call.left if which == 0 else call.right
    assert array is not None
    if array.dtype.kind == "f" and _digits(array.dtype) <= 15:
        return math.frexp(largest_of(call, which))[1]
    return top_bits(np.asarray(array, dtype=np.float64))


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
    check_finite(call)
    chopped = ozaki_split(call, n, most=most)
    pairs, dropped = chopped.pairs(negligible)
    parts = run_pairs(call, pairs)
    shape = parts[0].shape if parts else _output_shape(call)
    return chopped.finish(parts, shape, dropped, negligible=negligible)


def _output_shape(call: OpCall) -> tuple[int, ...]:
    """Return the result's shape, from one call on zeros."""
    right = None if call.right is None else np.zeros(call.right.shape)
    return tuple(np.shape(call.run(np.zeros(call.left.shape), right, None)))


def with_bias(exact: Exact, call: OpCall) -> Exact:
    """``exact`` plus the call's bias (broadcast over each output channel), in double-double."""
    if call.bias is None or call.right is None:
        return exact
    bias = np.asarray(call.bias, dtype=np.float64).reshape((-1,) + (1,) * (call.right.ndim - 2))
    return add(exact, bias)  # broadcast in the arithmetic


def sum_levels(levels: list[F64]) -> Exact:
    """Add exact arrays of decreasing size in double-double, the roundings bounded.

    The first two are added with TwoSum, the rest into the low part, whose roundings are
    bounded by ``gamma`` of their count times the sum of their magnitudes.

    Examples
    --------
    >>> total = sum_levels([np.array([1.0]), np.array([2.0**-60]), np.array([2.0**-120])])
    >>> float(total.hi[0]), float(total.lo[0]), bool(total.error[0] < 2.0**-100)
    (1.0, 8.673617379884035e-19, True)
    """
    if len(levels) == 1:
        zero = np.zeros_like(levels[0])
        return Exact(levels[0], zero, zero.copy(), "ozaki")
    s, tail = two_sum(levels[0], levels[1])
    size = np.abs(tail)
    for level in levels[2:]:
        tail += level  # a new array from two_sum: in place
        size += np.abs(level)
    hi, lo = two_sum(s, tail)
    nu = len(levels) * _U64
    error = size * (nu / (1 - nu) * (1 + 4 * _U64)) if len(levels) > 2 else np.zeros_like(hi)
    return Exact(hi, lo, error, "ozaki")


def truncation_from_parts(parts: list[F64], n: int) -> F64:
    """Round up the sum of the truncation magnitudes (each of ``n`` terms, float64).

    ``parts`` are the results of :meth:`OzakiSplit.truncation_pairs`, whose sum bounds
    ``sum |a b - a~ b~| <= sum |a - a~| |b| + |a~| |b - b~|``.

    Examples
    --------
    >>> float(truncation_from_parts([np.array([1.0]), np.array([2.0**-10])], 4)[0]) > 1 + 2.0**-10
    True
    """
    dropped = parts[0] if len(parts) == 1 else parts[0] + parts[1]
    nu = (n + 8) * _U64
    result: F64 = dropped * (1 + 2 * nu / (1 - nu)) + (2 * n + 4) * _ETA64
    return result


# --- one float64 call: exact products, a bounded sum ------------------------------------


def _narrow_bits(call: OpCall, which: int) -> tuple[int, int] | None:
    """Return ``(bits, low)``: at most ``bits`` significant bits, multiples of ``2**low``.

    None when the values cannot be read exactly in float64.

    float32 and float16 arrays by their dtype (24 bits, multiples of ``2**-149``; 11 bits,
    ``2**-24``), float64 and integer arrays by their values (so short values are found).
    """
    array = call.left if which == 0 else call.right
    assert array is not None
    kind = array.dtype.kind
    if kind == "f" and _digits(array.dtype) < 15:  # float32, float16: by dtype
        info = np.finfo(array.dtype)
        return int(info.nmant) + 1, int(info.minexp) - int(info.nmant)
    if kind in "iu" and not ints_in_float64(array):
        return None
    top, low = grid_of(call, which)
    return top - low, low


def _may_be_short(call: OpCall, which: int, bits: int) -> bool:
    """Return False when a float64 operand surely spans more than ``bits`` bits (no grid).

    Every element a multiple of ``2**(E - bits)`` (``max|a| < 2**E``) makes
    ``a 2**(bits - E)`` integers, computed exactly; so a non-integer there (an element with
    bits below ``2**(E - bits)``: rounding an underflow can only hide one) shows a span of
    more than ``bits`` bits. Operands read by dtype are left to :func:`_narrow_bits`.

    Examples
    --------
    >>> from mimo_conv.testing.operations import parse_call
    >>> call = parse_call("conv", (np.array([[3.0, 0.25]]), np.array([[[0.1]]])), {})
    >>> _may_be_short(call, 0, 4), _may_be_short(call, 0, 3), _may_be_short(call, 1, 53)
    (True, False, True)
    """
    array = call.left if which == 0 else call.right
    assert array is not None
    if array.dtype.kind != "f" or _digits(array.dtype) != 15:
        return True
    scaled = _scaled(np.asarray(array, dtype=np.float64), bits - _top_of(call, which))
    return not np.fmod(scaled, 1.0).any()  # fmod is exact: 0 exactly for integers


def ints_in_float64(array: NDArray[Any]) -> bool:
    """Whether every element of an integer array is a float64 number (``|v| <= 2**53``).

    Compared as integers: a float64 conversion would round ``2**53 + 1`` to ``2**53``.

    Examples
    --------
    >>> ints_in_float64(np.array([2**53, -(2**53)])), ints_in_float64(np.array([2**53 + 1]))
    (True, False)
    """
    if not array.size:
        return True
    return bool(int(array.min()) >= -(2**53) and int(array.max()) <= 2**53)


def one_call_plan(call: OpCall) -> int | None:
    """Whether one float64 call of a real call has exact products: the grid exponent if so.

    The products ``a_i b_i`` are exact in float64 when the significant bits of the two
    operands add up to at most 53 and every product is a multiple of ``2**-1074`` (float32
    and float16 operands always; float64 ones when their values are short, as integers
    are). Returns ``L``: every term is a multiple of ``2**L``, so a sum whose magnitudes
    add up to at most ``2**(53 + L)`` is exact in any order. None when the products may
    round.

    Examples
    --------
    >>> from mimo_conv.testing.operations import parse_call
    >>> one_call_plan(parse_call("conv", (np.array([[3.0, -5.0]]), np.array([[[2.0]]])), {}))
    1
    >>> one_call_plan(parse_call("conv", (np.array([[0.1, 0.2]]), np.array([[[0.3]]])), {}))
    """
    if call.right is not None and not (
        any(_may_be_short(call, which, 26) for which in (0, 1))
        and all(_may_be_short(call, which, 53) for which in (0, 1))
    ):
        return None  # spans of at most 53 bits that add up to at most 53: one is at most 26
    left = _narrow_bits(call, 0)
    if left is None:
        return None
    if call.right is None:
        return left[1]
    right = _narrow_bits(call, 1)
    if right is None:
        return None
    if left[0] + right[0] > 53 or left[1] + right[1] < -1074:
        return None
    return left[1] + right[1]


def one_call_exact(
    call: OpCall, result: NDArray[Any], products: NDArray[Any], n: int, low: int
) -> Exact:
    """Return the exact result from one float64 call with exact products, within ``error``.

    ``result`` is the call on the operands (no bias), ``products`` an upper bound on
    ``sum |a_i b_i|`` per output and ``low`` the grid exponent of :func:`one_call_plan`.
    A sum of ``n`` exact terms in any order is off by at most ``gamma_{n-1}`` times the sum
    of their magnitudes (Higham, section 4.2), and not at all where that sum is at most
    ``2**(53 + low)`` (every partial sum is then a float64 number).

    Examples
    --------
    >>> from mimo_conv.testing.operations import parse_call
    >>> call = parse_call("conv", (np.array([[3.0, -5.0, 1.0]]), np.ones((1, 1, 2))), {})
    >>> result = call.run(call.left, call.right, None)
    >>> exact = one_call_exact(call, result, np.array([[8.0, 6.0]]), 2, 0)
    >>> exact.hi.tolist(), exact.error.tolist()
    ([[-2.0, -4.0]], [[0.0, 0.0]])
    """
    hi = np.asarray(result, dtype=np.float64)
    sums = max(n - 1, 0)
    nu = sums * _U64
    g = nu / (1 - nu) * (1 + 4 * _U64)
    bound = np.asarray(products, dtype=np.float64)
    error = np.asarray(
        np.where(bound <= math.ldexp(1.0, min(53 + low, 1023)), 0.0, g * bound), dtype=np.float64
    )
    if call.bias is None or call.right is None:
        return Exact(hi, np.zeros_like(hi), error, "float64")
    # hi + c with TwoSum: exactly the double-double hi' + lo' (the low part was 0, so this is
    # what with_bias computes, without its roundings of low parts: there are none).
    bias = np.asarray(call.bias, dtype=np.float64).reshape((-1,) + (1,) * (call.right.ndim - 2))
    total, rest = two_sum(hi, bias)
    return Exact(total, rest, error, "float64")


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
