"""Tests that kill the mutants a mutation tester (mutmut) left alive in the oracle.

Each test pins a branch of :mod:`mimo_conv.testing.bounds` or
:mod:`mimo_conv.testing.reference` that the rest of the suite reached without checking:
the longdouble bound, the ``dtype=`` spelling of :func:`conv_error_bound`, object arrays
whose first operand is not an object array, the exact helpers. Expected values are derived
here with :class:`fractions.Fraction` from the formula in ``docs/testing.md``, never read
back from the library. ``docs/testing.md`` ("Mutation testing") says how to run the tester
and lists the mutants judged equivalent.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from mimo_conv.testing import PRESETS, bound
from mimo_conv.testing.bounds import (
    Magnitudes,
    _object_plan,
    bound_terms,
    call_precision,
    check_probabilistic,
    compose,
    conv_error_bound,
    gamma,
    gammas,
    magnitudes,
    probabilistic_gamma,
    probabilistic_lambda,
)
from mimo_conv.testing.operations import parse_call
from mimo_conv.testing.oracle import oracle_for
from mimo_conv.testing.precision import FORMATS, Precision, default_precision
from mimo_conv.testing.reference import (
    Exact,
    add,
    beta_for,
    fraction_exact,
    from_fractions,
    ints_in_float64,
    one_call_exact,
    one_call_plan,
    ozaki_exact,
    ozaki_split,
    scaled_integers,
    split,
    sum_levels,
    to_fraction,
)

LONG = np.finfo(np.longdouble)
needs_longdouble = pytest.mark.skipif(
    LONG.precision <= 15, reason="longdouble is float64 on this platform"
)


def exact_gamma(r: int, u: Fraction) -> Fraction:
    return r * u / (1 - r * u)


# --- the longdouble bound ---------------------------------------------------------------


def _long_units() -> tuple[Fraction, Fraction]:
    return to_fraction(LONG.eps) / 2, to_fraction(LONG.smallest_subnormal)


@needs_longdouble
def test_longdouble_zero_inputs_leave_only_the_underflow_terms() -> None:
    # Zero operands: P = 0, so the bound is the underflow of the n products (n eta, for the
    # n = 20 taps) plus the 8 eta the bound adds for its own arithmetic, exactly: every
    # other term is below half a subnormal.
    _, eta = _long_units()
    got = bound("conv", np.zeros((1, 1, 22), np.longdouble), np.zeros((1, 1, 20), np.longdouble))
    assert got.dtype == np.longdouble
    assert [to_fraction(v) for v in got.ravel()] == [28 * eta] * 3
    # A sum of elements (no products) has no product underflow: only the 8 eta.
    grads = bound("conv_bias", np.zeros((2, 1, 3), np.longdouble))
    assert [to_fraction(v) for v in grads.ravel()] == [8 * eta]


@needs_longdouble
def test_longdouble_outputs_without_terms_get_no_rounding() -> None:
    # conv_input with stride 2 and a 1-tap kernel: odd positions receive no term at all.
    _, eta = _long_units()
    g = np.ones((1, 1, 3), np.longdouble)
    got = bound("conv_input", (1, 1, 6), np.ones((1, 1, 1), np.longdouble), g, stride=2)
    assert [to_fraction(v) for v in got.ravel()[1::2]] == [8 * eta] * 3
    assert all(v > 0 for v in got.ravel()[::2])


def _within(value: Any, expected: Fraction, eta: Fraction) -> bool:
    got = to_fraction(value)
    return expected <= got <= expected * (1 + Fraction(2) ** -50) + 16 * eta


@needs_longdouble
def test_longdouble_single_term_and_sum_of_elements() -> None:
    u, eta = _long_units()
    third = np.full((1, 1), np.longdouble(1) / 3)
    one_tap = bound("conv", third, np.ones((1, 1, 1), np.longdouble))
    p = to_fraction(third[0, 0])
    # One product, no addition: r = 1 rounding.
    assert _within(one_tap[0, 0], exact_gamma(1, u) * p + eta * (1 + exact_gamma(1, u)), eta)
    # conv_bias of a longdouble gradient: a sum of n = 2 elements, r = n - 1 = 1 (no product).
    grads = np.array([[[1]], [[2]]], dtype=np.longdouble) / 7
    got = bound("conv_bias", grads)
    total = to_fraction(grads[0, 0, 0]) + to_fraction(grads[1, 0, 0])
    assert _within(got[0], exact_gamma(1, u) * total, eta)


@needs_longdouble
def test_longdouble_gamma_of_many_terms_is_not_too_small() -> None:
    # n = 64 equal terms: P = 64 exactly, and the magnitudes carry their documented slack
    # 1 + 2 gamma_{n+16}; the bound is gamma_64 times that at least (within the last few
    # roundings). A gamma computed as nu / (1 + nu), or nu (1 - nu), or in float64 (where
    # 1 - nu is 1), is below it by 64 u or more.
    u, _ = _long_units()
    got = bound("conv", np.ones((1, 64), np.longdouble), np.ones((1, 1, 64), np.longdouble))
    slack = 1 + 2 * exact_gamma(80, u)
    lower = exact_gamma(64, u) * 64 * slack * (1 - 4 * u)
    assert lower <= to_fraction(got[0, 0]) <= lower * (1 + 64 * u)


@needs_longdouble
def test_longdouble_complex_is_sqrt2_times_the_bound_of_2n_real_terms() -> None:
    # Each part of a complex sum of n products is a real sum of 2n products of total
    # magnitude at most P (module docstring): r = 2n roundings, 2n product underflows.
    u, eta = _long_units()
    x = np.array([[1 + 2j, 3 - 1j]], dtype=np.clongdouble)
    w = np.array([[[2 - 1j, 1j]]], dtype=np.clongdouble)
    got = bound("conv", x, w)
    assert got.dtype == np.longdouble
    # |1 + 2j| |2 - j| = 5 and |3 - j| |j| = sqrt(10): P = 5 + sqrt(10), to within the
    # longdouble rounding of the two moduli (each within an ulp, the slack covers it).
    p_low = 5 + Fraction(3162277660168379) / 10**15  # sqrt(10) rounded down
    real = exact_gamma(4, u) * p_low + 4 * eta * (1 + exact_gamma(4, u))
    value = to_fraction(got[0, 0])
    assert real * Fraction(1.4142135623730951) * (1 - Fraction(2) ** -45) <= value
    assert value <= real * Fraction(1.4142135623730951) * (1 + Fraction(2) ** -40)


@needs_longdouble
def test_longdouble_terms_are_longdouble_arrays_of_the_output_shape() -> None:
    x = np.array([[1, 2, 3, 4]], dtype=np.longdouble) / 3
    w = np.ones((2, 1, 2), dtype=np.longdouble)
    terms = bound_terms("conv", x, w)
    for name in ("inputs", "output"):
        array = getattr(terms, name)
        assert array.dtype == np.longdouble
        assert array.shape == (2, 3)
        assert not array.any()  # inputs are exact in their own format; no narrower output
    assert terms.accumulation.shape == terms.underflow.shape == (2, 3)
    assert (terms.accumulation > 0).all()
    assert (terms.underflow > 0).all()
    assert (terms.total >= terms.accumulation + terms.underflow).all()
    assert terms.n == 2
    assert terms.precision is None
    assert terms.dominant((0, 0)) == "accumulation"


@needs_longdouble
def test_longdouble_empty_batch_has_an_empty_bound() -> None:
    got = bound("conv", np.ones((0, 1, 4), np.longdouble), np.ones((1, 1, 2), np.longdouble))
    assert got.shape == (0, 1, 3)
    assert got.dtype == np.longdouble


# --- conv_error_bound's dtype= spelling --------------------------------------------------


def _layer() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 7))
    w = rng.standard_normal((4, 2, 3))
    b = rng.standard_normal(4)
    return x, w, b


def test_conv_error_bound_dtype_float16_is_the_float16_preset() -> None:
    x, w, b = _layer()
    options: dict[str, Any] = {"stride": 2, "padding": 2, "dilation": 2, "groups": 2}
    got = conv_error_bound(x, w, b, **options, padding_mode="circular", dtype=np.float16)
    expected = bound(
        "conv", x, w, b, **options, padding_mode="circular", precision=PRESETS["float16"]
    )
    np.testing.assert_array_equal(got, expected)
    # float16 model: far wider than the inputs' own float64 arithmetic.
    assert (got > 1000 * conv_error_bound(x, w, b, **options, padding_mode="circular")).all()


def test_conv_error_bound_integer_dtype_is_zero_of_the_output_shape() -> None:
    x, w, b = _layer()
    # Output length: padded 7 + 2 + 2 = 11, window (3 - 1) * 2 + 1 = 5, stride 2: 4.
    for dtype in (np.int32, np.uint8):
        got = conv_error_bound(x, w, b, 2, 2, 2, 2, padding_mode="reflect", dtype=dtype)
        assert got.shape == (2, 4, 4)
        assert not got.any()


def test_conv_error_bound_other_dtypes_keep_the_inputs_model() -> None:
    # complex and bool name no precision model and no integer format: the default (the
    # inputs' own float64 arithmetic) applies, not zero.
    x, w, b = _layer()
    for dtype in (np.complex128, np.bool_):
        got = conv_error_bound(x, w, b, groups=2, dtype=dtype)
        np.testing.assert_array_equal(got, bound("conv", x, w, b, groups=2))
        assert (got > 0).all()


def test_conv_error_bound_passes_the_bias_and_padding_mode() -> None:
    x, w, b = _layer()
    big = b * 1e6
    with_bias = conv_error_bound(x, w, big, padding=1, groups=2, padding_mode="circular")
    without = conv_error_bound(x, w, None, padding=1, groups=2, padding_mode="circular")
    assert (with_bias > without).all()
    # Circular padding wraps the far end around: at the first output it meets x[..., -1]
    # where zero padding meets 0, so the bounds differ there and agree inside.
    circular = conv_error_bound(x, w, padding=1, groups=2, padding_mode="circular")
    zeros = conv_error_bound(x, w, padding=1, groups=2)
    assert (circular[..., 0] != zeros[..., 0]).all()
    np.testing.assert_array_equal(circular[..., 1:-1], zeros[..., 1:-1])


def test_bound_passes_keyword_options() -> None:
    # Zero padding adds zero terms: the bound of a padded, strided call is the bound of the
    # explicitly zero-padded input, every second position.
    x, w, _ = _layer()
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    got = bound("conv", x, w, stride=2, padding=1, groups=2)
    np.testing.assert_array_equal(got, bound("conv", padded, w, groups=2)[..., ::2])


# --- object arrays and the exact helpers ---------------------------------------------


def test_object_plan_reads_operands_after_a_numeric_one() -> None:
    floats = np.array([0.5, 0.25], dtype=object)
    plan = _object_plan(np.ones(2), floats)
    assert plan is not None
    assert plan.compute == np.float64
    # Through the public bound: a float64 x with object weights holding floats is float64
    # arithmetic, never exact. Its bound is at least that of float64 weights (the object
    # weights are not known to be float64 numbers, so their rounding may be added).
    x = np.array([[0.1, 0.2, 0.3]])
    w = np.array([[[0.5, 0.25]]], dtype=object)
    got = bound("conv", x, w)
    assert (got >= bound("conv", x, w.astype(np.float64))).all()
    assert (got > 0).all()


def test_to_fraction_of_integers_is_exact() -> None:
    assert to_fraction(3) == Fraction(3)
    assert to_fraction(np.int64(-7)) == Fraction(-7)
    assert to_fraction(np.uint8(255)) == Fraction(255)
    big = 2**70 + 1  # beyond float64: an int is not read through a float
    assert to_fraction(big) == Fraction(big)
    assert to_fraction(Fraction(2, 6)) == Fraction(1, 3)
    assert to_fraction(np.float16(0.1)) == Fraction(819, 8192)  # 0.1 * 2**13 = 819.2


def test_negative_of_an_exact_negates_both_parts() -> None:
    value = Exact(np.array([1.0]), np.array([2.0**-60]), np.array([2.0**-100]), "fractions")
    minus = value.negative()
    assert minus.hi.tolist() == [-1.0]
    assert minus.lo.tolist() == [-(2.0**-60)]
    assert minus.error.tolist() == [2.0**-100]
    assert minus.method == "fractions"


def test_from_fractions_splits_into_hi_lo_and_a_bounded_error() -> None:
    values = np.array([[Fraction(1, 3), Fraction(-2, 7)], [Fraction(5), Fraction(0)]], object)
    exact = from_fractions(values)
    assert exact.hi.shape == exact.lo.shape == exact.error.shape == (2, 2)
    assert exact.method == "fractions"
    for index in np.ndindex(values.shape):
        hi, lo = Fraction(float(exact.hi[index])), Fraction(float(exact.lo[index]))
        assert hi == Fraction(float(values[index]))  # hi is the value rounded to float64
        assert abs(values[index] - hi - lo) <= Fraction(float(exact.error[index]))
        # The stated error is the residual rounded up once, not a multiple of it.
        residual = abs(values[index] - hi - lo)
        stated = Fraction(float(exact.error[index]))
        assert stated <= residual * (1 + Fraction(2) ** -50) + Fraction(2) ** -1074
    # Exactly representable values have no error; 1/3 does (but below 2**-100 of it).
    assert exact.error[1, 0] == exact.error[1, 1] == 0
    assert 0 < exact.error[0, 0] < 2.0**-100
    empty = from_fractions(np.empty((0, 3), dtype=object))
    assert empty.hi.shape == (0, 3)


def test_gamma_value_and_refusal() -> None:
    seventh = Fraction(gamma(1, 2.0**-3))  # u / (1 - u) with u = 1/8: 1/7, rounded once
    assert abs(seventh - Fraction(1, 7)) <= Fraction(1, 7) * Fraction(2) ** -53
    assert gamma(0, 0.5) == 0
    with pytest.raises(ValueError, match=r"got n = 8, u = 0\.125"):
        gamma(8, 2.0**-3)


# --- the Ozaki reference when the slices cannot hold every bit --------------------------


def _kept(values: np.ndarray, beta: int) -> list[Fraction]:
    """The bits one slice of ``beta`` bits keeps (module docstring of ``reference``).

    The slice grid starts at ``2**E`` with ``max |a| < 2**E``: the slice is ``a``
    truncated toward zero to a multiple of ``2**(E - beta)``.
    """
    top = int(np.frexp(np.max(np.abs(values)))[1])
    step = Fraction(2) ** (top - beta)
    result = []
    for value in values.ravel().tolist():
        exact = Fraction(value)
        whole = abs(exact) // step
        result.append((whole if exact >= 0 else -whole) * step)
    return result


@pytest.mark.parametrize("truncate_weight", [False, True])
def test_truncated_ozaki_error_is_the_bound_on_the_dropped_bits(truncate_weight: bool) -> None:
    # One slice per operand (most=1) cannot hold values of 30 or more bits: the dropped
    # bits' contribution sum |a - a~| |b| + |a~| |b - b~| is bounded and added to ``error``.
    x = np.array([[1 + 2.0**-40, -(1 + 2.0**-35), 0.75 + 2.0**-45, 3 + 2.0**-30]])
    w = np.array([[[1 + 2.0**-38, 0.5]]]) if truncate_weight else np.array([[[1.0, 0.5]]])
    call = parse_call("conv", (x, w), {})
    n = 2
    exact = ozaki_exact(call, n, most=1)
    beta = beta_for(n)
    kept_x, kept_w = _kept(x, beta), _kept(w, beta)
    xs = [Fraction(v) for v in x.ravel().tolist()]
    ws = [Fraction(v) for v in w.ravel().tolist()]
    true, _ = fraction_exact(call)
    for j in range(3):
        dropped = sum(
            (
                abs(xs[j + t] - kept_x[j + t]) * abs(ws[t])
                + abs(kept_x[j + t]) * abs(ws[t] - kept_w[t])
                for t in range(2)
            ),
            Fraction(0),
        )
        assert dropped > 0
        error = Fraction(float(exact.error[0, j]))
        gap = abs(true[0, j] - Fraction(float(exact.hi[0, j])) - Fraction(float(exact.lo[0, j])))
        assert gap <= error
        # The stated error is that bound, rounded up a little (and the double-double
        # additions' own error, far smaller): not a loose over-estimate.
        assert dropped <= error <= dropped * (1 + Fraction(2) ** -40) + Fraction(2) ** -1000


def test_truncated_ozaki_error_of_a_sum_of_elements() -> None:
    # conv_bias sums the elements of each channel (no second operand): the dropped bits'
    # contribution is sum |a - a~|.
    g = np.array([[[1 + 2.0**-40, -(0.5 + 2.0**-44)], [3 + 2.0**-33, 2.0**-20 + 2.0**-60]]])
    call = parse_call("conv_bias", (g,), {})
    n = 2
    exact = ozaki_exact(call, n, most=1)
    kept = _kept(g, beta_for(n))
    values = [Fraction(v) for v in g.ravel().tolist()]
    true, _ = fraction_exact(call)
    for channel in range(2):
        picked = range(2 * channel, 2 * channel + 2)
        dropped = sum((abs(values[k] - kept[k]) for k in picked), Fraction(0))
        assert dropped > 0
        error = Fraction(float(exact.error[channel]))
        hi, lo = Fraction(float(exact.hi[channel])), Fraction(float(exact.lo[channel]))
        assert abs(true[channel] - hi - lo) <= error
        assert dropped <= error <= dropped * (1 + Fraction(2) ** -40) + Fraction(2) ** -1000


# --- double-double sums, exact-arithmetic terms, gamma arrays, stacked slices ------------


def test_adding_two_exacts_is_exact_within_the_sum_of_their_errors() -> None:
    u = Fraction(2) ** -53
    first = Exact(np.array([1.0]), np.array([2.0**-60]), np.array([2.0**-100]), "ozaki")
    second = Exact(np.array([2.0**-30]), np.array([-(2.0**-75)]), np.array([2.0**-101]), "ozaki")
    total = add(first, second)
    assert total.method == "ozaki"
    exact = 1 + Fraction(2) ** -60 + Fraction(2) ** -30 - Fraction(2) ** -75
    hi, lo = Fraction(float(total.hi[0])), Fraction(float(total.lo[0]))
    assert hi == Fraction(float(exact))  # hi is the sum rounded to float64
    assert abs(exact - hi - lo) <= Fraction(float(total.error[0])) - Fraction(3, 2**101)
    # The error is both errors plus the rounding of the low parts, u |lo1 + lo2| and
    # u |lo1 + lo2 + e| (e = 0 here: 1 + 2**-30 is exact), rounded up by 1 + 4u, and the
    # float64 sum of the three rounded once.
    low = Fraction(2) ** -60 - Fraction(2) ** -75
    expected = Fraction(3, 2**101) + 2 * u * low * (1 + 4 * u)
    stated = Fraction(float(total.error[0]))
    assert expected * (1 - u) <= stated <= expected * (1 + u)


def test_exact_arithmetic_terms_are_zero_arrays() -> None:
    terms = bound_terms("conv", np.ones((2, 1, 4), np.int64), np.ones((3, 1, 2), np.int64))
    assert terms.precision is None
    assert terms.n == 2
    for name in ("inputs", "accumulation", "underflow", "output", "total"):
        array = getattr(terms, name)
        assert array.shape == (2, 3, 3)
        assert not array.any()


@needs_longdouble
def test_composed_terms_keep_the_magnitudes_dtype() -> None:
    x = np.ones((1, 3), np.longdouble) / 3
    terms = bound_terms("conv", x, np.ones((1, 1, 2), np.longdouble), precision="float32")
    assert terms.output.dtype == np.longdouble  # float32 output holds float32 sums: zeros


def test_gammas_of_no_counts_is_empty() -> None:
    assert gammas(np.array([]), 2.0**-24).shape == (0,)
    assert bound("conv", np.ones((0, 1, 3)), np.ones((1, 1, 2))).shape == (0, 1, 2)


def test_stacked_conv_slices_with_more_images_than_channels() -> None:
    # Slices are stacked along the batch axis: 3 images of 2 channels, 2 groups, values of
    # 30 and more bits (two or three slices each).
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 2, 6)) * (1 + 2.0**-30)
    w = rng.standard_normal((4, 1, 3)) / 3
    call = parse_call("conv", (x, w, None, 1, 0, 1, 2), {})
    exact = ozaki_exact(call, 3)
    true, _ = fraction_exact(call)
    for index in np.ndindex(true.shape):
        hi, lo = Fraction(float(exact.hi[index])), Fraction(float(exact.lo[index]))
        assert abs(true[index] - hi - lo) <= Fraction(float(exact.error[index]))


def test_float64_bound_includes_the_bounds_own_8_eta() -> None:
    eta = Fraction(2) ** -1074
    got = bound("conv", np.zeros((1, 1, 6)), np.zeros((1, 1, 4)))
    # 4 products' underflow, each half a spacing rounded up to one float64 spacing, then 8.
    assert [Fraction(float(v)) for v in got.ravel()] == [(4 + 8) * eta] * 3


def test_float64_zero_inputs_leave_the_underflow_of_every_product() -> None:
    # As for longdouble: P = 0, so the bound is the n products' underflow, n * eta / 2 (half
    # a subnormal each, rounding to nearest), plus the bound's own 8 eta: (10 + 8) eta at
    # the least. (Half a float64 subnormal is not a float64: the bound rounds it up to one.)
    eta = Fraction(2) ** -1074
    got = bound("conv", np.zeros((1, 1, 22)), np.zeros((1, 1, 20)))
    assert all(Fraction(float(v)) >= 18 * eta for v in got.ravel())


def test_float32_outputs_without_terms_and_the_overflow_mask() -> None:
    # conv_input with stride 2 and one tap: odd positions get no term (and no rounding).
    g = np.ones((1, 1, 3), np.float32)
    terms = bound_terms("conv_input", (1, 1, 6), np.ones((1, 1, 1), np.float32), g, stride=2)
    eta = Fraction(2) ** -1074
    assert [Fraction(float(v)) for v in terms.total.ravel()[1::2]] == [8 * eta] * 3
    assert terms.may_overflow is not None
    assert terms.may_overflow.dtype == np.bool_
    huge = bound_terms(
        "conv", np.array([[1e6, 1.0]], np.float32), np.ones((1, 1, 1)), precision="float16"
    )
    assert huge.may_overflow is not None
    assert huge.may_overflow.dtype == np.bool_


# --- the probabilistic gamma and lambda, against a 50-digit evaluation -------------------


def _decimal(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)


def test_probabilistic_gamma_is_the_formula_rounded_up() -> None:
    # gamma~_r(lambda) = exp(lambda sqrt(r) u + r u**2 / (1 - u)) - 1, rounded up by the
    # documented 1 + 8 u (float64). r = 100 and a power-of-two u make the exponent rational;
    # u = 2**-8 makes its second term (0.0015) visible next to the first (0.195).
    with localcontext() as context:
        context.prec = 50
        for r, u, lam in ((100, 2.0**-8, 5.0), (144, 2.0**-24, 7.5), (1, 2.0**-11, 3.0)):
            uu = Fraction(u)
            exponent = Fraction(lam) * math.isqrt(r) * uu + r * uu * uu / (1 - uu)
            exact = _decimal(exponent).exp() - 1
            got = Decimal(probabilistic_gamma(r, u, lam))
            assert exact <= got <= exact * (1 + Decimal(16) * Decimal(2) ** -53)


def test_probabilistic_lambda_is_the_union_bound_rounded_up() -> None:
    # lambda = sqrt(2 ln(2 events / q)) / (1 - u), events = max(terms, 1) max(outputs, 1),
    # rounded up by 1 + 8 u (float64): at least the exact value, within 16 u of it.
    with localcontext() as context:
        context.prec = 50
        for failure, terms, outputs, u in (
            (1e-6, 1, 3, 2.0**-24),
            (1e-3, 0, 0, 2.0**-8),
            (0.25, 144, 32768, 2.0**-11),
        ):
            events = max(terms, 1) * max(outputs, 1)
            inside = 2 * _decimal(2 * events / Fraction(failure)).ln()
            exact = inside.sqrt() / (1 - _decimal(Fraction(u)))
            got = Decimal(probabilistic_lambda(failure, terms, outputs, u))
            assert exact <= got <= exact * (1 + Decimal(16) * Decimal(2) ** -53)


def test_conv_error_bound_passes_probabilistic_on() -> None:
    x = np.ones((1, 1024), np.float32)
    w = np.ones((1, 1, 1024), np.float32)
    rigorous = conv_error_bound(x, w)
    got = conv_error_bound(x, w, probabilistic=1e-6)
    np.testing.assert_array_equal(got, bound("conv", x, w, probabilistic=1e-6))
    assert (got < rigorous / 2).all()  # lambda sqrt(1024) = 32 lambda against 1024 terms


# --- magnitudes: the stacked path (products given) agrees with the computed one ---------


def _magnitude_calls() -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 6)).astype(np.float32)
    x[0, 0, 0] = -9.5  # the largest magnitude is a negative value
    w = rng.standard_normal((3, 2, 2))
    ints = np.array([[[-128, 3, 5, -7, 100]]], dtype=np.int8)  # |-128| is not an int8
    small = np.array([[[5, 7, 9, 200]]], dtype=np.uint8)  # -5 as a uint8 is 251
    g = rng.standard_normal((2, 3, 5))
    return [
        ("conv", (x, w), {"padding": 1}),
        ("conv", (ints, np.array([[[0.5, -2.0]]], np.float32)), {}),
        ("conv", (small, np.array([[[0.25, 3.0]]])), {}),
        ("conv", (np.ones((0, 2, 6), np.float32), w), {}),
        ("conv", (np.ones((0, 1, 4), np.int8), np.ones((1, 1, 2))), {}),
        ("conv_bias", (g,), {}),
        ("conv_weight", (x, w.shape, g[:, :, :5]), {}),
        ("conv_input", (x.shape, w, g), {}),
        ("conv_transpose", (g, np.ones((3, 2, 2)) / 3), {"stride": 2}),
    ]


@pytest.mark.parametrize("index", range(9))
def test_magnitudes_from_given_products_match_the_computed_ones(index: int) -> None:
    op, args, options = _magnitude_calls()[index]
    call = parse_call(op, args, options)
    computed = magnitudes(call)
    left = np.abs(np.asarray(call.left, dtype=np.float64))
    right = None if call.right is None else np.abs(np.asarray(call.right, dtype=np.float64))
    products = np.asarray(call.run(left, right, None), dtype=np.float64)
    count = None
    if op in ("conv_input", "conv_transpose"):
        ones = None if right is None else np.ones(right.shape)
        count = np.asarray(call.run(np.ones(left.shape), ones, None), dtype=np.float64)
    given = magnitudes(call, products=products, count=count)
    # A and B are the largest magnitudes, read exactly (1.0 stands for a missing B).
    values = np.asarray(call.left).ravel().tolist()  # Python ints or floats, exact
    expected_left = max((abs(Fraction(v)) for v in values), default=Fraction(0))
    assert Fraction(given.left_max) == Fraction(computed.left_max) == expected_left
    expected_right = 1.0 if right is None else float(np.max(right, initial=0.0))
    assert given.right_max == computed.right_max == expected_right
    np.testing.assert_array_equal(given.products, computed.products)
    np.testing.assert_array_equal(given.count, computed.count)
    assert given.n == computed.n
    assert given.products.shape == computed.products.shape == products.shape


def test_uniform_counts_of_the_gradients() -> None:
    # conv_weight: every tap of every kernel sums N * L_out products; conv_bias: every
    # channel sums N * L elements. The bound is composed with that one count.
    weight = magnitudes(
        parse_call("conv_weight", (np.ones((2, 1, 5)), (1, 1, 3), np.ones((2, 1, 3))), {})
    )
    assert weight.uniform_count == 6.0
    assert weight.count.tolist() == [[[6.0, 6.0, 6.0]]]
    bias = magnitudes(parse_call("conv_bias", (np.ones((2, 3, 4)),), {}))
    assert bias.uniform_count == 8.0
    assert bias.n == 8
    # No channels: an empty bound (no division by the channel count).
    assert bound("conv_bias", np.ones((2, 0, 3))).shape == (0,)


def test_an_empty_transposed_conv_has_no_terms() -> None:
    # The terms of a transposed conv are counted with a call on ones: here an empty one.
    m = magnitudes(parse_call("conv_transpose", (np.ones((0, 1, 3)), np.ones((1, 1, 2))), {}))
    assert m.n == 0
    assert m.count.shape == (0, 1, 4)
    assert bound("conv_transpose", np.ones((0, 1, 3)), np.ones((1, 1, 2))).shape == (0, 1, 4)


def test_ozaki_of_a_zero_operand_is_the_bias() -> None:
    # All-zero x: no slice at all, so no pair is run; the result is the bias, exactly.
    bias = np.array([0.5, -0.25, 0.1])
    call = parse_call("conv", (np.zeros((2, 1, 5)), np.full((3, 1, 2), 0.1), bias), {})
    exact = ozaki_exact(call, 2)
    assert exact.hi.shape == exact.lo.shape == exact.error.shape == (2, 3, 4)
    np.testing.assert_array_equal(exact.hi, np.broadcast_to(bias[:, None], (2, 3, 4)))
    assert not exact.lo.any()
    assert (exact.error <= 2.0**-1000).all()
    assert exact.method == "ozaki"


# --- one float64 call: when its products are exact, and the error of its sum ------------


def _plan(op: str, *args: Any) -> int | None:
    return one_call_plan(parse_call(op, args, {}))


def test_one_call_plan_reads_narrow_dtypes_and_short_values() -> None:
    f32 = np.array([[0.1, -0.7, 3.0]], np.float32)
    f16 = np.array([[0.1, -0.7, 3.0]], np.float16)
    # By dtype: float32 has 24 bits on a grid of 2**-149, float16 11 bits on 2**-24.
    assert _plan("conv", f32, np.ones((1, 1, 2), np.float32)) == -149 - 149
    assert _plan("conv", f16, np.ones((1, 1, 2), np.float16)) == -24 - 24
    assert _plan("conv_bias", f32[None]) == -149  # one operand: its grid
    # By value: 3 and -5 are 3 bits on a grid of 2**0 (so 24 + 3 bits in all).
    assert _plan("conv", f32, np.array([[[3.0, -5.0]]])) == -149
    # int8 values 3, -5, 6: 3 bits, grid 2**0; and 200 is short as well.
    assert _plan("conv", np.array([[3, -5, 6]], np.int8), np.ones((1, 1, 2), np.float32)) == -149
    assert _plan("conv", np.array([[200, -3]]), np.ones((1, 1, 2), np.float32)) == -149
    # 0.1 in float64 has 53 bits: its products with a float32 round.
    assert _plan("conv", np.array([[0.1, 0.2]]), np.ones((1, 1, 2), np.float32)) is None


def test_one_call_plan_limits_are_sharp() -> None:
    f32 = np.ones((1, 2), np.float32)
    # 24 + 29 = 53 bits: exact. 24 + 30 = 54: not.
    assert _plan("conv", f32, np.array([[[1 + 2.0**-28]]])) == -149 - 28
    assert _plan("conv", f32, np.array([[[1 + 2.0**-29]]])) is None
    # Products on a grid of 2**-1074 are float64 numbers; of 2**-1075 they may not be.
    assert _plan("conv", f32, np.array([[[2.0**-925]]])) == -1074
    assert _plan("conv", f32, np.array([[[2.0**-926]]])) is None
    # Integers beyond 2**53 are not read exactly in float64 (2**53 + 1 would be 2**53);
    # one operand alone is judged by that too.
    assert _plan("conv_bias", np.array([[[2**53 + 2, 1]]], np.int64)) is None
    assert _plan("conv_bias", np.array([[[2**53 + 1, 1]]], np.int64)) is None
    assert _plan("conv_bias", np.array([[[2**52 + 1, 1]]], np.int64)) == 0


def test_an_integer_beyond_2_53_is_not_rounded_by_the_reference() -> None:
    # (2**53 + 1) - 2**53 = 1: float64 reads 2**53 + 1 as 2**53 (round to even), so a
    # reference from one float64 call would say 0.
    x = np.array([[2**53 + 1, -(2**53)]], dtype=np.int64)
    exact = oracle_for("conv", (x, np.array([[[1.0, 1.0]]])), {}).exact
    assert exact is not None
    gap = abs(1 - Fraction(float(exact.hi[0, 0])) - Fraction(float(exact.lo[0, 0])))
    assert gap <= Fraction(float(exact.error[0, 0]))


def _gamma_up(count: int) -> Fraction:
    u = Fraction(2) ** -53
    return count * u / (1 - count * u)


def test_one_call_exact_error_is_gamma_n_minus_1_of_the_magnitudes() -> None:
    u = Fraction(2) ** -53
    call = parse_call("conv", (np.array([[1.0, 2.0, 3.0]]), np.ones((1, 1, 1))), {})
    result = np.array([[1.0, 2.0, 3.0]])
    low = -60  # sums up to 2**-7 are exact
    limit = 2.0**-7
    products = np.array([[limit, 1.5 * limit, 8.0]])
    for n in (2, 101):
        exact = one_call_exact(call, result, products, n, low)
        assert exact.method == "float64"
        assert exact.hi.tolist() == result.tolist()
        assert not exact.lo.any()
        # At the limit the sum is exact (every partial sum is a float64 number).
        assert exact.error[0, 0] == 0.0
        for k in (1, 2):
            p = Fraction(float(products[0, k]))
            stated = Fraction(float(exact.error[0, k]))
            assert _gamma_up(n - 1) * p <= stated <= _gamma_up(n - 1) * p * (1 + 8 * u)
    # One term: no addition, no error.
    assert not one_call_exact(call, result, products, 1, low).error.any()
    # A grid so coarse that 2**(53 + low) is past float64: the limit is 2**1023.
    huge = np.array([[2.0**1023, 1.5 * 2.0**1023, 1.0]])
    errors = one_call_exact(call, result, huge, 3, 1000).error
    assert errors[0, 0] == 0.0
    assert errors[0, 1] > 0.0


def test_integers_beyond_2_53_are_not_held_in_float64() -> None:
    # 2**53 is a float64 number; 2**53 + 1 is not, so a float64 kernel rounds it and the
    # bound counts that rounding (u |a| |b| at least).
    w = np.array([[[1.0, 1.0]]])
    float64 = FORMATS["float64"]
    inside = magnitudes(parse_call("conv", (np.array([[2**53, 1]], np.int64), w), {}))
    assert inside.held(0, float64)
    beyond = parse_call("conv", (np.array([[2**53 + 1, -(2**53)]], np.int64), w), {})
    assert not magnitudes(beyond).held(0, float64)
    u = Fraction(2) ** -53
    products = Fraction(2**53 + 1) + Fraction(2**53)
    got = Fraction(float(bound("conv", beyond.left, w)[0, 0]))
    assert got >= u * products + _gamma_up(2) * products


# --- the Ozaki split: slices, pruned pairs, the double-double sum ------------------------


def test_split_keeps_slices_after_an_empty_one() -> None:
    # 1 and 2**-60 with 25-bit slices: slice 0 holds 1, slice 1 (2**-25 .. 2**-50) is
    # empty, slice 2 holds 2**-60. Every bit is kept.
    slices, top, rest = split(np.array([1.0, 2.0**-60]), 25, 6)
    assert top == 1
    assert len(slices) == 2
    assert not rest.any()
    total = [sum(Fraction(float(s[i])) for s in slices) * 2**top for i in range(2)]
    assert total == [Fraction(1), Fraction(2) ** -60]


def test_ozaki_split_beta_and_slice_count() -> None:
    # beta = floor((53 - ceil(log2(6 n))) / 2): 6 parts of a diagonal are added exactly.
    # n = 5: ceil(log2(30)) = 5, beta = 24 (with 7 parts it would be ceil(log2(35)) = 6).
    call = parse_call("conv", (np.ones((1, 1, 6)), np.ones((1, 1, 5))), {})
    assert ozaki_split(call, 5).beta == 24
    # At most 6 slices of 25 bits (n = 1): 1 and 2**-160 are 161 bits apart, so 2**-160,
    # past 6 * 25 = 150 bits, is left in the rest.
    wide = parse_call("conv", (np.array([[1.0, 2.0**-160]]), np.ones((1, 1, 1))), {})
    chopped = ozaki_split(wide, 1)
    assert chopped.beta == 25
    assert len(chopped.left_slices) == 1
    assert chopped.truncated
    assert chopped.left_rest.tolist() == [[0.0, 2.0**-160]]


def _pruning_call() -> Any:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 1, 6))
    w = rng.standard_normal((2, 1, 3))
    return parse_call("conv", (x, w), {})


def test_pruned_pairs_and_their_bound() -> None:
    # Pair (k, m) of slices is at most n 2**(scale - beta (k + m)) per output; it is left
    # out when that is below ``negligible`` (never the first), and those bounds are summed.
    call = _pruning_call()
    n = 3
    chopped = ozaki_split(call, n)
    k_count, m_count = len(chopped.left_slices), len(chopped.right_slices)
    assert k_count == m_count == 3

    def size(k: int, m: int) -> Fraction:
        return n * Fraction(2) ** (chopped.scale - chopped.beta * (k + m))

    everything = [(k, m) for k in range(k_count) for m in range(m_count)]
    for negligible in (0.0, float(size(0, 1)), float(size(1, 2)), 1e300):
        kept = [(k, m) for k, m in everything if k + m == 0 or size(k, m) >= negligible]
        pairs, dropped = chopped.pairs(negligible)
        assert len(pairs) == len(kept)
        for (a, b), (k, m) in zip(pairs, kept, strict=True):
            assert a is chopped.left_slices[k]
            assert b is chopped.right_slices[m]
        expected = sum((size(k, m) for k, m in everything if (k, m) not in kept), Fraction(0))
        # A float64 sum of at most 8 terms: within 8 u of the exact sum.
        assert abs(Fraction(dropped) - expected) <= expected * 8 * Fraction(2) ** -53
    # The pruned pairs' bound is added to the error, rounded up: at least it, within 16 u.
    negligible = float(size(1, 1))
    pairs, dropped = chopped.pairs(negligible)
    parts = [np.asarray(call.run(a, b, None), dtype=np.float64) for a, b in pairs]
    shape = parts[0].shape
    with_drop = chopped.finish(parts, shape, dropped, negligible=negligible)
    without = chopped.finish(parts, shape, 0.0, negligible=negligible)
    u = Fraction(2) ** -53
    true, _ = fraction_exact(call)
    for index in np.ndindex(shape):
        added = Fraction(float(with_drop.error[index])) - Fraction(float(without.error[index]))
        assert Fraction(dropped) <= added <= Fraction(dropped) * (1 + 16 * u)
        hi, lo = Fraction(float(with_drop.hi[index])), Fraction(float(with_drop.lo[index]))
        assert abs(true[index] - hi - lo) <= Fraction(float(with_drop.error[index]))
    # The same through ozaki_exact.
    direct = ozaki_exact(call, n, negligible=negligible)
    np.testing.assert_array_equal(direct.error, with_drop.error)
    np.testing.assert_array_equal(direct.hi, with_drop.hi)


def test_finish_and_diagonals_defaults_keep_every_pair() -> None:
    # Without ``negligible`` every pair is kept and nothing is dropped: short values (one
    # slice each) give the exact result with no error beyond the 2 eta of scaling back.
    call = parse_call("conv", (np.array([[0.5, -1.5, 3.0]]), np.array([[[0.25, 2.0]]])), {})
    chopped = ozaki_split(call, 2)
    pairs, dropped = chopped.pairs()
    assert dropped == 0.0
    parts = [np.asarray(call.run(a, b, None), dtype=np.float64) for a, b in pairs]
    assert len(chopped.diagonals(parts)) == 1
    exact = chopped.finish(parts, parts[0].shape)
    assert exact.method == "ozaki"
    assert exact.hi.tolist() == [[0.5 * 0.25 - 1.5 * 2.0, -1.5 * 0.25 + 3.0 * 2.0]]
    assert (exact.error <= 2 * 2.0**-1074).all()


def test_ozaki_result_past_float64_is_refused() -> None:
    call = parse_call("conv", (np.array([[1e300, 1e300]]), np.array([[[1e10, 1.0]]])), {})
    with pytest.raises(
        ValueError, match=r"^the exact result leaves the float64 range; use dtype=object inputs$"
    ):
        ozaki_exact(call, 2)


def _gamma_of(count: int) -> Fraction:
    return _gamma_up(count)


def test_sum_levels_error_is_gamma_of_the_levels_times_the_tail() -> None:
    u = Fraction(2) ** -53
    one = sum_levels([np.array([3.0])])
    assert one.method == "ozaki"
    assert not one.error.any()
    # Two levels: one TwoSum, exact.
    two = sum_levels([np.array([1.0]), np.array([2.0**-60 + 2.0**-70])])
    assert two.method == "ozaki"
    assert not two.error.any()
    assert Fraction(float(two.hi[0])) + Fraction(float(two.lo[0])) == 1 + Fraction(
        2.0**-60 + 2.0**-70
    )
    # Three and four levels: the tail and the later levels are added in float64; the error
    # is gamma_L (L levels) times |tail| + sum |levels[2:]|, rounded up.
    for levels in (
        [np.array([1.0]), np.array([2.0**-54]), np.array([2.0**-100])],
        [np.array([1.0]), np.array([3.0 * 2.0**-55]), np.array([2.0**-90]), np.array([2.0**-95])],
    ):
        total = sum_levels(levels)
        assert total.method == "ozaki"
        first, second = Fraction(float(levels[0][0])), Fraction(float(levels[1][0]))
        tail = first + second - Fraction(float(levels[0][0] + levels[1][0]))
        size = abs(tail) + sum(abs(Fraction(float(level[0]))) for level in levels[2:])
        expected = _gamma_of(len(levels)) * size
        stated = Fraction(float(total.error[0]))
        assert expected <= stated <= expected * (1 + 8 * u)


# --- exact rational arithmetic: object operands, integers -------------------------------


def test_scaled_integers_of_each_kind() -> None:
    ints, exponent = scaled_integers(np.array([3, -8, 2**60 + 1], dtype=np.int64))
    assert ints.dtype == object
    assert ints.tolist() == [3, -8, 2**60 + 1]  # exact: never through a float
    assert exponent == 0
    flags, exponent = scaled_integers(np.array([True, False]))
    assert flags.tolist() == [1, 0]
    assert exponent == 0
    fractions = np.array([Fraction(1, 3), 2], dtype=object)
    values, exponent = scaled_integers(fractions)
    assert values.dtype == object
    assert values.tolist() == [Fraction(1, 3), Fraction(2)]
    assert exponent == 0
    # All zeros: zero integers (any exponent).
    zeros, exponent = scaled_integers(np.zeros(3))
    assert [v * Fraction(2) ** exponent for v in zeros.tolist()] == [0, 0, 0]
    with pytest.raises(
        ValueError, match=r"^the exact reference needs finite inputs, got an array with NaN or Inf$"
    ):
        scaled_integers(np.array([1.0, np.inf]))


def test_object_arrays_of_complex_numbers_are_split_into_parts() -> None:
    # x holds Python complex numbers and fractions; the weight is real. Each part of the
    # result is computed exactly, against a sum written out here.
    x = np.array([[1 + 2j, Fraction(1, 3), -0.5j]], dtype=object)
    w = np.array([[[2, Fraction(1, 7)]]], dtype=object)
    call = parse_call("conv", (x, w), {})
    real, imag = fraction_exact(call)
    assert imag is not None
    values = [complex(v) if isinstance(v, complex) else v for v in x.ravel().tolist()]
    re_parts = [Fraction(v.real) if isinstance(v, complex) else Fraction(v) for v in values]
    im_parts = [Fraction(v.imag) if isinstance(v, complex) else Fraction(0) for v in values]
    taps = [Fraction(2), Fraction(1, 7)]
    for j in range(2):
        assert real[0, j] == re_parts[j] * taps[0] + re_parts[j + 1] * taps[1]
        assert imag[0, j] == im_parts[j] * taps[0] + im_parts[j + 1] * taps[1]
    assert real.dtype == imag.dtype == object
    # Object arrays of real numbers have no imaginary part at all.
    real_only, none = fraction_exact(
        parse_call("conv", (np.array([[Fraction(1, 3), 2]], object), w), {})
    )
    assert none is None
    assert real_only.tolist() == [[Fraction(2, 3) + Fraction(2, 7)]]


def _exact_conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> list[Any]:
    """conv (stride 1, no padding) of complex or real values, exactly, as (re, im) fractions."""

    def pair(v: Any) -> tuple[Fraction, Fraction]:
        v = complex(v)
        return Fraction(v.real), Fraction(v.imag)

    batch, channels, length = x.shape
    outs, _, taps = w.shape
    result = []
    for n in range(batch):
        for o in range(outs):
            for j in range(length - taps + 1):
                re, im = pair(b[o]) if b is not None else (Fraction(0), Fraction(0))
                for c in range(channels):
                    for t in range(taps):
                        (a, ai), (v, vi) = pair(x[n, c, j + t]), pair(w[o, c, t])
                        re += a * v - ai * vi
                        im += a * vi + ai * v
                result.append((re, im))
    return result


@pytest.mark.parametrize(
    "kinds", ["ccc", "rc-", "crr", "rrc", "cc-", "rcr"], ids=lambda k: f"x{k[0]}w{k[1]}b{k[2]}"
)
def test_fraction_exact_of_every_mix_of_complex_parts(kinds: str) -> None:
    # c: complex, r: real, -: no bias. Each part is an exact sum of products of parts.
    rng = np.random.default_rng(8)

    def values(shape: tuple[int, ...], kind: str) -> np.ndarray | None:
        if kind == "-":
            return None
        real = rng.integers(-8, 9, shape) / 4
        return real + 1j * rng.integers(-8, 9, shape) / 8 if kind == "c" else real

    x, w, b = values((2, 2, 4), kinds[0]), values((2, 2, 2), kinds[1]), values((2,), kinds[2])
    assert x is not None
    assert w is not None
    real, imag = fraction_exact(parse_call("conv", (x, w, b), {}))
    expected = _exact_conv1d(x, w, b)
    assert real.shape == (2, 2, 3)
    assert real.ravel().tolist() == [re for re, _ in expected]
    assert imag is not None
    assert imag.ravel().tolist() == [im for _, im in expected]


def test_adding_floats_to_an_exact_keeps_float64_errors() -> None:
    one = Exact(np.array([1.0]), np.array([0.0]), np.array([0.0]), "ozaki")
    total = add(one, np.array([2.0**-70]))
    assert total.error.dtype == np.float64
    assert total.hi.dtype == total.lo.dtype == np.float64


def test_adding_two_exacts_whose_high_parts_round() -> None:
    # 1 + 2**-60 is not a float64: TwoSum leaves 2**-60 in its error term, which must end in
    # the low part with its sign.
    first = Exact(np.array([1.0]), np.array([0.0]), np.array([0.0]), "ozaki")
    second = Exact(np.array([2.0**-60]), np.array([0.0]), np.array([0.0]), "ozaki")
    total = add(first, second)
    assert Fraction(float(total.hi[0])) + Fraction(float(total.lo[0])) == 1 + Fraction(2) ** -60
    minus = add(first, second.negative())
    assert Fraction(float(minus.hi[0])) + Fraction(float(minus.lo[0])) == 1 - Fraction(2) ** -60


def test_default_models_of_mixed_float_dtypes() -> None:
    # mimo_conv computes mixed float dtypes in the widest one; ml_dtypes operands alone as
    # PyTorch does (float32 accumulation), one of them alone in its own default model.
    ml_dtypes = pytest.importorskip("ml_dtypes")
    ones = np.ones((1, 1, 2))
    for first, second in ((np.float64, np.float32), (np.float16, np.float64)):
        call = parse_call("conv", (ones.astype(first), ones.astype(second)), {})
        assert call_precision(call) == default_precision(np.dtype(np.float64))
    call = parse_call("conv", (ones.astype(np.float32), ones.astype(np.float16)), {})
    assert call_precision(call) == default_precision(np.dtype(np.float32))
    grads = parse_call("conv_bias", (ones.astype(ml_dtypes.bfloat16),), {})
    assert call_precision(grads) == default_precision(np.dtype(ml_dtypes.bfloat16))


# --- compose: where a correct kernel may overflow ------------------------------------


_TERMS = ("inputs", "accumulation", "underflow", "output")


def _near_the_top(
    op: str, args: tuple[Any, ...], precision: Precision, n: int
) -> tuple[Any, np.ndarray]:
    """Terms of a hand-made call whose magnitudes P sweep, by float64 ulps, the largest
    finite number of the model (inputs exact in the input format, so their term is 0)."""
    call = parse_call(op, args, {})
    largest = min(precision.accumulate_format.max, precision.output_format.max)

    def terms_of(products: np.ndarray) -> Any:
        count = np.full(products.shape, float(n))
        mag = Magnitudes(products, None, count, 1.0, 1.0, False, call)
        return compose(mag, precision)

    # Bisect for the P at which the sum of the terms reaches the largest number, then sweep
    # 60 ulps either side of it.
    low, high = largest / 2, largest
    for _ in range(80):
        middle = (low + high) / 2
        terms = terms_of(np.array([middle]))
        reach = sum(
            float(getattr(terms, name)[0])
            for name in ("inputs", "accumulation", "underflow", "output")
        )
        low, high = (middle, high) if middle + reach < largest else (low, middle)
    sweep = np.array([high])
    for _ in range(60):
        sweep = np.concatenate(
            ([np.nextafter(sweep[0], 0)], sweep, [np.nextafter(sweep[-1], np.inf)])
        )
    return terms_of(sweep), sweep


@pytest.mark.parametrize(
    ("op", "args", "precision", "n"),
    [
        # float32 sums rounded to float16: an output term of about u_out |sum|.
        ("conv_bias", (np.ones((2, 1, 1), np.float16),), PRESETS["float16"], 2),
        # float16 sums with flush-to-zero: an underflow term of 2**-14 per addition.
        (
            "conv",
            (np.ones((1, 1, 2), np.float16), np.ones((1, 1, 2), np.float16)),
            Precision("float16", "float16", flush_subnormals=True),
            2,
        ),
    ],
    ids=["float16-output", "float16-flush"],
)
def test_overflow_is_flagged_exactly_where_the_terms_reach_the_top(
    op: str, args: tuple[Any, ...], precision: Precision, n: int
) -> None:
    # Soundness: wherever M + the error terms (exactly) reach the largest finite number, a
    # correct kernel may overflow, so the flag is set. Tightness: not where they stay below
    # it by more than the bound's own rounding (16 u).
    u = Fraction(2) ** -53
    terms, sweep = _near_the_top(op, args, precision, n)
    largest = Fraction(min(precision.accumulate_format.max, precision.output_format.max))
    assert terms.may_overflow is not None
    flagged = 0
    for index, p in enumerate(sweep.tolist()):
        reach = Fraction(p) + sum(
            (
                Fraction(float(getattr(terms, name)[index]))
                for name in ("inputs", "accumulation", "underflow", "output")
            ),
            Fraction(0),
        )
        if reach >= largest:
            assert terms.may_overflow[index]
            flagged += 1
        if reach * (1 + 16 * u) < largest:
            assert not terms.may_overflow[index]
    assert 0 < flagged < len(sweep)
    assert terms.output.any() or terms.underflow.any()


def test_an_input_that_rounds_to_infinity_flags_every_output() -> None:
    # float16 inputs: 65520 = 65504 (1 + 2**-11) is the midpoint to 65536 and rounds (to
    # even) to infinity; 65519 rounds to 65504. The products stay small (|w| = 2**-20), so
    # only the input test can flag them. Each operand is read.
    small = 2.0**-20
    model = PRESETS["float16"]

    def flags(x: float, w: float, b: float | None) -> np.ndarray:
        bias = None if b is None else np.array([b])
        terms = bound_terms(
            "conv", np.array([[x, small]]), np.array([[[w]]]), bias, precision=model
        )
        assert terms.may_overflow is not None
        return terms.may_overflow

    assert flags(65520.0, small, None).all()
    assert not flags(65519.0, small, None).any()
    assert flags(small, 65520.0, None).all()
    assert not flags(small, 65519.0, None).any()
    # (A bias at the top is flagged anyway: the sum M holds |c|.)
    assert flags(small, small, 65520.0).all()
    # A zero-channel call with a bias: nothing to flag, nothing to refuse.
    empty = bound_terms("conv", np.ones((1, 1, 2)), np.ones((0, 1, 1)), np.ones(0), precision=model)
    assert empty.total.shape == (1, 0, 2)


def test_a_single_term_has_no_sum_to_underflow() -> None:
    # One tap, no bias: no addition, so flush-to-zero adds only the product's underflow
    # (2**-14 under float16 flush), once: zero inputs give that, times 1 + gamma_1.
    model = Precision("float16", "float16", flush_subnormals=True)
    terms = bound_terms(
        "conv", np.zeros((1, 3), np.float16), np.zeros((1, 1, 1), np.float16), precision=model
    )
    e = Fraction(2) ** -14
    for value in terms.underflow.ravel().tolist():
        assert e <= Fraction(value) <= e * (1 + Fraction(2) ** -10)


# --- compose with a probabilistic accumulation term ------------------------------------


def test_probabilistic_accumulation_is_the_smaller_gamma() -> None:
    # float32 conv of 1024 products: r = 1024 roundings (1023 additions, the product), and
    # lambda from the union bound over 1024 terms of each of the 3 outputs.
    q = 1e-6
    u = 2.0**-24
    x = np.ones((1, 1026), np.float32)
    w = np.ones((1, 1, 1024), np.float32)
    call = parse_call("conv", (x, w), {})
    mag = magnitudes(call)
    terms = compose(mag, PRESETS["float32"], q)
    assert terms.probabilistic == q
    lam = probabilistic_lambda(q, 1024, 3, u)
    tilde = probabilistic_gamma(1024, u, lam)
    assert tilde < gamma(1024, u)
    np.testing.assert_array_equal(terms.accumulation, tilde * mag.total)
    rigorous = compose(mag, PRESETS["float32"])
    assert rigorous.probabilistic is None
    assert (terms.total < rigorous.total).all()
    # The failure probability is checked against the model here too.
    with pytest.raises(ValueError, match="rounding toward zero"):
        compose(mag, Precision("float32", "float32", rounding="toward_zero"), q)
    with pytest.raises(ValueError, match=r"probabilistic must be a failure probability"):
        compose(mag, PRESETS["float32"], 2.0)
    # An empty call: an empty bound.
    empty = bound("conv", np.ones((0, 1, 4), np.float32), w[..., :2], probabilistic=q)
    assert empty.shape == (0, 1, 3)


@needs_longdouble
def test_longdouble_refuses_a_probabilistic_bound() -> None:
    x = np.ones((1, 3), np.longdouble)
    with pytest.raises(
        ValueError,
        match=r"^probabilistic= needs a float model; longdouble inputs are bounded rigorously$",
    ):
        bound("conv", x, np.ones((1, 1, 2), np.longdouble), probabilistic=1e-6)


# --- magnitudes of object, complex and longdouble operands ---------------------------


def test_object_complex_operands_are_bounded_as_complex128() -> None:
    values = [[1 + 2j, Fraction(1, 4), -0.5j]]
    x = np.array(values, dtype=object)
    w = np.array([[[2.0, 0.5]]])
    mag = magnitudes(parse_call("conv", (x, w), {}))
    assert mag.complex_result
    as_complex = np.array([[1 + 2j, 0.25, -0.5j]])
    np.testing.assert_array_equal(
        mag.products, magnitudes(parse_call("conv", (as_complex, w), {})).products
    )
    # Object arrays of real numbers are real.
    real = magnitudes(parse_call("conv", (np.array([[0.5, Fraction(1, 3)]], object), w), {}))
    assert not real.complex_result


def test_complex_magnitudes_are_float64_moduli() -> None:
    # |z| of complex64 values is taken in complex128 (float32 moduli would round by
    # 2**-24, more than the magnitudes' slack), and the bound of complex128 is float64.
    rng = np.random.default_rng(4)
    z = (rng.standard_normal((1, 1, 5)) + 1j * rng.standard_normal((1, 1, 5))).astype(np.complex64)
    w = np.ones((1, 1, 2), np.complex64) / 3
    narrow = bound("conv", z, w, precision="float32")
    wide = bound("conv", z.astype(np.complex128), w.astype(np.complex128), precision="float32")
    np.testing.assert_array_equal(narrow, wide)
    assert wide.dtype == np.float64


@needs_longdouble
def test_longdouble_and_object_floats_are_not_held_in_float32() -> None:
    third = np.full((1, 3), np.longdouble(1) / 3)
    terms = bound_terms("conv", third, np.ones((1, 1, 2), np.longdouble), precision="float32")
    assert (terms.inputs > 0).all()
    floats = np.array([[0.5, 0.25, 0.125]], dtype=object)  # float32 values, not known as such
    terms = bound_terms("conv", floats, np.ones((1, 1, 2)), precision="float32")
    assert (terms.inputs > 0).all()


def test_ints_in_float64_is_the_closed_range_of_2_53() -> None:
    assert ints_in_float64(np.array([2**53, -(2**53)], np.int64))
    assert not ints_in_float64(np.array([2**53 + 1], np.int64))
    assert not ints_in_float64(np.array([-(2**53) - 1], np.int64))
    assert ints_in_float64(np.array([2**64 - 1], np.uint64)[:0])  # no element: vacuously
    assert not ints_in_float64(np.array([2**64 - 1], np.uint64))


def test_diagonals_without_negligible_add_every_pair() -> None:
    # 3 slices each: 9 pairs on 5 diagonals k + m = 0 .. 4, each added exactly.
    call = _pruning_call()
    chopped = ozaki_split(call, 3)
    pairs, _ = chopped.pairs()
    parts = [np.asarray(call.run(a, b, None), dtype=np.float64) for a, b in pairs]
    sums = chopped.diagonals(parts)
    assert len(sums) == 5
    total = sum(Fraction(float(v)) for s in sums for v in s.ravel()[:1])
    assert total == sum(Fraction(float(p.ravel()[0])) for p in parts)


def test_ozaki_of_a_zero_linear_operand() -> None:
    exact = ozaki_exact(parse_call("conv_bias", (np.zeros((2, 3, 4)),), {}), 8)
    assert exact.hi.shape == (3,)
    assert not exact.hi.any()


def test_check_probabilistic_refuses_what_is_not_a_probability() -> None:
    not_numbers: tuple[object, ...] = ("0.1", True, type(None))
    for wrong in not_numbers:
        with pytest.raises(TypeError, match=r"^probabilistic must be a float in \(0, 1\) or None"):
            check_probabilistic(wrong, None)
    outside: tuple[float, ...] = (0, 0.0, 1, 1.0, 1.5)
    for value in outside:
        with pytest.raises(ValueError, match=r"^probabilistic must be a failure probability"):
            check_probabilistic(value, None)
    assert check_probabilistic(0.25, None) == 0.25
    toward_zero = Precision("float32", "float32", rounding="toward_zero")
    with pytest.raises(ValueError, match=r"^probabilistic= assumes rounding errors of mean zero"):
        check_probabilistic(0.25, toward_zero)


def test_given_products_are_the_ones_used() -> None:
    # magnitudes(products=...) takes P from the caller (computed with other calls): twice
    # the products give twice P (up to the added subnormals).
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    w = np.array([[[0.5, 0.25]]], np.float32)
    call = parse_call("conv", (x, w), {})
    computed = magnitudes(call)
    products = np.asarray(call.run(np.abs(x), np.abs(w), None), dtype=np.float64)
    doubled = magnitudes(call, products=2 * products)
    np.testing.assert_allclose(doubled.products, 2 * computed.products, rtol=1e-15)


@needs_longdouble
def test_a_longdouble_weight_makes_longdouble_magnitudes() -> None:
    x = np.ones((1, 3))
    w = np.full((1, 1, 2), np.longdouble(1) / 3)
    assert bound("conv", x, w).dtype == np.longdouble


@needs_longdouble
def test_a_longdouble_bias_is_kept_in_longdouble() -> None:
    # Zero x: M = |c| exactly, and the accumulation term is gamma_r |c| with r = 3 (two
    # products and the bias: 2 additions, one product rounding) at least. |c| = 1/3 rounded
    # to float64 would be below it by about 2**-54 of itself.
    u, _ = _long_units()
    bias = np.array([np.longdouble(1) / 3])
    x = np.zeros((1, 1, 4), np.longdouble)
    terms = bound_terms("conv", x, np.ones((1, 1, 2), np.longdouble), bias)
    expected = exact_gamma(3, u) * to_fraction(bias[0])
    assert all(to_fraction(v) >= expected for v in terms.accumulation.ravel())


def test_weight_layout_alone_is_not_the_canonical_order() -> None:
    # HWIO weights with NCHW inputs: terms per output C_in * kh * kw = 2 * 3 * 3, not the
    # product of the weight's last three axes (3 * 2 * 4).
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((3, 3, 2, 4))
    mag = magnitudes(parse_call("conv", (x, w), {"weight_layout": "HWIO"}))
    assert mag.n == 18
    canonical = bound("conv", x, w.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(bound("conv", x, w, weight_layout="HWIO"), canonical)


# --- the quicker paths: each against the general computation it replaces ----------------


def _compose_by_formula(mag: Magnitudes, precision: Precision, probabilistic: Any = None) -> Any:
    """The bound's terms as docs/testing.md writes them, every term an array operation."""
    acc, out, fmt_in = precision.accumulate_format, precision.output_format, precision.input_format
    rounding, flush = precision.rounding, precision.flush_subnormals
    u_in, e_in = fmt_in.unit_roundoff(rounding), fmt_in.underflow(rounding, flush=flush)
    (u_a, e_a), (u_b, e_b), (u_c, e_c) = [
        (0.0, 0.0) if mag.held(which, fmt_in) else (u_in, e_in) for which in range(3)
    ]
    count = mag.count * (2 if mag.complex_result else 1)
    products = mag.products
    if mag.call.bilinear:
        inputs = (u_a + u_b + u_a * u_b) * products + count * (
            e_a * (1 + u_b) * mag.right_max + e_b * (1 + u_a) * mag.left_max + e_a * e_b
        )
    else:
        inputs = u_a * products + count * e_a
    if mag.bias is not None:
        inputs = inputs + u_c * mag.bias + e_c
    u = acc.unit_roundoff(rounding)
    terms = count + (1 if mag.bias is not None else 0)
    product_rounds = 0 if (not mag.call.bilinear or precision.products_exact) else 1
    roundings = np.maximum(terms - 1, 0) + product_rounds * (count > 0)
    g = gammas(roundings, u)
    gain = g
    if probabilistic is not None:
        lam = probabilistic_lambda(
            probabilistic, int(np.max(terms, initial=0)), int(products.size), u
        )
        gain = np.minimum(g, probabilistic_gamma(int(np.max(roundings, initial=0)), u, lam))
    total_in = mag.total + inputs
    accumulation = gain * total_in
    e_product = acc.underflow(rounding, flush=flush) if mag.call.bilinear else 0.0
    e_sum = acc.smallest_normal if flush else 0.0
    underflow = (count * e_product + np.maximum(terms - 1, 0) * e_sum) * (1 + g)
    output = np.zeros(products.shape)
    if not out.holds(acc):
        output = out.unit_roundoff(rounding) * (
            total_in + accumulation + underflow
        ) + out.underflow(rounding, flush=flush)
    total = inputs + accumulation + underflow + output
    if mag.complex_result:
        total = total * 1.4142135623730951
    total = total * (1 + 8 * 2.0**-53) + 8 * 2.0**-1074
    reach = (total_in + accumulation + underflow + output) * (1 + 8 * 2.0**-53)
    may_overflow = reach >= min(acc.max, out.max)
    top_in = fmt_in.max + math.ldexp(fmt_in.unit_roundoff("nearest"), math.frexp(fmt_in.max)[1] - 1)
    bias_max = float(np.max(mag.bias, initial=0.0)) if mag.bias is not None else 0.0
    if max(mag.left_max, mag.right_max if mag.call.bilinear else 0.0) >= top_in or (
        bias_max >= top_in
    ):
        may_overflow = np.ones(products.shape, dtype=bool)
    return inputs, accumulation, underflow, output, total, may_overflow


