"""The forward error bound of every operation, for a kernel working in a given precision.

Every output element of the operations :mod:`mimo_conv.testing` checks is a sum of ``n``
terms: products ``a_i b_i`` of two operands (``conv``, ``conv_transpose`` and the two
gradients; plus a bias term for the first two) or single elements ``a_i`` (``conv_bias``,
``fold``; ``unfold`` copies, ``n = 1``). A kernel described by a
:class:`~mimo_conv.testing.precision.Precision` rounds its inputs to one format, sums the
products in another (in any order or blocking) and rounds the sum to a third. Compared
with the exact result of the *original* inputs, its error is at most (``docs/testing.md``
derives each line)::

    E_in  = (u_a + u_b + u_a u_b) P + u_c |c|
            + n (e_a (1 + u_b) B + e_b (1 + u_a) A + e_a e_b) + e_c
    E_acc = gamma_r(u) (M + E_in) + (n e + (k - 1) f) (1 + gamma_r(u))
    E_out = u_out (M + E_in + E_acc) + e_out              (only when the output is narrower)
    bound = (E_in + E_acc + E_out) (1 + slack) + tiny

with ``P = sum |a_i| |b_i|``, ``M = P + |c|`` (``c`` the bias), ``A``/``B`` the largest
``|a|``/``|b|``, ``u_a``, ``e_a`` the relative and absolute error of rounding ``a`` to the
input format (0 when ``a`` is already in it), ``k = n + (1 if bias)`` terms,
``r = k - 1 + (0 if the products are exact in the accumulation format else 1)`` roundings
per term (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., section 3.1
and Lemma 3.1, for any order; a block FMA that sums a block exactly and rounds once has
fewer, so it is covered: Blanchard, Higham, Lopez, Mary and Pranesh, SIAM J. Sci.
Comput. 42(3), 2020), ``gamma_r(u) = r u / (1 - r u)``, ``e`` the underflow error of a
product, ``f`` that of a sum (0 with gradual underflow: a sum whose result is subnormal is
exact; ``2**emin`` with flush-to-zero). ``u = 2**-p`` rounding to nearest, ``2**(1 - p)``
toward zero.

The magnitudes ``P`` and ``n`` are computed once per call in float64 by the library's own
operation on ``|a|``, ``|b|`` and ones (:class:`Magnitudes`), inflated for their own
rounding (the ``slack``), so composing the bound for another precision (the diagnosis
tries every preset) costs only elementwise arithmetic (:func:`compose`).

Complex inputs (in any model): each part is a real sum of ``2n`` terms of
total magnitude at most ``P``, so the modulus of the error is at most ``sqrt(2)`` times the
real bound for ``2n`` terms. Exact arithmetic (integers, Python ints and fractions in
object arrays) has bound 0.

Examples
--------
>>> x = np.ones((1, 4), dtype=np.float32)
>>> w = np.ones((1, 1, 4), dtype=np.float32)
>>> float(bound("conv", x, w)[0, 0])  # gamma_4 * 4 = 16 u / (1 - 4 u), u = 2**-24
9.5367...e-07
>>> float(bound("conv", x, w, precision="bfloat16")[0, 0])  # exact inputs, fp32 sum, bf16 out
0.015625...
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from mimo_conv._core.dtypes import DtypePlan, plan_dtypes
from mimo_conv.testing.operations import OpCall, parse_call
from mimo_conv.testing.precision import (
    FORMATS,
    Format,
    Precision,
    as_precision,
    default_precision,
    format_name,
    round_to,
)
from mimo_conv.testing.reference import ints_in_float64, largest_of

#: ``sqrt(2)`` rounded up: float64 ``1.4142135623730951`` is above the true value.
_SQRT2_UP = 1.4142135623730951
#: float64's unit roundoff and smallest subnormal: the bound's own arithmetic.
_U64 = 2.0**-53
_ETA64 = 2.0**-1074

#: The names of the terms of the bound, in the order :class:`BoundTerms` holds them.
TERM_NAMES = ("inputs", "accumulation", "underflow", "output")


def gamma(n: int, unit_roundoff: float) -> float:
    """Return Higham's ``gamma_n = n u / (1 - n u)``.

    Parameters
    ----------
    n : int
        Number of rounded operations a term goes through.
    unit_roundoff : float
        ``u``: ``2**-p`` rounding to nearest, ``2**(1 - p)`` toward zero.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        When ``n u >= 1``: no bound of this form exists.

    Examples
    --------
    >>> gamma(3, 2.0**-24)
    1.788139...e-07
    >>> gamma(2**24, 2.0**-24)
    Traceback (most recent call last):
    ...
    ValueError: n * u must be < 1 for the error bound gamma_n, got n = 16777216, u = 5.96...e-08
    """
    nu = n * unit_roundoff
    if nu >= 1:
        msg = f"n * u must be < 1 for the error bound gamma_n, got n = {n}, u = {unit_roundoff}"
        raise ValueError(msg)
    return nu / (1 - nu)


def gammas(counts: NDArray[Any] | float, unit_roundoff: float) -> NDArray[np.float64]:
    """Elementwise :func:`gamma` of an array of counts (float64, rounded up a little).

    Examples
    --------
    >>> gammas(np.array([0.0, 3.0]), 2.0**-24)[1] >= gamma(3, 2.0**-24)
    np.True_
    """
    if isinstance(counts, float | int):  # one count for every output
        largest = float(counts)
    else:
        largest = float(np.max(counts)) if np.size(counts) else 0.0
    gamma(math.ceil(largest), unit_roundoff)  # refuses n u >= 1
    nu = counts * unit_roundoff
    result: NDArray[np.float64] = nu / (1 - nu) * (1 + 4 * _U64)  # type: ignore[assignment]
    return result


def probabilistic_gamma(r: int, unit_roundoff: float, lam: float) -> float:
    """Return Higham and Mary's ``gamma~_r(lambda) = exp(lambda sqrt(r) u + r u**2 / (1 - u)) - 1``.

    Under their model (rounding errors independent random variables of mean zero),
    a product of ``r`` factors ``1 + delta_j`` is ``1 + theta`` with
    ``|theta| <= gamma~_r(lambda)`` with probability at least
    ``1 - 2 exp(-lambda**2 (1 - u)**2 / 2)`` (SIAM J. Sci. Comput. 41(5), 2019, Theorem 3.1).
    Rounded up.

    Examples
    --------
    >>> probabilistic_gamma(144, 2.0**-24, 6.0) < gamma(144, 2.0**-24)
    True
    """
    u = unit_roundoff
    value = math.expm1(lam * math.sqrt(r) * u + r * u * u / (1 - u))
    return value * (1 + 8 * _U64)


def probabilistic_lambda(failure: float, terms: int, outputs: int, unit_roundoff: float) -> float:
    """Return the ``lambda`` that makes ``failure`` the probability of any term exceeding.

    Every term of every output is within ``gamma~`` but with probability ``failure``: a
    union bound over ``terms * outputs`` events of probability
    ``2 exp(-lambda**2 (1 - u)**2 / 2)``. Rounded up.

    Examples
    --------
    >>> round(probabilistic_lambda(1e-6, 144, 32768, 2.0**-24), 3)
    7.73
    """
    events = max(terms, 1) * max(outputs, 1)
    return math.sqrt(2 * math.log(2 * events / failure)) / (1 - unit_roundoff) * (1 + 8 * _U64)


def check_probabilistic(probabilistic: object, precision: Precision | None) -> float | None:
    """Validate a ``probabilistic=`` argument against the model; return it as a float.

    Examples
    --------
    >>> check_probabilistic(2, None)
    Traceback (most recent call last):
    ...
    ValueError: probabilistic must be a failure probability in (0, 1), got 2
    """
    if probabilistic is None:
        return None
    if isinstance(probabilistic, bool) or not isinstance(probabilistic, float | int):
        msg = f"probabilistic must be a float in (0, 1) or None, got {probabilistic!r}"
        raise TypeError(msg)
    if not 0 < probabilistic < 1:
        msg = f"probabilistic must be a failure probability in (0, 1), got {probabilistic!r}"
        raise ValueError(msg)
    if precision is not None and precision.rounding == "toward_zero":
        msg = (
            "probabilistic= assumes rounding errors of mean zero, and rounding toward zero "
            f"makes every error shrink the magnitude; got precision {precision!r}"
        )
        raise ValueError(msg)
    return float(probabilistic)


def _object_plan(*arrays: NDArray[Any] | None) -> DtypePlan | None:
    """Return the float plan of object arrays holding inexact numbers (None if exact).

    Examples
    --------
    >>> from fractions import Fraction
    >>> _object_plan(np.array([Fraction(1, 3), 2], dtype=object)) is None
    True
    >>> _object_plan(np.array([0.5, 2], dtype=object)).compute
    dtype('float64')
    >>> _object_plan(np.array([0.5j], dtype=object), None).compute
    dtype('complex128')
    """
    kinds: set[str] = set()
    for array in arrays:
        if array is None or array.dtype.kind != "O":
            continue
        for value in array.flat:
            if isinstance(value, numbers.Rational):
                continue
            kinds.add("f" if isinstance(value, numbers.Real) else "c")
    if not kinds:
        return None
    dtype = np.dtype(np.complex128 if "c" in kinds else np.float64)
    return DtypePlan(compute=dtype, output=dtype)


@dataclass(frozen=True, eq=False)
class Magnitudes:
    """What the bound needs to know about one call, whatever the precision model.

    Attributes
    ----------
    products : ndarray
        ``P``: ``sum |a_i| |b_i|`` (or ``sum |a_i|``) per output, rounded up.
    bias : ndarray or None
        ``|c|``, broadcast against the output.
    count : ndarray
        ``n``: terms per output (products, the bias not counted).
    left_max, right_max : float
        ``A`` and ``B``: the largest ``|a|`` and ``|b|``.
    complex_result : bool
    call : OpCall
    uniform_count : float or None
        ``n`` when every output has the same number of terms (conv, conv_weight,
        conv_bias): the bound is then composed with a scalar count.
    """

    products: NDArray[Any]
    bias: NDArray[Any] | None
    count: NDArray[Any]
    left_max: float
    right_max: float
    complex_result: bool
    call: OpCall
    _held: dict[tuple[int, str], bool] = field(default_factory=dict)
    uniform_count: float | None = None

    @property
    def n(self) -> int:
        """The largest number of terms of an output."""
        if self.uniform_count is not None:
            return int(self.uniform_count)
        return int(np.max(self.count, initial=0))

    @property
    def total(self) -> NDArray[Any]:
        """``M = P + |c|``."""
        return self.products if self.bias is None else self.products + self.bias

    def held(self, which: int, fmt: Format) -> bool:
        """Whether operand ``which`` (0 left, 1 right, 2 bias) is exactly in ``fmt``.

        By its dtype (a float32 array is in float32) or, failing that, by its values (a
        float32 array of bfloat16 values is in bfloat16).
        """
        key = (which, fmt.name)
        if key not in self._held:
            array = (self.call.left, self.call.right, self.call.bias)[which]
            dtype = self.call.dtypes[which]
            if dtype is not None and dtype.kind == "c":
                dtype = np.dtype(dtype.char.lower())  # each part is in the real format
            name = None if dtype is None else format_name(dtype)
            if array is None or (name is not None and fmt.holds(FORMATS[name])):
                held = True
            elif array.dtype.kind in "iu" and not ints_in_float64(array):
                held = False  # read by value in float64 below, which would round them
            elif array.dtype.kind in "fiuc" and (
                array.dtype.kind in "iu" or np.finfo(array.dtype).precision <= 15
            ):
                # Each part of a complex number is rounded on its own.
                parts = (array.real, array.imag) if array.dtype.kind == "c" else (array,)
                held = all(
                    np.array_equal(round_to(v, fmt), v)
                    for v in (np.asarray(part, dtype=np.float64) for part in parts)
                )
            else:
                held = False
            self._held[key] = held
        return self._held[key]


@dataclass(frozen=True, eq=False)
class BoundTerms:
    """The bound of one call under one precision model, term by term.

    Attributes
    ----------
    inputs, accumulation, underflow, output : ndarray
        The error from rounding the inputs, from the rounded products and sums (relative),
        from underflow of products and sums (absolute), and from the final rounding.
    total : ndarray
        The bound: their sum, inflated for the bound's own float64 arithmetic.
    precision : Precision or None
        None for exact arithmetic (the bound is 0).
    n : int
        The largest number of terms of an output.
    may_overflow : ndarray of bool or None
        Where a correct kernel may overflow (a partial sum or the result can reach the
        largest finite number of the accumulation or output format): there a non-finite
        result is accepted, and a finite one must still be within the bound.
    probabilistic : float or None
        The failure probability of a probabilistic accumulation term (:func:`bound`), None
        for the rigorous bound.
    """

    inputs: NDArray[Any]
    accumulation: NDArray[Any]
    underflow: NDArray[Any]
    output: NDArray[Any]
    total: NDArray[Any]
    precision: Precision | None
    n: int
    may_overflow: NDArray[np.bool_] | None = None
    probabilistic: float | None = None

    def dominant(self, index: tuple[int, ...]) -> str:
        """Return the name of the largest term at ``index``."""
        values = [
            float(np.broadcast_to(getattr(self, name), self.total.shape)[index])
            for name in TERM_NAMES
        ]
        return TERM_NAMES[int(np.argmax(values))]


def _abs_wide(array: NDArray[Any]) -> NDArray[Any]:
    """``|array|`` in float64, longdouble for longdouble (within an ulp for complex)."""
    if array.dtype.kind == "O":
        values = array.tolist()
        flat = array.ravel().tolist()
        kind = np.complex128 if any(isinstance(v, complex) for v in flat) else np.float64
        array = np.asarray(values, dtype=kind).reshape(array.shape)
    wide: NDArray[Any]
    if array.dtype.kind == "f" and np.finfo(array.dtype).precision > 15:
        wide = np.abs(array).astype(np.longdouble)
        return wide
    if array.dtype.kind == "c" and array.dtype.itemsize > 16:
        wide = np.abs(array).astype(np.longdouble)
        return wide
    kind = np.complex128 if array.dtype.kind == "c" else np.float64
    result: NDArray[Any] = np.abs(np.asarray(array, dtype=kind)).astype(np.float64)
    return result


def _largest(array: NDArray[Any]) -> float:
    """``max |array|`` of a real array, as a float (exact), 0 when empty."""
    if array.dtype.kind == "f":
        return float(max(-array.min(), array.max())) if array.size else 0.0
    return float(np.max(np.abs(np.asarray(array, dtype=np.float64)), initial=0.0))


def _has_complex(array: NDArray[Any]) -> bool:
    if array.dtype.kind == "c":
        return True
    return array.dtype.kind == "O" and any(isinstance(v, complex) for v in array.ravel().tolist())


def magnitudes(
    call: OpCall, *, products: NDArray[Any] | None = None, count: NDArray[Any] | None = None
) -> Magnitudes:
    """Compute ``P``, ``|c|``, ``n``, ``A`` and ``B`` of a call in float64 (two calls of it).

    ``products`` (the call on ``|a|, |b|`` in float64) and ``count`` (on ones) may be
    given when they were computed with other calls (:mod:`mimo_conv.testing.stacked_calls`).

    Examples
    --------
    >>> m = magnitudes(parse_call("conv", (np.array([[1.0, -2.0, 3.0]]), np.ones((1, 1, 2))), {}))
    >>> m.products.tolist(), m.n
    ([[3.0..., 5.0...]], 2)
    """
    if products is not None and all(a.dtype.kind in "fiub" for a in call.operands()):
        # The products were computed with other calls: only the largest magnitudes are
        # needed here, read without temporaries.
        wide: np.dtype[Any] = np.dtype(np.float64)
        left_max, right_max = (
            1.0 if a is None else largest_of(call, which) if a.dtype.kind == "f" else _largest(a)
            for which, a in enumerate((call.left, call.right))
        )
        shapes = (call.left.shape, None if call.right is None else call.right.shape)
        products = np.asarray(products, dtype=wide)
    else:
        left = _abs_wide(call.left)
        right = None if call.right is None else _abs_wide(call.right)
        wide = (
            np.dtype(np.longdouble)
            if np.longdouble in (left.dtype, getattr(right, "dtype", None))
            else np.dtype(np.float64)
        )
        left = left.astype(wide)
        right = None if right is None else right.astype(wide)
        products = np.asarray(call.run(left, right, None), dtype=wide)
        left_max = float(np.max(left, initial=0.0))
        right_max = float(np.max(right, initial=0.0)) if right is not None else 1.0
        shapes = (left.shape, None if right is None else right.shape)
    uniform = None
    # The shortcuts read the canonical axis order (channels first, kernels O I *k).
    canonical = call.options.get("layout") is None and call.options.get("weight_layout") is None
    if count is not None:
        count = np.asarray(count, dtype=np.float64)
    elif call.op == "conv" and shapes[1] is not None and canonical:
        # Every output of a forward conv has C_in / groups * prod(kernel) terms (padded
        # positions hold zeros or copies): no call needed.
        uniform = float(math.prod(shapes[1][1:]))
    elif call.op in ("conv_weight", "conv_bias") and canonical:
        # One term per image and output position, for every tap (or bias) alike.
        grads = shapes[1] if call.op == "conv_weight" else shapes[0]
        assert grads is not None
        channels = products.shape[0]
        uniform = float(math.prod(grads) // channels) if channels else 0.0
    else:
        ones_right = None if shapes[1] is None else np.ones(shapes[1])
        count = np.asarray(call.run(np.ones(shapes[0]), ones_right, None), dtype=np.float64)
    if uniform is not None:
        count = np.full(products.shape, uniform)
    assert count is not None
    n = int(uniform) if uniform is not None else int(np.max(count, initial=0))
    # Each magnitude went through at most n + 3 roundings (|.| of a complex, the product,
    # n - 1 additions); 1 + 2 gamma_{n+16} covers them (and the arithmetic of compose()),
    # and (n + 1) smallest subnormals cover the products that underflowed.
    eps, smallest = _spacings(wide)
    if wide == np.float64:  # Python floats are float64 numbers: the same arithmetic
        slack = 1 + 2 * gamma(n + 16, float(eps) / 2)
        products = products * slack + (n + 1) * float(smallest)
    else:
        # In the magnitude dtype: 1 + 2e-18 is 1.0 as a Python float, not as a longdouble.
        slack = wide.type(1) + wide.type(2) * wide.type(gamma(n + 16, float(eps) / 2))
        products = np.asarray(
            np.multiply(products, slack) + np.multiply(n + 1, smallest), dtype=wide
        )
    bias_term = None
    if call.bias is not None and call.right is not None:
        spatial = call.right.ndim - 2
        bias = call.bias
        if wide == np.float64 and bias.dtype.kind == "f" and bias.dtype.itemsize <= 8:
            bias_term = np.abs(bias, dtype=np.float64)  # exact: float64 holds the values
        else:
            bias_term = _abs_wide(bias).astype(wide)
        bias_term = bias_term.reshape((-1,) + (1,) * spatial)
    return Magnitudes(
        products=products,
        bias=bias_term,
        count=count,
        left_max=left_max,
        right_max=right_max,
        complex_result=any(_has_complex(a) for a in call.operands()),
        call=call,
        uniform_count=uniform if products.size else None,
    )


@functools.lru_cache(maxsize=8)
def _spacings(dtype: np.dtype[Any]) -> tuple[Any, Any]:
    """``np.finfo(dtype)``'s ``eps`` and ``smallest_subnormal``, read once per dtype."""
    info = np.finfo(dtype)
    return info.eps, info.smallest_subnormal


