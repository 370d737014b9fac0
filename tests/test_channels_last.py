"""The channels-last path: ``layout="NHWC"`` computed on the channels-last memory itself.

Expected values come from the tests' own oracle (:mod:`_reference`, Python loops over the
definition) on arrays moved to ``(N, C, *spatial)`` by hand with ``np.moveaxis``, so they
are independent of the library's layout code. Integer-valued data make every comparison
exact; float data are held to the derived bound of :mod:`mimo_conv.testing`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mimo_conv as mc
from _reference import reference_conv
from memory_probe import peak_temporary
from mimo_conv._core.layouts import channels_first, from_canonical, is_laid_out
from mimo_conv._core.operands import prepare_call
from mimo_conv._engine.execute import plan_for, run_conv
from mimo_conv.testing import assert_conv_close

SPATIAL = "DHW"
PADDING_MODES = ("zeros", "reflect", "replicate", "circular", "symmetric")


def layouts_of(rank: int, batched: bool) -> tuple[str, str]:
    """The channels-last ``layout`` and TensorFlow's kernel layout for ``rank`` axes."""
    letters = SPATIAL[-rank:]
    return ("N" if batched else "") + letters + "C", letters + "IO"


@st.composite
def channels_last_problems(draw: st.DrawFn, dtype: str = "int64") -> dict[str, Any]:
    """A random problem: ``x`` ``(N, *spatial, C)``, ``weight`` ``(*kernel, I, O)``."""
    rank = draw(st.integers(1, 3))
    batched = draw(st.booleans())
    groups = draw(st.sampled_from([1, 2, 3]))
    per_group = draw(st.integers(1, 3))
    outputs = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(rank))
    mode = draw(st.sampled_from(PADDING_MODES))
    # Large enough for every padding mode (reflect needs padding < size) and one window.
    shape = tuple(
        max(3, d * (k - 1) + 1) + draw(st.integers(0, 3))
        for k, d in zip(kernel, dilation, strict=True)
    )
    batch = draw(st.integers(1, 3)) if batched else None
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lead = () if batch is None else (batch,)
    x = rng.integers(-5, 6, (*lead, *shape, groups * per_group))
    weight = rng.integers(-5, 6, (*kernel, per_group, outputs))
    bias = rng.integers(-5, 6, outputs) if draw(st.booleans()) else None
    if dtype != "int64":
        x, weight = x.astype(dtype), weight.astype(dtype)
        bias = None if bias is None else bias.astype(dtype)
    layout, weight_layout = layouts_of(rank, batched)
    options = {
        "stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
        "padding_mode": mode,
    }  # fmt: skip
    return {
        "x": x, "weight": weight, "bias": bias, "layout": layout,
        "weight_layout": weight_layout, "options": options, "batched": batched,
    }  # fmt: skip


def canonical_operands(problem: dict[str, Any]) -> tuple[Any, Any]:
    """``x`` as ``(N, C, *spatial)`` (batched) and the kernels as ``(O, I, *kernel)``, by hand."""
    x = problem["x"] if problem["batched"] else problem["x"][np.newaxis]
    weight = problem["weight"]
    return np.moveaxis(x, -1, 1), np.moveaxis(weight, (-1, -2), (0, 1))


def expected_result(problem: dict[str, Any]) -> np.ndarray[Any, Any]:
    """The oracle's result, moved back to channels last (and unbatched if the input was)."""
    x, weight = canonical_operands(problem)
    options = problem["options"]
    exact = reference_conv(
        x, weight, problem["bias"], stride=options["stride"], padding=options["padding"],
        dilation=options["dilation"], groups=options["groups"],
        padding_mode=options["padding_mode"],
    )  # fmt: skip
    result = np.moveaxis(exact, 1, -1)
    return result if problem["batched"] else result[0]


def run(problem: dict[str, Any], **extra: Any) -> np.ndarray[Any, Any]:
    return mc.conv(
        problem["x"], problem["weight"], problem["bias"], layout=problem["layout"],
        weight_layout=problem["weight_layout"], **problem["options"], **extra,
    )  # fmt: skip


