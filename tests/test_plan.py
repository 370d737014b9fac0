"""One plan per call: the plan that explain_method prints is the one the engine runs.

The property at the heart of it: for every dtype, budget, path and rank, the plan says a
call fits exactly when it runs without MemoryError, and the temporaries measured while it
runs (tracemalloc) never exceed the plan's workspace.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mimo_conv as mc
from memory_probe import peak_temporary
from mimo_conv import grad
from mimo_conv._gradients.input_gradient import input_gradient

DTYPES = (
    "float16",
    "float32",
    "float64",
    "complex128",
    "int8",
    "int16",
    "int32",
    "int64",
    "object",
)


def test_float16_and_int32_inputs_count_their_conversion_copy() -> None:
    # Before: the model planned no input copy without padding, the engine made one for the
    # conversion to the compute dtype; explain_method chose gemm and conv2d raised.
    for dtype, budget in (("float16", 100_000), ("int32", 150_000)):
        x = np.ones((8, 16, 32, 32), dtype)
        w = np.ones((16, 16, 3, 3), dtype)
        plan = mc.explain_method(x, w, memory_budget=budget)
        assert plan.chosen is None, dtype
        with pytest.raises(MemoryError, match="no computational path fits"):
            mc.conv2d(x, w, memory_budget=budget)
        with pytest.raises(MemoryError, match=r"the converted copy of one input image"):
            mc.conv2d(x, w, memory_budget=budget, method="gemm")
        roomy = mc.explain_method(x, w, memory_budget=4 * budget)
        assert roomy.chosen is not None
        peak, out = peak_temporary(partial(mc.conv2d, x, w, memory_budget=4 * budget))
        assert peak <= roomy.cost.workspace <= 4 * budget
        assert np.array_equal(out, mc.conv2d(x, w))


@pytest.mark.parametrize(
    "layout",
    [
        np.asfortranarray,
        lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
        lambda a: np.concatenate([a, a], axis=3)[..., ::2],
    ],
    ids=["fortran", "channels-last", "sliced"],
)
def test_a_pointwise_kernel_on_a_non_contiguous_input_fits_a_budget(layout: Any) -> None:
    rng = np.random.default_rng(0)
    x = layout(rng.standard_normal((1, 256, 32, 32)))
    w = rng.standard_normal((8, 256, 1, 1))
    assert not x.flags.c_contiguous
    plan = mc.explain_method(x, w, memory_budget=2**20)
    matmul = next(cost for cost in plan.candidates if cost.method == "matmul")
    assert not matmul.feasible  # its C-contiguous copy (2 MiB) is counted
    assert plan.chosen is not None
    out = mc.conv2d(x, w, memory_budget=2**20)
    np.testing.assert_allclose(out, mc.conv2d(np.ascontiguousarray(x), w), rtol=1e-12)


def test_the_old_fold_spelling_warns_and_names_the_new_one() -> None:
    x, w = np.arange(12.0).reshape(1, 1, 3, 4), np.ones((1, 1, 2, 2))
    with pytest.warns(DeprecationWarning, match="'row_gemm'"):
        out = mc.conv2d(x, w, method="fold")
    assert np.array_equal(out, mc.conv2d(x, w, method="row_gemm"))
    assert "fold" not in mc.METHOD_NAMES


@pytest.mark.parametrize(
    "method",
    [m for m in mc.METHOD_NAMES if m not in {"matmul", "winograd"}],  # forward 3x3 only
)
def test_output_padding_below_the_dilation_works_on_every_path(method: str) -> None:
    # PyTorch allows output_padding < max(stride, dilation); torch gives [1, 2, 10, 20, 0].
    out = mc.conv_transpose1d(
        [[[1.0, 2.0]]], [[[1.0, 10.0]]], stride=1, output_padding=1, dilation=2, method=method
    )
    assert out.tolist() == [[[1.0, 2.0, 10.0, 20.0, 0.0]]]


def test_conv_backward_plans_every_gradient_before_computing_any(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The weight gradient's 'images' are input channels holding the whole batch: with 64
    # images its smallest working set is far larger than the input gradient's.
    x = np.ones((64, 1, 8, 8))
    w = np.ones((1, 1, 3, 3))
    g = np.ones((64, 1, 8, 8))
    calls: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append("input")
        return input_gradient(*args, **kwargs)

    monkeypatch.setattr("mimo_conv._gradients.backward.input_gradient", spy)
    with pytest.raises(MemoryError, match="weight gradient"):
        mc.conv_backward(x, g, w, padding=1, method="gemm", memory_budget=2**15)
    assert calls == []  # the weight gradient's MemoryError came before any input gradient
    grad.conv2d_input(x.shape, w, g, padding=1, method="gemm", memory_budget=2**15)  # it fits


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    budget=st.sampled_from((64, 600, 3_000, 20_000, 2**20)),
    # "winograd" (2-d float 3 x 3 only) is held to its budget in tests/test_winograd.py.
    method=st.sampled_from([m for m in mc.METHOD_NAMES if m != "winograd"]),
    rank=st.integers(1, 3),
    batch=st.integers(1, 3),
    padded=st.booleans(),
    with_bias=st.booleans(),
)
def test_the_plan_says_feasible_exactly_when_the_call_runs_within_its_workspace(
    dtype: str, budget: int, method: str, rank: int, batch: int, padded: bool, with_bias: bool
) -> None:
    rng = np.random.default_rng(rank * 10 + batch)
    size = (6, 5, 4)[:rank]
    kernel = (1,) * rank if method == "matmul" else (3, 2, 2)[:rank]
    x = rng.integers(-3, 4, (batch, 3, *size)).astype(dtype)
    w = rng.integers(-3, 4, (2, 3, *kernel)).astype(dtype)
    bias = rng.integers(-3, 4, 2).astype(dtype) if with_bias else None
    padding = 1 if padded else 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = mc.explain_method(x, w, bias, padding=padding, memory_budget=budget)
    if method != "auto":
        from mimo_conv._core.operands import prepare_call  # noqa: PLC0415
        from mimo_conv._engine.execute import plan_for  # noqa: PLC0415

        xa, wa, ba, geometry, dtypes = prepare_call(
            x, w, bias, stride=1, padding=padding, dilation=1, groups=1, padding_mode="zeros"
        )
        plan = plan_for(xa, wa, geometry, dtypes, budget, method, ba)

    def call() -> Any:
        return mc.conv(x, w, bias, padding=padding, method=method, memory_budget=budget)

    if plan.chosen is None:
        with pytest.raises(MemoryError):
            call()
        return
    call()  # warm the caches the measurement should not count
    peak, out = peak_temporary(call)
    # Beyond the planned arrays only fixed-size extras, as in test_paths: NumPy's ufunc
    # iterator buffers (np.getbufsize() elements for each of up to 3 operands) and Python
    # objects (slices, views, the chunk loop's tuples).
    slack = 3 * np.getbufsize() * np.dtype(plan.plan.compute).itemsize + 32 * 1024
    assert peak <= plan.cost.workspace + slack, (peak, plan.cost)
    assert plan.cost.workspace <= budget
    expected = mc.conv(
        x.astype(object),
        w.astype(object),
        None if bias is None else bias.astype(object),
        padding=padding,
    )
    assert np.array_equal(out.astype(object), expected.astype(out.dtype).astype(object))


def test_the_weight_gradients_object_copies_count_against_the_budget() -> None:
    # dtype=object operands holding NumPy integers are copied whole to Python ints first.
    x = np.array(np.arange(2 * 1 * 6 * 6).reshape(2, 1, 6, 6) % 5, dtype=object)
    x[0, 0, 0, 0] = np.int64(7)  # a NumPy integer inside: the copy converts it
    g = np.ones((2, 1, 4, 4), dtype=object)
    copies = (x.size + g.size) * np.dtype(object).itemsize
    with pytest.raises(
        MemoryError, match=rf"dtype=object operands to Python numbers: {copies} bytes"
    ):
        grad.conv2d_weight(x, (1, 1, 3, 3), g, memory_budget=copies)
    exact = grad.conv2d_weight(x.astype(np.int64), (1, 1, 3, 3), g.astype(np.int64))
    assert np.array_equal(grad.conv2d_weight(x, (1, 1, 3, 3), g, memory_budget=4 * copies), exact)


def test_the_engine_executes_the_plan_explain_method_prints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mimo_conv._engine import execute  # noqa: PLC0415

    executed: list[Any] = []
    original = execute.run_conv

    def spy(*args: Any) -> Any:
        executed.append(args[-1])
        return original(*args)

    monkeypatch.setattr("mimo_conv._ops.conv.run_conv", spy)
    x = np.ones((2, 3, 9, 9), np.float16)
    w = np.ones((4, 3, 3, 3), np.float32)
    for budget in (None, 20_000):
        mc.conv2d(x, w, padding=1, memory_budget=budget)
        assert executed[-1] == mc.explain_method(x, w, padding=1, memory_budget=budget)
    assert executed[0] != executed[1]  # the budget is part of the plan


@pytest.mark.parametrize(
    "method", [m for m in mc.METHOD_NAMES if m not in {"auto", "matmul", "winograd"}]
)
def test_every_output_padding_below_stride_or_dilation_agrees_with_the_scatter(method: str) -> None:
    # "auto" runs the scatter (an independent route, which matches PyTorch on these cases);
    # integer values: exact on every path.
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, (2, 2, 4, 3)).astype(np.float64)
    w = rng.integers(-3, 4, (2, 3, 2, 3)).astype(np.float64)
    for stride, dilation in ((1, 2), (2, 1), (2, 3), (3, 2)):
        for extra in range(max(stride, dilation)):
            options: dict[str, Any] = {
                "stride": stride,
                "dilation": dilation,
                "output_padding": (extra, 0),
                "padding": 1,
            }
            expected = mc.conv_transpose2d(x, w, **options)
            assert np.array_equal(mc.conv_transpose2d(x, w, method=method, **options), expected)


def test_the_printed_plan_names_the_threads_it_was_made_for() -> None:
    previous = mc.set_threads(3)
    try:
        plan = mc.explain_method(np.ones((1, 2, 8, 8)), np.ones((2, 2, 3, 3)))
    finally:
        mc.set_threads(1)
    try:
        assert plan.threads == 3
        assert "3 thread(s)" in str(plan).splitlines()[1]  # not the setting at print time
    finally:
        mc.set_threads(previous)