def call_precision(call: OpCall) -> Precision | None:
    """Return the default model of a call: its result computed as mimo_conv computes it.

    None when the arithmetic is exact (integers, exact object arrays).

    Examples
    --------
    >>> call_precision(parse_call("conv", (np.ones((1, 2), np.float16), np.ones((1, 1, 1))), {}))
    Precision(inputs='float64', accumulate='float64', rounding='nearest', ...)
    """
    operand_dtypes = tuple(a.dtype for a in call.operands())
    if "O" not in {dtype.kind for dtype in operand_dtypes}:  # the dtypes decide: read once
        return _dtype_precision(call.dtypes, operand_dtypes)
    return _call_precision(call)


@functools.lru_cache(maxsize=128)
def _dtype_precision(
    dtypes: tuple[np.dtype[Any] | None, ...], operand_dtypes: tuple[np.dtype[Any], ...]
) -> Precision | None:
    """:func:`call_precision` of operands without Python objects, by their dtypes."""
    left = np.empty(0, dtype=operand_dtypes[0])
    rest = [np.empty(0, dtype=dtype) for dtype in operand_dtypes[1:]]
    right = rest[0] if dtypes[1] is not None else None
    bias = rest[-1] if dtypes[2] is not None else None
    call = OpCall("", left, right, bias, dtypes, _no_run)  # type: ignore[arg-type]
    return _call_precision(call)


