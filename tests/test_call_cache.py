"""The short path of repeated calls: the same results, the same errors, bounded, never stale.

A call whose signature (shapes, dtypes, strides, options, budget, threads) was validated and
planned before runs the remembered plan (:mod:`mimo_conv._ops.call_cache`), on a plan that is
one small product through the lean run (:mod:`mimo_conv._engine.lean`). These tests prove a
hit happened by making the full path fail (``prepare_call`` replaced), then hold the hit's
result to the full path's, bit for bit.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import mimo_conv as mc
from mimo_conv._engine import lean
from mimo_conv._ops import call_cache
from mimo_conv._ops import conv as conv_module

RNG = np.random.default_rng(2026)

#: The textbook's X and K (section 6.4).
BOOK_X = np.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
BOOK_K = np.array([[[[0, 1], [2, 3]], [[1, 2], [3, 4]]]])


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    call_cache.clear()
    yield
    call_cache.clear()


def _values(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    kind = np.dtype(dtype).kind
    if kind in "iu":
        return RNG.integers(-50, 50, shape).astype(dtype)
    values = RNG.standard_normal(shape)
    if kind == "c":
        values = values + 1j * RNG.standard_normal(shape)
    return values.astype(dtype)


def _full_path_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every call that does not hit the cache raise: a result proves a hit."""

    def fail(*args: object, **kwargs: object) -> None:
        msg = "the full path ran"
        raise AssertionError(msg)

    monkeypatch.setattr(conv_module, "prepare_call", fail)


#: (id, x shape, weight shape, bias?, dtype, options, lean expected)
CALLS = [
    ("book-f32", (2, 3, 3), (1, 2, 2, 2), False, np.float32, {}, True),
    ("book-f64-batched", (1, 2, 3, 3), (1, 2, 2, 2), False, np.float64, {}, True),
    ("book-int64", (2, 3, 3), (1, 2, 2, 2), False, np.int64, {}, True),
    ("book-complex-bias", (1, 2, 3, 3), (3, 2, 2, 2), True, np.complex128, {}, True),
    ("gemm-batch-groups-bias", (3, 4, 5, 5), (6, 2, 3, 3), True, np.float32, {"groups": 2}, True),
    ("gemm-strided-dilated", (2, 3, 9, 9), (4, 3, 3, 3), False, np.float64,
     {"stride": 2, "dilation": 2}, True),
    ("se-reduce", (8, 64, 1, 1), (16, 64, 1, 1), True, np.float32, {}, True),
    ("se-expand-unbatched", (16, 1, 1), (64, 16, 1, 1), False, np.float64, {}, True),
    ("pointwise-groups", (2, 8, 4, 4), (6, 8 // 2, 1, 1), True, np.float32, {"groups": 2}, True),
    ("conv1d", (2, 3, 10), (4, 3, 3), False, np.float64, {}, True),
    # Padded calls gather from the input (and one appended zero, for zero padding).
    ("padded", (1, 2, 5, 5), (3, 2, 3, 3), True, np.float32, {"padding": 1}, True),
    ("padded-int-batch", (3, 2, 5, 4), (4, 2, 3, 2), False, np.int64,
     {"padding": ((2, 0), (1, 3)), "stride": (2, 1)}, True),
    ("reflect", (1, 2, 5, 5), (3, 2, 3, 3), False, np.float64,
     {"padding": "same", "padding_mode": "reflect"}, True),
    ("circular-groups", (2, 4, 6, 6), (4, 2, 3, 3), True, np.complex128,
     {"padding": 2, "padding_mode": "circular", "groups": 2, "dilation": 2}, True),
    # Not lean: the engine runs the remembered plan.
    ("padded-1x1", (1, 2, 5, 5), (3, 2, 1, 1), False, np.float32, {"padding": 1}, False),
    ("float16-rounds", (1, 2, 4, 4), (2, 2, 2, 2), False, np.float16, {}, False),
    ("strided-1x1", (2, 4, 6, 6), (3, 4, 1, 1), False, np.float32, {"stride": 2}, False),
    ("named-path", (1, 2, 6, 6), (2, 2, 3, 3), False, np.float64, {"method": "shift"}, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "with_bias", "dtype", "options", "lean"),
    [pytest.param(*call[1:], id=call[0]) for call in CALLS],
)
def test_a_hit_gives_the_full_paths_result_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    with_bias: bool,
    dtype: Any,
    options: dict[str, Any],
    lean: bool,
) -> None:
    def operands() -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        bias = _values((w_shape[0],), dtype) if with_bias else None
        return _values(x_shape, dtype), _values(w_shape, dtype), bias

    first, second = operands(), operands()
    expected_first = mc.conv(*first, **options)  # full path: remembered
    call_cache.clear()
    expected_second = mc.conv(*second, **options)  # full path again, on other values
    kept = [operand.copy() for operand in second if operand is not None]
    with monkeypatch.context() as patch:
        _full_path_fails(patch)
        got_second = mc.conv(*second, **options)
        got_first = mc.conv(*first, **options)
    for got, expected in ((got_first, expected_first), (got_second, expected_second)):
        assert got.dtype == expected.dtype
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected, strict=True)
        assert got.flags.c_contiguous
        assert got.flags.writeable
        assert not any(np.shares_memory(got, operand) for operand in second if operand is not None)
    for before, operand in zip(kept, [op for op in second if op is not None], strict=True):
        np.testing.assert_array_equal(operand, before, strict=True)  # never modified
    (entry,) = call_cache._store.entries.values()
    assert (entry.lean is not None) == lean


