"""The budget model: one process-wide value, a context-local override, a per-call argument."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import mimo_conv as mc
from mimo_conv._core import budget as budget_module


def test_set_memory_budget_is_seen_by_every_thread() -> None:
    previous = mc.set_memory_budget(100_000)
    try:
        seen: list[int] = []
        worker = threading.Thread(target=lambda: seen.append(mc.get_memory_budget()))
        worker.start()
        worker.join()
        assert seen == [100_000]
    finally:
        mc.set_memory_budget(previous)


def test_a_block_in_a_pool_task_does_not_leak_into_later_tasks() -> None:
    default = mc.get_memory_budget()

    def tight() -> int:
        with mc.memory_budget(4096):
            return mc.get_memory_budget()

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(tight).result() == 4096
        assert pool.submit(mc.get_memory_budget).result() == default
    with mc.memory_budget(5000), ThreadPoolExecutor(max_workers=2) as pool:
        # The override is this thread's: workers see the process-wide budget.
        assert pool.submit(mc.get_memory_budget).result() == default
        assert mc.get_memory_budget() == 5000


def test_blocks_in_several_threads_do_not_disturb_each_other() -> None:
    barrier = threading.Barrier(4)
    results: dict[int, list[int]] = {}

    def work(limit: int) -> None:
        with mc.memory_budget(limit):
            barrier.wait()
            results[limit] = [mc.get_memory_budget() for _ in range(100)]

    threads = [threading.Thread(target=work, args=(1000 * (k + 1),)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {limit: [limit] * 100 for limit in (1000, 2000, 3000, 4000)}


class _InterruptAfterSet:
    """A stand-in for the override variable whose ``set`` is interrupted right after it sets."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.armed = True

    def get(self) -> Any:
        return self.real.get()

    def set(self, value: Any) -> Any:
        token = self.real.set(value)
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return token


def test_an_interrupt_right_after_the_set_leaves_the_budget_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = mc.get_memory_budget()
    fake = _InterruptAfterSet(budget_module._OVERRIDE)
    monkeypatch.setattr(budget_module, "_OVERRIDE", fake)
    with pytest.raises(KeyboardInterrupt), mc.memory_budget(4096):
        pytest.fail("the block must not run")  # pragma: no cover
    assert mc.get_memory_budget() == before
    with mc.memory_budget(4096):  # disarmed: an ordinary block
        assert mc.get_memory_budget() == 4096
    assert mc.get_memory_budget() == before


def test_an_interrupt_at_any_line_of_enter_leaves_the_budget_unchanged() -> None:
    # Deliver a KeyboardInterrupt at each line of memory_budget.__enter__ in turn (a trace
    # function raising at the k-th line event), as a Ctrl-C would at that point.
    code = mc.memory_budget.__enter__.__code__
    before = mc.get_memory_budget()
    hits = 0
    for target in range(1, 20):
        seen = 0

        def tracer(frame: Any, event: str, arg: Any, target: int = target) -> Any:
            nonlocal seen
            if frame.f_code is not code:
                return tracer if event == "call" else None
            if event == "line":
                seen += 1
                if seen == target:
                    raise KeyboardInterrupt
            return tracer

        sys.settrace(tracer)
        try:
            with mc.memory_budget(4096):
                pass
        except KeyboardInterrupt:
            hits += 1
        finally:
            sys.settrace(None)
        assert mc.get_memory_budget() == before, target
        if seen < target:  # past the last line: every line has been tried
            break
    assert hits >= 3  # the append, the set and the return lines at least


def test_an_interrupt_inside_the_block_restores_the_budget() -> None:
    before = mc.get_memory_budget()
    with pytest.raises(KeyboardInterrupt), mc.memory_budget(4096):
        raise KeyboardInterrupt
    assert mc.get_memory_budget() == before


def test_numpy_integers_are_budgets_and_bools_are_not() -> None:
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2))
    big = np.int64(2**20)
    assert np.array_equal(mc.conv2d(x, w, memory_budget=big), mc.conv2d(x, w))  # type: ignore[arg-type]
    with mc.memory_budget(np.int32(4096)) as limit:  # type: ignore[arg-type]
        assert limit == 4096
        assert type(mc.get_memory_budget()) is int
    for bad in (True, np.bool_(True), 1.5):
        with pytest.raises(TypeError, match="memory_budget must be an int number of bytes"):
            mc.conv2d(x, w, memory_budget=bad)  # type: ignore[arg-type]
