"""Every cache in the package is bounded, in entries and (for the plans) in bytes.

A cache keyed by call geometry sees a new key for every batch size and image size a
program uses. An entry count alone does not bound memory when an entry grows with the
call: 256 plans that each held a list of slices for ``(N, 1, 32, 32)`` at
``memory_budget=2400`` once took 811 MiB (issue 10). So each cached plan is checked to stay
a few kilobytes whatever the batch, and every ``functools`` cache to have a size limit.
"""

from __future__ import annotations

import functools
import gc
import importlib
import inspect
import pkgutil
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np

import mimo_conv as mc
from mimo_conv._core import geometry_cache
from mimo_conv._engine import plan as engine_plan

#: Bytes the caches may keep per planned call, whatever the call's size: a plan is a few
#: ints and one small record per path (about 4.5 KiB measured), its geometry and dtype
#: plan are smaller; 15 to 21 KiB in all were measured at batches 1 to 20. Never one object
#: per chunk.
PLAN_BYTES = 64 * 2**10


def _caches() -> Iterator[tuple[str, Any]]:
    for info in pkgutil.walk_packages(mc.__path__, prefix="mimo_conv."):
        if info.name == "mimo_conv.__main__":
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            wrapped = getattr(value, "__wrapped__", None)
            if hasattr(value, "cache_info") and getattr(wrapped, "__module__", None) == info.name:
                yield f"{info.name}.{name}", value


def test_every_functools_cache_has_a_size_limit() -> None:
    found = dict(_caches())
    assert "mimo_conv._engine.plan._plan_cached" in found  # the search finds the caches
    unbounded = [
        name
        for name, cache in found.items()
        if cache.cache_parameters()["maxsize"] is None
        and inspect.signature(cache.__wrapped__).parameters  # a constant needs no limit
    ]
    assert unbounded == []
    assert geometry_cache._GEOMETRY_CACHE_SIZE <= 1024


def test_the_geometry_cache_never_exceeds_its_size() -> None:
    w = np.ones((1, 1, 2))
    for length in range(2, 2 + 2 * geometry_cache._GEOMETRY_CACHE_SIZE):
        mc.conv1d(np.ones((1, 1, length)), w)
        assert len(geometry_cache._GEOMETRY_CACHE) <= geometry_cache._GEOMETRY_CACHE_SIZE


def _retained_per_plan(batches: range) -> float:
    """Bytes the caches keep per planned call: one call per batch size, 2400-byte budget.

    Every cache starts empty; the calls are planned (every path costed), not computed.
    """
    caches = [cache for _, cache in _caches()]
    for cache in caches:
        cache.cache_clear()
    geometry_cache._GEOMETRY_CACHE.clear()
    w = np.ones((2, 2, 3, 3))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for batch in batches:
            mc.explain_method(np.ones((batch, 2, 40, 6)), w, memory_budget=2400)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert engine_plan._plan_cached.cache_info().currsize == len(batches)
    return retained / len(batches)


def test_plans_of_small_batches_are_small() -> None:
    assert _retained_per_plan(range(1, 21)) <= PLAN_BYTES


def test_plans_stay_small_whatever_the_batch() -> None:
    assert _retained_per_plan(range(181, 201)) <= PLAN_BYTES


def test_lru_caches_are_the_functools_kind() -> None:
    # The search above relies on functools' cache wrappers; a hand-made dict cache would
    # need its own test, as the geometry cache has.
    for _, cache in _caches():
        assert isinstance(cache, functools._lru_cache_wrapper)
