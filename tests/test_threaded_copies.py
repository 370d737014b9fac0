"""The GEMM paths' copies and additions on several threads: the same bits, the same memory.

:func:`mimo_conv._core.columns.copy_taps` and :func:`mimo_conv._core.workers.add_into` split
the im2col/tap copies and the output additions of the ``gemm``, ``row_gemm``, ``im2col`` and
``shift`` paths over the worker threads. Each element is written by one task with the one
operation it gets on one thread, so results must not depend on the thread count at all: bit
for bit, for floats too. ``MIN_TASK_ELEMENTS`` is lowered in most tests so that the small,
fast problems here are split into many tasks (and a recorder checks that they really were).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest

import mimo_conv as mc
from memory_probe import peak_temporary
from mimo_conv._core import columns, workers
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import window_view

PATHS = ("gemm", "row_gemm", "im2col", "shift")


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    previous = mc.set_threads(None)
    mc.set_threads(previous)
    yield
    mc.set_threads(previous)


@pytest.fixture
def split_tasks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Split work of 64 elements or more, and record each run_tasks call's task count.

    The split is off by default (``workers.SPLIT_COPIES``: it measured slower on the
    benchmark machine); these tests turn it on to hold the split itself to its contract.
    """
    monkeypatch.setattr(workers, "SPLIT_COPIES", True)
    monkeypatch.setattr(workers, "MIN_TASK_ELEMENTS", 64)
    counts: list[int] = []
    original = workers.run_tasks

    def recording(tasks: Sequence[Callable[[], object]]) -> None:
        counts.append(len(tasks))
        original(tasks)

    monkeypatch.setattr(workers, "run_tasks", recording)
    monkeypatch.setattr(columns, "run_tasks", recording)
    return counts


def geometry_of(
    x_shape: tuple[int, ...], kernel: tuple[int, ...], stride: int, dilation: int
) -> ConvGeometry:
    dims = len(kernel)
    return ConvGeometry(
        batch_size=x_shape[0],
        in_channels=x_shape[1],
        out_channels=1,
        groups=1,
        input_shape=x_shape[2:],
        kernel_shape=kernel,
        stride=(stride,) * dims,
        dilation=(dilation,) * dims,
        padding=((0, 0),) * dims,
    )


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(
    ("x_shape", "kernel", "stride", "dilation"),
    [
        ((2, 5, 9, 11), (3, 2), 1, 1),
        ((1, 3, 12, 12), (3, 3), 2, 2),
        ((3, 1, 200), (5,), 3, 1),
        ((1, 2, 5, 6, 7), (2, 3, 2), 1, 1),
    ],
)
def test_copy_taps_fills_the_im2col_buffer_of_the_window_view(
    split_tasks: list[int],
    threads: int,
    x_shape: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: int,
    dilation: int,
) -> None:
    # Position-encoded input: a wrong window or a skipped element shows as a wrong value.
    x = np.arange(math.prod(x_shape), dtype=np.int64).reshape(x_shape)
    g = geometry_of(x_shape, kernel, stride, dilation)
    mc.set_threads(threads)
    target = np.full((x_shape[0], x_shape[1], *kernel, *g.output_shape), -1, np.int64)
    columns.copy_taps(target, x, columns.tap_copies(g, 0, g.output_shape[0]))
    # The reference: the window view (N, C, *out, *k), taps moved in front of the positions.
    dims = len(kernel)
    order = (0, 1, *range(2 + dims, 2 + 2 * dims), *range(2, 2 + dims))
    assert np.array_equal(target, window_view(x, g).transpose(order))
    if threads > 1:
        assert split_tasks, "the copy was not split into tasks"
        assert all(1 < count <= threads * workers.SHARES_PER_THREAD for count in split_tasks)
    else:
        assert split_tasks == []


def test_copy_taps_cuts_a_tap_between_two_tasks_at_a_channel(split_tasks: list[int]) -> None:
    # 3 taps x 5 channels = 15 (tap, channel) pairs; 420 elements make 6 tasks of at least 64
    # (8 = 4 per thread would be smaller), of 2 or 3 pairs: taps are cut between channels,
    # and every element must still be copied exactly once.
    mc.set_threads(2)
    x = np.arange(5 * 30).reshape(1, 5, 30)
    g = geometry_of((1, 5, 30), (3,), 1, 1)
    target = np.zeros((1, 5, 3, 28), np.int64)
    columns.copy_taps(target, x, columns.tap_copies(g, 0, 28))
    assert split_tasks == [6]
    assert np.array_equal(target, window_view(x, g).transpose(0, 1, 3, 2))