def test_the_book_example_takes_the_lean_run_and_gives_the_books_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mc.conv2d(BOOK_X.astype(np.float32), BOOK_K.astype(np.float32))
    (entry,) = call_cache._store.entries.values()
    assert not entry.built  # a call made once never builds its lean run
    _full_path_fails(monkeypatch)
    for _ in range(2):
        out = mc.conv2d(BOOK_X.astype(np.float32), BOOK_K.astype(np.float32))
        np.testing.assert_array_equal(
            out, np.array([[[56, 72], [104, 120]]], np.float32), strict=True
        )
    lean_run = entry.lean
    assert lean_run is not None
    assert call_cache.cache_info() == (1, lean_run.nbytes)


def test_an_int64_hit_still_checks_the_range_of_the_values() -> None:
    small = BOOK_X[np.newaxis]
    huge = np.full_like(small, 2**40)
    kernels = np.full_like(BOOK_K, 2**40)
    with pytest.raises(OverflowError) as full:
        mc.conv2d(huge, kernels)  # the full path's message, nothing remembered yet
    assert call_cache.cache_info() == (0, 0)
    mc.conv2d(small, BOOK_K)  # remembered
    remembered = call_cache.cache_info()
    assert remembered[0] == 1
    with pytest.raises(OverflowError) as short:
        mc.conv2d(huge, kernels)  # same signature: the hit checks the values too
    assert str(short.value) == str(full.value)
    assert call_cache.cache_info() == remembered  # intact after the exception
    np.testing.assert_array_equal(mc.conv2d(small, BOOK_K), [[[[56, 72], [104, 120]]]])


