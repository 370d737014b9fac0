"""What the adapters share: zero insertion, cropping or zero-extending an output, dtypes.

Examples
--------
>>> import numpy as np
>>> zero_insert(np.array([[[1, 2, 3]]]), (2,))
array([[[1, 0, 2, 0, 3]]])
>>> window(np.array([[[1, 2, 3]]]), ((-1, 2),))  # one zero before, one element cut after
array([[[0, 1, 2]]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray


def zero_insert(array: NDArray[Any], dilation: Sequence[int]) -> NDArray[Any]:
    """Insert ``d - 1`` zeros between neighbours along each trailing (spatial) axis.

    This is XLA's input ("lhs") dilation: an axis of ``n`` elements becomes ``(n - 1) * d + 1``
    long (0 stays 0). One new array of the dilated size.

    Examples
    --------
    >>> zero_insert(np.ones((1, 1, 2, 2), int), (1, 3))[0, 0]
    array([[1, 0, 0, 1],
           [1, 0, 0, 1]])
    """
    rank = len(dilation)
    if all(step == 1 for step in dilation):
        return array
    lead = array.shape[: array.ndim - rank]
    spatial = array.shape[array.ndim - rank :]
    shape = tuple(max((n - 1) * d + 1, 0) for n, d in zip(spatial, dilation, strict=True))
    out = np.zeros(lead + shape, dtype=array.dtype)
    every: tuple[Any, ...] = (Ellipsis, *(slice(None, None, d) for d in dilation))
    out[every] = array
    return out


def window(array: NDArray[Any], bounds: Sequence[tuple[int, int]]) -> NDArray[Any]:
    """Cut or zero-extend the trailing axes: ``(start, stop)`` per axis, zeros outside.

    ``start < 0`` adds ``-start`` zeros before; ``stop > n`` adds zeros after; otherwise
    elements are cut. The result is a new array of length ``stop - start`` per axis.

    Examples
    --------
    >>> window(np.arange(1, 5)[None], ((1, 6),))
    array([[2, 3, 4, 0, 0]])
    """
    rank = len(bounds)
    lead = array.shape[: array.ndim - rank]
    spatial = array.shape[array.ndim - rank :]
    out = np.zeros(lead + tuple(stop - start for start, stop in bounds), dtype=array.dtype)
    source: list[Any] = [Ellipsis]
    target: list[Any] = [Ellipsis]
    for n, (start, stop) in zip(spatial, bounds, strict=True):
        low, high = max(start, 0), min(stop, n)
        source.append(slice(low, max(high, low)))
        target.append(slice(low - start, max(high, low) - start))
    out[tuple(target)] = array[tuple(source)]
    return out


def crop_and_pad(
    array: NDArray[Any], pads: Sequence[tuple[int, int]]
) -> tuple[NDArray[Any], tuple[tuple[int, int], ...]]:
    """Split signed padding: crop the negative sides now, return the positive pairs.

    Examples
    --------
    >>> cropped, pairs = crop_and_pad(np.arange(5)[None], [(-1, 2)])
    >>> cropped, pairs
    (array([[1, 2, 3, 4]]), ((0, 2),))
    """
    rank = len(pads)
    spatial = array.shape[array.ndim - rank :]
    index: tuple[Any, ...] = (
        Ellipsis,
        *(
            slice(max(-lo, 0), max(n - max(-hi, 0), -lo, 0))
            for n, (lo, hi) in zip(spatial, pads, strict=True)
        ),
    )
    pairs = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads)
    return array[index], pairs


def pairs_of(value: object, name: str, rank: int) -> tuple[tuple[int, int], ...]:
    """Check a sequence of ``rank`` ``(low, high)`` int pairs.

    Examples
    --------
    >>> pairs_of([(1, -2)], "padding", 1)
    ((1, -2),)
    """
    try:
        pairs = tuple((int(low), int(high)) for low, high in value)  # type: ignore[attr-defined]
        exact = all(
            isinstance(item, (int, np.integer)) and not isinstance(item, bool)
            for pair in value  # type: ignore[attr-defined]
            for item in pair
        )
    except (TypeError, ValueError) as error:
        msg = f"{name} must be a string or a sequence of (low, high) int pairs, got {value!r}"
        raise ValueError(msg) from error
    if not exact or len(pairs) != rank:
        msg = (
            f"{name} must be a string or {rank} (low, high) int pairs (one per spatial axis), "
            f"got {value!r}"
        )
        raise ValueError(msg)
    return pairs


def int_tuple(value: object, name: str, rank: int, default: int = 1) -> tuple[int, ...]:
    """``None`` (the default everywhere), one int, or ``rank`` ints, as a tuple.

    Examples
    --------
    >>> int_tuple(None, "strides", 2), int_tuple(3, "strides", 2), int_tuple([1, 2], "s", 2)
    ((1, 1), (3, 3), (1, 2))
    """
    if value is None:
        return (default,) * rank
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * rank
    items = tuple(cast("Sequence[Any]", value))
    if len(items) != rank or not all(
        isinstance(item, (int, np.integer)) and not isinstance(item, bool) for item in items
    ):
        msg = f"{name} must be {rank} ints (one per spatial axis), got {value!r}"
        raise ValueError(msg)
    return tuple(int(item) for item in items)


def cast_result(out: NDArray[Any], dtype: np.dtype[Any]) -> NDArray[Any]:
    """Return ``out`` in a framework's result dtype; integers wrap as a fixed-width accumulator.

    mimo_conv's integer sums are exact (int64); a framework accumulating in ``dtype`` keeps
    them modulo ``2**bits`` (two's complement addition is associative, so every summation
    order gives that same value), which ``astype`` reproduces.

    Examples
    --------
    >>> cast_result(np.array([300]), np.dtype(np.int8))
    array([44], dtype=int8)
    """
    with np.errstate(all="ignore"):
        return np.ascontiguousarray(out.astype(dtype))
