"""The cost model behind method="auto": a pure function of shapes, tested without timing."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

import mimo_conv as mc
from mimo_conv._core.budget import Chunking
from mimo_conv._core.dtypes import plan_dtypes
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._engine import constants
from mimo_conv._engine import cost_model as model
from mimo_conv._engine.formulas import (
    MEASURED,
    Rates,
    blas_speedup,
    efficiency,
    flop_count,
    numpy_seconds,
    predict_seconds,
)
from mimo_conv._paths import registry
from mimo_conv._paths.gemm import im2col_bytes_per_row
from mimo_conv._paths.registry import PATH_SPECS
from mimo_conv._paths.spec import Work
from mimo_conv.testing import ConvProblem, conv_problems

F32 = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
F64 = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
I64 = plan_dtypes(np.dtype(np.int64), np.dtype(np.int64))
OBJ = plan_dtypes(np.dtype(object), np.dtype(object))


def geometry(
    batch: int = 8,
    c_in: int = 64,
    c_out: int = 64,
    size: tuple[int, ...] = (56, 56),
    kernel: tuple[int, ...] = (3, 3),
    *,
    stride: int = 1,
    padding: int = 1,
    groups: int = 1,
) -> ConvGeometry:
    dims = len(size)
    return ConvGeometry(
        batch_size=batch,
        in_channels=c_in,
        out_channels=c_out,
        groups=groups,
        input_shape=size,
        kernel_shape=kernel,
        stride=(stride,) * dims,
        dilation=(1,) * dims,
        padding=((padding, padding),) * dims,
    )


RESNET = geometry()
#: The paths whose formulas this suite pins (depthwise's are tested with its path).
MODELLED_HERE = ("gemm", "row_gemm", "shift", "einsum")
POINTWISE = geometry(8, 256, 128, (28, 28), (1, 1), padding=0)


def test_every_constant_is_positive_and_says_where_it_was_measured() -> None:
    source = Path(constants.__file__).read_text(encoding="utf-8")
    names = [name for name in vars(constants) if name.isupper()]
    assert len(names) >= 10
    for name in names:
        value = getattr(constants, name)
        values = value.values() if isinstance(value, dict) else [value]
        assert all(v > 0 for v in values), name
        # The comment block right above the assignment names a measurement.
        block = source[: source.index(f"\n{name}")].rsplit("\n\n", 1)[-1]
        assert "measured" in block.lower(), name


def test_flop_count_is_the_direct_convolutions() -> None:
    cost = model.path_cost("gemm", RESNET, F32)
    assert cost.flops == 2 * 8 * 64 * 56 * 56 * 64 * 3 * 3
    complex_plan = plan_dtypes(np.dtype(np.complex128), np.dtype(np.complex128))
    assert model.path_cost("gemm", RESNET, complex_plan).flops == 4 * cost.flops
    for name in tuple(registry.METHODS)[1:]:
        if name != "winograd":  # 4/9 of them: tests/test_winograd.py
            assert model.path_cost(name, RESNET, F32).flops == cost.flops


def test_bytes_moved_follow_each_paths_copies() -> None:
    # gemm copies each of the 9 taps of every output position once (read + write), and
    # the padded input copy (read + write) comes on top.
    gemm = model.path_cost("gemm", RESNET, F32)
    padded = 8 * 64 * 58 * 58 * 4
    assert gemm.bytes_moved == 2 * 8 * 56 * 56 * 64 * 9 * 4 + 2 * padded
    shift = model.path_cost("shift", RESNET, F64)
    # shift per tap: the shifted input (2 * C_in) and the product's addition (3 * C_out);
    # and once, the kernels rearranged tap by tap (read + write).
    kernels = 2 * 64 * 64 * 9 * 8
    assert shift.bytes_moved == (9 * 8 * 56 * 56 * (2 * 64 + 3 * 64) * 8 + 2 * padded * 2 + kernels)
    row = model.path_cost("row_gemm", RESNET, F32)
    # row_gemm: the later taps (3) over every padded row of an image chunk, 3 - 1 output
    # additions, and the kernels with their first axis moved first.
    chunks = -(-56 // row.chunking.rows) if row.chunking else 1
    copied = 8 * (56 + 2 * chunks) * 56 * 64 * 3
    additions = 3 * 2 * 8 * 56 * 56 * 64 * 4
    assert row.bytes_moved == 2 * copied * 4 + additions + 2 * 64 * 64 * 9 * 4 + 2 * padded
    assert model.path_cost("matmul", POINTWISE, F64).bytes_moved == 0  # reads x in place


def test_auto_picks_matmul_for_1x1_and_gemm_for_large_float_layers() -> None:
    assert model.choose_method(POINTWISE, F32) == "matmul"
    assert model.choose_method(POINTWISE, OBJ) == "matmul"
    # Both BLAS-bound im2col paths; "row_gemm" when the copies it saves outweigh its additions.
    for plan in (F32, F64):
        assert model.choose_method(RESNET, plan) in {"gemm", "row_gemm"}
    # Without BLAS every vectorised path does the same arithmetic at the same rate; copies
    # and calls decide between them, never the per-tap products or the Python loops.
    for plan in (I64, OBJ):
        assert model.choose_method(RESNET, plan) in {"gemm", "row_gemm", "einsum"}
    stem = geometry(8, 3, 64, (224, 224), (7, 7), stride=2, padding=3)
    assert model.choose_method(stem, F32) == "gemm"


def test_naive_is_never_chosen_when_a_vectorised_path_fits() -> None:
    for g in (RESNET, POINTWISE, geometry(1, 1, 1, (3, 3), (2, 2), padding=0)):
        assert model.choose_method(g, F64) != "naive"


def test_tight_budget_switches_to_the_low_memory_path() -> None:
    wide = geometry(1, 64, 64, (3, 1002), padding=0)
    # One im2col row, 64 * 9 * 1000 * 4 B = 2.3 MB, does not fit 1 MB; shift's row
    # (64 + 64) * 1000 * 4 B with its re-laid-out kernels (147 KB) does.
    # depthwise's row, 2 * 64 * 1002 * 4 B per thread, fits on one thread.
    previous = mc.set_threads(1)
    try:
        choice = model.explain_choice(wide, F32, 10**6)
    finally:
        mc.set_threads(previous)
    feasible = {cost.method: cost.feasible for cost in choice.candidates}
    assert feasible == {
        "naive": True,
        "einsum": False,
        "matmul": False,
        "im2col": False,
        "gemm": False,
        "shift": True,
        "row_gemm": False,
        "depthwise": True,
        "channels_last": False,  # channels-first data: auto leaves it out
        "winograd": False,  # by name only, and its row of tiles does not fit
    }
    assert choice.chosen == "shift"
    gemm = next(cost for cost in choice.candidates if cost.method == "gemm")
    assert gemm.needs == im2col_bytes_per_row(wide, 4)  # no copy: the row alone


def test_workspace_grows_with_the_output_not_the_batch() -> None:
    small, large = geometry(batch=16, padding=0), geometry(batch=64, padding=0)
    for name in ("gemm", "row_gemm", "shift", "einsum"):
        # Without a copy of the input, more images only add chunks: the peak stays put.
        assert model.workspace_bytes(name, large, F32) == model.workspace_bytes(name, small, F32)
        assert model.workspace_bytes(name, large, F32) <= mc.get_memory_budget()


def test_workspace_counts_each_paths_own_buffers() -> None:
    g = geometry(1, 2, 4, (5, 5), padding=0)
    # One chunk of everything: gemm holds the im2col buffer, shift the shifted input, the
    # product and the kernels laid out per tap, naive one window of products.
    assert model.workspace_bytes("gemm", g, F64) == 2 * 9 * 9 * 8
    assert model.workspace_bytes("shift", g, F64) == (2 + 4) * 9 * 8 + 4 * 2 * 9 * 8
    assert model.workspace_bytes("naive", g, F64) == 2 * 9 * 8
    assert model.workspace_bytes("im2col", g, F64) == (2 * 9 + 4) * 9 * 8
    with pytest.raises(ValueError, match="method must be one of"):
        model.workspace_bytes("fft", RESNET, F64)


def test_the_same_geometry_under_two_budgets_gets_two_plans() -> None:
    # A plan cached without its budget in the key would hand the second call the first
    # one's chunks.
    valid = geometry(padding=0)
    roomy = model.path_cost("gemm", valid, F32, 2**28)
    tight = model.path_cost("gemm", valid, F32, 2**20)
    assert roomy.chunking != tight.chunking
    assert tight.workspace <= 2**20 < roomy.workspace
    assert model.path_cost("gemm", valid, F32, 2**28) == roomy
    x, w = np.ones((8, 64, 56, 56), np.float32), np.ones((64, 64, 3, 3), np.float32)
    assert mc.explain_method(x, w, memory_budget=2**28).budget == 2**28
    assert mc.explain_method(x, w, memory_budget=2**20).cost.workspace <= 2**20


def test_explain_method_prints_a_table_with_the_choice_marked() -> None:
    choice = mc.explain_method(np.ones((2, 3, 9, 9)), np.ones((4, 3, 3, 3)), padding=1)
    text = str(choice)
    rows = {
        words[0]: line
        for line in text.splitlines()
        if (words := line[2:].split()) and words[0] in registry.METHODS
    }
    assert set(rows) == set(registry.METHODS)
    assert rows[choice.cost.method].startswith("* ")
    assert sum(line.startswith("* ") for line in text.splitlines()) == 1
    assert text.splitlines()[-1] == f"chosen: {choice.chosen!r}"
    assert "needs a 1 x 1 kernel" in rows["matmul"]


def test_explain_method_validates_like_conv() -> None:
    with pytest.raises(ValueError, match="channels"):
        mc.explain_method(np.ones((1, 3, 5, 5)), np.ones((1, 2, 3, 3)))


@settings(max_examples=30)
@given(conv_problems(spatial_dims=(1, 2, 3), dtypes=("float64", "int64", "object")))
def test_auto_runs_the_path_the_model_names(problem: ConvProblem) -> None:
    choice = mc.explain_method(problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
    chosen = next(cost for cost in choice.candidates if cost.method == choice.chosen)
    assert chosen.feasible
    assert math.isfinite(chosen.seconds)
    assert all(chosen.seconds <= cost.seconds for cost in choice.candidates)
    auto = mc.conv(problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
    named = mc.conv(
        problem.x, problem.weight, problem.bias, method=choice.cost.method, **problem.conv_kwargs()
    )
    assert np.array_equal(auto, named, equal_nan=auto.dtype.kind == "f")


def test_plans_without_blas_are_modelled_as_slower() -> None:
    seconds = {
        name: model.path_cost("gemm", RESNET, plan).seconds
        for name, plan in (("object", OBJ), ("int64", I64), ("float64", F64))
    }
    assert seconds["object"] > seconds["int64"] > seconds["float64"]


def test_grouped_einsum_is_modelled_without_blas() -> None:
    # The depthwise layer: einsum keeps the group axis, so NumPy's own loop runs it
    # (measured 4.6 ms against 1.2 ms for gemm); the model must not pick it.
    depthwise = ConvGeometry(
        batch_size=2,
        in_channels=576,
        out_channels=576,
        groups=576,
        input_shape=(3, 3),
        kernel_shape=(5, 5),
        stride=(1, 1),
        dilation=(1, 1),
        padding=((2, 2),) * 2,
    )
    choice = model.explain_choice(depthwise, F32)
    einsum = next(cost for cost in choice.candidates if cost.method == "einsum")
    assert choice.chosen != "einsum"
    assert einsum.seconds > min(cost.seconds for cost in choice.candidates)


def test_the_book_example_in_int64_takes_gemm() -> None:
    # On the textbook's 3 x 3 input gemm gathers the whole im2col buffer in one indexed copy;
    # row_gemm makes more calls (measured: see the report of issue 10).
    book = ConvGeometry(
        batch_size=1,
        in_channels=2,
        out_channels=1,
        groups=1,
        input_shape=(3, 3),
        kernel_shape=(2, 2),
        stride=(1, 1),
        dilation=(1, 1),
        padding=((0, 0),) * 2,
    )
    assert model.choose_method(book, I64) == "gemm"


# The formulas term by term, with rates chosen so that one term decides: orderings that
# hold on any machine, whatever the measured constants.

BIG_PRODUCT = Work(0, 1, 1, 256, 2304, product_columns=784)
SMALL_PRODUCT = Work(0, 1, 1, 16, 16, product_columns=16)


def test_the_default_rates_are_the_constants_one_field_each() -> None:
    # calibrate.py prints constants by name and builds Rates from them: the two must agree.
    names = {name for name in vars(constants) if name.isupper()}
    fields = {field.name.upper() for field in dataclasses.fields(Rates)}
    assert fields == names
    for field in dataclasses.fields(Rates):
        assert getattr(MEASURED, field.name) == getattr(constants, field.name.upper())


def test_a_second_thread_speeds_up_large_products_only() -> None:
    rates = Rates(blas_thread_efficiency=0.8, blas_single_thread_work=262144)
    flops = 2 * 256 * 2304 * 784
    one = predict_seconds(BIG_PRODUCT, flops, F32, threads=1, rates=rates)
    two = predict_seconds(BIG_PRODUCT, flops, F32, threads=2, rates=rates)
    assert two < one
    assert blas_speedup(BIG_PRODUCT, 2, rates) == pytest.approx(1.8)
    # OpenBLAS runs a product of m * n * k <= 262144 on one thread.
    assert blas_speedup(SMALL_PRODUCT, 2, rates) == 1.0
    small_flops = 2 * 16**3
    assert predict_seconds(SMALL_PRODUCT, small_flops, F32, threads=2, rates=rates) == (
        predict_seconds(SMALL_PRODUCT, small_flops, F32, threads=1, rates=rates)
    )
    # NumPy's copies do not follow BLAS's threads; only a path that splits them gains.
    copies = Work(10**8, 0, 0, 0, 0, copy_runs=10**5)
    assert predict_seconds(copies, 0, F32, threads=2) == predict_seconds(copies, 0, F32, threads=1)
    split = dataclasses.replace(copies, numpy_threads=2)
    assert numpy_seconds(split) < numpy_seconds(copies)
    # Integer products run NumPy's own loop: no gain from BLAS threads either.
    assert predict_seconds(BIG_PRODUCT, flops, I64, threads=2) == (
        predict_seconds(BIG_PRODUCT, flops, I64, threads=1)
    )


def test_strided_copies_and_short_rows_cost_more_than_contiguous_ones() -> None:
    contiguous = Work(10**7, 0, 0, 0, 0)
    strided = dataclasses.replace(contiguous, strided_bytes=10**7)
    rows = dataclasses.replace(contiguous, copy_runs=10**5)
    assert MEASURED.strided_bytes_per_second < MEASURED.copy_bytes_per_second
    assert numpy_seconds(strided) > numpy_seconds(contiguous)
    assert numpy_seconds(rows) == pytest.approx(
        numpy_seconds(contiguous) + 10**5 * MEASURED.seconds_per_run
    )


def test_efficiency_grows_with_every_dimension_towards_the_full_rate() -> None:
    previous = 0.0
    for size in (1, 4, 16, 64, 256, 4096):
        value = efficiency(F32, size, size, size)
        assert previous < value < 1
        previous = value
    assert efficiency(F32, 4096, 4096, 4096) > 0.99
    assert efficiency(F32, 64, 9, 3136) < efficiency(F32, 64, 576, 3136)  # a short inner length
    assert efficiency(F32, 64, 64, 0) == efficiency(F32, 64, 64)  # columns not counted


def test_the_window_copies_are_counted_in_rows_of_the_last_output_axis() -> None:
    chunking = Chunking(8, 56)
    gemm = PATH_SPECS["gemm"].work(RESNET, 4, chunking)
    assert gemm.copy_runs == 9 * 8 * 64 * 56  # taps * images * channels * output rows
    assert gemm.strided_bytes == 0
    assert gemm.product_columns == 56 * 56
    # row_gemm copies 3 of the 9 taps, over the 56 + 2 padded rows; and the kernels once,
    # their first axis moved first, in runs of the 3 later taps (64 x 64 x 3 runs).
    row_runs = PATH_SPECS["row_gemm"].work(RESNET, 4, chunking).copy_runs
    assert row_runs == 3 * 8 * 64 * 58 + 64 * 64 * 3
    # A stride on the last axis makes the window copies read element by element.
    stride_2 = geometry(8, 64, 128, (56, 56), stride=2)
    strided = PATH_SPECS["gemm"].work(stride_2, 4, Chunking(8, 28))
    assert strided.strided_bytes == strided.bytes_moved > 0
    # A 1-d row_gemm multiplies shifted views: nothing copied, no runs.
    line = geometry(8, 64, 64, (1024,), (5,), padding=2)
    assert PATH_SPECS["row_gemm"].work(line, 4, Chunking(8, 1024)).copy_runs == 0
    # Window views are built by einsum and im2col only.
    small = geometry(2, 3, 8, (9, 9))
    views = {
        name: spec.work(small, 8, Chunking(1, 9)).window_views for name, spec in PATH_SPECS.items()
    }
    assert views["einsum"] == views["im2col"] == 2
    assert views["gemm"] == views["row_gemm"] == views["shift"] == 0


def test_cheaper_copies_never_make_a_copying_path_slower() -> None:
    # The prediction is monotone in each rate: faster copies lower every path's time,
    # most for the path that copies most.
    slow_copies = Rates(copy_bytes_per_second=1e9, strided_bytes_per_second=5e8)
    fast_copies = Rates(copy_bytes_per_second=1e11, strided_bytes_per_second=5e10)
    for name in ("gemm", "row_gemm", "shift", "einsum"):
        work = PATH_SPECS[name].work(RESNET, 4, Chunking(8, 56))
        flops = flop_count(RESNET, F32)
        slow = predict_seconds(work, flops, F32, threads=1, rates=slow_copies)
        fast = predict_seconds(work, flops, F32, threads=1, rates=fast_copies)
        assert fast < slow


def test_a_second_thread_never_slows_a_path_and_helps_the_large_products() -> None:
    previous = mc.set_threads(1)
    try:
        one = {name: model.path_cost(name, RESNET, F32).seconds for name in MODELLED_HERE}
        pointwise_one = model.path_cost("matmul", POINTWISE, F32).seconds
        mc.set_threads(2)
        two = {name: model.path_cost(name, RESNET, F32).seconds for name in MODELLED_HERE}
        pointwise_two = model.path_cost("matmul", POINTWISE, F32).seconds
    finally:
        mc.set_threads(previous)
    for name in MODELLED_HERE:
        assert two[name] < one[name], name  # each has one large product per chunk at least
    assert pointwise_two < pointwise_one
    # The copies stay on one thread: a path that copies more gains a smaller fraction.
    assert two["shift"] / one["shift"] > two["row_gemm"] / one["row_gemm"]
