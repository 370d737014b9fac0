"""Emulated low-precision kernels: what a correct (or a subtly wrong) kernel in a model computes.

Written independently of the oracle: each output of an operation is split into its single
terms by running the operation (in float64, where one product of two narrow inputs is
exact) with one-hot masks of one operand, so every term of every output is known. The
emulator then does what a kernel in a :class:`~mimo_conv.testing.Precision` does: round the
inputs to the input format (:func:`mimo_conv.testing.precision.round_to`, ties to even or
toward zero, optionally flushing subnormals), round each product to the accumulation
format unless it is exact there, add the terms in a random order (``"random"``) or in
blocks summed exactly and rounded once (``"blocked"``, like a tensor core's block FMA),
each sum rounded to the accumulation format, and round the result to the output format.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv.testing.operations import OpCall, parse_call
from mimo_conv.testing.precision import Precision, as_precision, round_to

#: Per operation: which operand is masked ("left"/"right") and along which axes one-hot
#: masks give each output at most one term (the other axes stay whole).
MASKS = {
    "conv": ("right", lambda shape: range(1, len(shape))),
    "conv_transpose": ("right", lambda shape: [0, *range(2, len(shape))]),
    "conv_input": ("right", lambda shape: [0, *range(2, len(shape))]),
    "conv_weight": ("right", lambda shape: [0, *range(2, len(shape))]),
    "conv_bias": ("left", lambda shape: [0, *range(2, len(shape))]),
    "fold": ("left", lambda shape: [0, len(shape) - 1]),
    "unfold": ("left", lambda shape: range(len(shape))),
}


def _masks(shape: tuple[int, ...], axes: list[int]) -> Iterator[NDArray[np.float64]]:
    """One-hot masks over ``axes`` of ``shape``, broadcast over the other axes."""
    sizes = [shape[axis] for axis in axes]
    for index in np.ndindex(*sizes):
        mask = np.zeros(shape)
        where: list[Any] = [slice(None)] * len(shape)
        for axis, value in zip(axes, index, strict=True):
            where[axis] = value
        mask[tuple(where)] = 1.0
        yield mask


def terms(call: OpCall, left: NDArray[Any], right: NDArray[Any] | None) -> list[NDArray[Any]]:
    """Every term of every output: a list of arrays of the output's shape (float64)."""
    side, axes_of = MASKS[call.op]
    masked = left if side == "left" else right
    assert masked is not None
    axes: list[int] = list(axes_of(masked.shape))  # type: ignore[no-untyped-call]
    found = []
    for mask in _masks(masked.shape, axes):
        if side == "left":
            found.append(np.asarray(call.run(left * mask, right, None), dtype=np.float64))
        else:
            found.append(np.asarray(call.run(left, masked * mask, None), dtype=np.float64))
    return found


def emulate(
    op: str,
    *args: Any,
    precision: str | Precision,
    order: str = "random",
    block: int = 4,
    seed: int = 0,
    accumulate: str | None = None,
    **options: Any,
) -> NDArray[np.float64]:
    """The result of a kernel working in ``precision`` (``accumulate`` overrides its format).

    ``accumulate=`` plants a precision bug: the kernel sums in that format while the model
    under test says otherwise.
    """
    model = as_precision(precision)
    call = parse_call(op, args, options)
    rounding, flush = model.rounding, model.flush_subnormals
    acc = accumulate or model.accumulate
    products_exact = 2 * model.input_format.precision <= as_precision_format(acc)

    def to_input(array: NDArray[Any] | None) -> NDArray[Any] | None:
        if array is None:
            return None
        return round_to(np.asarray(array, dtype=np.float64), model.inputs, rounding, flush=flush)

    def to_acc(values: NDArray[Any]) -> NDArray[Any]:
        return round_to(values, acc, rounding, flush=flush)

    left = to_input(call.left)
    right = to_input(call.right)
    assert left is not None
    parts = terms(call, left, right)
    if (call.right is not None and not products_exact) or flush:
        parts = [to_acc(p) for p in parts]
    bias = to_input(call.bias)
    if bias is not None and call.right is not None:
        shape = (-1,) + (1,) * (call.right.ndim - 2)
        parts.append(np.broadcast_to(bias.reshape(shape), parts[0].shape).astype(np.float64))
    rng = np.random.default_rng(seed)
    # One order per output element: permute the term axis independently per element.
    stack = np.stack(parts) if parts else np.zeros((0,))
    if stack.ndim > 1 and stack.shape[0] > 1:
        keys = rng.random(stack.shape)
        stack = np.take_along_axis(stack, np.argsort(keys, axis=0), axis=0)
    total = np.zeros(stack.shape[1:]) if stack.ndim > 1 else np.zeros(())
    width = block if order == "blocked" else 1
    for start in range(0, stack.shape[0], width):
        chunk = stack[start : start + width]
        # A block is summed exactly (math.fsum per element) and rounded once with the total.
        exact = chunk.sum(axis=0) if width == 1 else _fsum(chunk)
        total = to_acc(total + exact)
    return round_to(total, model.output_format, rounding, flush=flush)


def _fsum(chunk: NDArray[Any]) -> NDArray[np.float64]:
    flat = chunk.reshape(chunk.shape[0], -1)
    sums = [math.fsum(column) for column in flat.T.tolist()]
    return np.asarray(sums, dtype=np.float64).reshape(chunk.shape[1:])


def as_precision_format(name: str) -> int:
    """The significand bits of a format name."""
    from mimo_conv.testing.precision import FORMATS  # noqa: PLC0415

    return FORMATS[name].precision
