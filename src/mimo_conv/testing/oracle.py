"""The oracle: the exact result of a call, its tolerance, and the comparison of a result with it.

:func:`oracle_for` reads a call once (:func:`~mimo_conv.testing.operations.parse_call`),
computes the magnitudes the bound needs and the exact result
(:mod:`mimo_conv.testing.reference`), and returns an :class:`Oracle` whose
:meth:`~Oracle.check` compares any number of results, vectorised:

* exact arithmetic (integers, Python ints and fractions): the result must be equal;
* floats: ``|actual - exact| <= bound`` elementwise, where ``exact`` is known as a
  double-double ``hi + lo`` within ``error``. The difference is computed with one TwoSum and
  two roundings, so the comparison rejects a result only when even the most favourable
  reading of those roundings (a relative ``4 u`` of float64) and of the reference's
  ``error`` exceeds the bound: a correct kernel is never rejected.

Examples
--------
>>> import mimo_conv as mc
>>> x = np.array([[0.1, 0.2, 0.3]], dtype=np.float32)
>>> w = np.array([[[1.0, 1.0]]], dtype=np.float32)
>>> oracle = oracle_for("conv", (x, w), {})
>>> oracle.check(mc.conv(x, w))
>>> oracle.n, oracle.exact.method  # float32 products are exact in float64: one call
(2, 'float64')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.dtypes import plan_dtypes
from mimo_conv.testing.bounds import (
    BoundTerms,
    Magnitudes,
    call_precision,
    magnitudes,
    terms_for,
)
from mimo_conv.testing.operations import OpCall, parse_call
from mimo_conv.testing.precision import Precision, format_name
from mimo_conv.testing.reference import (
    Exact,
    _digits,
    add,
    check_finite,
    fraction_exact,
    from_fractions,
    ints_in_float64,
    one_call_exact,
    one_call_plan,
    ozaki_exact,
    ozaki_split,
)
from mimo_conv.testing.report import describe_failure
from mimo_conv.testing.stacked_calls import grid_stackable, run_grid, run_pairs

_U64 = 2.0**-53
#: The Ozaki reference's error must stay below this fraction of the bound, else fractions.
_NEGLIGIBLE = 1 / 64


@dataclass(frozen=True, eq=False)
class Oracle:
    """Everything needed to judge results of one call.

    Attributes
    ----------
    call : OpCall
    magnitudes : Magnitudes
    terms : BoundTerms
        The bound under the precision model, term by term.
    exact : Exact or None
        The real part of the exact result (None for exact arithmetic).
    exact_imag : Exact or None
        The imaginary part, for complex results.
    expected : ndarray or None
        The exact result of exact arithmetic (integers, fractions), else None.
    """

    call: OpCall
    magnitudes: Magnitudes
    terms: BoundTerms
    exact: Exact | None
    exact_imag: Exact | None
    expected: NDArray[Any] | None

    @property
    def n(self) -> int:
        """The largest number of terms of an output."""
        return self.magnitudes.n

    @property
    def bound(self) -> NDArray[Any]:
        """The elementwise bound (the reference's own error not included)."""
        return self.terms.total

    @property
    def out_shape(self) -> tuple[int, ...]:
        """The shape of the result."""
        return tuple(self.magnitudes.products.shape)

    def errors(self, actual: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Observed ``|actual - exact|`` (float64, inf if not finite) and its slack.

        ``slack`` is what the comparison allows on top of the bound for the rounding of the
        difference and the reference's own error.
        """
        result = _as_float64(actual)
        assert self.exact is not None
        if np.iscomplexobj(result) or self.exact_imag is not None:
            real, slack_re = _difference(np.real(result), self.exact)
            imag_exact = self.exact_imag if self.exact_imag is not None else _zero(self.exact)
            imag, slack_im = _difference(np.imag(result), imag_exact)
            observed = np.hypot(real, imag) * (1 - 2 * _U64)
            return observed, slack_re + slack_im
        given = np.asarray(actual)
        if given.dtype == np.longdouble and np.finfo(np.longdouble).precision > 15:
            low = np.asarray(given - result.astype(np.longdouble), dtype=np.float64)
            return _difference(result, self.exact, low)
        return _difference(result, self.exact)

    def error_ratios(self, actual: Any, *, bound_factor: float = 1.0) -> NDArray[np.float64]:
        """Observed error divided by the bound, elementwise (inf where the result is not finite).

        Examples
        --------
        >>> oracle = oracle_for("conv", (np.array([[0.1, 0.2]]), np.array([[[1.0, 1.0]]])), {})
        >>> float(oracle.error_ratios(np.array([[0.1 + 0.2]]))[0, 0])
        0.41...
        """
        if self.expected is not None:
            equal = _equal_exact(actual, self.expected)
            return np.where(equal, 0.0, np.inf)
        observed, _ = self.errors(actual)
        limit = np.asarray(self.bound, dtype=np.float64) * bound_factor
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratios = np.where(observed == 0, 0.0, observed / limit)
        return np.asarray(np.nan_to_num(ratios, nan=np.inf, posinf=np.inf), dtype=np.float64)

    def exceeding(self, actual: Any, *, bound_factor: float = 1.0) -> NDArray[np.bool_]:
        """Where ``actual`` is farther from the exact result than the bound allows."""
        if self.expected is not None:
            return ~_equal_exact(actual, self.expected)
        limit = np.asarray(self.bound, dtype=np.float64) * bound_factor
        if self.exact_imag is None and _within_at_a_glance(actual, self.exact, limit):
            return np.zeros(self.out_shape, dtype=bool)
        observed, slack = self.errors(actual)
        allowed = limit * (1 + 4 * _U64) + slack
        exceeding = ~(observed <= allowed)
        overflow = self.terms.may_overflow
        if overflow is not None and overflow.any():
            finite = np.isfinite(_as_float64(actual))
            exceeding = exceeding & ~(overflow & ~finite)
        return np.asarray(exceeding)

    def check(
        self,
        actual: Any,
        *,
        check_dtype: bool = False,
        bound_factor: float = 1.0,
        expected_dtype: Any = None,
    ) -> None:
        """Raise ``AssertionError`` with a diagnosis unless ``actual`` is within the bound.

        Examples
        --------
        >>> oracle = oracle_for("conv", ([[1, 2, 3]], [[[1, 1]]]), {})
        >>> oracle.check(np.array([[3, 5]]))
        >>> oracle.check(np.array([[3, 6]]))
        Traceback (most recent call last):
        ...
        AssertionError: conv result differs from the exact result (exact arithmetic: the bound is 0)
          1 of 2 elements exceed it; shape (1, 2), dtype int64, precision exact, n = 2 ...
          worst at index (0, 1): actual 6, exact 5
        """
        __tracebackhide__ = True
        result = np.asarray(actual)
        op = self.call.op
        if result.shape != self.out_shape:
            msg = f"{op} result has the wrong shape: expected {self.out_shape}, got {result.shape}"
            raise AssertionError(msg)
        if check_dtype and expected_dtype is not None and result.dtype != expected_dtype:
            msg = f"{op} result has the wrong dtype: expected {expected_dtype}, got {result.dtype}"
            raise AssertionError(msg)
        mask = self.exceeding(result, bound_factor=bound_factor)
        if not mask.any():
            return
        raise AssertionError(describe_failure(self, result, mask, bound_factor))


def _within_at_a_glance(actual: Any, exact: Exact | None, limit: NDArray[np.float64]) -> bool:
    """Whether every element is surely within the bound, from ``|actual - hi|`` alone.

    ``|actual - (hi + lo)| <= |actual - hi| + |lo|`` and the rounded ``|actual - hi|`` is
    at most ``1 + 2u`` times too small; with ``(1 + 4u)`` instead of ``(1 + 2u)`` the two
    roundings of the test itself are covered too, so ``fl(|actual - hi|) (1 + 4u) + |lo|
    <= limit`` shows the element within ``limit (1 + 2u)``, which the precise comparison
    would accept.
    Non-finite results and real results of complex references are left to that comparison.
    """
    result = np.asarray(actual)
    if exact is None or result.dtype.kind not in "fiu" or result.dtype == np.longdouble:
        return False
    values = _as_float64(result)
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.subtract(values, exact.hi)
        np.abs(gap, out=gap)
        gap *= 1 + 4 * _U64
        gap += np.abs(exact.lo)
        return bool(np.all(gap <= limit))


def _zero(like: Exact) -> Exact:
    zero = np.zeros_like(like.hi)
    return Exact(zero, zero, zero, like.method)


def _as_float64(actual: Any) -> NDArray[Any]:
    """Return the result's values in float64 (complex128), ml_dtypes arrays included, exactly."""
    result = np.asarray(actual)
    if result.dtype.kind == "c":
        return np.asarray(result, dtype=np.complex128)
    if result.dtype.kind == "O":
        values = result.ravel().tolist()
        kind = np.complex128 if any(isinstance(v, complex) for v in values) else np.float64
        return np.asarray(values, dtype=kind).reshape(result.shape)
    if result.dtype == np.float64:
        return result
    return np.asarray(result.astype(np.float64), dtype=np.float64)


def _difference(
    result: NDArray[Any], exact: Exact, low: NDArray[Any] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return ``|result + low - (hi + lo)|`` rounded, and the slack for that and ``error``.

    ``low`` is what a longdouble result holds beyond its float64 rounding ``result``.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        d = result - exact.hi
        bb = d - result
        e = (result - (d - bb)) + (-exact.hi - bb)
        if low is not None:
            e = e + low
        t = e - exact.lo
        v = np.abs(d + t)
    v = np.where(np.isfinite(result), v, np.inf)
    slack = exact.error * (1 + 4 * _U64) + 4 * _U64 * (np.abs(t) + np.abs(e))
    return np.asarray(v, dtype=np.float64), np.asarray(np.nan_to_num(slack), dtype=np.float64)


def _equal_exact(actual: Any, expected: NDArray[Any]) -> NDArray[np.bool_]:
    """Elementwise exact equality (Python's int/float/Fraction comparison)."""
    result = np.asarray(actual)
    if result.dtype.kind in "iub" and expected.dtype.kind in "iub":
        return np.asarray(result == expected)
    left = np.asarray(result, dtype=object)
    right = np.asarray(expected, dtype=object)
    return np.asarray(np.frompyfunc(lambda a, b: a == b, 2, 1)(left, right), dtype=bool)


def _real_floats(call: OpCall) -> bool:
    """Whether the operands are real and read exactly in float64 (floats up to float64, ints)."""
    kinds = [a.dtype.kind for a in call.operands()]
    return "f" in kinds and all(_in_float64(a) for a in call.operands())


def _in_float64(array: NDArray[Any]) -> bool:
    """Whether float64 holds every value: floats up to float64, integers up to ``2**53``."""
    kind = array.dtype.kind
    if kind == "f":
        return _digits(array.dtype) <= 15
    return kind == "b" or (kind in "iu" and ints_in_float64(array))


def _negligible(exact: Exact, tolerance: NDArray[Any]) -> bool:
    """Whether the reference's own error is zero or below ``_NEGLIGIBLE`` of the bound."""
    if not exact.error.any():
        return True
    return bool(np.all(exact.error <= np.asarray(tolerance, dtype=np.float64) * _NEGLIGIBLE))


def _exact_real(
    call: OpCall, mag: Magnitudes, tolerance: NDArray[Any], *, one_call: bool = True
) -> tuple[Exact, Exact | None]:
    """Return the exact result: one float64 call or Ozaki when tight enough, else fractions.

    ``one_call=False`` skips the single float64 call (already found too coarse).
    """
    if _real_floats(call) or all(a.dtype.kind in "iub" and _in_float64(a) for a in call.operands()):
        check_finite(call)
        n = max(mag.n, 1)
        low = one_call_plan(call) if one_call else None
        if low is not None:
            result = run_pairs(call, [(call.left, call.right)])[0]
            exact = one_call_exact(call, result, mag.products, n, low)
            if _negligible(exact, tolerance):
                return exact, None
        limit = np.asarray(tolerance, dtype=np.float64) * _NEGLIGIBLE
        smallest = float(limit.min(initial=np.inf)) / 4
        exact = ozaki_exact(call, n, negligible=smallest if limit.size else 0.0)
        if _negligible(exact, tolerance):
            return exact, None
    real, imag = fraction_exact(call)
    return from_fractions(real), None if imag is None else from_fractions(imag)


def _terms_at_most(call: OpCall) -> int | None:
    """Return an upper bound on the terms of an output without a call (None: needs one)."""
    if call.right is None or call.options.get("weight_layout") is not None:
        return None
    if call.op == "conv":
        return int(math.prod(call.right.shape[1:]))
    if call.op == "conv_transpose":
        groups = int(call.options.get("groups", 1))
        return int(call.right.shape[0] // max(groups, 1) * math.prod(call.right.shape[2:]))
    return None


def _paired_oracle(
    call: OpCall, precision: str | Precision | None, probabilistic: float | None
) -> Oracle | None:
    """Return the oracle of a conv from one set of operand pairs (None: not this way).

    The pairs of the reference (the operands themselves when one float64 call has exact
    products, else their Ozaki slices and the truncation magnitudes) and ``|a|, |b|`` (and
    ones, to count the terms of a transposed convolution) run together: one engine call
    for a small problem, every left operand against every right one
    (:func:`~mimo_conv.testing.stacked_calls.run_grid`). None when the operation does not
    allow it, or for an Ozaki reference too large to stack (it then prunes its slice pairs
    with the bound, computed first).
    """
    n = _terms_at_most(call)
    if n is None or not call.left.size or call.right is None or not call.right.size:
        return None
    check_finite(call)
    n = max(n, 1)
    low = one_call_plan(call)
    left = np.asarray(call.left, dtype=np.float64)
    right = np.asarray(call.right, dtype=np.float64)
    chopped = None if low is not None else ozaki_split(call, n)
    if chopped is None:
        lefts, rights = [left], [right]
    else:
        lefts, rights = list(chopped.left_slices), list(chopped.right_slices)  # type: ignore[arg-type]
    pairs = len(lefts) * len(rights)
    # |a| against |b| (and ones against ones): the magnitudes and the count of terms.
    magnitude = (len(lefts), len(rights))
    lefts.append(np.abs(left))
    rights.append(np.abs(right))
    ones = (len(lefts), len(rights))
    if call.op != "conv":
        lefts.append(np.ones(left.shape))
        rights.append(np.ones(right.shape))
    truncation: list[tuple[int, int]] = []
    if chopped is not None and chopped.truncated:
        # |a - a~| |b| and |a~| |b - b~| (chopped.truncation_pairs, in the grid).
        truncation.append((len(lefts), magnitude[1]))
        lefts.append(np.abs(chopped.left_rest))
        assert chopped.right_rest is not None
        if chopped.right_rest.any():
            truncation.append((len(lefts), len(rights)))
            lefts.append(np.abs(left - chopped.left_rest))
            rights.append(np.abs(chopped.right_rest))
    if not grid_stackable(call, len(lefts)):
        if low is None:
            return None
        return _unstacked_one_call(call, precision, probabilistic, n, low)
    grid = run_grid(call, lefts, rights)
    count = grid[ones] if call.op != "conv" else None
    mag = magnitudes(call, products=grid[magnitude], count=count)
    terms = terms_for(call, mag, precision, probabilistic=probabilistic)
    if chopped is None:
        assert low is not None
        exact = one_call_exact(call, grid[0, 0], mag.products, n, low)
    else:
        columns = len(chopped.right_slices)
        parts = [grid[k, m] for k in range(len(chopped.left_slices)) for m in range(columns)]
        assert len(parts) == pairs
        shape = mag.products.shape
        exact = chopped.finish(parts, shape, 0.0, [grid[pair] for pair in truncation] or None)
    if not _negligible(exact, terms.total):
        exact, _ = _exact_real(call, mag, terms.total, one_call=chopped is not None)
    return Oracle(call, mag, terms, exact, None, None)


def _unstacked_one_call(
    call: OpCall, precision: str | Precision | None, probabilistic: float | None, n: int, low: int
) -> Oracle:
    """Return the one-call oracle of a conv too large to stack: engine calls of its size."""
    results = run_pairs(call, [(call.left, call.right), *_magnitude_pairs(call)])
    count = results[2] if call.op != "conv" else None
    mag = magnitudes(call, products=results[1], count=count)
    terms = terms_for(call, mag, precision, probabilistic=probabilistic)
    exact = one_call_exact(call, results[0], mag.products, n, low)
    if not _negligible(exact, terms.total):
        exact, _ = _exact_real(call, mag, terms.total, one_call=False)
    return Oracle(call, mag, terms, exact, None, None)


def _magnitude_pairs(call: OpCall) -> list[tuple[NDArray[Any], NDArray[Any] | None]]:
    """Return ``(|a|, |b|)`` and, for a transposed convolution, ``(ones, ones)`` (the count)."""
    assert call.right is not None
    found: list[tuple[NDArray[Any], NDArray[Any] | None]] = [
        (np.abs(np.asarray(call.left, dtype=np.float64)),
         np.abs(np.asarray(call.right, dtype=np.float64)))
    ]  # fmt: skip
    if call.op != "conv":
        found.append((np.ones(call.left.shape), np.ones(call.right.shape)))
    return found


def oracle_for(
    op: str,
    args: tuple[Any, ...],
    options: dict[str, Any],
    precision: str | Precision | None = None,
    *,
    probabilistic: float | None = None,
) -> Oracle:
    """Read a call once and compute its exact result and its bound.

    Parameters
    ----------
    op : str
        One of :data:`mimo_conv.testing.operations.OPERATIONS`.
    args, options
        The positional and keyword arguments of that operation's function.
    precision : str or Precision, optional
        The model of the kernel under test (default: the inputs' own precision).
    probabilistic : float, optional
        The failure probability of a probabilistic bound (see :func:`bound`).

    Examples
    --------
    >>> oracle_for("unfold", (np.ones((1, 1, 2, 2), np.float32), 2), {}).n
    1
    """
    call = parse_call(op, args, options)
    if _real_floats(call):
        paired = _paired_oracle(call, precision, probabilistic)
        if paired is not None:
            return paired
    mag = magnitudes(call)
    terms = terms_for(call, mag, precision, probabilistic=probabilistic)
    if terms.precision is None and terms.total.dtype != np.longdouble:
        exact_kinds = all(a.dtype.kind in "iubO" for a in call.operands())
        if exact_kinds and call_precision(call) is None:
            expected = np.asarray(call.run(call.left, call.right, call.bias))
            return Oracle(call, mag, terms, None, None, expected)
    if mag.complex_result:
        if _fast_complex(call):
            return _complex_ozaki(call, mag, terms)
        real, imag = fraction_exact(call)
        imag_exact = None if imag is None else from_fractions(imag)
        return Oracle(call, mag, terms, from_fractions(real), imag_exact, None)
    exact, imag_exact = _exact_real(call, mag, terms.total)
    return Oracle(call, mag, terms, exact, imag_exact, None)


def _fast_complex(call: OpCall) -> bool:
    return all(a.dtype.kind in "fc" for a in call.operands())


def _complex_ozaki(call: OpCall, mag: Magnitudes, terms: BoundTerms) -> Oracle:
    """Complex operands: four real calls per pair of parts, each by the Ozaki scheme."""
    left = np.asarray(call.left)
    right = None if call.right is None else np.asarray(call.right)
    l_re, l_im = np.real(left).astype(np.float64), np.imag(left).astype(np.float64)
    n = max(mag.n, 1)

    def real_call(a: NDArray[Any], b: NDArray[Any] | None, bias: NDArray[Any] | None) -> Exact:
        dtypes = (a.dtype, None if b is None else b.dtype, None)
        sub = OpCall(call.op, a, b, bias, dtypes, call.run, call.options)
        return ozaki_exact(sub, n)

    b_re = b_im = None
    if call.bias is not None:
        bias = np.asarray(call.bias)
        b_re, b_im = np.real(bias).astype(np.float64), np.imag(bias).astype(np.float64)
    if right is None:
        return Oracle(
            call, mag, terms, real_call(l_re, None, None), real_call(l_im, None, None), None
        )
    r_re, r_im = np.real(right).astype(np.float64), np.imag(right).astype(np.float64)
    real = add(real_call(l_re, r_re, b_re), real_call(l_im, r_im, None).negative())
    imag = add(real_call(l_re, r_im, b_im), real_call(l_im, r_re, None))
    return Oracle(call, mag, terms, real, imag, None)


def expected_dtype(call: OpCall, precision: Precision | None) -> np.dtype[Any] | None:
    """Return the dtype a result should have: the model's output format, or mimo_conv's.

    None when it cannot be named (an ml_dtypes format without ml_dtypes installed).

    Examples
    --------
    >>> call = parse_call("conv", (np.ones((1, 2), np.float16), np.ones((1, 1, 1), np.float16)), {})
    >>> expected_dtype(call, None), expected_dtype(call, Precision("float16", "float32"))
    (dtype('float16'), dtype('float32'))
    """
    if precision is None:
        native = [d for d in call.dtypes if d is not None and format_name(d) not in _ML_NAMES]
        if len(native) < len([d for d in call.dtypes if d is not None]):
            return None
        return plan_dtypes(*native).output
    name = str(precision.output)
    if name not in _ML_NAMES:
        return np.dtype(name)
    try:
        import ml_dtypes  # noqa: PLC0415
    except ImportError as error:
        msg = (
            f"checking a {name} result's dtype needs ml_dtypes; install it with the lowp "
            'extra: pip install "mimo_conv[lowp]" (or pass check_dtype=False)'
        )
        raise ImportError(msg) from error
    dtype: np.dtype[Any] = np.dtype(getattr(ml_dtypes, name))
    return dtype


_ML_NAMES = ("tf32", "bfloat16", "float8_e4m3fn", "float8_e5m2")
