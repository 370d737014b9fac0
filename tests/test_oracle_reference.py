"""The fast exact references, pinned against exact rational arithmetic.

* one float64 call (float32/float16 operands, short float64 values): the result is within its
  stated ``error`` of the fraction reference, and exactly equal where the sums fit the grid;
* the oracle's paired path (operands, slices and magnitudes in one stacked call) gives the
  same exact result as fractions, within the stated error, for conv and conv_transpose;
* stacking pairs into one call with more groups computes each pair's own result;
* the comparison accepts a result just inside the bound and rejects one just outside it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

import mimo_conv as mc
from mimo_conv.testing import (
    BackwardProblem,
    ConvProblem,
    TransposeProblem,
    backward_problems,
    conv_problems,
    transpose_problems,
)
from mimo_conv.testing.operations import parse_call
from mimo_conv.testing.oracle import oracle_for
from mimo_conv.testing.reference import Exact, fraction_exact, one_call_exact, one_call_plan
from mimo_conv.testing.stacked_calls import run_pairs


def _assert_within(exact: Exact, fractions: np.ndarray[Any, Any]) -> None:
    for index in np.ndindex(fractions.shape):
        gap = abs(
            fractions[index] - Fraction(float(exact.hi[index])) - Fraction(float(exact.lo[index]))
        )
        assert gap <= Fraction(float(exact.error[index])), index


@settings(max_examples=30, deadline=None)
@given(problem=conv_problems(dtypes=("float32", "float16"), elements="floats"))
def test_one_float64_call_is_within_its_stated_error(problem: ConvProblem) -> None:
    call = parse_call("conv", problem.args(), problem.conv_kwargs())
    low = one_call_plan(call)
    assert low is not None  # float32 and float16 products are exact in float64
    magnitudes = mc.conv(
        abs(problem.x.astype(np.float64)), abs(problem.weight.astype(np.float64)),
        **problem.conv_kwargs(),
    ) * (1 + 2**-40)  # fmt: skip
    result = run_pairs(call, [(call.left, call.right)])[0]
    exact = one_call_exact(call, result, magnitudes, max(problem.n, 1), low)
    _assert_within(exact, fraction_exact(call)[0])


@settings(max_examples=30, deadline=None)
@given(problem=conv_problems(dtypes=("float64",), elements="integers"))
def test_integers_in_float64_take_one_exact_call(problem: ConvProblem) -> None:
    oracle = oracle_for("conv", problem.args(), problem.conv_kwargs())
    assert oracle.exact is not None
    assert oracle.exact.method == "float64"
    assert not oracle.exact.error.any()  # the benchdnn condition holds: exact, not bounded
    real, _ = fraction_exact(parse_call("conv", problem.args(), problem.conv_kwargs()))
    for index in np.ndindex(real.shape):
        assert (
            Fraction(float(oracle.exact.hi[index])) + Fraction(float(oracle.exact.lo[index]))
            == real[index]
        )


@settings(max_examples=30, deadline=None)
@given(problem=conv_problems(dtypes=("float64", "float32"), elements="cancellation"))
def test_the_paired_oracle_is_within_its_stated_error(problem: ConvProblem) -> None:
    for precision in (None, "float64"):
        oracle = oracle_for("conv", problem.args(), problem.conv_kwargs(), precision)
        assert oracle.exact is not None
        _assert_within(oracle.exact, fraction_exact(oracle.call)[0])


@settings(max_examples=20, deadline=None)
@given(problem=transpose_problems(dtypes=("float64", "float32")))
def test_the_paired_oracle_of_a_transposed_conv_is_within_its_stated_error(
    problem: TransposeProblem,
) -> None:
    oracle = oracle_for("conv_transpose", problem.args(), problem.kwargs())
    assert oracle.exact is not None
    _assert_within(oracle.exact, fraction_exact(oracle.call)[0])
    assert oracle.n == problem.n  # the terms counted in the stacked call


@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_stacked_pairs_compute_each_pair(op: str) -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(-9, 10, (2, 4, 7)).astype(np.float64)
    w = rng.integers(-9, 10, (4, 3, 3) if op == "conv_transpose" else (6, 2, 3)).astype(np.float64)
    options = {"groups": 2, "stride": 2, "padding": 1}
    call = parse_call(op, (x, w), options)
    pairs: list[tuple[Any, Any]] = [(x, w), (abs(x), abs(w)), (x * 3, -w)]
    stacked = run_pairs(call, pairs)
    function: Any = mc.conv if op == "conv" else mc.conv_transpose
    for (a, b), got in zip(pairs, stacked, strict=True):
        np.testing.assert_array_equal(got, function(a, b, **options))  # integers: exact


@pytest.mark.parametrize(("dtype", "margin"), [("float32", 2**-20), ("float64", 1 / 4)])
def test_the_comparison_is_sharp_at_the_bound(dtype: str, margin: float) -> None:
    # The margin stays well above the rounding of hi + bound in float64 (the float64
    # model's bound is a few units in the last place of hi).
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 3, 9)).astype(dtype)
    w = rng.standard_normal((2, 3, 3)).astype(dtype)
    oracle = oracle_for("conv", (x, w), {})
    assert oracle.exact is not None
    limit = np.asarray(oracle.bound, dtype=np.float64)
    inside = oracle.exact.hi + limit * (1 - margin)
    outside = oracle.exact.hi + limit * (1 + margin)
    assert not oracle.exceeding(inside).any()
    assert oracle.exceeding(outside).all()
    assert not oracle.exceeding(oracle.exact.hi - limit * (1 - margin)).any()
    assert oracle.exceeding(oracle.exact.hi - limit * (1 + margin)).all()


@settings(max_examples=15, deadline=None)
@given(problem=backward_problems(dtypes=("float32",), max_side=4, max_channels=3))
def test_gradient_references_are_within_their_stated_error(problem: BackwardProblem) -> None:
    # One float64 call each (the operands converted first: a float32 call would be off by
    # as much as the bound itself).
    options = problem.kwargs()
    for op, args in (("conv_input", problem.input_args()), ("conv_weight", problem.weight_args())):
        oracle = oracle_for(op, args, options)
        assert oracle.exact is not None
        assert oracle.exact.method == "float64"
        _assert_within(oracle.exact, fraction_exact(oracle.call)[0])


def test_a_conv_too_large_to_stack_is_referenced_in_float64() -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 2, 100, 90)).astype(np.float32)  # 2 pairs of 18,000: not stacked
    w = rng.standard_normal((1, 2, 1, 1)).astype(np.float32)
    oracle = oracle_for("conv", (x, w), {})
    assert oracle.exact is not None
    assert oracle.exact.method == "float64"
    _assert_within(oracle.exact, fraction_exact(oracle.call)[0])


@pytest.mark.parametrize("out_channels", [1, 7])
def test_terms_are_counted_in_any_layout(out_channels: int) -> None:
    # HWIO weights: prod(shape[1:]) is not the terms per output; the count must not use it.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 5, 5, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, out_channels)).astype(np.float32)
    options: dict[str, Any] = {"layout": "NHWC", "weight_layout": "HWIO"}
    oracle = oracle_for("conv", (x, w), options)
    assert oracle.n == 3 * 3 * 2
    canonical = oracle_for("conv", (x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1)), {})
    # The magnitudes come from calls on other paths (the canonical one stacked): the same
    # sums, perhaps in another order, so equal up to their last bits.
    np.testing.assert_allclose(oracle.bound, np.moveaxis(canonical.bound, 1, -1), rtol=2**-40)
    oracle.check(mc.conv(x, w, **options))