def _no_run(*_: Any) -> Any:  # pragma: no cover - never called
    raise AssertionError


def _call_precision(call: OpCall) -> Precision | None:
    dtypes = [d for d in call.dtypes if d is not None]
    names = [format_name(d) for d in dtypes]
    if all(name is not None and name not in ("float64", "float32", "float16") for name in names):
        # ml_dtypes operands alone: as PyTorch computes them (float32 accumulation).
        if len(set(names)) == 1:
            return default_precision(dtypes[0])
        return Precision(inputs="float32", accumulate="float32")
    if any(name is not None and name not in ("float64", "float32", "float16") for name in names):
        return Precision(inputs="float32", accumulate="float32")
    plan = plan_dtypes(*(a.dtype for a in call.operands()))
    if plan.compute.kind == "O":
        object_plan = _object_plan(*call.operands())
        if object_plan is None:
            return None
        plan = object_plan
    if plan.compute.kind in "iub":
        return None
    real = np.dtype(plan.output.char.lower()) if plan.output.kind == "c" else plan.output
    if real == np.longdouble and np.finfo(np.longdouble).precision > 15:
        return None  # handled by compose's longdouble branch
    return default_precision(real)


@dataclass(frozen=True)
class _ModelConstants:
    """The scalars of a precision model that :func:`compose` reads (computed once per model)."""

    u_in: float
    e_in: float
    u_acc: float
    e_product: float
    e_sum: float
    products_exact: bool
    output_rounds: bool
    u_out: float
    e_out: float
    largest: float
    top_in: float


