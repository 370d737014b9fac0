"""Worker threads for the NumPy-side work of a path: copies and elementwise arithmetic.

BLAS already runs a matrix product on every core, but NumPy's copies, multiplications and
additions run on the thread that calls them. NumPy releases the GIL inside those loops, so a
path can split such work into independent *tasks* that write disjoint parts of one output
and run them on a few threads (:func:`run_tasks`; :func:`add_into` splits an in-place sum, and
:func:`mimo_conv._core.columns.copy_taps` the GEMM paths' im2col copies).

Reproducibility is by construction, not by luck: a path splits only over images, channels
or taps whose results land in different output elements, and each task performs the same
operations, in the same order, on each element as the single-threaded run does. So the
result is bit for bit the same for every thread count, for floats as well as integers.

The thread count is one process-wide setting (:func:`set_threads`, :func:`get_threads`); by
default it is the BLAS thread count named by ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``
or ``MKL_NUM_THREADS`` when one is set, else ``os.cpu_count()``. The threads come from one
lazily created pool; a call whose tasks are small runs them on the calling thread, since
handing a task to a thread costs tens of microseconds.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

from numpy.typing import NDArray

#: Environment variables that set the BLAS thread count, read in this order for the default.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: Whether the GEMM paths' tap copies and output additions (:func:`add_into` and
#: :func:`mimo_conv._core.columns.copy_taps`) are split over the worker threads. Off: on the
#: benchmark machine (2 vCPUs, no other jobs, OpenBLAS on 2 threads; 2026-12-02) the split
#: measured slower, not faster: ``mc.set_threads(2)`` over ``(1)`` took 1.57x the time on the
#: 3 x 3 depthwise layer through row_gemm and 1.14x on the ResNet 3 x 3 layer, and the tap
#: copy alone ran 0.6-0.96x as fast in float32 (``benchmarks/bench_threads.py``): BLAS keeps
#: both cores busy and the copies are memory-bound. Setting it to True turns the split on
#: (results stay bit for bit the same); the depthwise path's own tasks do not read it.
SPLIT_COPIES = False

#: Elements a task should touch before it is worth a thread: handing a task to the pool and
#: waiting for it costs ~20-50 us on the benchmark machine, about the time NumPy takes to
#: multiply and add 2**16 float32 elements.
MIN_TASK_ELEMENTS = 2**16


class _Settings:
    """The process-wide thread setting and the pool (changed under ``lock``), and the default."""

    lock = threading.Lock()
    threads: int | None = None
    pool: ThreadPoolExecutor | None = None
    pool_size = 0
    #: The last default thread count and what it was computed from (see
    #: :func:`_environment_default`).
    default: tuple[tuple[object, ...], object, int] | None = None


_settings = _Settings()


def default_threads() -> int:
    """Return the thread count used when :func:`set_threads` was never called.

    The first of :data:`THREAD_VARIABLES` that holds a positive integer, else
    ``os.cpu_count()`` (1 if unknown).

    Examples
    --------
    >>> default_threads() >= 1
    True
    """
    for name in THREAD_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def get_threads() -> int:
    """Return the number of threads the paths may use for their NumPy-side work.

    When :func:`set_threads` was not called (or reset with None), this is the default of
    ``default_threads()``, read afresh whenever one of ``THREAD_VARIABLES`` changed:
    a change of ``os.environ`` after a call shows in the next one.

    Examples
    --------
    >>> import mimo_conv as mc
    >>> mc.get_threads() >= 1
    True
    """
    threads = _settings.threads
    return _environment_default() if threads is None else threads


def _environment_default() -> int:
    """:func:`default_threads`, remembered for as long as its inputs stay the same.

    Every planned call asks for the thread count, and :func:`default_threads` costs ~20 us
    there (``os.environ.get`` of a missing name raises and catches a ``KeyError``, and
    ``os.cpu_count()`` reads the system each time). So the answer is kept with what it was
    computed from: the values of the three variables (:func:`_thread_variable_values`, a
    fraction of a microsecond) and the ``os.cpu_count`` function itself (so a test that
    replaces it is seen). Any change of either recomputes it.
    """
    values = _thread_variable_values()
    remembered = _settings.default
    if remembered is not None and remembered[0] == values and remembered[1] is os.cpu_count:
        return remembered[2]
    threads = default_threads()
    _settings.default = (values, os.cpu_count, threads)  # replaced whole: no lock needed
    return threads


#: ``os.environ`` as imported, and its own dictionary of encoded names and values (CPython's
#: private ``os.environ._data``; without it the public ``os.environ.get`` is used): every
#: change made through ``os.environ`` (``os.environ[name] = value``, ``del os.environ[name]``,
#: ``os.environ.update``, pytest's ``monkeypatch.setenv``) is written to it.
_ENVIRON = os.environ
_ENVIRON_DATA = getattr(_ENVIRON, "_data", None)
_ENVIRON_GET = (
    _ENVIRON_DATA.get
    if isinstance(_ENVIRON_DATA, dict) and hasattr(_ENVIRON, "encodekey")
    else None
)
# The three names, encoded as os.environ keeps them (unpacked: a fourth would fail here).
_OMP, _OPENBLAS, _MKL = (
    tuple(_ENVIRON.encodekey(name) for name in THREAD_VARIABLES)
    if _ENVIRON_GET is not None
    else THREAD_VARIABLES
)


def _thread_variable_values() -> tuple[object, ...]:
    """Return the raw values of :data:`THREAD_VARIABLES` (None where unset), read cheaply.

    Three direct lookups in ``os.environ``'s own dictionary (~0.1 us in all); the public
    ``os.environ.get`` (~2 us per missing name) when ``os.environ`` was replaced or the
    interpreter keeps it differently.

    Examples
    --------
    >>> import os
    >>> values = _thread_variable_values()
    >>> [value is None for value in values] == [
    ...     os.environ.get(name) is None for name in THREAD_VARIABLES]
    True
    """
    get = _ENVIRON_GET
    if get is not None and os.environ is _ENVIRON:
        return (get(_OMP), get(_OPENBLAS), get(_MKL))
    return tuple([os.environ.get(name) for name in THREAD_VARIABLES])


def set_threads(threads: int | None) -> int | None:
    """Set the number of threads for the paths' copies and elementwise work, process-wide.

    Parameters
    ----------
    threads : int or None
        A positive count, or None to return to the default (the BLAS thread setting,
        else the number of cores). It does not change BLAS's own threads (use
        ``threadpoolctl`` or the environment for those). Results do not depend on it.

    Returns
    -------
    int or None
        The previous setting (None when it was the default).

    Raises
    ------
    TypeError
        If ``threads`` is not an int or None.
    ValueError
        If ``threads`` is not positive.

    Examples
    --------
    >>> import mimo_conv as mc
    >>> previous = mc.set_threads(1)
    >>> mc.get_threads()
    1
    >>> mc.set_threads(previous)
    1
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)):
        msg = f"threads must be a positive int or None, got {threads!r}"
        raise TypeError(msg)
    if threads is not None and threads < 1:
        msg = f"threads must be a positive int or None, got {threads!r}"
        raise ValueError(msg)
    with _settings.lock:
        previous, _settings.threads = _settings.threads, threads
    return previous