@pytest.mark.parametrize(
    ("good", "bad", "error", "match"),
    [
        ({"stride": 1}, {"stride": 1.0}, TypeError, "stride must be an int, got 1.0"),
        ({"groups": 1}, {"groups": True}, TypeError, "groups must be an int, got True"),
        ({"padding": (0, 0)}, {"padding": (0.0, 0)}, TypeError, "padding must be an int"),
        ({"dilation": [1]}, {"dilation": [True]}, TypeError, "dilation must be an int"),
        ({"memory_budget": 2**20}, {"memory_budget": 2.0**20}, TypeError, "memory_budget"),
        ({"method": "gemm"}, {"method": "gemm "}, ValueError, "method must be one of"),
    ],
    ids=["stride", "groups", "padding", "dilation", "memory_budget", "method"],
)
def test_an_option_equal_to_a_remembered_one_but_of_another_type_is_still_refused(
    good: dict[str, Any], bad: dict[str, Any], error: type[Exception], match: str
) -> None:
    x, w = BOOK_X.astype(np.float64), BOOK_K.astype(np.float64)
    mc.conv2d(x, w, **good)
    mc.conv2d(x, w, **good)
    entries = call_cache.cache_info()
    with pytest.raises(error, match=match):
        mc.conv2d(x, w, **bad)
    assert call_cache.cache_info() == entries


def test_numpy_integer_and_list_options_are_remembered_by_value_and_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, w = _values((1, 2, 6, 6), np.float64), _values((2, 2, 3, 3), np.float64)
    options: dict[str, Any] = {"stride": np.int64(2), "padding": [1, (0, 1)], "dilation": (1,)}
    expected = mc.conv2d(x, w, **options)
    _full_path_fails(monkeypatch)
    np.testing.assert_array_equal(mc.conv2d(x, w, **options), expected, strict=True)
    with pytest.raises(AssertionError, match="the full path ran"):
        mc.conv2d(x, w, **{**options, "stride": 2})  # an int: another signature


def test_a_budget_or_thread_change_misses_and_replans() -> None:
    x, w = _values((4, 3, 8, 8), np.float64), _values((4, 3, 3, 3), np.float64)
    mc.conv2d(x, w)
    with mc.memory_budget(64), pytest.raises(MemoryError, match="no computational path fits"):
        mc.conv2d(x, w)  # the plan remembered under 256 MiB does not answer here
    previous = mc.set_threads(1)
    try:
        mc.conv2d(x, w)
        mc.set_threads(2)
        mc.conv2d(x, w)
    finally:
        mc.set_threads(previous)
    thread_counts = {signature[-1] for signature in call_cache._store.entries}
    assert {1, 2} <= thread_counts


def test_a_memory_error_is_not_remembered_and_raised_again() -> None:
    x, w = _values((4, 3, 8, 8), np.float64), _values((4, 3, 3, 3), np.float64)
    for _ in range(2):
        with pytest.raises(MemoryError, match="no computational path fits"):
            mc.conv2d(x, w, memory_budget=64)
    assert call_cache.cache_info() == (0, 0)


def test_object_arrays_lists_subclasses_layouts_are_never_remembered() -> None:
    class Marked(np.ndarray):
        pass

    w = BOOK_K.astype(np.float64)
    mc.conv2d(BOOK_X.astype(object), BOOK_K.astype(object))
    mc.conv2d(BOOK_X.tolist(), w)
    mc.conv2d(BOOK_X.astype(np.float64).view(Marked), w)
    mc.conv2d(BOOK_X.astype(np.float64).transpose(1, 2, 0), w, layout="HWC")
    assert call_cache.cache_info() == (0, 0)
    bad = BOOK_X.astype(object)
    bad[0, 0, 0] = "a"
    with pytest.raises(TypeError, match="x must hold numbers, but its object array contains 'a'"):
        mc.conv2d(bad, BOOK_K.astype(object))


def test_the_deprecated_method_name_warns_on_every_call() -> None:
    x, w = BOOK_X.astype(np.float64), BOOK_K.astype(np.float64)
    for _ in range(2):
        with pytest.warns(DeprecationWarning, match="method='fold' is deprecated"):
            mc.conv2d(x, w, method="fold")
    assert call_cache.cache_info() == (0, 0)


