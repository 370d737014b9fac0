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

:func:`run_grid` runs every left operand against every right one (the oracle's slices of
the input against those of the kernels, ``|a|`` against ``|b|``) in one call without
repeating any operand: the left operands stacked along the batch axis, the right ones along
the output channels of each group. The same argument holds: each image is convolved on its
own, and each output channel reads its group's input channels only.

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


def grid_stackable(call: OpCall, lefts: int) -> bool:
    """Whether ``lefts`` left operands of ``call`` would share one call in :func:`run_grid`."""
    return stackable(call, lefts)


class Grid:
    """The results of :func:`run_grid`: ``grid[i, j]`` is the call on ``lefts[i]``, ``rights[j]``.

    Read on demand from the one stacked call (views where the layout allows), or from
    the per-pair results.
    """

    def __init__(
        self,
        blocks: NDArray[np.float64] | None,
        shape: tuple[int, ...],
        pairs: list[list[NDArray[np.float64]]] | None = None,
    ) -> None:
        self.blocks = blocks
        self.shape = shape
        self.pairs = pairs

    def __getitem__(self, index: tuple[int, int]) -> NDArray[np.float64]:
        i, j = index
        if self.pairs is not None:
            return self.pairs[i][j]
        assert self.blocks is not None
        return self.blocks[i, :, :, j].reshape(self.shape)


def run_grid(call: OpCall, lefts: list[NDArray[Any]], rights: list[NDArray[Any]]) -> Grid:
    """Return ``call.run(a, b, None)`` for every ``a`` of ``lefts`` and ``b`` of ``rights``.

    ``grid[i, j]`` is the call on ``lefts[i]`` and ``rights[j]``, computed in float64. For a
    small ``conv`` or ``conv_transpose`` (:func:`grid_stackable`) it is **one** call: the
    left operands stacked along the batch axis (each image is convolved on its own), the
    right ones along the output channels within each group (group ``g``'s output channels
    become ``J`` blocks, one per right operand), so every output element is the same sum of
    the same products as in its own call. Otherwise one call per pair.

    Examples
    --------
    >>> from mimo_conv.testing.operations import parse_call
    >>> x = np.array([[1.0, -2.0, 3.0]])
    >>> call = parse_call("conv", (x, np.ones((1, 1, 2))), {})
    >>> grid = run_grid(call, [x, abs(x)], [np.ones((1, 1, 2)), np.full((1, 1, 2), 2.0)])
    >>> grid[0, 1].tolist(), grid[1, 0].tolist()
    ([[-2.0, 2.0]], [[3.0, 5.0]])
    """
    wide_lefts = [a if a.dtype == np.float64 else a.astype(np.float64) for a in lefts]
    wide_rights = [b if b.dtype == np.float64 else b.astype(np.float64) for b in rights]
    if not grid_stackable(call, len(lefts)):
        pairs = [[np.asarray(call.run(a, b, None), dtype=np.float64) for b in wide_rights]
                 for a in wide_lefts]  # fmt: skip
        return Grid(None, (), pairs)
    assert call.right is not None
    function, left_name, right_name, bias_name = OPERATIONS[call.op]
    assert right_name is not None
    spatial = call.right.ndim - 2
    batched = call.left.ndim == spatial + 2
    groups = int(call.options.get("groups", 1))
    count = len(wide_rights)
    options = dict(call.options)
    # Images: left operand i's images are images i N ... (i + 1) N - 1.
    options[left_name] = np.concatenate(wide_lefts) if batched else np.stack(wide_lefts)
    weight_shape = call.right.shape
    if call.op == "conv" and groups > 1:
        # (C_out, C_in / g, *k): each group's output channels, right operand after right one.
        per_group = weight_shape[0] // groups
        stacked = np.stack(
            [b.reshape(groups, per_group, *weight_shape[1:]) for b in wide_rights], 1
        )
        options[right_name] = stacked.reshape(groups * count * per_group, *weight_shape[1:])
    elif call.op == "conv":
        per_group = weight_shape[0]
        options[right_name] = np.concatenate(wide_rights)
    else:
        # (C_in, C_out / g, *k): the output channels of each group are axis 1.
        per_group = weight_shape[1]
        options[right_name] = np.concatenate(wide_rights, axis=1)
    if bias_name is not None:
        options[bias_name] = None  # the oracle adds the bias itself
    for name in ("stride", "padding", "dilation"):
        if name in options:
            options[name] = _plain(options[name])
    out = np.asarray(function(**options), dtype=np.float64)
    images = call.left.shape[0] if batched else 1
    positions = out.shape[out.ndim - spatial :]
    blocks = out.reshape(len(wide_lefts), images, groups, count, per_group, *positions)
    shape = (
        (images, groups * per_group, *positions) if batched else (groups * per_group, *positions)
    )
    return Grid(blocks, shape)


def _plain(value: Any) -> Any:
    """One int for a tuple or list of equal ints (the same option), else the value itself.

    The engine keys a call with only ints and strings in its options more quickly.

    Examples
    --------
    >>> _plain((1, 1)), _plain([2, 1]), _plain((1, True)), _plain("same")
    (1, [2, 1], (1, True), 'same')
    """
    if isinstance(value, tuple | list) and value:
        first = value[0]
        if type(first) is int and all(type(v) is int and v == first for v in value):
            return first
    return value
