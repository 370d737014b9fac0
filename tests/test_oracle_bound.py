"""The bound pinned, not only checked from above, and the exact reference checked exactly.

Each composed term is recomputed here from its definition (``docs/testing.md``) with
:class:`fractions.Fraction` arithmetic on the same magnitudes, and compared with the
library's float64 value: equal up to the library's documented upward inflation (a few
float64 roundings), never below. So a mutated formula (``gamma = nu / (1 + nu)``, a lost
term, a wrong count) fails here.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

import mimo_conv as mc
from mimo_conv.testing import PRESETS, Precision, bound, conv_problems
from mimo_conv.testing.bounds import (
    _object_plan,
    bound_terms,
    compose,
    gamma,
    gammas,
    magnitudes,
)
from mimo_conv.testing.operations import parse_call
from mimo_conv.testing.precision import FORMATS, round_to
from mimo_conv.testing.reference import (
    beta_for,
    fraction_exact,
    ozaki_exact,
    split,
    to_fraction,
)

#: The library may round its bound up by this much over the exact formula (the magnitudes'
#: slack 1 + 2 gamma_{n+16} in float64 and the final 1 + 8 u); never down.
INFLATION = 1 + 2**-40


def exact_gamma(r: int, u: Fraction) -> Fraction:
    return r * u / (1 - r * u)


@pytest.mark.parametrize("n", [1, 2, 3, 255, 256, 1000, 2**20])
@pytest.mark.parametrize("u", [2.0**-53, 2.0**-24, 2.0**-11, 2.0**-8, 2.0**-3])
def test_gamma_is_exactly_higham_gamma(n: int, u: float) -> None:
    if n * u >= 1:
        with pytest.raises(ValueError, match="n \\* u must be < 1"):
            gamma(n, u)
        return
    expected = exact_gamma(n, Fraction(u))
    got = Fraction(gamma(n, u))
    assert abs(got - expected) <= expected * Fraction(2**-51)
    vector = Fraction(float(gammas(np.array([float(n)]), u)[0]))
    assert expected <= vector <= expected * (1 + Fraction(2**-49))


def test_gamma_refuses_exactly_at_n_u_equal_one() -> None:
    assert gamma(2**23 - 1, 2.0**-23) > 0
    with pytest.raises(ValueError, match="got n = 8388608"):
        gamma(2**23, 2.0**-23)
    with pytest.raises(ValueError, match="n \\* u must be < 1"):
        gammas(np.array([0.0, 2.0**23]), 2.0**-23)


def independent_bound(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, model: Precision, index: tuple[int, ...]
) -> Fraction:
    """The bound of one output element of a 1-d conv (no padding), straight from the formula."""
    fmt_in, acc, out = model.input_format, model.accumulate_format, model.output_format
    tz = model.rounding == "toward_zero"
    flush = model.flush_subnormals

    def unit(f: Any) -> Fraction:
        return Fraction(1, 2 ** (f.precision - (1 if tz else 0)))

    def under(f: Any) -> Fraction:
        exponent: int = f.emin if flush else f.emin - f.precision + 1
        eta = Fraction(2) ** exponent
        return eta if flush or tz else eta / 2

    def held(a: np.ndarray | None) -> bool:
        if a is None:
            return True
        v = a.astype(np.float64)
        return bool(np.array_equal(round_to(v, fmt_in), v))

    ua, ea = (Fraction(0), Fraction(0)) if held(x) else (unit(fmt_in), under(fmt_in))
    ub, eb = (Fraction(0), Fraction(0)) if held(w) else (unit(fmt_in), under(fmt_in))
    uc, ec = (Fraction(0), Fraction(0)) if held(b) else (unit(fmt_in), under(fmt_in))
    o, j = index[-2], index[-1]
    taps = w.shape[-1]
    xs = [to_fraction(v) for v in x[:, j : j + taps].ravel()]
    ws = [to_fraction(v) for v in w[o].ravel()]
    n = len(ws)
    products = sum((abs(p) * abs(q) for p, q in zip(xs, ws, strict=True)), Fraction(0))
    big_a = max(abs(to_fraction(v)) for v in x.ravel())
    big_b = max(abs(to_fraction(v)) for v in w.ravel())
    bias = abs(to_fraction(b[o])) if b is not None else Fraction(0)
    e_in = (ua + ub + ua * ub) * products + n * (
        ea * (1 + ub) * big_b + eb * (1 + ua) * big_a + ea * eb
    )
    if b is not None:
        e_in += uc * bias + ec
    k = n + (1 if b is not None else 0)
    r = k - 1 + (0 if 2 * fmt_in.precision <= acc.precision else 1)
    g = exact_gamma(r, unit(acc))
    total = products + bias + e_in
    e_acc = g * total
    e_under = (n * under(acc) + (k - 1) * (Fraction(2) ** acc.emin if flush else 0)) * (1 + g)
    e_out = Fraction(0)
    if not out.holds(acc):
        e_out = unit(out) * (total + e_acc + e_under) + under(out)
    return e_in + e_acc + e_under + e_out


MODELS = {
    **PRESETS,
    "tz": Precision("float32", "float32", rounding="toward_zero"),
    "bf16-tz-flush": Precision("bfloat16", "float32", "toward_zero", "bfloat16", True),
    "fp16-flush": Precision("float16", "float32", output="float16", flush_subnormals=True),
    "tf32-from-64": Precision("tf32", "float64", output="float32"),
}


@pytest.mark.parametrize("name", list(MODELS))
@settings(max_examples=15, deadline=None)
@given(
    problem=conv_problems(
        spatial_dims=1,
        batched=False,
        dtypes=("float32", "float64"),
        padding_forms=("valid",),
        stride=False,
        dilation=False,
        groups=False,
        max_channels=3,
        elements="floats",
    )
)
def test_each_model_matches_the_formula_elementwise(name: str, problem: Any) -> None:
    model = MODELS[name]
    x, w, b = problem.x, problem.weight, problem.bias
    if max(float(np.max(np.abs(x))), float(np.max(np.abs(w)))) >= model.input_format.max / 2:
        x, w = x / 2**10, w / 2**10
        b = None if b is None else b / 2**10
    try:
        got = bound("conv", x, w, b, precision=model)
    except ValueError:
        return  # n u >= 1 for this model: refused, as the formula has no value
    for index in np.ndindex(got.shape):
        expected = independent_bound(x, w, b, model, index)
        value = Fraction(float(got[index]))
        assert expected <= value <= expected * INFLATION + Fraction(2) ** -1060, (name, index)


def test_subnormal_terms_with_and_without_flush() -> None:
    x = np.array([[2.0**-70, -(2.0**-72)]], dtype=np.float32)
    w = np.array([[[2.0**-70, 2.0**-71]]], dtype=np.float32)
    for model in (MODELS["float32"], MODELS["tz"], MODELS["fp16-flush"], MODELS["bf16-tz-flush"]):
        value = Fraction(float(bound("conv", x, w, precision=model)[0, 0]))
        expected = independent_bound(x, w, None, model, (0, 0))
        assert expected <= value <= expected * INFLATION


def test_default_precision_of_each_dtype() -> None:
    x = np.ones((1, 3))
    w = np.ones((1, 1, 3))
    cases = {
        np.float64: "float64",
        np.float32: "float32",
        np.float16: "float16",
    }
    for dtype, name in cases.items():
        terms = bound_terms("conv", x.astype(dtype), w.astype(dtype))
        assert terms.precision == PRESETS[name]
    assert bound_terms("conv", x.astype(np.int32), w.astype(np.int32)).precision is None
    ints = x.astype(np.int64).astype(object)
    assert not bound("conv", ints, w.astype(np.int64).astype(object)).any()


def test_object_plan_reads_each_kind_of_python_number() -> None:
    assert _object_plan(np.array([Fraction(1, 3), 2], dtype=object)) is None
    assert _object_plan(None, np.array([1], dtype=np.int64)) is None
    assert _object_plan(np.array([0.5, 1], dtype=object)).compute == np.float64  # type: ignore[union-attr]
    plan = _object_plan(np.array([Fraction(1)], dtype=object), np.array([1j], dtype=object))
    assert plan is not None
    assert plan.compute == plan.output == np.complex128
    # A rational first does not hide the float after it.
    later = _object_plan(np.array([Fraction(1, 3), 0.5], dtype=object))
    assert later is not None
    assert later.compute == np.float64
    mixed = _object_plan(np.array([0.5, 1j], dtype=object))
    assert mixed is not None
    assert mixed.compute == np.complex128
    floats = np.array([0.1, 0.2], dtype=object)
    assert bound("conv", floats.reshape(1, 2), np.ones((1, 1, 2), dtype=object))[0, 0] > 0


def test_complex_bound_is_sqrt2_times_the_real_bound_of_2n_terms() -> None:
    x = np.array([[1 + 1j, 2 - 1j]], dtype=np.complex128)
    w = np.array([[[1 - 2j, 0.5j]]], dtype=np.complex128)
    got = Fraction(float(bound("conv", x, w)[0, 0]))
    p = Fraction(float(abs(x[0, 0]))) * Fraction(float(abs(w[0, 0, 0]))) + Fraction(
        float(abs(x[0, 1]))
    ) * Fraction(float(abs(w[0, 0, 1])))
    u = Fraction(2) ** -53
    expected = (
        exact_gamma(4, u) * p + 4 * (Fraction(2) ** -1075) * (1 + exact_gamma(4, u))
    ) * Fraction(1.4142135623730951)
    assert expected <= got <= expected * (1 + Fraction(2) ** -40)


def test_longdouble_inputs_are_bounded_in_longdouble() -> None:
    x = np.full((1, 4), np.longdouble(1) / 3)
    w = np.ones((1, 1, 4), dtype=np.longdouble)
    got = bound("conv", x, w)
    assert got.dtype == np.longdouble
    u = float(np.finfo(np.longdouble).eps) / 2
    assert got[0, 0] >= gamma(4, u) * 4 * float(x[0, 0]) * 0.999999
    mc_out = mc.conv(x, w)
    from mimo_conv.testing import assert_close  # noqa: PLC0415

    assert_close(mc_out, "conv", x, w)


# --- the exact reference ----------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(problem=conv_problems(dtypes=("float32", "float64"), elements="floats"))
def test_ozaki_reference_is_exact_or_within_its_stated_error(problem: Any) -> None:
    call = parse_call("conv", problem.args(), problem.conv_kwargs())
    exact_re, _ = fraction_exact(call)
    ozaki = ozaki_exact(call, max(problem.n, 1))
    for index in np.ndindex(exact_re.shape):
        hi, lo = float(ozaki.hi[index]), float(ozaki.lo[index])
        gap = abs(exact_re[index] - Fraction(hi) - Fraction(lo))
        assert gap <= Fraction(float(ozaki.error[index]))


def test_split_slices_are_exact_and_small() -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal(100) * np.exp2(rng.integers(-30, 30, 100))
    beta = beta_for(144)
    slices, top, rest = split(values, beta, 8)
    total = sum(slices) * 2.0**top + rest
    np.testing.assert_array_equal(total, values)
    for k, piece in enumerate(slices):
        scaled = np.ldexp(piece, beta * (k + 1))
        assert np.all(scaled == np.trunc(scaled))
        assert np.all(np.abs(scaled) < 2**beta)


def test_magnitudes_count_terms_of_every_op() -> None:
    g = np.ones((1, 1, 3))
    w = np.ones((1, 1, 2))
    assert magnitudes(parse_call("conv_input", ((1, 1, 4), w, g), {})).count.tolist() == [
        [[1.0, 2.0, 2.0, 1.0]]
    ]
    x = np.ones((2, 1, 4))
    assert magnitudes(parse_call("conv_weight", (x, (1, 1, 2), np.ones((2, 1, 3))), {})).n == 6
    assert magnitudes(parse_call("conv_bias", (np.ones((2, 3, 5)),), {})).n == 10
    cols = np.ones((1, 4, 4))
    assert magnitudes(parse_call("fold", (cols, (3, 3), 2), {})).n == 4
    assert magnitudes(parse_call("unfold", (np.ones((1, 1, 3, 3)), 2), {})).n == 1


def test_terms_recompose_for_every_preset() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 5)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3)).astype(np.float32)
    mag = magnitudes(parse_call("conv", (x, w), {}))
    ordered = ["float64", "float32", "tf32", "bfloat16-float32-out", "float8_e4m3fn"]
    bounds = [float(compose(mag, PRESETS[name]).total.max()) for name in ordered]
    assert bounds == sorted(bounds)
    assert math.isclose(
        float(compose(mag, PRESETS["float32"]).total.max()),
        float(bound("conv", x, w).max()),
    )
    assert FORMATS["tf32"].holds(FORMATS["bfloat16"])
    assert not FORMATS["bfloat16"].holds(FORMATS["tf32"])


def independent_linear_bound(values: np.ndarray, n: int, model: Precision) -> Fraction:
    """The bound of a sum of ``n`` elements (conv_bias), from the formula, with Fractions."""
    fmt_in, acc, out = model.input_format, model.accumulate_format, model.output_format
    tz = model.rounding == "toward_zero"

    def unit(f: Any) -> Fraction:
        return Fraction(1, 2 ** (f.precision - (1 if tz else 0)))

    def under(f: Any) -> Fraction:
        exponent: int = f.emin if model.flush_subnormals else f.emin - f.precision + 1
        eta = Fraction(2) ** exponent
        return eta if model.flush_subnormals or tz else eta / 2

    v = values.astype(np.float64)
    held = bool(np.array_equal(round_to(v, fmt_in), v))
    ua, ea = (Fraction(0), Fraction(0)) if held else (unit(fmt_in), under(fmt_in))
    total = sum((abs(to_fraction(x)) for x in values.ravel()), Fraction(0))
    e_in = ua * total + n * ea
    g = exact_gamma(n - 1, unit(acc))
    e_acc = g * (total + e_in)
    e_under = (n - 1) * (Fraction(2) ** acc.emin if model.flush_subnormals else 0) * (1 + g)
    e_out = Fraction(0)
    if not out.holds(acc):
        e_out = unit(out) * (total + e_in + e_acc + e_under) + under(out)
    return e_in + e_acc + e_under + e_out


@pytest.mark.parametrize("name", list(MODELS))
def test_linear_ops_match_the_formula(name: str) -> None:
    model = MODELS[name]
    rng = np.random.default_rng(7)
    grads = (rng.standard_normal((2, 3, 4)) / 3).astype(np.float64)
    try:
        got = bound("conv_bias", grads, precision=model)
    except ValueError:
        return
    for channel in range(3):
        expected = independent_linear_bound(grads[:, channel], 8, model)
        value = Fraction(float(got[channel]))
        assert expected <= value <= expected * INFLATION + Fraction(2) ** -1060, name


def test_where_a_correct_kernel_may_overflow() -> None:
    x = np.array([[60000.0, 1.0]], dtype=np.float32)
    w = np.array([[[1.0]]], dtype=np.float32)
    terms = bound_terms("conv", x, w, precision="float16")
    assert terms.may_overflow is not None
    assert terms.may_overflow.tolist() == [[False, False]]
    double = np.array([[[2.0]]], dtype=np.float32)
    big = bound_terms("conv", x, double, precision="float16")
    assert big.may_overflow is not None
    assert big.may_overflow.tolist() == [[True, False]]
    huge_input = bound_terms("conv", np.array([[1e6, 1.0]], np.float32), w, precision="float16")
    assert huge_input.may_overflow is not None
    assert huge_input.may_overflow.all()  # an input itself rounds to infinity in float16
    from mimo_conv.testing import assert_close  # noqa: PLC0415

    assert_close(np.array([[np.inf, 2.0]]), "conv", x, double, precision="float16")
    with pytest.raises(AssertionError):
        assert_close(np.array([[120000.0, np.inf]]), "conv", x, double, precision="float16")


def test_default_models_of_mixed_and_low_precision_operands() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.ones((1, 2), dtype=ml_dtypes.bfloat16)
    w = np.ones((1, 1, 1), dtype=ml_dtypes.bfloat16)
    assert bound_terms("conv", x, w).precision == PRESETS["bfloat16"]
    e5 = np.ones((1, 1, 1), dtype=ml_dtypes.float8_e5m2)
    mixed = bound_terms("conv", x, e5).precision
    assert mixed == Precision("float32", "float32")
    assert bound_terms("conv", x, np.ones((1, 1, 1), np.float32)).precision == mixed
    assert (
        bound_terms("conv", np.ones((1, 2), np.float16), np.ones((1, 1, 1))).precision
        == (PRESETS["float64"])
    )


def test_held_inputs_by_value_and_by_dtype() -> None:
    exact_bf16 = np.array([[1.0, 0.5, 3.0]], dtype=np.float32)  # bfloat16 values
    w = np.ones((1, 1, 2), dtype=np.float32)
    mag = magnitudes(parse_call("conv", (exact_bf16, w), {}))
    assert mag.held(0, FORMATS["bfloat16"])
    inexact = magnitudes(parse_call("conv", (exact_bf16 / 3, w), {}))
    assert not inexact.held(0, FORMATS["bfloat16"])
    assert inexact.held(0, FORMATS["float32"])  # by dtype
    assert inexact.held(2, FORMATS["float8_e5m2"])  # no bias: nothing to round
    ints = magnitudes(parse_call("conv", (np.array([[1, 2]]), np.ones((1, 1, 1), int)), {}))
    assert ints.held(0, FORMATS["float16"])  # 1 and 2 are float16 numbers
    odd = magnitudes(parse_call("conv", (np.array([[1, 257]]), np.ones((1, 1, 1), int)), {}))
    assert not odd.held(0, FORMATS["bfloat16"])  # 257 needs 9 bits


@pytest.mark.parametrize("with_bias", [False, True])
def test_longdouble_bound_is_pinned(with_bias: bool) -> None:
    info = np.finfo(np.longdouble)
    if info.precision <= 15:
        pytest.skip("longdouble is float64 on this platform")
    x = np.array([[1, -2, 3, 5]], dtype=np.longdouble) / 7
    w = np.array([[[1, 1, 2]]], dtype=np.longdouble) / 3
    b = np.array([0.25], dtype=np.longdouble) if with_bias else None
    got = bound("conv", x, w, b)
    assert got.dtype == np.longdouble
    u = to_fraction(info.eps) / 2
    eta = to_fraction(info.smallest_subnormal)
    for j in range(2):
        products = sum(
            (abs(to_fraction(x[0, j + t])) * abs(to_fraction(w[0, 0, t])) for t in range(3)),
            Fraction(0),
        )
        total = products + (to_fraction(b[0]) if b is not None else 0)
        k = 3 + (1 if with_bias else 0)
        g = exact_gamma(k, u)  # k - 1 additions and the rounded product
        expected = g * total + 3 * eta * (1 + g)
        value = to_fraction(got[0, j])
        assert expected <= value <= expected * (1 + Fraction(2) ** -50) + 64 * eta
