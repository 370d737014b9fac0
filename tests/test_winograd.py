"""The ``"winograd"`` path: its own derived bound, its refusals, its budget, and auto's silence.

The path is F(2 x 2, 3 x 3); its error bound (docs/performance.md, "Winograd F(2 x 2, 3 x 3):
the error bound") is :func:`mimo_conv.testing.winograd_bound`, pinned here against an
independent computation with fractions and checked against exact results.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mimo_conv as mc
from memory_probe import peak_temporary
from mimo_conv._core.dtypes import plan_dtypes
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._engine.plan import plan_conv
from mimo_conv._paths.registry import PATH_SPECS
from mimo_conv.testing import winograd_bound
from mimo_conv.testing.assertions import exact_conv

NDArray = np.ndarray

DTYPES = ("float16", "float32", "float64", "complex64", "complex128")


@st.composite
def problems(draw: st.DrawFn) -> dict[str, Any]:
    """A small 3 x 3 stride-1 call: shapes, padding, groups, dtype and values of any scale."""
    groups = draw(st.integers(1, 2))
    in_per, out_per = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    padding = draw(st.integers(0, 2))
    mode = draw(st.sampled_from(("zeros", "replicate", "circular")))
    least = max(1, 3 - 2 * padding, padding if mode == "circular" else 1)
    height = draw(st.integers(least, 6))
    width = draw(st.integers(least, 6))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    scale = draw(st.sampled_from(("normal", "wide", "cancellation")))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x_shape = (draw(st.integers(1, 2)), groups * in_per, height, width)
    w_shape = (groups * out_per, in_per, 3, 3)

    def values(shape: tuple[int, ...]) -> NDArray:
        a = rng.standard_normal(shape)
        if scale == "wide":
            a = a * 2.0 ** rng.integers(-8, 8, shape)
        elif scale == "cancellation":
            a = np.where(rng.random(shape) < 0.5, 1000.0 * np.sign(a), a)
        if dtype.kind == "c":
            a = a + 1j * rng.standard_normal(shape)
        return a.astype(dtype)

    bias = values((w_shape[0],)) if draw(st.booleans()) else None
    return {
        "x": values(x_shape),
        "weight": values(w_shape),
        "bias": bias,
        "padding": padding,
        "groups": groups,
        "padding_mode": mode,
    }


def _exact(problem: dict[str, Any]) -> tuple[NDArray, NDArray | None]:
    kwargs = {k: problem[k] for k in ("padding", "groups", "padding_mode")}
    return exact_conv(problem["x"], problem["weight"], problem["bias"], **kwargs)


@settings(max_examples=40)
@given(problems())
def test_the_error_never_exceeds_the_derived_bound(problem: dict[str, Any]) -> None:
    kwargs = {k: problem[k] for k in ("padding", "groups", "padding_mode")}
    x, w, b = problem["x"], problem["weight"], problem["bias"]
    actual = mc.conv2d(x, w, b, method="winograd", **kwargs)
    limit = winograd_bound(x, w, b, **kwargs)
    assert actual.shape == limit.shape
    assert actual.dtype == mc.conv2d(x, w, b, method="gemm", **kwargs).dtype
    real, imag = _exact(problem)
    for index in np.ndindex(actual.shape):
        value = complex(actual[index])
        error2 = (Fraction(value.real) - real[index]) ** 2
        if imag is not None:
            error2 += (Fraction(value.imag) - imag[index]) ** 2
        assert error2 <= Fraction(float(limit[index])) ** 2, index


def _exact_bound(x: NDArray, w: NDArray, padding: int, bias: NDArray | None = None) -> NDArray:
    """The documented formula, term by term in fractions, from the tile coefficients."""
    bt = [[1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 0, 1]]
    half = Fraction(1, 2)
    one, zero = Fraction(1), Fraction(0)
    gm = [[one, zero, zero], [half, half, half], [half, half, half], [zero, zero, one]]
    at = [[1, 1, 1, 0], [0, 1, 1, 1]]
    # coefficient[x][p][i] = sum_a |A^T|[x, a] |G|[a, p] |B^T|[a, i]
    coef = [
        [[sum(Fraction(at[o][a]) * gm[a][p] * bt[a][i] for a in range(4)) for i in range(4)]
         for p in range(3)]
        for o in range(2)
    ]  # fmt: skip
    n, c, h, wd = x.shape
    k_out = w.shape[0]
    xp = np.zeros((n, c, h + 2 * padding + 2, wd + 2 * padding + 2), dtype=object)
    xp[...] = Fraction(0)
    for idx in np.ndindex(x.shape):
        xp[idx[0], idx[1], idx[2] + padding, idx[3] + padding] = abs(Fraction(float(x[idx])))
    out_h, out_w = h + 2 * padding - 2, wd + 2 * padding - 2
    u = Fraction(1, 2**53)
    k = c + 10 + (bias is not None)
    gamma = k * u / (1 - k * u)
    eta = Fraction(2) ** -1074
    result = np.empty((n, k_out, out_h, out_w), dtype=object)
    for img, kk, oy, ox in np.ndindex(result.shape):
        ty, sy, tx, sx = 2 * (oy // 2), oy % 2, 2 * (ox // 2), ox % 2
        total = Fraction(0)
        tile_sum = Fraction(0)
        for ch in range(c):
            for p in range(3):
                for q in range(3):
                    g = abs(Fraction(float(w[kk, ch, p, q])))
                    for i in range(4):
                        for j in range(4):
                            d = xp[img, ch, ty + i, tx + j]
                            total += coef[sy][p][i] * coef[sx][q][j] * g * d
            for i in range(4):
                for j in range(4):
                    tv = sum(at[sy][a] * bt[a][i] for a in range(4)) * sum(
                        at[sx][b] * bt[b][j] for b in range(4)
                    )
                    tile_sum += tv * xp[img, ch, ty + i, tx + j]
        shift = abs(Fraction(float(bias[kk]))) if bias is not None else 0
        result[img, kk, oy, ox] = gamma * (total + shift) + (1 + gamma) * eta / 2 * (
            tile_sum + 9 * c
        )
    return result


@pytest.mark.parametrize(
    ("shape", "out_channels", "padding", "with_bias"),
    [((1, 1, 3, 3), 1, 0, False), ((1, 2, 4, 5), 2, 1, True), ((2, 3, 3, 4), 1, 0, False)],
)
def test_the_bound_equals_its_formula_in_fractions(
    shape: tuple[int, ...], out_channels: int, padding: int, with_bias: bool
) -> None:
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * 2.0 ** rng.integers(-3, 3, shape)
    w = rng.standard_normal((out_channels, shape[1], 3, 3))
    bias = rng.standard_normal(out_channels) if with_bias else None
    library = winograd_bound(x, w, bias, padding=padding)
    exact = _exact_bound(x, w, padding, bias)
    for index in np.ndindex(library.shape):
        value = Fraction(float(library[index]))
        assert exact[index] <= value <= exact[index] * (1 + Fraction(1, 2**40)), index


def test_the_coefficients_exceed_the_direct_ones() -> None:
    # A tile whose direct sum has no term: d = [0, 0, 1, 0] against g = [1, 0, 0] still has a
    # Winograd term (m1 = (d0 - d2) g0, m2 + m3 = d2 g0), so the bound is not the direct one.
    x = np.zeros((1, 1, 4, 3))
    x[0, 0, 2, 0] = 1.0
    w = np.zeros((1, 1, 3, 3))
    w[0, 0, 0, 0] = 1.0
    assert mc.conv2d(x, w, method="gemm")[0, 0, 0, 0] == 0
    assert winograd_bound(x, w)[0, 0, 0, 0] > 0


@pytest.mark.parametrize(
    ("kwargs", "kernel", "match"),
    [
        ({"stride": 2}, (3, 3), r"method='winograd' computes F\(2 x 2, 3 x 3\) at stride 1 only"),
        ({"dilation": 2}, (3, 3), r"method='winograd' computes F\(2 x 2, 3 x 3\) undilated"),
        ({}, (5, 5), r"method='winograd' needs a 3 x 3 kernel, got kernel shape \(5, 5\)"),
    ],
    ids=["stride", "dilation", "kernel"],
)
def test_other_geometries_are_refused_in_words(
    kwargs: dict[str, Any], kernel: tuple[int, int], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        mc.conv2d(np.ones((1, 1, 8, 8)), np.ones((1, 1, *kernel)), method="winograd", **kwargs)


def test_one_and_three_dimensional_calls_are_refused() -> None:
    with pytest.raises(ValueError, match=r"computes 2-d convolutions only, got 1 spatial"):
        mc.conv1d(np.ones((1, 1, 8)), np.ones((1, 1, 3)), method="winograd")
    with pytest.raises(ValueError, match=r"computes 2-d convolutions only, got 3 spatial"):
        mc.conv3d(np.ones((1, 1, 4, 4, 4)), np.ones((1, 1, 3, 3, 3)), method="winograd")


@pytest.mark.parametrize("dtype", ["int64", "int8", "uint16", "object"])
def test_integer_and_object_calls_are_refused_naming_the_method(dtype: str) -> None:
    x = np.ones((1, 1, 4, 4), dtype=dtype)
    w = np.ones((1, 1, 3, 3), dtype=dtype)
    with pytest.raises(TypeError, match=r"method='winograd' computes in float or complex only"):
        mc.conv2d(x, w, method="winograd")
    with pytest.raises(TypeError, match=r"method='winograd' computes in float or complex only"):
        winograd_bound(x, w)


def test_longdouble_is_refused() -> None:
    x = np.ones((1, 1, 4, 4), dtype=np.longdouble)
    w = np.ones((1, 1, 3, 3), dtype=np.longdouble)
    if np.finfo(np.longdouble).nmant == np.finfo(np.float64).nmant:
        pytest.skip("longdouble is float64 here")
    with pytest.raises(TypeError, match="runs on BLAS's float32, float64"):
        mc.conv2d(x, w, method="winograd")


def test_gradients_and_transposed_convolutions_refuse_it() -> None:
    x, w = np.ones((1, 2, 6, 6)), np.ones((2, 2, 3, 3))
    match = r"method='winograd' computes forward convolutions only"
    with pytest.raises(ValueError, match=match):
        mc.conv_transpose2d(x, w, method="winograd")
    with pytest.raises(ValueError, match=match):
        mc.grad.conv_input(x.shape, w, np.ones((1, 2, 4, 4)), method="winograd")
    with pytest.raises(ValueError, match=match):
        mc.grad.conv_weight(x, w.shape, np.ones((1, 2, 4, 4)), method="winograd")


DEEP = ConvGeometry(
    batch_size=8, in_channels=256, out_channels=256, groups=1, input_shape=(14, 14),
    kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
)  # fmt: skip


def test_auto_never_picks_it_even_where_it_is_predicted_fastest() -> None:
    f32 = np.dtype(np.float32)
    planned = plan_conv(DEEP, plan_dtypes(f32, f32), (f32, f32), True, 2**28)
    costs = {cost.method: cost for cost in planned.candidates}
    fastest = min(costs.values(), key=lambda cost: cost.seconds)
    assert fastest.method == "winograd"  # the model's prediction on this layer
    assert planned.chosen != "winograd"
    assert "only by name" in costs["winograd"].note
    assert "winograd" in str(planned)  # explain_method's table still prints it
    named = plan_conv(DEEP, plan_dtypes(f32, f32), (f32, f32), True, 2**28, "winograd")
    assert named.chosen == "winograd"


def test_a_tight_budget_names_no_winograd_working_set_to_auto() -> None:
    f32 = np.dtype(np.float32)
    planned = plan_conv(DEEP, plan_dtypes(f32, f32), (f32, f32), True, 1000)
    assert planned.chosen is None
    assert "'winograd'" not in planned.memory_error()


def test_the_cost_model_counts_four_ninths_of_the_multiply_adds() -> None:
    f32 = np.dtype(np.float32)
    named = plan_conv(DEEP, plan_dtypes(f32, f32), (f32, f32), True, 2**28, "winograd")
    gemm = plan_conv(DEEP, plan_dtypes(f32, f32), (f32, f32), True, 2**28, "gemm")
    assert named.cost.flops * 9 == gemm.cost.flops * 4


@pytest.mark.parametrize("budget", [2**17, 2**19, 2**21])
def test_it_stays_within_the_memory_budget_and_gives_the_same_bits(budget: int) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 13, 11))
    w = rng.standard_normal((6, 8, 3, 3))
    whole = mc.conv2d(x, w, padding=1, method="winograd")
    plan = mc.explain_method(x, w, padding=1, memory_budget=budget)
    assert {c.method: c for c in plan.candidates}["winograd"].workspace <= budget
    slack = 3 * np.getbufsize() * x.itemsize + 32 * 1024
    peak, chunked = peak_temporary(
        lambda: mc.conv2d(x, w, padding=1, method="winograd", memory_budget=budget)
    )
    assert peak <= budget + slack
    # Chunks over images and rows of tiles change no sum on this machine's BLAS.
    assert np.array_equal(chunked, whole)


def test_too_small_a_budget_raises_before_any_work() -> None:
    x, w = np.ones((1, 8, 12, 12)), np.ones((4, 8, 3, 3))
    with pytest.raises(MemoryError, match="'winograd' path"):
        mc.conv2d(x, w, method="winograd", memory_budget=2000)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_input_reaches_the_outputs_of_its_windows_only(value: float) -> None:
    rng = np.random.default_rng(3)
    w = rng.uniform(0.5, 1.5, (2, 2, 3, 3))
    for i, j in ((0, 0), (1, 2), (4, 5), (6, 6)):
        x = rng.standard_normal((1, 2, 7, 7))
        x[0, 1, i, j] = value
        actual = mc.conv2d(x, w, padding=1, method="winograd")
        direct = mc.conv2d(x, w, padding=1, method="naive")
        assert np.array_equal(np.isfinite(actual), np.isfinite(direct))


def test_an_infinity_at_an_inner_tile_position_becomes_nan() -> None:
    # Input row and column 1 of the unpadded 6 x 6 image are tile element 1 of tile (0, 0):
    # it enters V with both signs, and inf - inf is NaN where the direct sum is +inf.
    w = np.ones((1, 1, 3, 3))
    x = np.zeros((1, 1, 6, 6))
    x[0, 0, 1, 1] = np.inf
    direct = mc.conv2d(x, w, method="naive")
    actual = mc.conv2d(x, w, method="winograd")
    assert np.all(direct[0, 0, :2, :2] == np.inf)
    assert np.all(np.isnan(actual[0, 0, :2, :2]))
    # Element 0 of a tile reaches the tile's first output alone: the infinity survives.
    x = np.zeros((1, 1, 6, 6))
    x[0, 0, 0, 0] = np.inf
    assert mc.conv2d(x, w, method="winograd")[0, 0, 0, 0] == np.inf


def test_the_path_is_in_the_registry_by_name_only() -> None:
    spec = PATH_SPECS["winograd"]
    assert not spec.offered_to_auto
    assert spec.forward_only
    assert "winograd" in mc.METHOD_NAMES
    assert math.isclose(spec.error_bound_factor, 1.0)  # its bound is its own, not a factor
