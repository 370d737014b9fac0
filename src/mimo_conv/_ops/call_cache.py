"""The short path of a repeated call: from the call's signature to its validated plan.

A training loop or a classroom demo calls ``conv`` again and again with arrays of the same
shapes, dtypes and memory layout and the same options. Everything the validation and the
planner derive from those (the geometry, the dtype plan, the chosen path and its chunks) is
then what it was last time, and for a tiny call deriving it costs several times the
arithmetic. So :func:`remember` keeps, for each recent call that was validated and planned,
its *signature* and a :class:`ShortCall`; the next call with that signature (:func:`find`)
runs the plan directly.

The signature (:func:`call_signature`) holds everything the checks and the plan read except
the values: the shapes and dtypes of ``x``, ``weight`` and ``bias``, the memory order of
``x`` (C-contiguous, or else its strides), every option keyed with its type
(so ``stride=1.0``, which must raise, never matches ``stride=1``), the number of spatial
dimensions of the public function, the memory budget in force and the thread count. A call
that would raise never gets an entry (only a call that passed every check and found a path
is remembered), so a hit cannot hide an error of the arguments' kinds, shapes or options.

What depends on the values still runs on every call: the integer range check (an int64 call
raises ``OverflowError`` exactly as :func:`mimo_conv._core.operands.prepare_call` would, before
any work). Object arrays (whose every element is checked and whose NumPy integers are lifted
to Python ints), anything not an exact ``numpy.ndarray`` (lists, subclasses), axis layouts and
the deprecated ``method="fold"`` (which warns on every call) are never remembered and always
take the full path.

The cache is bounded: at most :data:`MAX_ENTRIES` entries and :data:`MAX_BYTES` bytes of gather
indices (:class:`mimo_conv._engine.lean.LeanProduct`, built on an entry's first hit); it is
cleared whole when either would be passed. Entries and lean runs are added whole under a
lock, so a failing or interrupted call leaves it as it was or with one more valid entry.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import get_memory_budget
from mimo_conv._core.dtypes import check_integer_range
from mimo_conv._core.geometry_cache import strict_key
from mimo_conv._core.workers import get_threads
from mimo_conv._engine.execute import run_conv
from mimo_conv._engine.lean import LeanProduct, lean_product
from mimo_conv._engine.plan import ConvPlan
from mimo_conv._paths.registry import DEPRECATED_NAMES

#: Most remembered calls at once.
MAX_ENTRIES = 256
#: Most bytes of gather indices held by the remembered calls at once (4 MiB).
MAX_BYTES = 4 * 2**20

#: Option types whose values key themselves: an int never equals a str or None. Others
#: (``True``, ``1.0``, ``np.int64(1)``, tuples that may hold any of them) are keyed with
#: their types by :func:`mimo_conv._core.geometry_cache.strict_key`.
_PLAIN_KINDS = frozenset({int, str, type(None)})

#: A call's signature (:func:`call_signature`).
Signature = tuple[Hashable, ...]


class ShortCall:
    """A remembered call: its plan, and its lean run when the plan is one small product.

    The lean run is built on the first hit, from that call's operands (which have the
    remembered signature): a call made only once never pays for it.

    Attributes
    ----------
    signature : Signature
        What the call is remembered under.
    call : ConvPlan
        The plan the full path made (a path was found: ``call.chosen`` is not None).
    checks_range : bool
        Whether the call is an int64 one, whose range check reads the values each time.
    lean : LeanProduct or None
        The plan's lean run (:func:`mimo_conv._engine.lean.lean_product`) once built, or None
        to run the plan with :func:`mimo_conv._engine.execute.run_conv`.
    """

    __slots__ = ("built", "call", "checks_range", "lean", "signature")

    def __init__(self, signature: Signature, call: ConvPlan, *, checks_range: bool) -> None:
        self.signature = signature
        self.call = call
        self.checks_range = checks_range
        self.lean: LeanProduct | None = None
        self.built = False

    def __call__(
        self, x: NDArray[Any], weight: NDArray[Any], bias: NDArray[Any] | None
    ) -> NDArray[Any]:
        """Run the plan on these operands: their value checks, then the arithmetic."""
        if self.checks_range:
            check_integer_range(x, weight, bias, self.call.geometry.terms_per_output)
        if not self.built:
            self._build_lean(x, weight, bias)
        if self.lean is not None:
            return self.lean(x, weight, bias)
        return run_conv(x, weight, bias, self.call)

    def _build_lean(self, x: NDArray[Any], weight: NDArray[Any], bias: NDArray[Any] | None) -> None:
        """Build the lean run once, counting its index against :data:`MAX_BYTES`."""
        lean = lean_product(self.call, x, weight, bias)
        if lean is not None and lean.nbytes > MAX_BYTES:
            lean = None  # the engine runs it: its index alone would pass the bound
        size = 0 if lean is None else lean.nbytes
        with _store.lock:
            if self.built:  # another thread was first
                return
            if _store.held + size > MAX_BYTES:  # forget the others, keep this one
                _store.entries.clear()
                _store.held = 0
                _store.entries[self.signature] = self
            _store.held += size  # first: an interrupt here leaves the count high, never low
            self.lean = lean
            self.built = True


def call_signature(
    x: object,
    weight: object,
    bias: object,
    options: tuple[object, ...],
    spatial_dims: int | None,
) -> Signature | None:
    """Return the signature of a call, or None when it is never remembered.

    Parameters
    ----------
    x, weight, bias : object
        The operands as the caller passed them.
    options : tuple
        ``(stride, padding, dilation, groups, padding_mode, method, memory_budget)`` as passed.
    spatial_dims : int or None
        What the public function requires (``conv2d`` passes 2).

    Returns
    -------
    tuple or None
        Hashable; its last two items are the budget in force and the thread count.

    Examples
    --------
    >>> x, w = np.ones((1, 2, 3, 3)), np.ones((1, 2, 2, 2))
    >>> plain = (1, 0, 1, 1, "zeros", "auto", None)
    >>> call_signature(x, w, None, plain, 2) == call_signature(x + 1, w, None, plain, 2)
    True
    >>> call_signature(x, w, None, (1.0, *plain[1:]), 2) == call_signature(x, w, None, plain, 2)
    False
    >>> print(call_signature(x.tolist(), w, None, plain, 2))
    None
    """
    if type(x) is not np.ndarray or type(weight) is not np.ndarray:
        return None
    if bias is None:
        bias_key: Hashable = None
    elif type(bias) is np.ndarray:
        bias_key = (bias.shape, bias.dtype)
    else:
        return None
    key: Hashable = options
    if not _PLAIN_KINDS.issuperset(map(type, options)):
        try:
            key = strict_key(options)  # tuples, lists, NumPy integers
        except TypeError:  # an unhashable option (an ndarray stride): validated afresh
            return None
    method = options[5]
    if type(method) is str and method in DEPRECATED_NAMES:  # warns on every call
        return None
    # A C-contiguous x is keyed as such; any other x by its strides, since a plan may read
    # more of its memory order than contiguity (a channels-last x on the channels_last path).
    order: Hashable = True if x.flags.c_contiguous else x.strides
    return (
        x.shape, x.dtype, order, weight.shape, weight.dtype, bias_key, key,
        spatial_dims, get_memory_budget(), get_threads(),
    )  # fmt: skip


def find(signature: Signature | None) -> ShortCall | None:
    """Return the remembered call of this signature, or None.

    Examples
    --------
    >>> print(find(None))
    None
    """
    if signature is None:
        return None
    return _store.entries.get(signature)


def remember(signature: Signature | None, call: ConvPlan) -> None:
    """Keep ``call`` (validated and planned) under ``signature``.

    Nothing is kept when the signature is None, no path fits, the call computes with
    Python objects, or the budget or thread count changed while it was planned (another
    thread set them: the signature would not describe the plan).

    Examples
    --------
    >>> import mimo_conv as mc
    >>> clear()
    >>> x, w = np.ones((1, 2, 3, 3)), np.ones((1, 2, 2, 2))
    >>> first = mc.conv2d(x, w)  # validated and planned, then remembered
    >>> signature = call_signature(x, w, None, (1, 0, 1, 1, "zeros", "auto", None), 2)
    >>> find(signature).call.chosen
    'gemm'
    """
    if signature is None or call.chosen is None or call.plan.compute.kind == "O":
        return
    *_, budget, threads = signature
    if call.budget != budget or get_threads() != threads:
        return
    entry = ShortCall(signature, call, checks_range=call.plan.compute.kind == "i")
    with _store.lock:
        if len(_store.entries) >= MAX_ENTRIES:
            _store.entries.clear()
            _store.held = 0
        _store.entries[signature] = entry


def clear() -> None:
    """Forget every remembered call.

    Examples
    --------
    >>> clear()
    >>> cache_info()
    (0, 0)
    """
    with _store.lock:
        _store.entries.clear()
        _store.held = 0


def cache_info() -> tuple[int, int]:
    """``(entries, bytes of gather indices)`` held now.

    Examples
    --------
    >>> entries, held = cache_info()
    >>> entries <= MAX_ENTRIES and held <= MAX_BYTES
    True
    """
    with _store.lock:
        return len(_store.entries), _store.held


class _Store:
    """The remembered calls and the bytes of their gather indices, changed under ``lock``."""

    lock = threading.Lock()
    entries: dict[Signature, ShortCall] = {}  # noqa: RUF012 - one store per process
    held = 0


_store = _Store()