_COMPOSE_CASES = [
    # (x, w, bias or None, options)
    (np.ones((1, 2, 5), np.float32), np.ones((3, 2, 2), np.float32), None, {}),
    (np.arange(10.0).reshape(1, 2, 5), np.ones((3, 2, 2)) / 3, np.array([1.0, -2.0, 0.5]), {}),
    (np.full((1, 1, 4), 6e4, np.float16), np.ones((1, 1, 2), np.float16), None, {}),
    (np.full((1, 1, 4), 3e38, np.float32), np.ones((1, 1, 3), np.float32), None, {}),
    (np.ones((1, 1, 4)), np.ones((1, 1, 2)), np.array([np.inf]), {}),
    (np.ones((1, 1, 4)), np.ones((1, 1, 2)), np.array([7e4]), {}),
    (np.array([[1.0 + 2j, 0.5, -1j, 3.0]]), np.ones((2, 1, 2)), None, {}),
    (np.full((1, 1, 6), np.inf), np.ones((1, 1, 2)), None, {}),
    (np.ones((1, 1, 6)), np.ones((1, 1, 3)), None, {"padding": 2, "padding_mode": "reflect"}),
]
_COMPOSE_MODELS = [
    PRESETS["float32"], PRESETS["float64"], PRESETS["bfloat16"], PRESETS["tf32"],
    PRESETS["float16"], PRESETS["float16-accumulate"],
    Precision("float32", "float32", rounding="toward_zero", flush_subnormals=True),
    Precision("float16", "float32", output="float16", flush_subnormals=True),
]  # fmt: skip


