"""The memory budget: the largest temporary memory any computational path may hold.

A convolution's fast paths copy windows of the input into buffers (im2col) that can be
``prod(kernel)`` times the input. To keep memory bounded whatever the batch size, every path
works in chunks over the batch and over output positions, sized from two numbers:

* the **budget** (default 256 MiB, :data:`DEFAULT_MEMORY_BUDGET`): the temporaries alive at
  any moment (the padded or converted copy of the input, im2col chunks, partial products)
  never exceed it. A call whose smallest working set does not fit raises ``MemoryError``
  before anything is allocated.
* the **preferred chunk** (:data:`PREFERRED_CHUNK_BYTES`, 8 MiB): chunks are no larger than
  this even under a large budget, because small chunks are faster: they stay in the
  last-level cache between the copy that fills them and the matrix product that reads them,
  and they stay under glibc's 32 MiB ``mmap`` threshold, above which every freed buffer goes
  back to the operating system and is page-faulted in again on the next call (measured
  50-100 us per MiB on a 2-core OpenBLAS machine, issue 6).

**The model: one process-wide value, one context-local override, one per-call argument.**

* :func:`set_memory_budget` sets the process-wide budget: every thread sees it (a plain
  module-level int behind a lock).
* ``with memory_budget(n):`` overrides it inside the block, for the current thread or
  asyncio task only (a :class:`contextvars.ContextVar`); the block restores what was there
  on exit, so nothing leaks into later tasks that a thread pool runs on the same worker.
  It is a class, not a generator: an interrupt (Ctrl-C) that lands right after the
  override is set is caught inside ``__enter__``, which undoes it before the interrupt
  propagates; once ``__enter__`` has returned, the ``with`` statement's own cleanup runs
  ``__exit__``, which restores before it forgets the saved value. (The generator form left
  the budget changed after about 1% of such interrupts.) One instant remains that no Python
  code can cover: an interrupt delivered as ``__exit__`` starts, before its first line runs
  (CPython checks for pending signals there). In a loop of small calls about 1 in 300
  SIGALRMs lands there; ``mimo_conv.set_memory_budget`` and per-call ``memory_budget=``
  have no such instant, and an enclosing ``with memory_budget`` block restores its own value
  as the interrupt passes through it.
* ``memory_budget=n`` on a call overrides both for that call only; the call reads the budget
  once (:func:`resolve_budget`) and passes the int down explicitly, so planning never reads
  ambient state.

Examples
--------
>>> import mimo_conv as mc
>>> with mc.memory_budget(4096):
...     mc.get_memory_budget()
4096
>>> mc.get_memory_budget() == DEFAULT_MEMORY_BUDGET
True
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from mimo_conv._core.memory import format_bytes

#: Default budget for the temporaries of one call: 256 MiB, the default the issue suggests;
#: large enough that ResNet-size layers run in a handful of chunks, small next to the 8+ GiB
#: of a typical machine.
DEFAULT_MEMORY_BUDGET = 256 * 2**20

#: Preferred size of one chunk. Measured on the benchmark suite (2-core AMD EPYC, OpenBLAS
#: 0.3.31): one image per chunk (about 7 MiB of im2col for the ResNet 3x3 layer) was faster
#: than 2 or 8 images per chunk; glibc's largest ``mmap`` threshold is 32 MiB on 64-bit
#: systems (``DEFAULT_MMAP_THRESHOLD_MAX``), so anything below it is reused, not faulted in.
PREFERRED_CHUNK_BYTES = 8 * 2**20

#: The process-wide budget (:func:`set_memory_budget`), shared by every thread.
_process_budget = DEFAULT_MEMORY_BUDGET
_process_lock = threading.Lock()
#: The override of a ``with memory_budget(...)`` block; None outside every block.
_OVERRIDE: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "mimo_conv_memory_budget", default=None
)


def check_budget(value: object, name: str = "memory_budget") -> int:
    """Validate a budget: a positive integer number of bytes (Python or NumPy int, not bool).

    Examples
    --------
    >>> check_budget(np.int64(4096))
    4096
    >>> check_budget(True)
    Traceback (most recent call last):
    ...
    TypeError: memory_budget must be an int number of bytes, got True
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        msg = f"{name} must be an int number of bytes, got {value!r}"
        raise TypeError(msg)
    count = int(value)
    if count < 1:
        msg = f"{name} must be >= 1 byte, got {count}"
        raise ValueError(msg)
    return count


def get_memory_budget() -> int:
    """Return the budget in force here: the innermost ``memory_budget`` block's, else the process's.

    Examples
    --------
    >>> import mimo_conv as mc
    >>> mc.get_memory_budget()
    268435456
    """
    override = _OVERRIDE.get()
    return _process_budget if override is None else override


