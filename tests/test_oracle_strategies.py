"""Strategies that scale: large problems from a seed, shrinking to the smallest, every op."""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import find, given, settings

import mimo_conv as mc
from emulated_kernels import emulate
from mimo_conv import testing
from mimo_conv.testing import (
    BackwardProblem,
    ConvProblem,
    TransposeProblem,
    assert_close,
    backward_problems,
    conv_problems,
    transpose_problems,
)
from mimo_conv.testing.strategies import exact_integer_limit


@settings(max_examples=10, deadline=None)
@given(conv_problems(max_side=32, max_channels=16, dtypes=("float32",)))
def test_large_problems_are_generated_and_checked(problem: ConvProblem) -> None:
    out = mc.conv(*problem.args(), **problem.conv_kwargs())
    assert out.shape == problem.out_shape
    assert_close(out, "conv", *problem.args(), **problem.conv_kwargs())


def test_large_arrays_come_from_a_seed() -> None:
    big = find(
        conv_problems(max_side=32, max_channels=16, dtypes=("float32",), batched=True),
        lambda p: p.x.size > 256,
        settings=settings(database=None, max_examples=200),
    )
    assert big.x.size > 256
    assert np.unique(big.x).size > 1  # values, not one repeated element


def _wrong(problem: ConvProblem) -> bool:
    """Whether a kernel that is 0.1 % off everywhere is caught on this problem."""
    out = mc.conv(*problem.args(), **problem.conv_kwargs()) * 1.001
    try:
        assert_close(out, "conv", *problem.args(), **problem.conv_kwargs(), check_dtype=False)
    except AssertionError:
        return True
    return False


def test_a_failure_shrinks_to_one_channel_one_tap_stride_one_batch_one() -> None:
    failing: list[ConvProblem] = []

    @settings(database=None, max_examples=300, deadline=None, print_blob=False)
    @given(conv_problems(max_side=32, max_channels=16, dtypes=("float64",)))
    def test_kernel(problem: ConvProblem) -> None:
        if _wrong(problem):
            failing.append(problem)
            raise AssertionError

    start = time.perf_counter()
    with pytest.raises(AssertionError):
        test_kernel()
    seconds = time.perf_counter() - start
    smallest = failing[-1]  # hypothesis replays the shrunk example last
    print(f"shrunk in {seconds:.1f} s to x {smallest.x.shape}, weight {smallest.weight.shape}")
    assert smallest.weight.shape == (1, 1) + (1,) * smallest.spatial_dims
    assert smallest.x.size == 1  # one channel, one element, batch 1 (or none)
    assert smallest.stride in (1, (1,) * smallest.spatial_dims)
    assert smallest.groups == 1


@settings(max_examples=20, deadline=None)
@given(transpose_problems(dtypes=("float32", "float64")))
def test_transposed_problems_are_valid_and_expose_n(problem: TransposeProblem) -> None:
    out = mc.conv_transpose(*problem.args(), **problem.kwargs())
    assert out.shape == problem.out_shape
    extra = problem.output_padding
    strides = problem.stride
    assert np.all(np.asarray(extra) < np.maximum(np.asarray(strides), np.asarray(problem.dilation)))
    assert (
        0
        <= problem.n
        <= problem.weight.shape[0] // problem.groups * np.prod(problem.weight.shape[2:])
    )
    assert_close(out, "conv_transpose", *problem.args(), **problem.kwargs())


@settings(max_examples=20, deadline=None)
@given(backward_problems(dtypes=("float32",), padding_modes=("zeros", "reflect", "circular")))
def test_backward_problems_check_all_three_gradients(problem: BackwardProblem) -> None:
    options = problem.kwargs()
    grad_x = mc.grad.conv_input(*problem.input_args(), **options)
    assert_close(grad_x, "conv_input", *problem.input_args(), **options)
    grad_w = mc.grad.conv_weight(*problem.weight_args(), **options)
    assert_close(grad_w, "conv_weight", *problem.weight_args(), **options)
    grad_b = mc.grad.conv_bias(problem.grad_output, batched=problem.batched)
    assert_close(grad_b, "conv_bias", problem.grad_output, batched=problem.batched)
    assert (
        problem.n_weight
        == problem.n_bias
        == problem.grad_output.size
        // max(problem.grad_output.shape[-problem.forward.spatial_dims - 1], 1)
    )


@settings(max_examples=20, deadline=None)
@given(conv_problems(elements="exact", precision="float16-accumulate", dtypes=("float32",)))
def test_exact_elements_respect_the_benchdnn_rule(problem: ConvProblem) -> None:
    model = testing.PRESETS["float16-accumulate"]
    limit = exact_integer_limit(model, problem.n)
    for array in problem.args():
        if array is not None:
            assert np.all(np.abs(array) <= limit)
            assert np.all(array == np.round(array))
    top = 2**11
    assert problem.n * limit * limit + limit <= top


def test_unfold_and_fold_are_checked() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    cols = mc.unfold(x, 3, padding=1)
    assert_close(cols, "unfold", x, 3, padding=1)
    folded = mc.fold(cols, (5, 5), 3, padding=1)
    assert_close(folded, "fold", cols, (5, 5), 3, padding=1)
    wrong = folded.copy()
    wrong[0, 0, 0, 0] += 1e-3
    with pytest.raises(AssertionError, match=r"(?s)fold result .* 1 of 50 elements exceed it"):
        assert_close(wrong, "fold", cols, (5, 5), 3, padding=1)


