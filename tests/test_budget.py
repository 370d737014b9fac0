"""The budget model: one process-wide value, a context-local override, a per-call argument."""

from __future__ import annotations

import _thread
import dis
import itertools
import signal
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


# --- interrupts: where CPython can deliver one, and real ones --------------------------------
#
# CPython runs a pending signal handler (Ctrl-C, SIGALRM, _thread.interrupt_main) only at a
# few points of the bytecode: when a function starts (its RESUME) and right after a call
# returns, besides backward jumps. The scope's methods have no loops, so those are every
# instant an interrupt can land inside them.


def _delivery_points(scope: Any) -> list[tuple[str, int]]:
    """The (method, offset) instants of an uninterrupted ``with scope:``, in order.

    Offset -1 is the method's start; any other offset is the instruction after a call.
    """
    methods = {type(scope).__enter__.__code__: "enter", type(scope).__exit__.__code__: "exit"}
    after_call = {
        code: {
            following.offset
            for instruction, following in itertools.pairwise(dis.get_instructions(code))
            if instruction.opname.startswith("CALL")
        }
        for code in methods
    }
    points: list[tuple[str, int]] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code not in methods:
            return None
        frame.f_trace_opcodes = True
        if event == "call":
            points.append((methods[frame.f_code], -1))
        elif event == "opcode" and frame.f_lasti in after_call[frame.f_code]:
            points.append((methods[frame.f_code], frame.f_lasti))
        return tracer

    sys.settrace(tracer)
    try:
        with scope:
            pass
    finally:
        sys.settrace(None)
    return points


def _interrupt_at(scope: Any, point: tuple[str, int]) -> bool:
    """Run ``with scope:`` raising KeyboardInterrupt at ``point``; whether it was raised."""
    methods = {type(scope).__enter__.__code__: "enter", type(scope).__exit__.__code__: "exit"}
    fired = False

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal fired
        if frame.f_code not in methods:
            return None
        frame.f_trace_opcodes = True
        here = (methods[frame.f_code], -1 if event == "call" else frame.f_lasti)
        if not fired and event in ("call", "opcode") and here == point:
            fired = True
            raise KeyboardInterrupt
        return tracer

    sys.settrace(tracer)
    try:
        with scope:
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    return fired


def test_an_interrupt_at_each_delivery_point_of_the_scope_leaves_the_budget_unchanged() -> None:
    before = mc.get_memory_budget()
    scope = mc.memory_budget(4096)
    points = _delivery_points(scope)
    # Both starts, the get/append/set calls of __enter__ and the set of __exit__ at least.
    assert {("enter", -1), ("exit", -1)} <= set(points)
    assert len(points) >= 5
    unsafe = []
    for point in points:
        assert _interrupt_at(scope, point), point
        if mc.get_memory_budget() != before or scope._saved:
            unsafe.append(point)
            budget_module._OVERRIDE.set(None)  # repair, to try the next point cleanly
            scope._saved.clear()
    # The one instant no Python code can cover (module docstring): the start of __exit__,
    # before its first line. Every other instant (an interrupt right after the restore of
    # __exit__ among them, which used to lose the saved value) leaves the budget as it was.
    assert unsafe == [("exit", -1)]
    with scope:
        assert mc.get_memory_budget() == 4096
    assert mc.get_memory_budget() == before


def _interrupted_loops(start: Any, rounds: int) -> tuple[int, list[str]]:
    """Interrupt a loop of small calls in budget scopes ``rounds`` times.

    ``start(k)`` arms the k-th interrupt. Returns how many interrupts arrived and, for each
    time the budget was wrong afterwards, where the interrupt landed.
    """
    x, w = np.ones((1, 2, 6, 6)), np.ones((2, 2, 3, 3))
    expected = mc.conv2d(x, w)
    outside = mc.get_memory_budget()
    exit_code = mc.memory_budget.__exit__.__code__
    arrived, wrong = 0, []
    for k in range(rounds):
        try:
            start(k)
            while True:
                with mc.memory_budget(100_000):
                    mc.conv2d(x, w)
        except KeyboardInterrupt as interrupt:
            arrived += 1
            trace = interrupt.__traceback__
            while trace is not None and trace.tb_next is not None:
                trace = trace.tb_next
            where = "?" if trace is None else f"{trace.tb_frame.f_code.co_name}@{trace.tb_lasti}"
            at_exit_start = trace is not None and trace.tb_frame.f_code is exit_code
            at_exit_start = at_exit_start and trace is not None and trace.tb_lasti == 0
            del interrupt, trace
        if mc.get_memory_budget() != outside:
            wrong.append(where if at_exit_start else f"unexpected: {where}")
            budget_module._OVERRIDE.set(None)
        assert np.array_equal(mc.conv2d(x, w), expected)  # the next call works
        with mc.memory_budget(100_000):
            assert mc.get_memory_budget() == 100_000
    assert mc.get_memory_budget() == outside
    return arrived, wrong


def test_interrupt_main_from_a_timer_thread_leaves_the_budget_unchanged() -> None:
    timers: list[threading.Timer] = []

    def start(k: int) -> None:
        timers.append(threading.Timer(0.0005 * (1 + k % 5), _thread.interrupt_main))
        timers[-1].start()

    try:
        arrived, wrong = _interrupted_loops(start, 150)
    finally:
        for timer in timers:
            timer.join()
    assert arrived == 150
    assert not [where for where in wrong if where.startswith("unexpected")], wrong


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="SIGALRM timers are POSIX only")
def test_sigalrm_interrupts_leave_the_budget_unchanged() -> None:
    previous = signal.signal(signal.SIGALRM, signal.default_int_handler)
    try:
        arrived, wrong = _interrupted_loops(
            lambda k: signal.setitimer(signal.ITIMER_REAL, 0.0002 * (1 + k % 7)), 1000
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert arrived == 1000
    assert not [where for where in wrong if where.startswith("unexpected")], wrong