@functools.lru_cache(maxsize=64)
def _constants(precision: Precision) -> _ModelConstants:
    acc = precision.accumulate_format
    out = precision.output_format
    fmt_in = precision.input_format
    rounding = precision.rounding
    flush = precision.flush_subnormals
    # An input rounds (to nearest) to infinity from the midpoint past the largest finite
    # number on: half its spacing above it, 2**floor(log2 max) u.
    top_in = fmt_in.max + math.ldexp(fmt_in.unit_roundoff("nearest"), math.frexp(fmt_in.max)[1] - 1)
    return _ModelConstants(
        u_in=fmt_in.unit_roundoff(rounding),
        e_in=fmt_in.underflow(rounding, flush=flush),
        u_acc=acc.unit_roundoff(rounding),
        e_product=acc.underflow(rounding, flush=flush),
        e_sum=acc.smallest_normal if flush else 0.0,
        products_exact=precision.products_exact,
        output_rounds=not out.holds(acc),
        u_out=out.unit_roundoff(rounding),
        e_out=out.underflow(rounding, flush=flush),
        largest=min(acc.max, out.max),
        top_in=top_in,
    )


def _input_errors(mag: Magnitudes, precision: Precision) -> list[tuple[float, float]]:
    """Return ``(u, e)`` of rounding each operand (left, right, bias) to the input format.

    ``(0, 0)`` for an operand already in the format.
    """
    fmt = precision.input_format
    constants = _constants(precision)
    error = (constants.u_in, constants.e_in)
    return [(0.0, 0.0) if mag.held(which, fmt) else error for which in range(3)]