def splittable(array: NDArray[Any]) -> bool:
    """Whether NumPy works on ``array`` without the GIL: not for Python objects.

    Copying or adding ``dtype=object`` elements runs Python code (reference counts, the
    objects' ``__add__``) under the GIL, so threads would only take turns.

    Examples
    --------
    >>> import numpy as np
    >>> splittable(np.ones(3)), splittable(np.ones(3, dtype=object))
    (True, False)
    """
    return not array.dtype.hasobject


def task_count(elements: int, limit: int) -> int:
    """How many tasks to split work of ``elements`` into, at most ``limit`` and the threads.

    Each task gets at least :data:`MIN_TASK_ELEMENTS`, so small work stays in one task.

    Examples
    --------
    >>> task_count(10, 8)
    1
    >>> task_count(2**30, 8) == min(8, get_threads())
    True
    """
    return max(1, min(limit, get_threads(), elements // MIN_TASK_ELEMENTS))


#: Tasks per thread that :func:`share_count` aims at. The threads take tasks from one counter
#: (a lock and a call, about a microsecond each), so a thread that is descheduled for a while
#: on a loaded machine delays the call by one small task, not by half of the work.
SHARES_PER_THREAD = 4


def share_count(elements: int, limit: int) -> int:
    """How many tasks to cut work of ``elements`` into for balance: a few per thread.

    Up to :data:`SHARES_PER_THREAD` per thread, at most ``limit``, each of at least
    :data:`MIN_TASK_ELEMENTS`; 1 when :func:`task_count` would not split the work.

    Examples
    --------
    >>> share_count(10, 8)
    1
    >>> share_count(2**30, 1000) == (1 if get_threads() == 1 else 4 * get_threads())
    True
    """
    threads = task_count(elements, limit)
    if threads == 1:
        return 1
    return min(limit, threads * SHARES_PER_THREAD, elements // MIN_TASK_ELEMENTS)


def run_tasks(tasks: Sequence[Callable[[], object]]) -> None:
    """Run independent tasks on the worker threads and the caller; return when all are done.

    The caller and ``get_threads() - 1`` pool threads take the tasks in order from one shared
    counter, so the work stays balanced whatever the task count. Each task runs in a copy of
    the caller's context (a memory budget set by the caller holds in it). The first exception
    a task raises is re-raised here once every task has stopped, so no task is still writing
    into an output when the caller sees the error; the remaining tasks are skipped. An
    interrupt (Ctrl-C) in the caller is handled the same way: the tasks not yet started are
    skipped, the running ones finish, then the interrupt propagates.

    Examples
    --------
    >>> results = [0] * 4
    >>> def square(i):
    ...     results[i] = i * i
    >>> run_tasks([lambda i=i: square(i) for i in range(4)])
    >>> results
    [0, 1, 4, 9]
    """
    helpers = min(len(tasks), get_threads()) - 1
    if helpers <= 0:
        for task in tasks:
            task()
        return
    # The helpers reach the tasks only through this list, emptied before returning: the
    # pool may hold a finished or cancelled helper's call a little longer, and it must not
    # keep the tasks' arrays (a chunk of the caller's) alive beyond the planned workspace.
    shared = list(tasks)
    counter = iter(range(len(shared)))
    take = threading.Lock()
    errors: list[BaseException] = []

    def drain() -> None:
        while not errors:
            with take:
                number = next(counter, None)
                task = shared[number] if number is not None else None
            if task is None:
                return
            try:
                task()
            except BaseException as exc:  # re-raised by the caller below
                errors.append(exc)
            del task

    pool = _get_pool()
    futures: list[Future[None]] = [
        pool.submit(contextvars.copy_context().run, drain) for _ in range(helpers)
    ]
    try:
        drain()
    except BaseException as exc:  # an interrupt between two tasks of the caller's share
        errors.append(exc)
    # Stop handing out tasks on any error, and wait for the running ones, so no thread
    # still writes into the caller's arrays once this returns or raises.
    _wait_all(futures, errors)
    shared.clear()
    if errors:
        # An interrupt wins over a task's failure: Ctrl-C must not turn into another error.
        raise next((exc for exc in errors if not isinstance(exc, Exception)), errors[0])


def _wait_all(futures: Sequence[Future[None]], errors: list[BaseException]) -> None:
    """Wait until every future is done; an interrupt meanwhile stops the rest, then waits on.

    A helper that has not started yet is cancelled rather than waited for: the caller has
    taken every task it would have found (on a loaded machine a pool thread can take
    milliseconds to be scheduled, and waiting for it cost more than the work). The interrupt
    (``KeyboardInterrupt`` from Ctrl-C) is recorded in ``errors``, which makes the running
    helpers take no further task; it is re-raised by the caller once they have stopped.
    """
    pending = [future for future in futures if not future.cancel()]
    while pending:
        try:
            pending[0].result()
            pending.pop(0)
        except BaseException as exc:  # an interrupt, or a helper's own failure
            if pending[0].done():
                pending.pop(0)
            if exc not in errors:
                errors.append(exc)


def add_into(target: NDArray[Any], addend: NDArray[Any]) -> None:
    """``target += addend`` (same shapes), split over the threads along one axis.

    Each element gets the one addition it gets single-threaded, so the sum is bit for bit
    the same for every thread count. The split is along the first axis at least as long as
    the thread count, in up to :func:`share_count` parts; work too small to split runs here.

    Examples
    --------
    >>> import numpy as np
    >>> total = np.arange(6).reshape(2, 3)
    >>> add_into(total, np.ones((2, 3), int))
    >>> total
    array([[1, 2, 3],
           [4, 5, 6]])
    """
    split = SPLIT_COPIES and splittable(target)
    threads = task_count(target.size, max(target.shape, default=1)) if split else 1
    axis = next((number for number, size in enumerate(target.shape) if size >= threads), None)
    if threads == 1 or axis is None:
        target += addend
        return
    length = target.shape[axis]
    tasks = min(length, share_count(target.size, length))
    bounds = [length * number // tasks for number in range(tasks + 1)]

    def add(start: int, stop: int) -> None:
        part = (slice(None),) * axis + (slice(start, stop),)
        target[part] += addend[part]

    run_tasks([partial(add, start, stop) for start, stop in itertools.pairwise(bounds)])


def _get_pool() -> ThreadPoolExecutor:
    """Return the shared pool, created on first use with ``get_threads() - 1`` workers.

    A later, larger :func:`set_threads` replaces it; the old pool's threads finish their
    tasks and exit.
    """
    wanted = max(1, get_threads() - 1)
    with _settings.lock:
        old = _settings.pool
        if old is None or _settings.pool_size < wanted:
            _settings.pool = ThreadPoolExecutor(wanted, thread_name_prefix="mimo_conv")
            _settings.pool_size = wanted
            if old is not None:
                old.shutdown(wait=False)
        assert _settings.pool is not None
        return _settings.pool
