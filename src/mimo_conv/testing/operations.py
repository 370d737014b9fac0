"""The operations the oracle checks, each read from exactly its mimo_conv function's arguments.

Every operation is linear in one operand (``unfold``, ``fold``, ``conv_bias``) or bilinear
in two (``conv``, ``conv_transpose``, ``conv_input``, ``conv_weight``), plus for ``conv`` and
``conv_transpose`` a bias added to every output of a channel. :func:`parse_call` binds the
arguments to the function's signature once and returns an :class:`OpCall`: the operands
(``left``, ``right``, ``bias``) and a ``run`` that evaluates the same operation, with the
same options, on other operands (their absolute values, their slices, ones). The oracle
needs nothing else about an operation.

Arrays of ``ml_dtypes`` types (``bfloat16``, ``float8_*``) are read as float32, which holds
each of their values exactly.

Examples
--------
>>> call = parse_call("conv_input", ((1, 1, 3), np.ones((1, 1, 2)), np.ones((1, 1, 2))), {})
>>> call.run(np.ones((1, 1, 2)), np.full((1, 1, 2), 2.0), None).tolist()
[[[2.0, 4.0, 2.0]]]
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._ops.conv import conv
from mimo_conv._ops.grad import conv_bias, conv_input, conv_weight
from mimo_conv._ops.transpose import conv_transpose
from mimo_conv._ops.unfold import fold, unfold

#: Each operation's mimo_conv function and the names of its array operands:
#: ``(function, left, right, bias)``; right and bias are None for linear operations.
OPERATIONS: dict[str, tuple[Callable[..., Any], str, str | None, str | None]] = {
    "conv": (conv, "x", "weight", "bias"),
    "conv_transpose": (conv_transpose, "x", "weight", "bias"),
    "conv_input": (conv_input, "grad_output", "weight", None),
    "conv_weight": (conv_weight, "input", "grad_output", None),
    "conv_bias": (conv_bias, "grad_output", None, None),
    "unfold": (unfold, "x", None, None),
    "fold": (fold, "cols", None, None),
}

Run = Callable[[NDArray[Any], NDArray[Any] | None, NDArray[Any] | None], NDArray[Any]]


@dataclass(frozen=True, eq=False)
class OpCall:
    """One call of an operation, its operands separated from its options.

    Attributes
    ----------
    op : str
    left, right, bias : ndarray or None
        The operands as given (``ml_dtypes`` arrays read as float32); ``right`` is None for
        a linear operation, ``bias`` when there is none.
    dtypes : tuple of (numpy.dtype or None)
        The dtypes of left, right and bias as given (``ml_dtypes`` ones included).
    run : callable
        ``run(left, right, bias)``: the operation with the same options on other operands.
    options : dict
        The options as bound to the function's signature (operands, ``method`` and
        ``memory_budget`` left out): what :mod:`mimo_conv.testing.stacked_calls` needs to
        run several operand pairs in one call.
    memo : dict
        What the oracle computed once about the operands and reuses (their grids).
    """

    op: str
    left: NDArray[Any]
    right: NDArray[Any] | None
    bias: NDArray[Any] | None
    dtypes: tuple[np.dtype[Any] | None, np.dtype[Any] | None, np.dtype[Any] | None]
    run: Run
    options: dict[str, Any] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def bilinear(self) -> bool:
        """Whether the operation multiplies two operands."""
        return self.right is not None

    def operands(self) -> tuple[NDArray[Any], ...]:
        """Return the operands that are given, in the order left, right, bias."""
        found: tuple[NDArray[Any], ...] | None = self.memo.get("operands")
        if found is None:
            found = tuple(a for a in (self.left, self.right, self.bias) if a is not None)
            self.memo["operands"] = found
        return found


def _as_operand(value: Any) -> tuple[NDArray[Any], np.dtype[Any]]:
    """Return an ndarray the library takes, and the dtype the value had (ml_dtypes' kept)."""
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.dtype.kind == "V" or type(array.dtype).__module__.startswith("ml_dtypes"):
        return array.astype(np.float32), array.dtype
    return array, array.dtype


@functools.lru_cache(maxsize=16)  # one entry per operation name
def _signature(op: str) -> inspect.Signature:
    """Return the signature of ``op``'s function, read once (reading it costs microseconds)."""
    return inspect.signature(OPERATIONS[op][0])


@functools.lru_cache(maxsize=16)  # one entry per operation name
def _parameters(op: str) -> tuple[tuple[str, ...], frozenset[str], frozenset[str]]:
    """``op``'s positional-or-keyword names in order, every name, and the required ones.

    The operations' functions take no ``*args`` or ``**kwargs`` (:func:`_bind` relies on it).
    """
    parameters = _signature(op).parameters.values()
    positional = tuple(p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD)
    names = frozenset(p.name for p in parameters)
    required = frozenset(p.name for p in parameters if p.default is p.empty)
    return positional, names, required


def _bind(op: str, args: tuple[Any, ...], options: dict[str, Any]) -> dict[str, Any]:
    """``inspect.Signature.bind(*args, **options).arguments`` of ``op``'s function, quicker.

    The arguments as given, by name (defaults not filled in). A call this shortcut does not
    plainly accept (too many positional arguments, a name given twice or unknown, a required
    one missing) is bound by :mod:`inspect`, which raises its ``TypeError``.

    Examples
    --------
    >>> _bind("conv", (1, 2), {"stride": 3})
    {'x': 1, 'weight': 2, 'stride': 3}
    """
    positional, names, required = _parameters(op)
    if len(args) <= len(positional):
        given = dict(zip(positional, args, strict=False))
        if (
            not given.keys() & options.keys()
            and names.issuperset(options)
            and required.issubset(given.keys() | options.keys())
        ):
            given.update(options)
            return given
    return dict(_signature(op).bind(*args, **options).arguments)


def parse_call(op: str, args: tuple[Any, ...], options: dict[str, Any]) -> OpCall:
    """Bind ``args`` and ``options`` to the signature of ``op``'s mimo_conv function.

    ``method`` and ``memory_budget`` are accepted and not passed on: they choose how a
    result is computed, not what it is.

    Raises
    ------
    ValueError
        If ``op`` is not one of :data:`OPERATIONS`.
    TypeError
        If the arguments do not fit the function's signature.

    Examples
    --------
    >>> parse_call("conv", (np.ones((1, 3)),), {})
    Traceback (most recent call last):
    ...
    TypeError: conv() arguments do not match mimo_conv's conv(x, weight, ...): missing a ...
    """
    if op not in OPERATIONS:
        msg = f"op must be one of {list(OPERATIONS)!r}, got {op!r}"
        raise ValueError(msg)
    function, left_name, right_name, bias_name = OPERATIONS[op]
    try:
        given = _bind(op, args, options)
    except TypeError as error:
        names = ", ".join(list(_signature(op).parameters)[:2])
        msg = f"{op}() arguments do not match mimo_conv's {op}({names}, ...): {error}"
        raise TypeError(msg) from None
    given.pop("method", None)
    given.pop("memory_budget", None)
    operand_names = [name for name in (left_name, right_name, bias_name) if name is not None]
    values: dict[str, NDArray[Any] | None] = {}
    dtypes: dict[str, np.dtype[Any]] = {}
    for name in operand_names:
        raw = given.pop(name, None)
        if raw is None:
            values[name] = None
            continue
        values[name], dtypes[name] = _as_operand(raw)
    left = values[left_name]
    if left is None:
        msg = f"{left_name} must be an array, got None"
        raise TypeError(msg)
    right = values[right_name] if right_name is not None else None
    if right_name is not None and right is None:
        msg = f"{right_name} must be an array, got None"
        raise TypeError(msg)
    bias = values[bias_name] if bias_name is not None else None

    def run(
        new_left: NDArray[Any], new_right: NDArray[Any] | None, new_bias: NDArray[Any] | None
    ) -> NDArray[Any]:
        call = dict(given)
        call[left_name] = new_left
        if right_name is not None:
            call[right_name] = new_right
        if bias_name is not None:
            call[bias_name] = new_bias
        result: NDArray[Any] = function(**call)
        return result

    kinds = (
        dtypes.get(left_name),
        dtypes.get(right_name) if right_name is not None else None,
        dtypes.get(bias_name) if bias_name is not None else None,
    )
    return OpCall(op, left, right, bias, kinds, run, dict(given))