def compose(
    mag: Magnitudes, precision: Precision | None, probabilistic: float | None = None
) -> BoundTerms:
    """Compose the bound of a call under a precision model from its :class:`Magnitudes`.

    ``probabilistic`` (a failure probability) replaces the accumulation term's ``gamma_r``
    by Higham and Mary's probabilistic ``gamma~_r`` where that is smaller (see
    :func:`bound`).

    Terms that are zero (inputs already in the input format, an output format that holds
    the accumulation format) are not added, and with a uniform count the overflow test
    reads the largest ``M`` only: every value is the same as the general formulas', bit
    for bit (adding a zero is exact; rounding is monotonic).

    Examples
    --------
    >>> call = parse_call("conv", (np.ones((1, 3)), np.ones((1, 1, 3))), {})
    >>> terms = compose(magnitudes(call), as_precision("tf32"))
    >>> terms.dominant((0, 0))
    'accumulation'
    """
    shape = mag.products.shape
    shape_size = int(mag.products.size)
    check_probabilistic(probabilistic, precision)
    zeros = np.zeros(shape, dtype=mag.products.dtype)
    if precision is None:
        return BoundTerms(zeros, zeros, zeros, zeros, zeros, None, mag.n)
    constants = _constants(precision)
    bilinear = mag.call.bilinear
    count: Any = mag.count if mag.uniform_count is None else mag.uniform_count
    has_bias = mag.bias is not None
    if mag.complex_result:
        count = 2 * count  # each part: a real sum of 2n terms of total magnitude <= P
    # Zero terms are left out only where they are zeros: 0 * inf would be NaN.
    products = mag.products
    plain = products.dtype == np.float64 and (shape_size == 0 or math.isfinite(products.max()))
    bias_max = float(mag.bias.max()) if mag.bias is not None and mag.bias.size else 0.0
    inputs = _inputs_term(mag, precision, count, zeros, plain=plain and math.isfinite(bias_max))
    exact_inputs = inputs is zeros
    u = constants.u_acc
    terms = count + (1 if has_bias else 0)
    product_rounds = 0 if (not bilinear or constants.products_exact) else 1
    scalar = isinstance(count, float)  # one count for every output: Python arithmetic
    sums = max(terms - 1, 0) if scalar else np.maximum(terms - 1, 0)
    roundings = sums + product_rounds * (count > 0)
    g = gammas(roundings, u)
    total_in = mag.total if exact_inputs else mag.total + inputs
    gain = _probable(g, roundings, terms, u, probabilistic, shape_size)
    accumulation = gain * total_in
    e_product = constants.e_product if bilinear else 0.0
    underflow = (count * e_product + sums * constants.e_sum) * (1 + g)
    if scalar:
        underflow = np.float64(underflow)  # the term's type, as NumPy's scalar arithmetic gives
    if constants.output_rounds:
        output = constants.u_out * (total_in + accumulation + underflow) + constants.e_out
        total = inputs + accumulation + underflow + output
    else:
        output = zeros
        total = (
            accumulation + underflow if exact_inputs else inputs + accumulation + underflow + output
        )
    if mag.complex_result:
        total = total * _SQRT2_UP
    total = total * (1 + 8 * _U64) + 8 * _ETA64
    # Where a partial sum or the result could pass the largest finite number, a correct
    # kernel may overflow; the bound holds wherever it did not (a finite result).
    one_reach = plain and scalar and isinstance(gain, float) and isinstance(underflow, float)
    may_overflow = _overflow_flags(
        constants, total_in, gain, underflow, (accumulation, output), one_reach=one_reach
    )
    top_in = constants.top_in
    if max(mag.left_max, mag.right_max if bilinear else 0.0) >= top_in or bias_max >= top_in:
        may_overflow = np.ones(shape, dtype=bool)  # an input itself rounds to infinity
    return BoundTerms(
        inputs, accumulation, underflow, output, total, precision, mag.n, may_overflow,
        probabilistic,
    )  # fmt: skip


