"""Memory checks made before any work: the output must fit in this machine's memory.

On Linux, ``np.empty`` of an impossible size often succeeds (pages are only promised) and
the process is killed later, mid-computation. So the size of the result is compared with
the machine's physical memory first, and a ``MemoryError`` names the shape and the bytes.
"""

from __future__ import annotations

import math
import os
from functools import cache
from typing import Any

import numpy as np

#: No array can hold more bytes than the largest index NumPy can address.
_LARGEST_ARRAY_BYTES = int(np.iinfo(np.intp).max)


@cache
def physical_memory_bytes() -> int | None:
    """Total physical memory of this machine in bytes, or None where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(count: int) -> str:
    """Human-readable size with binary prefixes.

    Examples
    --------
    >>> format_bytes(512)
    '512 B'
    >>> format_bytes(3 * 2**30)
    '3.0 GiB'
    """
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024 or unit == "EiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover - the loop always returns


def check_output_fits(shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    """Raise ``MemoryError`` if an array of this shape and dtype cannot fit in memory.

    Parameters
    ----------
    shape : tuple of int
        Shape of the array about to be allocated.
    dtype : numpy.dtype
        Its dtype.

    Examples
    --------
    >>> check_output_fits((2, 3), np.dtype(np.float64))
    >>> check_output_fits((10**9, 10**9), np.dtype(np.float64))
    Traceback (most recent call last):
    ...
    MemoryError: the output of shape (1000000000, 1000000000) and dtype float64 needs
    8000000000000000000 bytes (6.9 EiB)...
    """
    count = math.prod(shape) * dtype.itemsize
    limit = physical_memory_bytes()
    if count > _LARGEST_ARRAY_BYTES or (limit is not None and count > limit):
        where = ""
        if limit is not None:
            where = f", more than this machine's memory ({format_bytes(limit)})"
        msg = (
            f"the output of shape {shape} and dtype {dtype} needs {count} bytes "
            f"({format_bytes(count)}){where}"
        )
        raise MemoryError(msg)