def assert_fresh_result(result: np.ndarray[Any, Any], *inputs: Any) -> None:
    """A new, writeable, C-contiguous array sharing no memory with any input."""
    assert result.flags.c_contiguous
    assert result.flags.writeable
    for array in inputs:
        if array is not None:
            assert not np.shares_memory(result, array)


@settings(max_examples=60)
@given(channels_last_problems(), st.sampled_from(["channels_last", "auto"]))
def test_channels_last_is_exact_on_integers(problem: dict[str, Any], method: str) -> None:
    before = [problem["x"].copy(), problem["weight"].copy()]
    result = run(problem, method=method)
    expected = expected_result(problem)
    assert result.dtype == np.int64
    assert result.shape == expected.shape
    assert np.array_equal(result, expected.astype(np.int64))
    assert_fresh_result(result, problem["x"], problem["weight"], problem["bias"])
    assert np.array_equal(problem["x"], before[0])  # inputs never modified
    assert np.array_equal(problem["weight"], before[1])


@settings(max_examples=25)
@given(channels_last_problems(dtype="object"))
def test_channels_last_is_exact_on_python_ints(problem: dict[str, Any]) -> None:
    result = run(problem, method="channels_last")
    expected = expected_result(problem)
    assert result.dtype == object
    assert result.tolist() == expected.tolist()
    assert {type(value) for value in result.flat} <= {int}


@settings(max_examples=40)
@given(
    channels_last_problems(dtype="float64"),
    st.sampled_from(["float16", "float32", "float64", "complex64"]),
    st.integers(0, 2**32 - 1),
)
def test_channels_last_is_within_the_error_bound_on_floats(
    problem: dict[str, Any], dtype: str, seed: int
) -> None:
    # Random (non-integer) data in the drawn shapes; the bound of the canonical call.
    rng = np.random.default_rng(seed)
    for key in ("x", "weight", "bias"):
        if problem[key] is not None:
            values = rng.standard_normal(problem[key].shape)
            if dtype == "complex64":
                values = values + 1j * rng.standard_normal(problem[key].shape)
            problem[key] = values.astype(dtype)
    result = run(problem, method="channels_last")
    assert result.dtype == np.dtype(dtype)
    x, weight = canonical_operands(problem)
    canonical_result = np.moveaxis(result if problem["batched"] else result[np.newaxis], -1, 1)
    assert_conv_close(canonical_result, x, weight, problem["bias"], **problem["options"])


@settings(max_examples=30)
@given(channels_last_problems(), st.integers(1, 3))
def test_channels_last_is_exact_in_chunks_of_rows_and_images(
    problem: dict[str, Any], shrink: int
) -> None:
    # A budget just above the path's smallest working set forces one image and a few
    # output rows per chunk (and, with padding, the input copied a few images at a time).
    planned = mc.explain_method(
        problem["x"], problem["weight"], problem["bias"], layout=problem["layout"],
        weight_layout=problem["weight_layout"], **problem["options"],
    )  # fmt: skip
    needs = next(c for c in planned.candidates if c.method == "channels_last").needs
    budget = needs + (needs // 4) // shrink
    peak, result = peak_temporary(
        lambda: run(problem, method="channels_last", memory_budget=budget)
    )
    assert np.array_equal(result, expected_result(problem).astype(np.int64))
    assert peak <= budget + SLACK


#: What a call may hold beyond its budget, as in test_paths: NumPy's iterator buffers
#: (np.getbufsize() elements for up to 3 operands) and a few KiB of Python objects.
SLACK = 3 * np.getbufsize() * 8 + 32 * 1024


@pytest.mark.parametrize("budget", [2**18, 2**19])
@pytest.mark.parametrize("stride", [1, 2])
def test_peak_temporary_memory_stays_within_the_budget(budget: int, stride: int) -> None:
    # One image's column buffer (16 * 9 taps * 24 * 24 * 8 B = 648 KiB at stride 1) is
    # larger than either budget: the path works in chunks of rows.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 24, 24, 16))
    w = rng.standard_normal((3, 3, 16, 8))
    options: dict[str, Any] = {"padding": 1, "stride": stride, "layout": "NHWC"}
    options["weight_layout"] = "HWIO"
    peak, result = peak_temporary(
        lambda: mc.conv2d(x, w, method="channels_last", memory_budget=budget, **options)
    )
    assert peak <= budget + w.nbytes + SLACK, (peak, budget)
    whole, _ = peak_temporary(lambda: mc.conv2d(x, w, method="channels_last", **options))
    assert whole > budget + w.nbytes + SLACK  # not vacuous: unbudgeted it holds more
    canonical = np.moveaxis(result, -1, 1)
    w_oihw = np.moveaxis(w, (3, 2), (0, 1))
    assert_conv_close(canonical, np.moveaxis(x, -1, 1), w_oihw, padding=1, stride=stride)


def test_the_smallest_budget_is_exact_and_refused_before_any_work() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, (3, 9, 7, 4)).astype(np.float32)
    w = rng.integers(-3, 4, (3, 2, 4, 5)).astype(np.float32)
    options: dict[str, Any] = {"padding": 1, "layout": "NHWC", "weight_layout": "HWIO"}
    candidates = mc.explain_method(x, w, memory_budget=64, **options).candidates
    needs = next(cost.needs for cost in candidates if cost.method == "channels_last")
    expected = mc.conv2d(x, w, method="naive", **options)
    actual = mc.conv2d(x, w, method="channels_last", memory_budget=needs, **options)
    assert np.array_equal(actual, expected)
    budget_before = mc.get_memory_budget()
    with pytest.raises(MemoryError, match=f"'channels_last' path.*needs {needs} bytes"):
        mc.conv2d(x, w, method="channels_last", memory_budget=needs - 1, **options)
    assert mc.get_memory_budget() == budget_before


