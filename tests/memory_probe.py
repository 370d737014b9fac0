"""Measure the temporary memory a call holds: shared by the budget tests."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

from numpy.typing import NDArray


def peak_temporary(function: Callable[[], NDArray[Any]]) -> tuple[int, NDArray[Any]]:
    """Peak traced bytes during ``function()`` beyond its inputs, minus the returned array."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        result = function()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base - result.nbytes, result