@pytest.mark.parametrize("case", range(len(_COMPOSE_CASES)))
@pytest.mark.parametrize("model", range(len(_COMPOSE_MODELS)))
def test_compose_is_the_formula_bit_for_bit(case: int, model: int) -> None:
    # compose leaves out zero terms and reads the overflow reach from the largest M; every
    # term must still be the general formula's, bit for bit (non-finite inputs included).
    x, w, bias, options = _COMPOSE_CASES[case]
    precision = _COMPOSE_MODELS[model]
    for op, args in (
        ("conv", (x, w, bias)),
        ("conv_transpose", (x, np.ones((x.shape[-2], 2, 2)), None)),
    ):
        if op == "conv_transpose" and options:
            continue
        mag = magnitudes(parse_call(op, args, options))
        for probabilistic in (None, 1e-6):
            if probabilistic is not None and precision.rounding == "toward_zero":
                continue
            with np.errstate(invalid="ignore", over="ignore"):
                terms = compose(mag, precision, probabilistic)
                expected = _compose_by_formula(mag, precision, probabilistic)
            got: tuple[Any, ...] = (
                terms.inputs, terms.accumulation, terms.underflow, terms.output, terms.total,
                terms.may_overflow,
            )  # fmt: skip
            for name, value, want in zip(
                ("inputs", "accumulation", "underflow", "output", "total", "overflow"),
                got, expected, strict=True,
            ):  # fmt: skip
                shape = mag.products.shape
                np.testing.assert_array_equal(
                    np.broadcast_to(value, shape), np.broadcast_to(want, shape), err_msg=name
                )