def _inputs_term(
    mag: Magnitudes, precision: Precision, count: Any, zeros: NDArray[Any], *, plain: bool
) -> NDArray[Any]:
    """``E_in``; ``zeros`` itself when every operand is in the input format and ``plain``.

    ``plain``: the magnitudes are finite float64 numbers (so the zero terms are zeros).
    """
    (u_a, e_a), (u_b, e_b), (u_c, e_c) = _input_errors(mag, precision)
    if mag.call.bilinear:
        relative = u_a + u_b + u_a * u_b
        absolute = e_a * (1 + u_b) * mag.right_max + e_b * (1 + u_a) * mag.left_max + e_a * e_b
    else:
        relative, absolute = u_a, e_a
    rounded_bias = mag.bias is not None and not (u_c == 0 and e_c == 0)
    if plain and relative == 0 and absolute == 0 and not rounded_bias:
        return zeros
    inputs: NDArray[Any] = relative * mag.products + count * absolute
    if mag.bias is not None:
        inputs = inputs + u_c * mag.bias + e_c
    return inputs


def _overflow_flags(
    constants: _ModelConstants,
    total_in: NDArray[Any],
    gain: Any,
    underflow: Any,
    terms: tuple[Any, Any],
    *,
    one_reach: bool,
) -> NDArray[np.bool_]:
    """Where ``M + E_in + E_acc + E_out`` (with a margin) reaches the largest finite number.

    ``one_reach``: the accumulation is ``gain M`` and the underflow one float64 number, so
    each step is monotonic in ``M`` (rounding is) and the largest reach is the one of the
    largest ``M``, computed with the same operations: no flag is set when it stays below.
    """
    largest = constants.largest
    if one_reach:
        top = float(total_in.max()) if total_in.size else 0.0
        top_output = (
            constants.u_out * (top + gain * top + underflow) + constants.e_out
            if constants.output_rounds
            else 0.0
        )
        if (top + gain * top + underflow + top_output) * (1 + 8 * _U64) < largest:
            return np.zeros(total_in.shape, dtype=bool)
    accumulation, output = terms
    reach = (total_in + accumulation + underflow + output) * (1 + 8 * _U64)
    return np.asarray(reach >= largest)