def test_a_hit_on_infinities_gives_ieee_results_without_warnings() -> None:
    x = np.array([[[[np.inf, 1.0], [1e38, 1e38]]]], np.float32)
    w = np.array([[[[0.0, 1.0], [1e38, 1e38]]]], np.float32)
    first = mc.conv2d(x, w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = mc.conv2d(x, w)
    np.testing.assert_array_equal(second, first, strict=True)
    assert np.isnan(second[0, 0, 0, 0])  # inf * 0


def test_the_cache_stays_within_its_entry_and_byte_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(call_cache, "MAX_ENTRIES", 3)
    x_index_bytes = []
    for size in range(3, 9):
        for _ in range(2):  # remembered, then its lean run built on the hit
            mc.conv1d(np.ones((1, 2, size)), np.ones((1, 2, 2)))
        entries, held = call_cache.cache_info()
        assert 1 <= entries <= 3
        x_index_bytes.append(held)
    monkeypatch.setattr(call_cache, "MAX_BYTES", 1000)
    call_cache.clear()
    for size in range(3, 40, 4):
        for _ in range(2):
            mc.conv1d(np.ones((1, 2, size)), np.ones((1, 2, 2)))
        entries, held = call_cache.cache_info()
        assert held <= 1000
    assert max(x_index_bytes) > 0  # the gather indices are counted


def _remembered_lean_runs() -> list[Callable[..., Any]]:
    return [entry.lean for entry in call_cache._store.entries.values() if entry.lean is not None]


def test_a_non_contiguous_input_is_not_run_lean_but_still_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = _values((1, 2, 6, 6), np.float64)[..., ::2]  # strided view
    w = _values((2, 2, 2, 2), np.float64)
    expected = mc.conv2d(x, w)
    assert call_cache.cache_info()[0] == 1
    _full_path_fails(monkeypatch)
    np.testing.assert_array_equal(mc.conv2d(x, w), expected, strict=True)
    (entry,) = call_cache._store.entries.values()
    assert entry.built
    assert entry.lean is None


@pytest.mark.parametrize(
    ("x_shape", "w_shape"), [((1, 2, 6, 6), (2, 2, 2, 2)), ((2, 8, 3, 3), (4, 8, 1, 1))]
)
def test_a_layout_change_between_calls_misses(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...]
) -> None:
    base = _values(x_shape, np.float64)
    w = _values(w_shape, np.float64)
    contiguous = np.ascontiguousarray(base[..., ::-1])
    reversed_view = base[..., ::-1]  # the same values and shape, not C-contiguous
    first = mc.conv2d(contiguous, w)
    second = mc.conv2d(reversed_view, w)
    assert call_cache.cache_info()[0] == 2
    np.testing.assert_array_equal(second, first, strict=True)
    call_cache.clear()
    third = mc.conv2d(reversed_view, w)
    np.testing.assert_array_equal(mc.conv2d(contiguous, w), third, strict=True)


def test_the_rank_a_public_function_requires_is_part_of_the_signature() -> None:
    x, w = np.ones((1, 2, 5)), np.ones((1, 2, 2))
    mc.conv(x, w)
    mc.conv(x, w)
    with pytest.raises(ValueError, match="weight must have 4 dimensions"):
        mc.conv2d(x, w)


def _overflowing_call() -> tuple[np.ndarray, np.ndarray]:
    return np.full((1, 2, 3, 3), 1e30, np.float32), np.full((1, 2, 2, 2), 1e30, np.float32)


