"""The fast paths ("gemm", "shift") and the memory budget that every path honours.

The property suite (``test_properties.py``) already runs every registered method against
``naive``; here the focus is what is specific to the performance work: chunking over images
and output rows gives the same answer as one chunk, temporaries stay within the budget
(measured with tracemalloc), and a temporary that cannot fit raises a clear MemoryError
before any work.
"""

from __future__ import annotations

import importlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import mimo_conv as mc
from memory_probe import peak_temporary
from mimo_conv._core.budget import PREFERRED_CHUNK_BYTES, Chunking, check_fits, plan_chunks
from mimo_conv._core.dtypes import plan_dtypes
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.operands import prepare_call
from mimo_conv._engine.execute import plan_for
from mimo_conv._paths import registry as _methods
from mimo_conv.testing import ConvProblem, assert_conv_close, conv_problems

FAST_PATHS = ("gemm", "row_gemm", "shift")
#: Every path that chunks its temporaries under the budget (naive has one window at most).
CHUNKED_PATHS = ("gemm", "row_gemm", "shift", "einsum")
#: Budgets small enough to split the generated problems into many chunks: a few output rows,
#: single rows, and whole small batches.
SMALL_BUDGETS = st.sampled_from((4096, 16384, 2**20))


def run(problem: ConvProblem, method: str, **options: Any) -> NDArray[Any]:
    return mc.conv(
        problem.x, problem.weight, problem.bias, method=method, **problem.conv_kwargs(), **options
    )


def test_every_path_module_is_registered_once() -> None:
    # A path is one module exporting PATH plus one registry line: a module whose record
    # is missing from the registry (or registered twice, or under another name) fails here.
    folder = Path(_methods.__file__).parent
    modules = sorted(
        p.stem for p in folder.glob("*.py") if p.stem not in {"__init__", "registry", "spec"}
    )
    records = [importlib.import_module(f"mimo_conv._paths.{name}").PATH for name in modules]
    assert sorted(spec.name for spec in _methods.PATHS) == sorted(spec.name for spec in records)
    assert len({spec.name for spec in _methods.PATHS}) == len(_methods.PATHS)
    assert ("auto", *(spec.name for spec in _methods.PATHS)) == mc.METHOD_NAMES
    for spec in _methods.PATHS:
        assert _methods.METHODS[spec.name] is spec.correlate
        assert spec.correlate.__module__.endswith(spec.name)


@pytest.mark.parametrize(
    "method", [name for name in _methods.METHODS if name not in {"matmul", "winograd"}]
)
def test_each_paths_smallest_budget_is_exact(method: str) -> None:
    # The plan's "needs" is the least budget the path runs under: one byte less fails.
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, (3, 4, 9, 7)).astype(np.float32)
    w = rng.integers(-3, 4, (5, 4, 3, 2)).astype(np.float32)
    tiny = 64
    planned = plan_for(x, w, prepared_geometry(x, w), F32_PLAN, tiny, method)
    needs = planned.candidates[0].needs
    assert planned.chosen is None
    assert needs > tiny
    exact = mc.conv2d(x, w, padding=1, method="naive")
    assert np.array_equal(mc.conv2d(x, w, padding=1, method=method, memory_budget=needs), exact)
    with pytest.raises(MemoryError, match=f"needs {needs} bytes"):
        mc.conv2d(x, w, padding=1, method=method, memory_budget=needs - 1)


F32_PLAN = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))


def prepared_geometry(x: NDArray[Any], w: NDArray[Any]) -> ConvGeometry:
    return prepare_call(
        x, w, None, stride=1, padding=1, dilation=1, groups=1, padding_mode="zeros"
    )[3]


@given(
    conv_problems(spatial_dims=(1, 2, 3), dtypes=("int64", "int32", "object"), elements="integers"),
    st.sampled_from(FAST_PATHS),
)
def test_fast_paths_match_naive_bit_for_bit_on_integers(problem: ConvProblem, method: str) -> None:
    expected = run(problem, "naive")
    actual = run(problem, method)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert np.array_equal(actual, expected)
    if expected.dtype == object:
        assert [type(v) for v in actual.flat] == [type(v) for v in expected.flat]


@given(
    conv_problems(spatial_dims=(1, 2, 3), dtypes=("float32", "float64", "complex64")),
    st.sampled_from(FAST_PATHS),
)
def test_fast_paths_are_within_the_error_bound(problem: ConvProblem, method: str) -> None:
    assert_conv_close(
        run(problem, method),
        problem.x,
        problem.weight,
        problem.bias,
        bound_factor=_methods.PATH_SPECS[method].error_bound_factor,
        **problem.conv_kwargs(),
    )


