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

from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from mimo_conv.testing import PRESETS, bound
from mimo_conv.testing.bounds import _object_plan, bound_terms, conv_error_bound, gamma, gammas
from mimo_conv.testing.operations import parse_call
from mimo_conv.testing.reference import (
    Exact,
    add,
    beta_for,
    fraction_exact,
    from_fractions,
    ozaki_exact,
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