@pytest.mark.parametrize("numpy_errstate", [False, True], ids=["modes-variable", "errstate"])
def test_the_lean_run_ignores_ieee_errors_and_restores_the_callers_modes(
    monkeypatch: pytest.MonkeyPatch, numpy_errstate: bool
) -> None:
    if numpy_errstate:  # as on a NumPy without the modes variable
        monkeypatch.setattr(lean._quiet, "modes", None)
    x, w = _overflowing_call()
    mc.conv2d(x, w)  # remembered
    mc.conv2d(x, w)  # its lean run built and run
    assert _remembered_lean_runs()
    modes: list[dict[str, Any]] = [{"all": "raise"}, {"over": "warn"}, {"all": "raise"}]
    for mode in modes:
        with np.errstate(**mode):
            before = np.geterr()
            out = mc.conv2d(x, w)  # the engine ignores IEEE errors too: never raises
            assert np.geterr() == before
            assert np.isinf(out).all()
    (run,) = _remembered_lean_runs()
    with np.errstate(all="raise"):
        before = np.geterr()
        with pytest.raises(ValueError, match="reshape"):
            run(x, w[:, :1], None)  # fails inside: the modes are restored all the same
        assert np.geterr() == before


def test_the_lean_run_keeps_the_callers_other_numpy_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the error modes change during a lean run, as under ``np.errstate(all="ignore")``."""
    x, w = BOOK_X.astype(np.float64), BOOK_K.astype(np.float64)
    mc.conv2d(x, w)
    mc.conv2d(x, w)
    assert _remembered_lean_runs()
    seen: list[tuple[int, dict[str, Any]]] = []
    matmul = np.matmul

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append((np.getbufsize(), dict(np.geterr())))
        return matmul(*args, **kwargs)

    monkeypatch.setattr(np, "matmul", recording)
    for size in (8192, 16384, 8192 * 3):
        with np.errstate(over="raise"):
            previous = np.setbufsize(size)
            try:
                mc.conv2d(x, w)
            finally:
                np.setbufsize(previous)
    quiet = dict.fromkeys(("divide", "over", "under", "invalid"), "ignore")
    assert seen == [(8192, quiet), (16384, quiet), (8192 * 3, quiet)]


def test_threads_sharing_the_cache_while_it_is_cleared_get_the_right_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(call_cache, "MAX_ENTRIES", 2)  # three signatures: cleared often
    problems = [
        (_values((1, 2, 3, 3), np.float64), _values((1, 2, 2, 2), np.float64)),
        (_values((2, 4, 5, 5), np.float32), _values((3, 4, 3, 3), np.float32)),
        (_values((8, 16, 1, 1), np.float32), _values((4, 16, 1, 1), np.float32)),
    ]
    expected = []
    for x, w in problems:
        call_cache.clear()
        expected.append(mc.conv2d(x, w))
    wrong: list[int] = []

    def work(worker: int) -> None:
        for round_number in range(60):
            number = (worker + round_number) % len(problems)
            if not np.array_equal(mc.conv2d(*problems[number]), expected[number]):
                wrong.append(number)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    entries, held = call_cache.cache_info()
    assert entries <= 2
    # An entry evicted by another thread before its lean run was built still counts: the
    # count may be high, never low, and never past the bound.
    assert sum(entry.lean.nbytes for entry in _built_leans()) <= held <= call_cache.MAX_BYTES


def _built_leans() -> list[Any]:
    return [entry for entry in call_cache._store.entries.values() if entry.lean is not None]


def test_a_padded_lean_run_keeps_nan_and_inf_where_the_full_path_has_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The appended zero stands for the padded zeros: an infinite weight meeting it gives NaN
    # exactly where the full path multiplies that weight by a padded zero.
    x = RNG.standard_normal((2, 3, 6, 6))
    w = RNG.standard_normal((4, 3, 3, 3))
    x[0, 1, 2, 3] = np.nan
    w[2, 0, 0, 0] = np.inf
    expected = mc.conv2d(x, w, padding=1)  # full path, remembered
    mc.conv2d(x, w, padding=1)  # the first hit builds the lean run
    (entry,) = call_cache._store.entries.values()
    assert entry.lean is not None
    assert entry.lean.zero_slot
    _full_path_fails(monkeypatch)
    got = mc.conv2d(x, w, padding=1)
    np.testing.assert_array_equal(got, expected, strict=True)
    assert np.isnan(got[:, 2, 0, :]).all()  # the inf tap reads the top border in row 0
