"""The worker threads: the setting, the task runner, and results that ignore the thread count."""

from __future__ import annotations

import os
import signal
import threading
import time
import weakref
from collections.abc import Callable

import numpy as np
import pytest

import mimo_conv as mc
from mimo_conv._core import workers


@pytest.fixture(autouse=True)
def _restore_threads() -> object:
    previous = mc.set_threads(None)
    mc.set_threads(previous)
    yield
    mc.set_threads(previous)


def test_default_follows_the_blas_environment_then_the_cpu_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in workers.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert workers.default_threads() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert workers.default_threads() == 1
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert workers.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")  # not a count: the next variable decides
    assert workers.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert workers.default_threads() == 2


def test_set_threads_returns_the_previous_setting_and_none_restores_the_default() -> None:
    mc.set_threads(None)
    assert mc.set_threads(3) is None
    assert mc.get_threads() == 3
    assert mc.set_threads(None) == 3
    assert mc.get_threads() == workers.default_threads()


def test_the_default_follows_a_change_of_the_environment_made_after_a_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mc.set_threads(None)
    for name in workers.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    x, w = np.ones((1, 2, 3, 3)), np.ones((1, 2, 2, 2))
    # Each step: a call (which asks for the thread count), a change, then the new count.
    steps = [
        ("OPENBLAS_NUM_THREADS", "3", 3),
        ("MKL_NUM_THREADS", "5", 3),  # read after OPENBLAS_NUM_THREADS
        ("OMP_NUM_THREADS", "junk", 3),  # not a count: the next variable decides
        ("OMP_NUM_THREADS", "2", 2),
        ("OMP_NUM_THREADS", None, 3),
        ("OPENBLAS_NUM_THREADS", None, 5),
        ("MKL_NUM_THREADS", None, 6),
    ]
    assert mc.get_threads() == 6
    for name, value, expected in steps:
        mc.conv2d(x, w)
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
        assert mc.get_threads() == expected == workers.default_threads(), (name, value)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)  # a replaced os.cpu_count is seen too
    assert mc.get_threads() == 4 == workers.default_threads()


def test_the_default_reads_a_replaced_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    mc.set_threads(None)
    assert mc.get_threads() == workers.default_threads()
    monkeypatch.setattr(os, "environ", {"OPENBLAS_NUM_THREADS": "7"})
    assert mc.get_threads() == 7 == workers.default_threads()
    monkeypatch.setattr(os, "environ", {"OPENBLAS_NUM_THREADS": "8"})
    assert mc.get_threads() == 8


def test_the_cheap_environment_reader_agrees_with_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for value in ("4", " 2 ", "", "0", "x"):
        for name in workers.THREAD_VARIABLES:
            monkeypatch.setenv(name, value)
            got = workers._thread_variable_values()
            assert [v is None for v in got] == [
                os.environ.get(n) is None for n in workers.THREAD_VARIABLES
            ]
            assert mc.get_threads() == workers.default_threads()
        for name in workers.THREAD_VARIABLES:
            monkeypatch.delenv(name)
            assert mc.get_threads() == workers.default_threads()


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-2, ValueError), (2.0, TypeError), (True, TypeError), ("2", TypeError)],
)
def test_bad_thread_counts_are_rejected_and_change_nothing(value: object, error: type) -> None:
    mc.set_threads(2)
    with pytest.raises(error, match=rf"threads must be a positive int or None, got {value!r}"):
        mc.set_threads(value)  # type: ignore[arg-type]
    assert mc.get_threads() == 2


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_every_task_runs_once_and_the_pool_threads_share_them(threads: int) -> None:
    mc.set_threads(threads)
    seen: list[int] = []
    names: set[str] = set()
    lock = threading.Lock()

    def task(number: int) -> None:
        with lock:
            seen.append(number)
            names.add(threading.current_thread().name)

    tasks: list[Callable[[], None]] = [lambda n=n: task(n) for n in range(50)]  # type: ignore[misc]
    workers.run_tasks(tasks)
    assert sorted(seen) == list(range(50))
    assert len(names) <= threads


def test_a_failing_task_is_reraised_after_the_others_stopped() -> None:
    mc.set_threads(2)
    running = threading.Event()
    finished: list[int] = []

    def slow() -> None:
        running.set()
        finished.append(1)

    def failing() -> None:
        running.wait(5)
        msg = "task 1 failed"
        raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="task 1 failed"):
        workers.run_tasks([slow, failing])
    assert finished == [1]


def test_tasks_see_the_callers_memory_budget() -> None:
    mc.set_threads(2)
    budgets: list[int] = []
    lock = threading.Lock()

    def record() -> None:
        with lock:
            budgets.append(mc.get_memory_budget())

    with mc.memory_budget(12345):
        workers.run_tasks([record] * 8)
    assert budgets == [12345] * 8


def test_small_work_is_not_split() -> None:
    mc.set_threads(4)
    assert workers.task_count(100, 64) == 1
    assert workers.task_count(10 * workers.MIN_TASK_ELEMENTS, 64) == 4
    assert workers.task_count(10 * workers.MIN_TASK_ELEMENTS, 3) == 3