def set_memory_budget(budget: int) -> int:
    """Set the process-wide memory budget (bytes), seen by every thread; return the old one.

    A ``with memory_budget(...)`` block in force still overrides it inside that block.

    Parameters
    ----------
    budget : int
        Largest temporary memory, in bytes, that a call may hold.

    Returns
    -------
    int
        The previous process-wide budget, so a caller can restore it.

    Examples
    --------
    >>> import mimo_conv as mc
    >>> previous = mc.set_memory_budget(64 * 2**20)
    >>> mc.get_memory_budget()
    67108864
    >>> mc.set_memory_budget(previous)
    67108864
    """
    global _process_budget
    value = check_budget(budget)
    with _process_lock:
        previous, _process_budget = _process_budget, value
    return previous


class memory_budget:  # noqa: N801 - used as a function: ``with memory_budget(n):``
    """Use ``budget`` bytes as the memory budget inside a ``with`` block (this thread only).

    Parameters
    ----------
    budget : int
        Largest temporary memory, in bytes, that a call may hold inside the block.

    Examples
    --------
    >>> import numpy as np
    >>> import mimo_conv as mc
    >>> x = np.ones((4, 3, 16, 16))
    >>> w = np.ones((2, 3, 3, 3))
    >>> with mc.memory_budget(64 * 2**10) as limit:  # 64 KiB: computed in small chunks
    ...     out = mc.conv2d(x, w)
    >>> limit
    65536
    >>> bool((out == mc.conv2d(x, w)).all())
    True
    """

    def __init__(self, budget: int) -> None:
        self._budget = check_budget(budget)
        self._saved: list[int | None] = []

    def __enter__(self) -> int:
        previous = _OVERRIDE.get()
        depth = len(self._saved)
        try:
            self._saved.append(previous)
            _OVERRIDE.set(self._budget)
            return self._budget  # noqa: TRY300 - inside the try: an interrupt here is undone too
        except BaseException:  # an interrupt right after the append or the set: undo them
            if len(self._saved) > depth:
                self.__exit__(None, None, None)
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        # Restore first, then drop the saved value, and drop it even if an interrupt lands
        # right after the restore: ``_OVERRIDE.set(self._saved.pop())`` could be interrupted
        # between the pop and the set, losing the value to restore (4 in 2,000 SIGALRMs).
        saved = self._saved
        try:
            _OVERRIDE.set(saved[-1])
        finally:
            del saved[-1]


def resolve_budget(budget: object = None) -> int:
    """Return the budget of one call: its ``memory_budget=`` argument, else the budget in force.

    Read once at the public boundary; everything below takes the int.

    Examples
    --------
    >>> resolve_budget(4096)
    4096
    >>> resolve_budget() == get_memory_budget()
    True
    """
    return get_memory_budget() if budget is None else check_budget(budget)


def chunk_bytes(budget: int) -> int:
    """Target size of one chunk: the budget, but no more than :data:`PREFERRED_CHUNK_BYTES`.

    Examples
    --------
    >>> chunk_bytes(DEFAULT_MEMORY_BUDGET)
    8388608
    >>> chunk_bytes(4096)
    4096
    """
    return min(budget, PREFERRED_CHUNK_BYTES)


def check_fits(count: int, what: str, budget: int) -> None:
    """Raise ``MemoryError`` if a temporary of ``count`` bytes exceeds ``budget``.

    Examples
    --------
    >>> check_fits(10, "window", 100)
    >>> check_fits(4000, "im2col buffer of one output row", 1000)
    Traceback (most recent call last):
    ...
    MemoryError: the im2col buffer of one output row needs 4000 bytes (3.9 KiB), more than
    the memory budget of 1000 bytes (1000 B); raise it with mimo_conv.set_memory_budget(...)
    or memory_budget=...
    """
    if count > budget:
        msg = (
            f"the {what} needs {count} bytes ({format_bytes(count)}), more than the memory "
            f"budget of {budget} bytes ({format_bytes(budget)}); raise it with "
            "mimo_conv.set_memory_budget(...) or memory_budget=..."
        )
        raise MemoryError(msg)