def test_add_into_adds_every_element_once_on_any_split(split_tasks: list[int]) -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((3, 1, 7, 40)).astype(np.float32)
    addend = rng.standard_normal(base.shape).astype(np.float32)
    for threads in (2, 3, 5):
        mc.set_threads(threads)
        total = base.copy()
        workers.add_into(total[:, :, 1:6], addend[:, :, 1:6])  # a strided view, as row_gemm's
        expected = base.copy()
        expected[:, :, 1:6] += addend[:, :, 1:6]
        assert np.array_equal(total, expected)  # the untouched rows stay untouched too
    # The first axis at least as long as the thread count is split, into as many tasks as it
    # has entries (up to 4 per thread, and 600 elements allow 9 of 64): 2 and 3 threads split
    # the 3 images, 5 threads the 5 rows.
    assert split_tasks == [3, 3, 5]


def conv_problem(dtype: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 6, 13, 15))
    w = rng.standard_normal((8, 6, 3, 3))
    if dtype == "int64":
        return rng.integers(-99, 100, x.shape), rng.integers(-99, 100, w.shape)
    if dtype.startswith("complex"):
        x = x + 1j * rng.standard_normal(x.shape)
        w = w - 1j * rng.standard_normal(w.shape)
    return x.astype(dtype), w.astype(dtype)


@pytest.mark.parametrize("dtype", ["int64", "float32", "float64", "complex128"])
@pytest.mark.parametrize("method", PATHS)
@pytest.mark.parametrize(
    "options",
    [{"padding": 1}, {"stride": 2, "padding": 1}, {"dilation": 2, "padding": 2}],
    ids=["same", "stride-2", "dilated"],
)
def test_every_gemm_path_gives_the_same_bits_on_every_thread_count(
    split_tasks: list[int], dtype: str, method: str, options: dict[str, Any]
) -> None:
    x, w = conv_problem(dtype, 7)
    # Also under the least budget the path runs in: the smallest chunks, many of them.
    plan = mc.explain_method(x, w, **options)
    least = next(cost for cost in plan.candidates if cost.method == method).needs
    results: list[np.ndarray] = []
    for threads in (1, 2, 3):
        mc.set_threads(threads)
        results.extend(
            mc.conv2d(x, w, **options, method=method, memory_budget=budget)
            for budget in (None, least)
        )
        if threads == 1:
            assert split_tasks == []
    assert split_tasks, "nothing was split over threads"
    for other in results[2::2]:  # the same chunking, other thread counts
        assert other.tobytes() == results[0].tobytes()
    for other in results[3::2]:
        assert other.tobytes() == results[1].tobytes()
    if dtype == "int64":  # exact: also the same as the reference loops
        assert np.array_equal(results[0], mc.conv2d(x, w, **options, method="naive"))
        assert np.array_equal(results[1], results[0])


@pytest.mark.parametrize("method", PATHS)
def test_the_threaded_paths_stay_within_the_planned_workspace(method: str) -> None:
    # Large enough for real splits at the default task size (4 MiB of im2col buffer).
    rng = np.random.default_rng(1)
    x = rng.integers(-9, 10, (2, 32, 40, 40)).astype(np.float64)
    w = rng.integers(-9, 10, (16, 32, 3, 3)).astype(np.float64)
    expected = mc.conv2d(x, w, padding=1, method="naive" if method == "im2col" else "im2col")
    for threads in (1, 2):
        mc.set_threads(threads)
        for budget in (2**20, 2**23):
            plan = mc.explain_method(x, w, padding=1, memory_budget=budget)
            cost = next(c for c in plan.candidates if c.method == method)

            def call(budget: int = budget) -> np.ndarray:
                return mc.conv2d(x, w, padding=1, method=method, memory_budget=budget)

            if not cost.feasible:
                with pytest.raises(MemoryError):
                    call()
                continue
            call()  # warm the caches the measurement should not count
            peak, out = peak_temporary(call)
            # As in test_plan: NumPy's ufunc buffers and the task objects beyond the arrays.
            slack = 3 * np.getbufsize() * 8 + 32 * 1024
            assert peak <= cost.workspace + slack, (method, threads, budget, peak, cost)
            assert np.array_equal(out, expected)  # small integers: exact in any order


def test_python_objects_are_copied_and_added_on_the_calling_thread(
    split_tasks: list[int],
) -> None:
    # Their copies and additions hold the GIL: threads would only take turns.
    mc.set_threads(2)
    x = np.arange(3 * 4 * 30, dtype=np.int64).reshape(3, 4, 30)
    w = np.arange(5 * 4 * 3, dtype=np.int64).reshape(5, 4, 3) % 7 - 3
    for method in PATHS:
        result = mc.conv1d(x.astype(object), w.astype(object), method=method)
        assert np.array_equal(result.astype(np.int64), mc.conv1d(x, w, method="naive"))
    assert split_tasks == []
    mc.conv1d(x, w, method="shift")  # the same call in int64 is split
    assert split_tasks