def test_fractions_stay_exact_on_the_fast_paths() -> None:
    x = np.array([[[Fraction(1, 3), Fraction(2, 7), 5, Fraction(-1, 2)]]], dtype=object)
    w = np.array([[[Fraction(3, 5), 7]]], dtype=object)
    expected = mc.conv(x, w, method="naive", padding=1)
    for method in FAST_PATHS:
        actual = mc.conv(x, w, method=method, padding=1)
        assert actual.tolist() == expected.tolist()
        assert actual[0, 0, 0] == Fraction(7, 3)  # padding * 3/5 + 1/3 * 7, exactly


@settings(max_examples=25)
@given(
    conv_problems(spatial_dims=(1, 2, 3), dtypes=("int64",), max_batch=4, max_side=9),
    st.sampled_from((*CHUNKED_PATHS, "matmul")),
    SMALL_BUDGETS,
)
@example(  # a 2-d problem split into single output rows: row chunks write into the output
    problem=ConvProblem(
        x=np.arange(2 * 3 * 8 * 8).reshape(2, 3, 8, 8) % 7 - 3,
        weight=np.arange(4 * 3 * 3 * 3).reshape(4, 3, 3, 3) % 5 - 2,
        bias=None,
        stride=(1, 2),
        padding=((1, 0), (2, 1)),
        dilation=(2, 1),
        groups=1,
        padding_mode="reflect",
        out_shape=(2, 4, 5, 5),
    ),
    method="gemm",
    budget=1024,
)
@example(  # exact Python numbers, chunked by the engine (padded copy) and by the path
    problem=ConvProblem(
        x=np.array([[[Fraction(1, 3), 2, 5, Fraction(-7, 2)] * 4]] * 3, dtype=object),
        weight=np.array([[[Fraction(1, 5), 3, -1]]], dtype=object),
        bias=None,
        stride=(1,),
        padding=((2, 1),),
        dilation=(2,),
        groups=1,
        padding_mode="circular",
        out_shape=(3, 1, 15),
    ),
    method="shift",
    budget=400,
)
def test_chunked_results_equal_unchunked(problem: ConvProblem, method: str, budget: int) -> None:
    if method == "matmul" and any(k != 1 for k in problem.weight.shape[2:]):
        method = "gemm"
    whole = run(problem, method)
    # The cost model predicts from shapes alone whether the path fits the budget; the engine
    # must agree: run it, or raise MemoryError before any work.
    choice = mc.explain_method(
        problem.x, problem.weight, problem.bias, **problem.conv_kwargs(), memory_budget=budget
    )
    fits = {cost.method: cost.feasible for cost in choice.candidates}[method]
    if not fits:
        with pytest.raises(MemoryError, match="memory budget"):
            run(problem, method, memory_budget=budget)
        return
    chunked = run(problem, method, memory_budget=budget)
    assert chunked.dtype == whole.dtype
    assert np.array_equal(chunked, whole)


def test_float_results_stay_within_the_bound_whatever_the_chunking() -> None:
    # Chunks split the batch and the output rows, never a sum. BLAS may still pick another
    # kernel (another summation order) for a matrix of another size, so the last bits can
    # differ between chunkings (OpenBLAS 0.3.31 does on this problem); each result must
    # stay within the derived bound of the exact one. Exact sums (integer values) are
    # checked bit for bit in the test above.
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 6, 17, 13))
    w = rng.standard_normal((4, 3, 3, 2))
    options: dict[str, Any] = {"padding": 1, "groups": 2, "stride": (1, 2)}
    for method in ("gemm", "row_gemm", "shift", "einsum"):
        for budget in (None, 40_000, 100_000):
            chunked = mc.conv2d(x, w, method=method, memory_budget=budget, **options)
            assert_conv_close(chunked, x, w, **options)


def test_chunk_plan_splits_images_then_rows() -> None:
    large = mc.get_memory_budget()
    assert plan_chunks(8, 10, 100, large) == Chunking(8, 10)  # the whole batch fits one chunk
    per_row = PREFERRED_CHUNK_BYTES // 8
    assert plan_chunks(8, 4, per_row, large) == Chunking(2, 4)  # two images per chunk
    assert plan_chunks(8, 20, per_row, large) == Chunking(1, 8)  # one image, 8 rows
    assert plan_chunks(3, 20, 100, 1000) == Chunking(1, 10)
    with pytest.raises(MemoryError, match=r"the buffer of one output row needs 1001 bytes"):
        check_fits(1001, "buffer of one output row", 1000)