def test_compose_flags_overflow_from_the_largest_reach_only_at_the_threshold() -> None:
    # Uniform count, float32: the reach of the largest M decides. M (1 + gamma_1) with the
    # margins: the float32 number one below the largest reaches the top, two below do not;
    # only that element is flagged.
    w = np.ones((1, 1, 1), np.float32)
    largest = np.finfo(np.float32).max
    below = np.nextafter(largest, np.float32(0))
    for value, flagged in ((np.nextafter(below, np.float32(0)), False), (below, True)):
        x = np.array([[1.0, value]], np.float32)
        terms = bound_terms("conv", x, w)
        expected = _compose_by_formula(
            magnitudes(parse_call("conv", (x, w), {})), PRESETS["float32"]
        )
        assert terms.may_overflow is not None
        np.testing.assert_array_equal(terms.may_overflow, expected[-1])
        assert terms.may_overflow.tolist() == [[False, flagged]]


def test_bind_is_inspects_bind() -> None:
    from mimo_conv.testing.operations import _bind, _signature  # noqa: PLC0415

    x, w = np.ones((1, 1, 3)), np.ones((1, 1, 2))
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("conv", (x, w), {}),
        ("conv", (x, w, None, 2), {"padding": 1}),
        ("conv", (x,), {"weight": w, "padding_mode": "reflect"}),
        ("conv", (), {"x": x, "weight": w, "groups": 1}),
        ("conv_bias", (x,), {"batched": False}),
        ("unfold", (x, 2), {"padding": 1}),
    ]
    for op, args, options in calls:
        assert _bind(op, args, options) == dict(_signature(op).bind(*args, **options).arguments)
    refused: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("conv", (x,), {}),  # weight missing
        ("conv", (x, w), {"x": x}),  # x twice
        ("conv", (x, w), {"strides": 2}),  # unknown
        ("conv", (x, w, None, 1, 0, 1, 1, "zeros"), {}),  # padding_mode is keyword-only
        ("conv_bias", (x, True), {}),
    ]
    for op, args, options in refused:
        with pytest.raises(TypeError):
            _bind(op, args, options)
        with pytest.raises(TypeError, match="arguments do not match"):
            parse_call(op, args, options)