@pytest.mark.parametrize("dtype", ["int64", "float32", "float64", "complex128"])
def test_conv_results_are_identical_for_every_thread_count(dtype: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 64, 24, 24)).astype(dtype)
    w = rng.standard_normal((64, 1, 3, 3)).astype(dtype)
    if dtype == "int64":
        x, w = rng.integers(-50, 50, x.shape), rng.integers(-50, 50, w.shape)
    results = []
    for threads in (1, 2, 3):
        mc.set_threads(threads)
        results.append(
            [mc.conv2d(x, w, padding=1, groups=64, method=m) for m in ("depthwise", "gemm")]
        )
        # auto's choice may depend on the thread count (the cost model prices BLAS's and
        # the workers' threads); whatever it picks gives that path's bits exactly.
        chosen = mc.explain_method(x, w, padding=1, groups=64).chosen
        assert chosen is not None
        auto = mc.conv2d(x, w, padding=1, groups=64)
        assert np.array_equal(auto, mc.conv2d(x, w, padding=1, groups=64, method=chosen))
    for later in results[1:]:
        for first, other in zip(results[0], later, strict=True):
            assert np.array_equal(first, other)


@pytest.mark.parametrize("dtype", ["int64", "float32", "complex64"])
def test_gemm_tap_copies_on_several_threads_give_the_same_buffer(
    dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "SPLIT_COPIES", True)  # off by default: measured slower
    rng = np.random.default_rng(5)
    x = rng.integers(-50, 50, (4, 32, 40, 40)).astype(dtype)
    w = rng.integers(-50, 50, (16, 32, 3, 3)).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        mc.set_threads(threads)
        results.append(mc.conv2d(x, w, stride=2, padding=1, method="gemm"))
    assert workers.task_count(32 * 9 * 20 * 20 * 4, 9) > 1  # the copies were really split
    for other in results[1:]:
        assert np.array_equal(results[0], other)
    assert np.array_equal(results[0], mc.conv2d(x, w, stride=2, padding=1, method="einsum"))


def test_an_interrupt_in_the_caller_stops_the_tasks_and_waits_for_the_running_ones() -> None:
    # Ctrl-C while the caller runs its share: the tasks not started are skipped, the running
    # ones finish, and only then does KeyboardInterrupt reach the caller, so no task writes
    # into the call's arrays after it has returned.
    mc.set_threads(2)
    started: list[int] = []
    finished: list[int] = []
    helper_busy = threading.Event()
    lock = threading.Lock()

    def task(number: int) -> None:
        with lock:
            started.append(number)
        if threading.current_thread() is threading.main_thread():
            helper_busy.wait(5)
            raise KeyboardInterrupt
        helper_busy.set()
        time.sleep(0.05)
        with lock:
            finished.append(number)

    tasks: list[Callable[[], None]] = [lambda n=n: task(n) for n in range(40)]  # type: ignore[misc]
    with pytest.raises(KeyboardInterrupt):
        workers.run_tasks(tasks)
    main_tasks = len(started) - len(finished)
    assert main_tasks == 1  # the caller's interrupted task; every helper task finished
    assert len(started) < 40  # the rest were skipped
    time.sleep(0.1)
    assert len(started) - main_tasks == len(finished)  # and nothing started afterwards


def test_an_interrupt_while_the_caller_waits_lets_the_running_task_finish() -> None:
    # The interrupt lands while the caller waits for a helper (a SIGINT sent from the task):
    # the wait goes on until that task is done, then KeyboardInterrupt is raised.
    mc.set_threads(2)
    finished: list[str] = []
    helper_started = threading.Event()
    main = threading.main_thread().ident
    assert main is not None

    def slow() -> None:
        if threading.current_thread() is threading.main_thread():
            helper_started.wait(5)
            return  # the caller's share ends once the helper has its task: it waits for it
        helper_started.set()
        time.sleep(0.05)
        signal.pthread_kill(main, signal.SIGINT)
        time.sleep(0.1)
        finished.append(threading.current_thread().name)

    with pytest.raises(KeyboardInterrupt):
        workers.run_tasks([slow, slow])
    assert len(finished) == 1


def test_add_into_is_the_in_place_sum_on_every_thread_count() -> None:
    rng = np.random.default_rng(2)
    base = rng.standard_normal((4, 8, 2**14)).astype(np.float32)
    addend = rng.standard_normal(base.shape).astype(np.float32)
    expected = base + addend
    for threads in (1, 2, 3):
        mc.set_threads(threads)
        total = base.copy()
        workers.add_into(total, addend)
        assert total.tobytes() == expected.tobytes()


def test_a_helper_that_never_started_keeps_no_task_alive() -> None:
    # The pool's only thread is busy elsewhere, so the helper run_tasks submits waits in the
    # queue; the caller runs every task itself and cancels it. The queued (cancelled) call
    # must not keep the tasks, and the arrays they hold, alive after run_tasks returns: that
    # memory would sit beside the next chunk's, beyond the planned workspace.
    mc.set_threads(2)
    pool = workers._get_pool()
    release = threading.Event()
    blockers = [pool.submit(release.wait, 5) for _ in range(pool._max_workers)]
    try:
        payload = np.ones(1000)
        alive = weakref.ref(payload)
        ran: list[int] = []
        tasks: list[Callable[[], None]] = [
            lambda p=payload, n=n: ran.append(n + int(p[0]) - 1)  # type: ignore[misc]
            for n in range(4)
        ]
        del payload
        workers.run_tasks(tasks)
        del tasks
        assert sorted(ran) == [0, 1, 2, 3]
        assert alive() is None
    finally:
        release.set()
        for blocker in blockers:
            blocker.result()


def test_work_is_cut_into_a_few_shares_per_thread_each_large_enough() -> None:
    size = workers.MIN_TASK_ELEMENTS
    mc.set_threads(2)
    assert workers.share_count(100 * size, 1000) == 2 * workers.SHARES_PER_THREAD
    assert workers.share_count(3 * size, 1000) == 3  # each share holds at least MIN elements
    assert workers.share_count(100 * size, 5) == 5  # no more than the limit
    assert workers.share_count(size, 1000) == 1  # too small to split at all
    mc.set_threads(1)
    assert workers.share_count(100 * size, 1000) == 1
