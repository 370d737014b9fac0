"""The memory budget: the largest temporary buffer any computational path may allocate.

A convolution's fast paths copy windows of the input into buffers (im2col) that can be
``prod(kernel)`` times the input. To keep memory bounded whatever the batch size, every path
works in chunks over the batch and over output positions, sized from two numbers:

* the **budget** (default 256 MiB, :data:`DEFAULT_MEMORY_BUDGET`): no single temporary is
  larger. It is set globally with :func:`set_memory_budget`, for a block with the context
  manager :func:`memory_budget`, or for one call with the ``memory_budget=`` keyword of
  :func:`mimo_conv.conv`. A temporary that cannot fit even in the smallest chunk raises
  ``MemoryError`` before anything is allocated.
* the **preferred chunk** (:data:`PREFERRED_CHUNK_BYTES`, 8 MiB): chunks are no larger than
  this even under a large budget, because small chunks are faster: they stay in the
  last-level cache between the copy that fills them and the matrix product that reads them,
  and they stay under glibc's 32 MiB ``mmap`` threshold, above which every freed buffer goes
  back to the operating system and is page-faulted in again on the next call (measured
  50-100 us per MiB on a 2-core OpenBLAS machine, issue 6).

The budget lives in a :class:`contextvars.ContextVar`, so threads and asyncio tasks that
set it for a block do not disturb each other.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mimo_conv._core.memory import format_bytes

#: Default budget for one temporary buffer: 256 MiB, the default the issue suggests; large
#: enough that ResNet-size layers run in a handful of chunks, small next to the 8+ GiB of a
#: typical machine.
DEFAULT_MEMORY_BUDGET = 256 * 2**20

#: Preferred size of one chunk. Measured on the benchmark suite (2-core AMD EPYC, OpenBLAS
#: 0.3.31): one image per chunk (about 7 MiB of im2col for the ResNet 3x3 layer) was faster
#: than 2 or 8 images per chunk; glibc's largest ``mmap`` threshold is 32 MiB on 64-bit
#: systems (``DEFAULT_MMAP_THRESHOLD_MAX``), so anything below it is reused, not faulted in.
PREFERRED_CHUNK_BYTES = 8 * 2**20

_BUDGET: contextvars.ContextVar[int] = contextvars.ContextVar(
    "mimo_conv_memory_budget", default=DEFAULT_MEMORY_BUDGET
)


def _check_budget(value: object) -> int:
    """Validate a budget: a positive int of bytes."""
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"memory_budget must be an int number of bytes, got {value!r}"
        raise TypeError(msg)
    if value < 1:
        msg = f"memory_budget must be >= 1 byte, got {value}"
        raise ValueError(msg)
    return value


def get_memory_budget() -> int:
    """Return the current memory budget in bytes: the largest temporary a path may allocate.

    Examples
    --------
    >>> import mimo_conv as mc
    >>> mc.get_memory_budget()
    268435456
    """
    return _BUDGET.get()


def set_memory_budget(budget: int) -> int:
    """Set the memory budget (bytes) for every later call in this context; return the old one.

    Parameters
    ----------
    budget : int
        Largest temporary buffer, in bytes, that any computational path may allocate.

    Returns
    -------
    int
        The previous budget, so a caller can restore it.

    Examples
    --------
    >>> import mimo_conv as mc
    >>> previous = mc.set_memory_budget(64 * 2**20)
    >>> mc.get_memory_budget()
    67108864
    >>> mc.set_memory_budget(previous)
    67108864
    """
    previous = _BUDGET.get()
    _BUDGET.set(_check_budget(budget))
    return previous


@contextmanager
def memory_budget(budget: int) -> Iterator[int]:
    """Use ``budget`` bytes as the memory budget inside a ``with`` block.

    Parameters
    ----------
    budget : int
        Largest temporary buffer, in bytes, that any computational path may allocate.

    Yields
    ------
    int
        The budget in force inside the block.

    Examples
    --------
    >>> import numpy as np
    >>> import mimo_conv as mc
    >>> x = np.ones((4, 3, 16, 16))
    >>> w = np.ones((2, 3, 3, 3))
    >>> with mc.memory_budget(64 * 2**10):  # 64 KiB: computed in small chunks
    ...     out = mc.conv2d(x, w)
    >>> bool((out == mc.conv2d(x, w)).all())
    True
    """
    token = _BUDGET.set(_check_budget(budget))
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


@contextmanager
def call_budget(budget: int | None) -> Iterator[None]:
    """Apply a per-call ``memory_budget=`` argument; None keeps the budget in force.

    Examples
    --------
    >>> before = get_memory_budget()
    >>> with call_budget(None):
    ...     get_memory_budget() == before
    True
    >>> with call_budget(4096):
    ...     get_memory_budget()
    4096
    """
    if budget is None:
        yield
        return
    with memory_budget(budget):
        yield


def chunk_bytes() -> int:
    """Target size of one chunk: the budget, but no more than :data:`PREFERRED_CHUNK_BYTES`.

    Examples
    --------
    >>> chunk_bytes()
    8388608
    """
    return min(get_memory_budget(), PREFERRED_CHUNK_BYTES)


def units_per_chunk(bytes_per_unit: int, what: str, *, target: int | None = None) -> int:
    """How many units (images, output rows, ...) of ``bytes_per_unit`` fit in one chunk.

    At least 1. Raises ``MemoryError`` when even one unit exceeds the budget.

    Parameters
    ----------
    bytes_per_unit : int
        Temporary bytes one unit needs.
    what : str
        What the temporary is, for the error message.
    target : int, optional
        Chunk size to aim for; :func:`chunk_bytes` by default.

    Examples
    --------
    >>> units_per_chunk(2**20, "im2col buffer")
    8
    >>> with memory_budget(1000):
    ...     units_per_chunk(4000, "im2col buffer of one output row")
    Traceback (most recent call last):
    ...
    MemoryError: the im2col buffer of one output row needs 4000 bytes (3.9 KiB), more than
    the memory budget of 1000 bytes (1000 B); raise it with mimo_conv.set_memory_budget(...)
    or memory_budget=..., or choose a path with smaller temporaries (method='shift')
    """
    check_fits(bytes_per_unit, what)
    aim = chunk_bytes() if target is None else target
    return max(1, aim // max(1, bytes_per_unit))


def check_fits(count: int, what: str) -> None:
    """Raise ``MemoryError`` if a temporary of ``count`` bytes exceeds the budget.

    Examples
    --------
    >>> check_fits(10, "window")
    """
    budget = get_memory_budget()
    if count > budget:
        msg = (
            f"the {what} needs {count} bytes ({format_bytes(count)}), more than the memory "
            f"budget of {budget} bytes ({format_bytes(budget)}); raise it with "
            "mimo_conv.set_memory_budget(...) or memory_budget=..., or choose a path with "
            "smaller temporaries (method='shift')"
        )
        raise MemoryError(msg)


def chunks(total: int, size: int) -> Iterator[slice]:
    """Split ``range(total)`` into consecutive slices of at most ``size`` elements.

    Examples
    --------
    >>> list(chunks(5, 2))
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    for start in range(0, total, max(1, size)):
        yield slice(start, min(total, start + size))