def _grid_by_fractions(array: np.ndarray) -> tuple[int, int]:
    values = [Fraction(float(v)) for v in array.ravel() if v != 0]
    if not values:
        return 0, 0
    top = max(abs(v) for v in values)
    e = math.frexp(float(top))[1]
    low = min(
        (v.denominator.bit_length() - 1) * -1 + ((v.numerator & -v.numerator).bit_length() - 1)
        for v in values
    )
    return e, low


def test_grid_bits_are_the_exponents_of_the_values() -> None:
    from mimo_conv.testing.reference import _grid_bits  # noqa: PLC0415

    rng = np.random.default_rng(3)
    arrays = [
        np.zeros(3), np.array([0.0, 3.0, -0.25]), np.array([2.0**-1074, 1.0]),
        np.array([5e-324, -3 * 5e-324, 0.0]), np.array([2.0**1023 * 1.5, 1.0]),
        rng.standard_normal(20) * np.exp2(rng.integers(-40, 40, 20)),
        np.round(rng.standard_normal(9) * 1000),
    ]  # fmt: skip
    for array in arrays:
        assert _grid_bits(array) == _grid_by_fractions(array), array


def test_may_be_short_reads_the_span_of_the_bits() -> None:
    from mimo_conv.testing.reference import _may_be_short  # noqa: PLC0415

    # (values, span of their bits, whether scaling them to the span underflows)
    w = np.ones((1, 1, 1))
    for values, span, underflows in [
        ([3.0, 0.25], 4, False), ([1.0, 2.0**-52], 53, False), ([1.0, 2.0**-53], 54, False),
        ([0.0, 0.0], 0, False), ([2.0**600, 2.0**560], 41, False), ([5e-324, 1e-323], 2, False),
        ([-(2.0**60), 2.0**8 + 1], 61, False), ([2.0**1000, 2.0**-1000], 2001, True),
    ]:  # fmt: skip
        call = parse_call("conv", (np.array([values]), w), {})
        for bits in {26, 53, span - 1, span, span + 1}:
            if not 0 <= bits <= 60:
                continue
            if span <= bits:
                assert _may_be_short(call, 0, bits), (values, bits)  # never a false "no"
            elif not underflows:
                assert not _may_be_short(call, 0, bits), (values, bits)
    for dtype in (np.float32, np.int64):  # read by dtype in _narrow_bits
        call = parse_call("conv", (np.array([[1, 3]], dtype), w), {})
        assert _may_be_short(call, 0, 1)