def test_memory_error_names_the_buffer_and_the_budget_before_allocating() -> None:
    # One output row of im2col is 4096 * 9 taps * 16382 positions * 8 bytes = 4.5 GiB: the
    # message must come before any copy (the broadcast input itself takes no memory).
    x = np.broadcast_to(np.float64(1.0), (1, 4096, 8, 2**14))
    w = np.ones((1, 4096, 3, 3))
    with pytest.raises(
        MemoryError,
        match=r"im2col buffer of one output row needs \d+ bytes .*more than the memory "
        r"budget of 1000000 bytes .*set_memory_budget",
    ):
        mc.conv2d(x, w, method="gemm", memory_budget=10**6)


def test_padded_copy_over_budget_is_a_memory_error() -> None:
    x = np.ones((2, 4, 64, 64))
    w = np.ones((1, 4, 3, 3))
    with pytest.raises(
        MemoryError,
        # One padded image: 4 channels * 68 * 68 * 8 bytes = 147968 bytes = 144.5 KiB.
        match=r"smallest working set of the 'gemm' path \(the padded copy of one input image "
        r"144\.5 KiB, its result .*more than the memory budget of 100000 bytes",
    ):
        mc.conv2d(x, w, padding=2, memory_budget=100_000, method="gemm")


def test_when_nothing_fits_the_error_names_a_budget_that_works() -> None:
    x = np.ones((2, 4, 64, 64))
    w = np.ones((1, 4, 3, 3))
    with pytest.raises(MemoryError, match=r"no computational path fits") as caught:
        mc.conv2d(x, w, padding=2, memory_budget=100_000)
    message = str(caught.value)
    for name in ("naive", "einsum", "gemm", "shift", "row_gemm"):
        assert f"{name!r}" in message
    needed = int(message.split("a budget of at least ")[1].split(maxsplit=1)[0])
    # The recommended budget runs, one byte less does not: never advice that cannot work.
    assert np.array_equal(
        mc.conv2d(x, w, padding=2, memory_budget=needed), mc.conv2d(x, w, padding=2)
    )
    with pytest.raises(MemoryError):
        mc.conv2d(x, w, padding=2, memory_budget=needed - 1)
    plan = mc.explain_method(x, w, padding=2, memory_budget=100_000)
    assert plan.chosen is None
    assert "chosen: none fits the memory budget" in str(plan)
    assert "chosen: '" not in str(plan)


@pytest.mark.parametrize("method", ["im2col", "gemm", "row_gemm", "shift", "einsum"])
def test_the_padded_copy_leaves_room_for_the_paths_smallest_chunk(method: str) -> None:
    # im2col needs one whole image's columns: (16 * 9 + 16) * 32 * 32 * 4 B = 640 KiB. A 1 MiB
    # budget holds them beside one padded image (72.25 KiB) and its result (64 KiB), but not
    # beside the whole batch's padded copy (8 images: 578 KiB), which fits in half the budget.
    x = np.arange(8 * 16 * 32 * 32, dtype=np.float32).reshape(8, 16, 32, 32) % 7 - 3
    w = np.arange(16 * 16 * 3 * 3, dtype=np.float32).reshape(16, 16, 3, 3) % 5 - 2
    budget = 2**20
    expected = mc.conv2d(x, w, padding=1, method="naive" if method == "einsum" else "einsum")
    peak, result = peak_temporary(
        lambda: mc.conv2d(x, w, padding=1, method=method, memory_budget=budget)
    )
    assert np.array_equal(result, expected)  # small integers: exact in float32 in any order
    assert peak <= budget, (method, peak)


def test_auto_falls_back_to_a_path_that_fits() -> None:
    x = np.ones((2, 64, 30, 30))
    w = np.ones((8, 64, 3, 3))
    # One im2col row, 64 * 9 * 28 * 8 = 126 KiB, is too much; shift's row (64 + 8) * 28 * 8
    # = 15.8 KiB beside its re-laid-out kernels, 8 * 64 * 9 * 8 = 36 KiB, fits.
    tight = 60_000
    assert mc.explain_method(x, w, memory_budget=tight).chosen == "shift"
    expected = mc.conv2d(x, w)
    assert np.array_equal(mc.conv2d(x, w, memory_budget=tight), expected)
    with pytest.raises(MemoryError):
        mc.conv2d(x, w, method="gemm", memory_budget=tight)