def test_a_pointwise_layer_reads_and_writes_channels_last_without_a_copy() -> None:
    # 1 x 1 at stride 1: one product (N*H*W, C_in) @ (C_in, C_out) straight into the NHWC
    # result. Neither the input nor the output is copied: the temporaries stay far below
    # the size of either (the path's kernels are a view of the HWIO array).
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (4, 16, 16, 32)).astype(np.float32)
    w = rng.integers(-3, 4, (1, 1, 32, 24)).astype(np.float32)
    peak, result = peak_temporary(
        lambda: mc.conv2d(x, w, layout="NHWC", weight_layout="HWIO", method="channels_last")
    )
    expected = np.einsum("nhwc,co->nhwo", x, w[0, 0])  # exact: small integers in float32
    assert np.array_equal(result, expected)
    assert_fresh_result(result, x, w)
    assert peak < min(x.nbytes, result.nbytes) // 8
    # The transposing route holds at least the canonical result besides the NHWC one.
    transposing, same = peak_temporary(
        lambda: mc.conv2d(x, w, layout="NHWC", weight_layout="HWIO", method="matmul")
    )
    assert np.array_equal(same, expected)
    assert transposing >= result.nbytes


@pytest.mark.parametrize("method", ["channels_last", "gemm"])
def test_the_engine_returns_the_result_in_the_memory_order_asked_for(method: str) -> None:
    rng = np.random.default_rng(1)
    nhwc = rng.integers(-3, 4, (2, 6, 5, 4)).astype(np.float64)
    w = rng.integers(-3, 4, (3, 4, 2, 2)).astype(np.float64)
    x = channels_first(nhwc)  # the canonical view conv passes the engine
    x_array, w_array, _, geometry, dtypes = prepare_call(
        x, w, None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"
    )
    call = plan_for(
        x_array, w_array, geometry, dtypes, 2**24, method, result_layout="channels_last"
    )
    out = run_conv(x_array, w_array, None, call)
    assert is_laid_out(out, "channels_last")
    assert np.array_equal(out, reference_conv(x, w).astype(np.float64))
    # ... so the view into the caller's layout is no copy.
    caller = from_canonical(out, (0, 3, 1, 2))
    assert caller.flags.c_contiguous
    assert np.shares_memory(caller, out)
    canonical = plan_for(x_array, w_array, geometry, dtypes, 2**24, method)
    assert is_laid_out(run_conv(x_array, w_array, None, canonical), "channels_first")


F32 = np.float32