def _one_call_plan_by_grids(call: Any) -> int | None:
    """The one-call plan read from both operands' grids (the rule of one_call_plan)."""
    from mimo_conv.testing.reference import _narrow_bits  # noqa: PLC0415

    left = _narrow_bits(call, 0)
    if left is None:
        return None
    if call.right is None:
        return left[1]
    right = _narrow_bits(call, 1)
    if right is None or left[0] + right[0] > 53 or left[1] + right[1] < -1074:
        return None
    return left[1] + right[1]


def test_one_call_plan_rejects_early_only_what_the_grids_reject() -> None:
    rng = np.random.default_rng(4)
    for trial in range(200):
        operands = []
        for shape in ((1, 2, 5), (3, 2, 2)):
            kind = trial % 5
            values = rng.standard_normal(shape)
            if kind == 0:
                values = np.round(values * 2.0 ** rng.integers(0, 30))
            elif kind == 1:
                values = np.round(values * 64) * 2.0 ** rng.integers(-30, 30)
            elif kind == 2:
                values = np.where(rng.random(shape) < 0.7, 0.0, np.round(values * 8))
            elif kind == 3:
                values = values.astype(np.float32)
            operands.append(values)
        call = parse_call("conv", tuple(operands), {})
        fresh = parse_call("conv", tuple(operands), {})
        assert one_call_plan(call) == _one_call_plan_by_grids(fresh)