def test_global_budget_and_context_manager() -> None:
    default = mc.get_memory_budget()
    with mc.memory_budget(12345):
        assert mc.get_memory_budget() == 12345
        with pytest.raises(MemoryError, match="memory budget of 12345 bytes"):
            mc.conv2d(np.ones((1, 64, 40, 40)), np.ones((64, 64, 3, 3)), method="gemm")
    assert mc.get_memory_budget() == default
    previous = mc.set_memory_budget(2**20)
    try:
        assert previous == default
        assert mc.get_memory_budget() == 2**20
    finally:
        mc.set_memory_budget(previous)
    with pytest.raises(ValueError, match="memory_budget must be >= 1 byte, got 0"):
        mc.set_memory_budget(0)
    with pytest.raises(TypeError, match="memory_budget must be an int number of bytes"):
        mc.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), memory_budget=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["gemm", "row_gemm", "shift", "einsum", "matmul", "auto"])
@pytest.mark.parametrize("budget", [2**18, 2**19])
def test_peak_temporary_memory_stays_within_the_budget(method: str, budget: int) -> None:
    # A batch whose im2col buffer (8 images * 16 * 9 taps * 24 * 24 * 8 B = 5 MiB) is far
    # larger than the budget: the budget bounds the sum of the live temporaries. On top of it
    # only fixed-size extras are allowed: the kernels' reshaped copies, NumPy's ufunc
    # iterator buffers (np.getbufsize() elements for each of up to 3 operands, allocated
    # when an in-place add meets a strided view) and Python objects.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 16, 24, 24))
    kernel = (1, 1) if method == "matmul" else (3, 3)
    w = rng.standard_normal((8, 16, *kernel))
    stride = 2 if method == "matmul" else 1
    slack = w.nbytes + 3 * np.getbufsize() * x.itemsize + 32 * 1024
    peak, result = peak_temporary(
        lambda: mc.conv2d(x, w, padding=1, stride=stride, method=method, memory_budget=budget)
    )
    assert peak <= budget + slack, (peak, budget)
    if method == "auto":  # the budget may change the path auto takes, and so the rounding
        method = mc.explain_method(x, w, padding=1, stride=stride, memory_budget=budget).cost.method
    assert np.array_equal(result, mc.conv2d(x, w, padding=1, stride=stride, method=method))


def test_unbudgeted_im2col_would_have_been_larger() -> None:
    # The bound above is not vacuous: without chunking the same call needs far more.
    x = np.zeros((8, 16, 24, 24))
    w = np.zeros((8, 16, 3, 3))
    peak, _ = peak_temporary(lambda: mc.conv2d(x, w, padding=1, method="gemm"))
    im2col_one_image = 16 * 9 * 24 * 24 * 8
    assert peak >= im2col_one_image  # 648 KiB: more than the budgets tested above
    assert mc.get_memory_budget() >= peak


def test_non_finite_values_stay_in_their_windows_on_every_chunked_path() -> None:
    x = np.zeros((3, 2, 9, 9))
    x[1, 0, 4, 4] = np.inf
    x[2, 1, 0, 0] = np.nan
    w = np.ones((2, 2, 3, 3))
    expected = mc.conv2d(x, w, method="naive", padding=1)
    for method in CHUNKED_PATHS:
        for budget in (None, 20_000):
            actual = mc.conv2d(x, w, method=method, padding=1, memory_budget=budget)
            assert np.array_equal(actual, expected, equal_nan=True)


@pytest.mark.parametrize("budget", [2**21, 2**22])
def test_im2col_takes_a_few_images_at_a_time_within_the_budget(budget: int) -> None:
    # im2col never splits an image: its column matrix of one image (16 * 9 * 24 * 24 * 8 B
    # = 648 KiB, plus the product's 36 KiB) must fit, and the batch's (5.3 MiB) must not be
    # built at once when the budget is smaller.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 16, 24, 24))
    w = rng.standard_normal((8, 16, 3, 3))
    slack = w.nbytes + 3 * np.getbufsize() * x.itemsize + 32 * 1024
    peak, result = peak_temporary(
        lambda: mc.conv2d(x, w, padding=1, method="im2col", memory_budget=budget)
    )
    assert peak <= budget + slack, (peak, budget)
    assert np.array_equal(result, mc.conv2d(x, w, padding=1, method="im2col"))
    with pytest.raises(MemoryError, match="im2col column matrix of one image"):
        mc.conv2d(x, w, padding=1, method="im2col", memory_budget=2**19)
