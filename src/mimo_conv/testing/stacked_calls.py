"""Several calls of one operation at once: the oracle's operand pairs stacked into one call.

The oracle evaluates one operation on several pairs of operands: the inputs, their
absolute values, their Ozaki slices. For a small convolution the library's validation and
planning cost far more than the arithmetic, so :func:`run_pairs` runs the pairs of a small
``conv`` or ``conv_transpose`` as **one** call with ``J`` times the groups: pair ``j``'s
input channels and kernels become groups ``j g`` to ``(j + 1) g - 1`` of one larger call
(``g`` the call's own groups), whose output channels are, pair after pair, the outputs of
each. Every output element of the larger call is the same sum of the same products as in
its pair's own call, perhaps added in another order, so what the oracle relies on (a sum of
slice products is exact in any order; a magnitude is rounded up for any order) holds.
Other operations, other layouts and large calls run one call per pair.

Examples
--------
>>> from mimo_conv.testing.operations import parse_call
>>> x = np.array([[1.0, -2.0, 3.0]])
>>> call = parse_call("conv", (x, np.ones((1, 1, 2))), {})
>>> [part.tolist() for part in run_pairs(call, [(x, np.ones((1, 1, 2))), (abs(x), None)])]
[[[-1.0, 1.0]], [[3.0, 5.0]]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv.testing.operations import OPERATIONS, OpCall

#: Pairs are stacked into one call while the stacked input has at most this many elements.
STACK_LIMIT = 1 << 14

#: The operations whose pairs can share a call: channels on axis ``ndim - spatial - 1`` of
#: the input, the weight's first axis split by groups.
_STACKABLE = ("conv", "conv_transpose")


def run_pairs(
    call: OpCall, pairs: list[tuple[NDArray[Any], NDArray[Any] | None]]
) -> list[NDArray[np.float64]]:
    """Return ``call.run(a, b, None)`` for each pair ``(a, b)``, computed in float64.

    The operands are converted to float64 first (the oracle's exactness arguments are about
    float64 arithmetic). A ``b`` of None stands for the call's own right operand (for the
    bilinear operations).
    """
    right = call.right
    # Computed in float64, whatever the operands' dtypes.
    filled = [(np.asarray(a, dtype=np.float64), _wide(right if b is None else b)) for a, b in pairs]
    if not filled:
        return []
    if len(filled) > 1 and stackable(call, len(filled)):
        return _stacked(call, filled)
    return [np.asarray(call.run(a, b, None), dtype=np.float64) for a, b in filled]


def _wide(array: NDArray[Any] | None) -> NDArray[Any] | None:
    """Return the operand in float64 (exact for floats to float64, integers to 2**53)."""
    return None if array is None else np.asarray(array, dtype=np.float64)


def stackable(call: OpCall, count: int) -> bool:
    """Whether ``count`` pairs of operands of ``call`` would share one call."""
    options = call.options
    return (
        call.op in _STACKABLE
        and call.right is not None
        and options.get("layout") is None
        and options.get("weight_layout") is None
        and call.left.size * count <= STACK_LIMIT
        and call.left.size > 0
        and call.right.size > 0
    )


def _stacked(
    call: OpCall, pairs: list[tuple[NDArray[Any], NDArray[Any] | None]]
) -> list[NDArray[np.float64]]:
    """One call of ``len(pairs)`` times the groups (module docstring)."""
    assert call.right is not None
    function, left_name, right_name, bias_name = OPERATIONS[call.op]
    assert right_name is not None
    spatial = call.right.ndim - 2
    channel_axis = call.left.ndim - spatial - 1
    groups = int(call.options.get("groups", 1))
    options = dict(call.options)
    options[left_name] = np.concatenate([a for a, _ in pairs], axis=channel_axis)
    options[right_name] = np.concatenate([b for _, b in pairs])
    if bias_name is not None:
        options[bias_name] = None  # the oracle adds the bias itself
    options["groups"] = groups * len(pairs)
    out = np.asarray(function(**options), dtype=np.float64)
    # Views of the pairs' channel blocks (np.split does the same in slower Python).
    size = out.shape[channel_axis] // len(pairs)
    lead = (slice(None),) * channel_axis
    return [out[(*lead, slice(j * size, (j + 1) * size))] for j in range(len(pairs))]