def test_split_pair_gives_splits_slices_and_rests() -> None:
    from mimo_conv.testing.reference import split_pair, top_bits  # noqa: PLC0415

    rng = np.random.default_rng(1)
    for trial in range(300):
        arrays = []
        for _ in range(2):
            size = int(rng.integers(1, 9))
            array = rng.standard_normal(size) * np.exp2(rng.integers(-70, 70, size))
            if trial % 4 == 1:
                array = np.round(array)
            if trial % 4 == 2:
                array[rng.random(size) < 0.5] = 0.0
            arrays.append(array * 2.0 ** int(rng.integers(-800, 800)) if trial % 7 == 0 else array)
        beta = beta_for(6 * int(rng.integers(1, 300)))
        most = int(rng.integers(1, 7))
        tops = (top_bits(arrays[0]), top_bits(arrays[1]))
        together = split_pair(arrays[0], arrays[1], beta, most, tops)
        shifts = [beta * (k + 1) - top for k in range(most) for top in tops]
        assert (together is None) == (min(shifts) < -1022 or max(shifts) > 1022)
        if together is None:
            continue
        for array, slices, rest, top in zip(
            arrays, together[0:3:2], together[1:4:2], tops, strict=True
        ):
            expected, _, expected_rest = split(array, beta, most, top)
            assert len(slices) == len(expected)
            for got, want in zip(slices, expected, strict=True):
                np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(rest, expected_rest)
        assert together[4] == bool(together[1].any() or together[3].any())


def test_split_pair_refuses_factors_outside_the_normal_range() -> None:
    from mimo_conv.testing.reference import split_pair  # noqa: PLC0415

    a = np.array([1.0])
    assert split_pair(a, a, 20, 3, (1, 1)) is not None
    assert split_pair(a, a, 20, 3, (1, 60 - 1022)) is not None  # 60 - top = 1022
    assert split_pair(a, a, 20, 3, (1, 59 - 1022)) is None  # 1023
    assert split_pair(a, a, 20, 3, (1042, 1)) is not None  # 20 - 1042 = -1022
    assert split_pair(a, a, 20, 3, (1043, 1)) is None


def test_a_truncated_paired_reference_is_within_its_error() -> None:
    # Both operands span more than six slices: both truncation pairs run in the grid.
    x = np.array([[[1.0, 2.0**-170, -3.0, 2.0**-200, 0.5]]])
    w = np.array([[[1.0 + 2.0**-52, 2.0**-190]], [[-2.0, 3.0]]])
    for bias in (None, np.array([0.25, -1.0])):
        oracle = oracle_for("conv", (x, w, bias), {})
        chopped = ozaki_split(oracle.call, 2)
        assert chopped.truncated
        assert chopped.right_rest is not None
        assert chopped.right_rest.any()
        assert oracle.exact is not None
        real, _ = fraction_exact(oracle.call)
        for index in np.ndindex(real.shape):
            got = Fraction(float(oracle.exact.hi[index])) + Fraction(float(oracle.exact.lo[index]))
            assert abs(got - real[index]) <= Fraction(float(oracle.exact.error[index]))