def _probable(
    g: Any, roundings: Any, terms: Any, u: float, probabilistic: float | None, outputs: int
) -> Any:
    """Return ``gamma_r``, or with ``probabilistic`` the smaller of it and ``gamma~_r``."""
    if probabilistic is None:
        return g
    most = int(np.max(roundings, initial=0))
    lam = probabilistic_lambda(probabilistic, int(np.max(terms, initial=0)), outputs, u)
    return np.minimum(g, probabilistic_gamma(most, u, lam))


def _precision_for(call: OpCall, precision: str | Precision | None) -> Precision | None:
    if precision is None:
        return call_precision(call)
    return as_precision(precision)


def bound_terms(
    op: str,
    *args: Any,
    precision: str | Precision | None = None,
    probabilistic: float | None = None,
    **options: Any,
) -> BoundTerms:
    """Return the bound of ``op(*args, **options)`` term by term (see :func:`bound`).

    Examples
    --------
    >>> bound_terms("conv_bias", np.ones((2, 1, 3)), precision="float16-accumulate").n
    6
    """
    call = parse_call(op, args, options)
    return terms_for(call, magnitudes(call), precision, probabilistic=probabilistic)


def terms_for(
    call: OpCall,
    mag: Magnitudes,
    precision: str | Precision | None,
    *,
    probabilistic: float | None = None,
) -> BoundTerms:
    """:func:`compose` for a ``precision=`` argument, the longdouble default included."""
    model = _precision_for(call, precision)
    failure = check_probabilistic(probabilistic, model)
    if model is None and mag.products.dtype == np.longdouble:
        if failure is not None:
            msg = "probabilistic= needs a float model; longdouble inputs are bounded rigorously"
            raise ValueError(msg)
        return _longdouble_terms(mag)
    return compose(mag, model, failure)


def _longdouble_terms(mag: Magnitudes) -> BoundTerms:
    """Longdouble inputs in their own precision: the same bound, in longdouble."""
    info = np.finfo(np.longdouble)
    u = float(info.eps) / 2
    # Complex: each part is a real sum of 2n terms, as in compose().
    count = 2 * mag.count if mag.complex_result else mag.count
    terms = count + (1 if mag.bias is not None else 0)
    roundings = np.maximum(terms - 1, 0) + (1 if mag.call.bilinear else 0) * (count > 0)
    gamma(math.ceil(float(np.max(roundings, initial=0))), u)
    nu = roundings.astype(np.longdouble) * np.longdouble(u)
    one = np.longdouble(1)
    g = nu / (1 - nu) * (one + 4 * np.longdouble(u))
    zeros = np.zeros(mag.products.shape, dtype=np.longdouble)
    accumulation = g * mag.total
    eta = info.smallest_subnormal
    underflow = (count * eta * (1 + g)) if mag.call.bilinear else zeros
    total = (accumulation + underflow) * (one + 8 * np.longdouble(u)) + 8 * eta
    if mag.complex_result:
        total = total * np.longdouble(_SQRT2_UP)
    return BoundTerms(zeros, accumulation, underflow, zeros, total, None, mag.n)