def units_per_chunk(bytes_per_unit: int, what: str, budget: int) -> int:
    """How many units (images, ...) of ``bytes_per_unit`` fit in one chunk under ``budget``.

    At least 1. Raises ``MemoryError`` when even one unit exceeds the budget.

    Examples
    --------
    >>> units_per_chunk(2**20, "im2col buffer", DEFAULT_MEMORY_BUDGET)
    8
    """
    check_fits(bytes_per_unit, what, budget)
    return max(1, chunk_bytes(budget) // max(1, bytes_per_unit))


def chunks(total: int, size: int) -> Iterator[slice]:
    """Split ``range(total)`` into consecutive slices of at most ``size`` elements.

    Examples
    --------
    >>> list(chunks(5, 2))
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    for start in range(0, total, max(1, size)):
        yield slice(start, min(total, start + size))


@dataclass(frozen=True)
class Chunking:
    """How a path splits its work: images per chunk and output rows per chunk.

    A plan is these two ints, not a list of slices: :func:`chunks` makes the slices when the
    path runs.

    Attributes
    ----------
    images : int
        Images per chunk, at least 1.
    rows : int
        Output rows (first spatial axis) per chunk, at least 1.
    """

    images: int
    rows: int

    def count(self, batch_size: int, rows: int) -> int:
        """How many chunks cover ``batch_size`` images of ``rows`` output rows.

        Examples
        --------
        >>> Chunking(2, 3).count(5, 7)  # 3 groups of images times 3 ranges of rows
        9
        """
        return -(-batch_size // self.images) * -(-max(1, rows) // self.rows)


def plan_chunks(batch_size: int, rows: int, bytes_per_row: int, budget: int) -> Chunking:
    """Images and output rows per chunk for a temporary of ``bytes_per_row`` per image row.

    Whole images are grouped while they fit in :func:`chunk_bytes`; a larger image is
    split into ranges of output rows (first spatial axis). The caller checks first that one
    row fits the budget.

    Parameters
    ----------
    batch_size : int
        Images in the batch.
    rows : int
        Output positions along the first spatial axis.
    bytes_per_row : int
        Temporary bytes needed per image and output row.
    budget : int
        The memory budget the chunks live under.

    Returns
    -------
    Chunking

    Examples
    --------
    >>> plan_chunks(8, 56, 2**17, DEFAULT_MEMORY_BUDGET)  # 7 MiB per image
    Chunking(images=1, rows=56)
    >>> plan_chunks(8, 56, 2**18, DEFAULT_MEMORY_BUDGET)  # 14 MiB per image: 32 rows
    Chunking(images=1, rows=32)
    >>> plan_chunks(8, 4, 2**10, DEFAULT_MEMORY_BUDGET)  # 4 KiB per image: the whole batch
    Chunking(images=8, rows=4)
    """
    target = chunk_bytes(budget)
    rows = max(1, rows)
    per_image = bytes_per_row * rows
    if per_image <= target:
        return Chunking(max(1, min(batch_size, target // max(1, per_image))), rows)
    return Chunking(1, max(1, min(rows, target // max(1, bytes_per_row))))


@dataclass(frozen=True)
class InputCopyPlan:
    """How the padded or converted copy of the input is made: at once, or in chunks of images.

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
    budget: int,
    *,
    rounds: bool = False,
) -> InputCopyPlan | None:
    """Size the chunks of the input copy so that the path's smallest chunk still fits beside.

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
        Bytes of the copy of one image (0 when the input is used as it is).
    result_per_image : int
        Bytes of one image's result.
    path_minimum : int
        Bytes of the path's smallest chunk (one output row of one image, for most paths).
    budget : int
        The memory budget.
    rounds : bool, optional
        Whether the result is rounded to another dtype afterwards (float16): then the
        whole batch's compute-dtype result is held too when the batch is not chunked.

    Returns
    -------
    InputCopyPlan or None
        None when one image's copy and result, with the path's smallest chunk, exceed the
        budget.

    Examples
    --------
    >>> plan_input_copy(8, 2**16, 2**16, 2**14, 2**20)  # the copy fits in half of 1 MiB
    InputCopyPlan(images=8, held=524288, chunked=False)
    >>> plan_input_copy(8, 2**16, 2**16, 640 * 2**10, 2**20)  # 3 images' copies fit
    InputCopyPlan(images=3, held=393216, chunked=True)
    >>> plan_input_copy(8, 2**16, 2**16, 2**14, 2**17) is None  # 144 KiB > 128 KiB
    True
    """
    if path_minimum > budget:
        return None
    whole = batch_size * (copy_per_image + (result_per_image if rounds else 0))
    if whole == 0 or (whole <= budget // 2 and whole + path_minimum <= budget):
        return InputCopyPlan(batch_size, whole, chunked=False)
    unit = copy_per_image + result_per_image
    room = budget - path_minimum
    images = min(batch_size, (budget // 2) // unit, room // unit)
    if images < 1:  # one image takes more than half the budget: allowed if the path fits
        images = min(batch_size, room // unit)
    if images < 1:
        return None
    return InputCopyPlan(images, images * unit, chunked=True)