def test_bad_arguments_name_the_op_and_the_signature() -> None:
    with pytest.raises(ValueError, match="op must be one of"):
        assert_close(np.ones(1), "conv2", np.ones((1, 1)), np.ones((1, 1, 1)))
    with pytest.raises(TypeError, match=r"conv_input\(\) arguments do not match"):
        assert_close(np.ones(1), "conv_input", np.ones((1, 1)))


def test_missing_ml_dtypes_names_the_lowp_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    x = np.ones((1, 3), dtype=np.float32)
    w = np.ones((1, 1, 2), dtype=np.float32)
    out = mc.conv(x, w)
    assert_close(out, "conv", x, w, precision="bfloat16")  # no dtype check: no ml_dtypes needed
    with pytest.raises(ImportError, match=r'pip install "mimo_conv\[lowp\]"'):
        assert_close(out, "conv", x, w, precision="bfloat16", check_dtype=True)


def test_library_frames_are_hidden_from_pytest() -> None:
    from mimo_conv.testing import assertions, oracle  # noqa: PLC0415

    for function in (assertions.assert_close, assertions.assert_conv_close, oracle.Oracle.check):
        assert "__tracebackhide__" in function.__code__.co_varnames


def test_inputs_are_not_modified() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3)).astype(np.float32)
    before = [x.copy(), w.copy()]
    out: Any = mc.conv(x, w)
    assert_close(out, "conv", x, w, precision="tf32")
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(w, before[1])


# --- exact elements when even values of 1 would overflow 2**p -----------------------------

#: A model whose output holds the integers only up to 2**4: 16 terms already force sparse
#: problems (bfloat16 output does at 256 terms, float16 accumulation at 2048).
NARROW = testing.Precision("float8_e4m3fn", "float32", output="float8_e4m3fn")
NARROW_TOP = 2**4


def _magnitude_sum(op: str, args: tuple[Any, ...], options: dict[str, Any]) -> np.ndarray:
    """``sum |a_i b_i| + |c|`` per output: every partial sum, in any order, is at most this."""
    functions: dict[str, Any] = {"conv": mc.conv, "conv_transpose": mc.conv_transpose}
    function = functions.get(op) or getattr(mc.grad, op)
    absolute = [abs(a.astype(np.float64)) if isinstance(a, np.ndarray) else a for a in args]
    return np.asarray(function(*absolute, **options))


def _assert_integers(*arrays: Any) -> None:
    for array in arrays:
        if array is not None:
            assert np.array_equal(array, np.round(array))


@settings(max_examples=25, deadline=None)
@given(conv_problems(dtypes=("float32",), elements="exact", precision=NARROW, max_channels=4))
def test_exact_elements_beyond_2p_terms_keep_every_partial_sum_exact(problem: ConvProblem) -> None:
    _assert_integers(*problem.args())
    # Integer terms whose magnitudes add up to at most 2**p: every partial sum is exact.
    assert np.all(_magnitude_sum("conv", problem.args(), problem.conv_kwargs()) <= NARROW_TOP)
    wide: list[Any] = [None if a is None else a.astype(np.float64) for a in problem.args()]
    exact = mc.conv(*wide, **problem.conv_kwargs())
    kernel = emulate("conv", *problem.args(), precision=NARROW, **problem.conv_kwargs())
    np.testing.assert_array_equal(kernel, exact)


@settings(max_examples=15, deadline=None)
@given(backward_problems(dtypes=("float32",), elements="exact", precision=NARROW, max_side=6))
def test_exact_backward_problems_keep_every_gradient_sum_exact(problem: BackwardProblem) -> None:
    options = problem.kwargs()
    _assert_integers(problem.forward.x, problem.forward.weight, problem.grad_output)
    assert np.all(_magnitude_sum("conv", problem.forward.args(), options) <= NARROW_TOP)
    assert np.all(_magnitude_sum("conv_input", problem.input_args(), options) <= NARROW_TOP)
    assert np.all(_magnitude_sum("conv_weight", problem.weight_args(), options) <= NARROW_TOP)
    bias_sum = mc.grad.conv_bias(abs(problem.grad_output), batched=problem.batched)
    assert np.all(bias_sum <= NARROW_TOP)


@settings(max_examples=15, deadline=None)
@given(transpose_problems(dtypes=("float32",), elements="exact", precision=NARROW))
def test_exact_transposed_problems_keep_every_sum_exact(problem: TransposeProblem) -> None:
    _assert_integers(*problem.args())
    sums = _magnitude_sum("conv_transpose", problem.args(), problem.kwargs())
    assert np.all(sums <= NARROW_TOP)


def test_sparse_exact_problems_are_not_trivial() -> None:
    results: list[np.ndarray] = []

    @settings(max_examples=40, deadline=None, database=None, derandomize=True)
    @given(
        conv_problems(
            dtypes=("float32",), elements="exact", precision=NARROW, max_channels=8, bias=False
        )
    )
    def collect(problem: ConvProblem) -> None:
        if problem.n >= NARROW_TOP:  # the sparse regime: more terms than 2**p
            args = [a.astype(np.float64) for a in problem.args() if a is not None]
            results.append(mc.conv(*args, **problem.conv_kwargs()))

    collect()
    assert len(results) >= 10
    nonzero = [bool(np.any(result)) for result in results]
    assert sum(nonzero) >= 0.8 * len(results)
    # The range is used, not only 0 and 1.
    assert max(float(np.abs(result).max()) for result in results) >= 4