def test_one_call_exact_adds_the_bias_exactly() -> None:
    call = parse_call(
        "conv",
        (np.array([[1.0, 2.0**-40, 3.0]]), np.ones((2, 1, 1)), np.array([2.0**60, -1.0])),
        {},
    )
    result = np.array([[[1.0, 2.0**-40, 3.0]], [[1.0, 2.0**-40, 3.0]]])[:, 0]
    products = np.ones((2, 3))
    exact = one_call_exact(call, result, products, 1, -60)
    for index in np.ndindex(result.shape):
        value = Fraction(float(exact.hi[index])) + Fraction(float(exact.lo[index]))
        bias = Fraction(float(call.bias[index[0]]))  # type: ignore[index]
        assert value == Fraction(float(result[index])) + bias
        assert float(exact.hi[index]) == float(result[index]) + float(bias)
    assert not exact.error.any()  # sums of one term up to 2**-7: exact
    assert exact.method == "float64"


def test_grid_runs_every_pair() -> None:
    import mimo_conv as mc  # noqa: PLC0415
    from mimo_conv.testing.stacked_calls import _plain, run_grid  # noqa: PLC0415

    rng = np.random.default_rng(6)
    cases: list[tuple[str, tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
        ("conv", (2, 4, 5, 6), (6, 2, 2, 3), {"groups": 2, "stride": (1, 2), "padding": (1, 1)}),
        ("conv", (4, 7), (3, 4, 3), {"padding": "same", "padding_mode": "reflect"}),
        ("conv", (1, 3, 6), (3, 1, 2), {"groups": 3, "dilation": [2], "padding_mode": "circular"}),
        ("conv_transpose", (2, 4, 5), (4, 3, 2), {"groups": 2, "stride": 2}),
        ("conv_transpose", (4, 5), (4, 1, 3), {"stride": (2,), "padding": 1}),
        ("conv", (1, 2, 200, 90), (1, 2, 1, 1), {}),  # too large: one call per pair
    ]
    for op, x_shape, w_shape, options in cases:
        x = rng.integers(-5, 6, x_shape).astype(np.float64)
        w = rng.integers(-5, 6, w_shape).astype(np.float64)
        call = parse_call(op, (x, w), options)
        lefts: list[np.ndarray[Any, Any]] = [x, 2 * x, np.abs(x).astype(np.float32)]
        rights: list[np.ndarray[Any, Any]] = [w, -w]
        grid = run_grid(call, lefts, rights)
        function: Any = mc.conv if op == "conv" else mc.conv_transpose
        for i, a in enumerate(lefts):
            for j, b in enumerate(rights):
                want = function(a.astype(np.float64), b, **options)
                np.testing.assert_array_equal(grid[i, j], want)  # integers: exact
    assert _plain((2, 2)) == 2
    assert _plain([3]) == 3
    assert _plain((1, 2)) == (1, 2)
    assert _plain((True, True)) == (True, True)
    assert _plain(((1, 1), (1, 1))) == ((1, 1), (1, 1))
    assert _plain(()) == ()


def test_a_transposed_conv_too_large_to_stack_counts_its_terms() -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 2, 100, 90)).astype(np.float32)  # not stacked
    w = rng.standard_normal((2, 1, 2, 2)).astype(np.float32)
    oracle = oracle_for("conv_transpose", (x, w), {"stride": 2})
    assert oracle.exact is not None
    assert oracle.exact.method == "float64"
    assert oracle.n == 2  # two inputs reach each output at stride 2 (one tap each)
    assert oracle.magnitudes.count.min() == 2


def test_check_finite_reads_every_operand() -> None:
    from mimo_conv.testing.reference import check_finite  # noqa: PLC0415

    x, w, b = np.ones((1, 1, 3)), np.ones((1, 1, 2)), np.ones(1)
    for bad in (np.nan, np.inf, -np.inf):
        for which in range(3):
            operands = [x.copy(), w.copy(), b.copy()]
            operands[which].flat[-1] = bad
            with pytest.raises(ValueError, match="finite inputs"):
                check_finite(parse_call("conv", tuple(operands), {}))
        complex_call = parse_call("conv", (np.array([[[1.0, 1j, complex(bad, 0.0)]]]), w), {})
        with pytest.raises(ValueError, match="finite inputs"):
            check_finite(complex_call)
        if LONG.precision > 15:
            long_bad = np.array([[[1.0, bad]]], dtype=np.longdouble)
            with pytest.raises(ValueError, match="finite inputs"):
                check_finite(parse_call("conv", (long_bad, w), {}))
    check_finite(parse_call("conv", (x, w, b), {}))
    check_finite(parse_call("conv", (np.zeros((1, 0, 3)), np.zeros((1, 0, 2))), {}))
    huge = np.array([[[1.0, float(np.finfo(np.float64).max)]]], dtype=np.longdouble) * 4
    check_finite(parse_call("conv", (huge, w), {}))  # finite as a longdouble


def test_each_operand_is_sliced_from_its_own_top() -> None:
    # Operands of different sizes (and an integer one): each operand's slices are integers
    # below 2**beta on its own grid, its top the exponent of its largest magnitude.
    from mimo_conv.testing.reference import top_bits  # noqa: PLC0415

    x = np.array([[[0.1, -3.0, 2.0**-30, 7.5]]])
    for w in (np.array([[[1000.3, 2.0**-20]]]), np.array([[[-1000, 7]]], dtype=np.int64)):
        for left, right in ((x, w), (w.reshape(1, 2), x.reshape(1, 1, 4) * 1e5)):
            call = parse_call("conv", (left, right), {})
            chopped = ozaki_split(call, 2)
            for array, top, slices in (
                (left, chopped.left_top, chopped.left_slices),
                (right, chopped.right_top, chopped.right_slices),
            ):
                assert top == top_bits(np.asarray(array, dtype=np.float64))
                expected, _, _ = split(np.asarray(array, dtype=np.float64), chopped.beta, 6, top)
                assert len(slices) == len(expected)
                for got, want in zip(slices, expected, strict=True):
                    np.testing.assert_array_equal(got, want)
                total = sum(
                    (Fraction(float(v)) for s in slices if s is not None for v in np.ravel(s)),
                    Fraction(0),
                )
                assert total * 2**top == sum(Fraction(float(v)) for v in np.ravel(array))
                for k, piece in enumerate(slices):
                    scaled = np.ldexp(np.asarray(piece), chopped.beta * (k + 1))
                    assert np.all(scaled == np.trunc(scaled))
                    assert np.all(np.abs(scaled) < 2**chopped.beta)


def test_tiny_operands_are_sliced_with_ldexp() -> None:
    # A top of -1000: the first level's factor 2**(24 + 1000) is past float64's range.
    slices, top, rest = split(np.array([2.0**-1001, -(2.0**-1020)]), 24, 3)
    assert top == -1000
    assert not rest.any()
    total = [sum(Fraction(float(s[i])) for s in slices) * Fraction(2) ** top for i in range(2)]
    assert total == [Fraction(2) ** -1001, -(Fraction(2) ** -1020)]


def test_one_call_plan_reads_each_operand() -> None:
    # One short operand and one long one, either way round: the plan needs both grids.
    short = np.array([[[3.0, -5.0, 0.5]]])
    long = np.array([[[0.1]]])
    for left, right in ((short, long), (long.reshape(1, 1), short.reshape(1, 1, 3))):
        call = parse_call("conv", (left, right), {})
        assert one_call_plan(call) == _one_call_plan_by_grids(parse_call("conv", (left, right), {}))
    # 0.1 spans 52 bits and 2.0 one: 53 together, one call (0.1 alone is not 26 bits short).
    tenth = parse_call("conv", (np.array([[0.1]]), np.array([[[2.0]]])), {})
    assert one_call_plan(tenth) == _one_call_plan_by_grids(tenth) == -54
    # 0.5 = 2**-1 and 3: every product a multiple of 2**-1.
    assert one_call_plan(parse_call("conv", (short, short[:, :, :1]), {})) == -1


def test_check_finite_passes_finite_complex_operands() -> None:
    from mimo_conv.testing.reference import check_finite  # noqa: PLC0415

    check_finite(parse_call("conv", (np.array([[[1.0 + 2j, -1j]]]), np.ones((1, 1, 1))), {}))


def test_an_empty_call_composes_an_empty_bound() -> None:
    for precision in (None, "bfloat16", "float32"):
        got = bound("conv", np.zeros((0, 1, 3)), np.ones((1, 1, 2)), precision=precision)
        assert got.shape == (0, 1, 2)


def test_the_overflow_reach_counts_the_output_rounding() -> None:
    # float32 inputs and sums, a bfloat16 result: the reach is M (1 + u_bf16) roughly, so a
    # float32 M a 2**-10 below bfloat16's largest number reaches it only through the
    # output term.
    model = Precision("float32", "float32", output="bfloat16")
    top = float(FORMATS["bfloat16"].max)
    x = np.array([[1.0, top * (1 - 2.0**-10)]], np.float32)
    w = np.ones((1, 1, 1), np.float32)
    terms = bound_terms("conv", x, w, precision=model)
    expected = _compose_by_formula(magnitudes(parse_call("conv", (x, w), {})), model)
    assert terms.may_overflow is not None
    np.testing.assert_array_equal(terms.may_overflow, expected[-1])
    assert terms.may_overflow.tolist() == [[False, True]]


def test_operands_near_the_ends_of_the_range_are_sliced_one_by_one() -> None:
    # Tops of -1000 and 1000: split_pair's factors leave the normal range, each operand is
    # split on its own (ldexp); the slices keep the invariants and every bit.
    from mimo_conv.testing.reference import split_pair  # noqa: PLC0415

    x = np.array([[[2.0**-1001 + 2.0**-1015, -3 * 2.0**-1010, 2.0**-1040]]])
    w = np.array([[[2.0**999 + 2.0**990, 2.0**960 * 1.5]]])  # more bits than a few
    call = parse_call("conv", (x, w), {})
    chopped = ozaki_split(call, 2)
    assert split_pair(x, w, chopped.beta, 6, (chopped.left_top, chopped.right_top)) is None
    assert (chopped.left_top, chopped.right_top) == (-1000, 1000)
    for array, top, slices in (
        (x, chopped.left_top, chopped.left_slices),
        (w, chopped.right_top, chopped.right_slices),
    ):
        expected, _, _ = split(np.asarray(array, dtype=np.float64), chopped.beta, 6, top)
        assert len(slices) == len(expected) >= 2
        for got, want in zip(slices, expected, strict=True):
            np.testing.assert_array_equal(got, want)
        total = sum(
            (Fraction(float(v)) for s in slices if s is not None for v in np.ravel(s)),
            Fraction(0),
        )
        assert total * Fraction(2) ** top == sum(Fraction(float(v)) for v in np.ravel(array))
        for k, piece in enumerate(slices):
            scaled = np.ldexp(np.asarray(piece), chopped.beta * (k + 1))
            assert np.all(scaled == np.trunc(scaled))
            assert np.all(np.abs(scaled) < 2**chopped.beta)
    assert not chopped.truncated