#: bench_conv's layers as (name, NHWC input, HWIO kernels, options): the cost model's choice
#: for each follows the interleaved measurements of benchmarks/bench_layouts.py.
LAYERS: tuple[tuple[str, tuple[int, ...], tuple[int, ...], dict[str, Any]], ...] = (
    ("pointwise-1x1", (8, 28, 28, 256), (1, 1, 256, 128), {}),
    ("stride-2", (8, 56, 56, 64), (3, 3, 64, 128), {"stride": 2, "padding": 1}),
    ("stem-7x7", (8, 224, 224, 3), (7, 7, 3, 64), {"stride": 2, "padding": 3}),
    ("depthwise-3x3", (8, 56, 56, 64), (3, 3, 1, 64), {"padding": 1, "groups": 64}),
)


@pytest.mark.parametrize(("name", "x_shape", "w_shape", "options"), LAYERS)
def test_auto_takes_the_channels_last_path_where_it_measured_faster(
    name: str, x_shape: tuple[int, ...], w_shape: tuple[int, ...], options: dict[str, Any]
) -> None:
    x, w = np.ones(x_shape, F32), np.ones(w_shape, F32)
    planned = mc.explain_method(x, w, layout="NHWC", weight_layout="HWIO", **options)
    expected = "depthwise" not in name
    assert (planned.chosen == "channels_last") == expected
    text = str(planned)
    assert "memory order: input channels last, result channels last" in text
    assert "result copied to channels last" in text  # the transposing paths' extra copy
    # The same layer channels first never considers the path.
    canonical = mc.explain_method(np.ones((8, x_shape[-1], *x_shape[1:-1]), F32),
                                  np.moveaxis(w, (-1, -2), (0, 1)), **options)  # fmt: skip
    row = next(c for c in canonical.candidates if c.method == "channels_last")
    assert not row.feasible
    assert "channels-last data only" in row.note
    assert canonical.chosen != "channels_last"


def test_channels_first_data_through_the_named_path_is_transposed_both_ways() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(-4, 5, (2, 3, 7, 6))
    w = rng.integers(-4, 5, (4, 3, 3, 2))
    result = mc.conv2d(x, w, [1, 2, 3, 4], stride=(2, 1), padding=1, method="channels_last")
    expected = reference_conv(x, w, [1, 2, 3, 4], stride=(2, 1), padding=1)
    assert np.array_equal(result, expected.astype(np.int64))
    assert result.flags.c_contiguous  # channels first, as asked
    plan = mc.explain_method(x, w, stride=(2, 1), padding=1)
    assert plan.chosen != "channels_last"


def test_a_strided_channels_last_input_is_copied_once_and_exact() -> None:
    # Every other pixel of a larger array: channels last but not contiguous.
    rng = np.random.default_rng(4)
    big = rng.integers(-4, 5, (2, 10, 12, 3))
    x = big[:, ::2, ::2]
    w = rng.integers(-4, 5, (2, 2, 3, 5))
    result = mc.conv2d(x, w, layout="NHWC", weight_layout="HWIO", method="channels_last")
    expected = np.moveaxis(
        reference_conv(np.moveaxis(x, -1, 1), np.moveaxis(w, (3, 2), (0, 1))), 1, -1
    )
    assert np.array_equal(result, expected.astype(np.int64))
    assert_fresh_result(result, big, w)


def test_float16_is_rounded_once_into_the_channels_last_result() -> None:
    # float16 accumulates in float32 and is rounded once: the same as rounding the float32
    # call's result, which the integer values keep exact.
    rng = np.random.default_rng(6)
    x = rng.integers(-3, 4, (2, 5, 5, 4)).astype(np.float16)
    w = rng.integers(-3, 4, (3, 3, 4, 6)).astype(np.float16)
    options: dict[str, Any] = {"padding": 1, "layout": "NHWC", "weight_layout": "HWIO"}
    half = mc.conv2d(x, w, method="channels_last", **options)
    single = mc.conv2d(x.astype(F32), w.astype(F32), method="channels_last", **options)
    assert half.dtype == np.float16
    assert np.array_equal(half, single.astype(np.float16))
    assert_fresh_result(half, x, w)