def bound(
    op: str,
    *args: Any,
    precision: str | Precision | None = None,
    probabilistic: float | None = None,
    **options: Any,
) -> NDArray[Any]:
    """Elementwise bound on ``|computed - exact|`` of ``op(*args, **options)``.

    Parameters
    ----------
    op : {"conv", "conv_transpose", "conv_input", "conv_weight", "conv_bias", "unfold", "fold"}
    *args, **options
        Exactly the arguments of the matching function (:func:`mimo_conv.conv`,
        :func:`mimo_conv.conv_transpose`, :func:`mimo_conv.grad.conv_input`, ...); the
        operands are taken as exact values.
    precision : str or Precision, optional
        The arithmetic of the kernel being bounded: a preset name
        (:data:`mimo_conv.testing.PRESETS`) or a :class:`Precision`. Default: the inputs'
        own, as mimo_conv computes them (float16 and bfloat16 accumulate in float32).
        Complex operands are bounded in any model (each part of the result is a real
        sum of ``2n`` products of parts, ``docs/testing.md``).
    probabilistic : float, optional
        **Not rigorous.** A failure probability ``q``: the accumulation term uses Higham
        and Mary's ``gamma~_r(lambda) ~ lambda sqrt(r) u`` instead of ``gamma_r ~ r u``,
        with ``lambda`` chosen so that, if rounding errors were independent random
        variables of mean zero, the whole result would exceed the bound with probability
        at most ``q``. Tighter by about ``sqrt(n) / lambda``; refused for
        ``rounding="toward_zero"``. The input, underflow and output terms stay rigorous.

    Returns
    -------
    ndarray of float64 (longdouble for longdouble inputs), the result's shape
        Zeros for exact arithmetic; non-finite where an operand in the sum is not.

    Raises
    ------
    ValueError
        When ``r u >= 1`` for the accumulation format (no bound of this form: e.g. 2,048
        terms accumulated in float16), for an unknown preset (the message lists them), or
        for ``probabilistic`` outside ``(0, 1)`` or with rounding toward zero.

    Examples
    --------
    >>> g = np.ones((1, 1, 3), dtype=np.float32)
    >>> bound("conv_input", (1, 1, 4), np.ones((1, 1, 2), np.float32), g).tolist()
    [[[5.96...e-08, 2.38...e-07, 2.38...e-07, 5.96...e-08]]]
    >>> x = np.ones((1, 4096), np.float32)
    >>> w = np.ones((1, 1, 4096), np.float32)
    >>> rigorous = bound("conv", x, w)[0, 0]
    >>> float(bound("conv", x, w, probabilistic=1e-9)[0, 0] / rigorous)
    0.1204...
    """
    return bound_terms(op, *args, precision=precision, probabilistic=probabilistic, **options).total


def conv_error_bound(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    *,
    padding_mode: str = "zeros",
    dtype: DTypeLike | None = None,
    precision: str | Precision | None = None,
    probabilistic: float | None = None,
) -> NDArray[Any]:
    """Return the bound of :func:`mimo_conv.conv`, with the older ``dtype=`` spelling.

    ``dtype`` names the result's dtype when ``precision`` is not given: its default model
    (float16: float32 accumulation and one rounding to float16).

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    >>> w = np.array([[[1.0, -1.0, 0.5]]], dtype=np.float32)
    >>> conv_error_bound(x, w)  # gamma_3 * (1 + 2 + 1.5) = 4.5 * 3 * 2**-24 / (1 - 3 * 2**-24)
    array([[8.0466...e-07]])
    >>> conv_error_bound([[1, 2, 3]], [[[1, -1]]])
    array([[0., 0.]])
    """
    if precision is None and dtype is not None:
        model = default_precision(np.dtype(dtype))
        name = format_name(np.dtype(dtype))
        precision = model if model is not None else None
        if model is None and name is None and np.dtype(dtype).kind in "iu":
            call = parse_call(
                "conv",
                (x, weight, bias, stride, padding, dilation, groups),
                {"padding_mode": padding_mode},
            )
            return np.zeros(magnitudes(call).products.shape)
    return bound(
        "conv",
        x,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        padding_mode=padding_mode,
        precision=precision,
        probabilistic=probabilistic,
    )