def chunk_count(total: int, size: int) -> int:
    """Return how many slices :func:`chunks` yields.

    Examples
    --------
    >>> chunk_count(5, 2)
    3
    """
    return math.ceil(total / max(1, size)) if total else 0


def plan_chunks(batch_size: int, rows: int, bytes_per_row: int, what: str) -> tuple[int, int]:
    """Images per chunk and output rows per chunk for a temporary of ``bytes_per_row``.

    Whole images are grouped while they fit in :func:`chunk_bytes`; a larger image is
    split into ranges of output rows (first spatial axis). Raises ``MemoryError`` when one
    output row alone exceeds the budget.

    Parameters
    ----------
    batch_size : int
        Images in the batch.
    rows : int
        Output positions along the first spatial axis.
    bytes_per_row : int
        Temporary bytes needed per image and output row.
    what : str
        Name of the temporary for the error message.

    Returns
    -------
    (int, int)
        ``(images, rows)`` per chunk, each at least 1.

    Examples
    --------
    >>> plan_chunks(8, 56, 2**17, "im2col buffer")  # 7 MiB per image
    (1, 56)
    >>> plan_chunks(8, 56, 2**18, "im2col buffer")  # 14 MiB per image: 32 rows per chunk
    (1, 32)
    >>> plan_chunks(8, 4, 2**10, "im2col buffer")  # 4 KiB per image: the whole batch
    (8, 4)
    """
    check_fits(bytes_per_row, f"{what} for one output row")
    target = chunk_bytes()
    per_image = bytes_per_row * rows
    if per_image <= target:
        return max(1, min(batch_size, target // max(1, per_image))), max(1, rows)
    return 1, max(1, target // bytes_per_row)


@dataclass(frozen=True)
class InputCopyPlan:
    """How the padded copy of the input is made: at once, or in chunks of images.

    Attributes
    ----------
    images : int
        Images per chunk of the copy (the whole batch when ``chunked`` is False).
    held : int
        Bytes the copy (and, when chunked, each chunk's result before it is written into
        the output) holds while the path runs: the path runs under the budget minus this.
    chunked : bool
        Whether the batch is copied and computed in chunks of ``images``.
    """

    images: int
    held: int
    chunked: bool


def plan_input_copy(
    batch_size: int,
    copy_per_image: int,
    result_per_image: int,
    path_minimum: int,
    path: str,
    chunk_name: str = "smallest chunk",
) -> InputCopyPlan:
    """Size the chunks of the padded input copy so that the path still fits beside them.

    The padded (and converted) copy of the input is a temporary too. The whole batch is
    copied at once when that takes at most half the budget and leaves room for the path's
    smallest chunk (``path_minimum`` bytes). Otherwise the batch is copied and computed a few
    images at a time; each chunk holds its copy and its result (copied into the output
    afterwards). Chunks take at most half the budget when one image fits in that half, and
    never so much that the path's smallest chunk no longer fits.

    Parameters
    ----------
    batch_size : int
        Images in the batch.
    copy_per_image : int
        Bytes of the padded copy of one image (0 when the input is used as it is).
    result_per_image : int
        Bytes of one image's result.
    path_minimum : int
        Bytes of the path's smallest chunk (one output row of one image, for most paths).
    path : str
        The path's name, for the error message.
    chunk_name : str, optional
        What the path's smallest chunk is, for the error message.

    Returns
    -------
    InputCopyPlan

    Raises
    ------
    MemoryError
        If one image's copy and result, with the path's smallest chunk, exceed the budget.

    Examples
    --------
    >>> with memory_budget(2**20):  # the whole copy (0.5 MiB) fits in half of 1 MiB
    ...     plan_input_copy(8, 2**16, 2**16, 2**14, "gemm")
    InputCopyPlan(images=8, held=524288, chunked=False)
    >>> with memory_budget(2**20):  # the path needs 640 KiB: 3 images' copies and results fit
    ...     plan_input_copy(8, 2**16, 2**16, 640 * 2**10, "im2col")
    InputCopyPlan(images=3, held=393216, chunked=True)
    >>> with memory_budget(2**17):
    ...     plan_input_copy(8, 2**16, 2**16, 2**14, "gemm", "im2col buffer of one output row")
    Traceback (most recent call last):
    ...
    MemoryError: the smallest working set of the 'gemm' path (the padded copy of one input
    image 64.0 KiB, its result 64.0 KiB, and the path's im2col buffer of one output row 16.0
    KiB) needs 147456 bytes (144.0 KiB), more than the memory budget of 131072 bytes (128.0
    KiB); raise it with ...
    """
    budget = get_memory_budget()
    whole = batch_size * copy_per_image
    if copy_per_image == 0 or (whole <= budget // 2 and whole + path_minimum <= budget):
        return InputCopyPlan(batch_size, whole, chunked=False)
    unit = copy_per_image + result_per_image
    room = max(0, budget - path_minimum)
    images = min(batch_size, (budget // 2) // unit, room // unit)
    if images < 1:  # one image takes more than half the budget: allowed if the path fits
        images = min(batch_size, room // unit)
    if images < 1:
        what = (
            f"smallest working set of the {path!r} path (the padded copy of one input image "
            f"{format_bytes(copy_per_image)}, its result {format_bytes(result_per_image)}, "
            f"and the path's {chunk_name} {format_bytes(path_minimum)})"
        )
        check_fits(unit + path_minimum, what)
    return InputCopyPlan(images, images * unit, chunked=True)
