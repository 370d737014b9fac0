"""The tests' own oracle: convolution by its definition, and NumPy's names of the padding modes.

Nothing here calls mimo_conv: the reference reads every element through an index map
written out per padding mode (:func:`source_index`) and sums with Python arithmetic, so
ints and fractions are exact and floats follow Python's IEEE rules. The test modules that
need an independent expected value import it from here (one oracle, not one per file).
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

#: How ``np.pad`` spells each ``padding_mode`` (for tests that pad with NumPy directly).
NUMPY_PAD_MODES: dict[str, Literal["constant", "reflect", "edge", "wrap", "symmetric"]] = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",
}


def source_index(i: int, size: int, mode: str) -> int | None:
    """The input index a padded position ``i`` (may be < 0 or >= size) reads; None is a zero."""
    if 0 <= i < size:
        return i
    if mode == "zeros":
        return None
    if mode == "replicate":
        return min(max(i, 0), size - 1)
    if mode == "circular":
        return i % size
    if mode == "reflect":  # mirror without repeating the edge: -1 -> 1, size -> size - 2
        return -i if i < 0 else 2 * (size - 1) - i
    if mode == "symmetric":  # mirror repeating the edge: -1 -> 0, size -> size - 1
        return -i - 1 if i < 0 else 2 * size - 1 - i
    raise AssertionError(mode)


def _python_numbers(value: Any) -> NDArray[Any]:
    """An object array of the Python numbers in ``value`` (an array or nested lists)."""
    items = value.tolist() if isinstance(value, np.ndarray) else value
    out = np.empty(np.shape(value), dtype=object)
    out[...] = np.asarray(items, dtype=object)  # dtype=object: big ints stay ints
    return out


def reference_conv(
    x: Any,
    weight: Any,
    bias: Any = None,
    *,
    stride: tuple[int, ...] | int = 1,
    padding: tuple[tuple[int, int], ...] | int = 0,
    dilation: tuple[int, ...] | int = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> NDArray[Any]:
    """Batched cross-correlation by its definition: Python loops over Python numbers.

    Elements are converted with ``.tolist()``, so floats follow Python's IEEE arithmetic
    (``inf * 0`` is nan, silently) and ints and fractions stay exact. Returns an object array.
    """
    x_arr, w_arr = _python_numbers(x), _python_numbers(weight)
    batch, _, *spatial = x_arr.shape
    out_channels, per_group, *kernel = w_arr.shape
    dims = len(kernel)
    strides = (stride,) * dims if isinstance(stride, int) else stride
    dilations = (dilation,) * dims if isinstance(dilation, int) else dilation
    pads = ((padding, padding),) * dims if isinstance(padding, int) else padding
    out_shape = [
        (size + lo + hi - d * (k - 1) - 1) // s + 1
        for size, (lo, hi), d, k, s in zip(spatial, pads, dilations, kernel, strides, strict=True)
    ]
    biases = None if bias is None else _python_numbers(bias).tolist()
    out = np.empty((batch, out_channels, *out_shape), dtype=object)
    for n, o in itertools.product(range(batch), range(out_channels)):
        group = o // (out_channels // groups)
        for position in itertools.product(*(range(s) for s in out_shape)):
            total: Any = 0 if biases is None else biases[o]
            for c in range(per_group):
                for tap in itertools.product(*(range(k) for k in kernel)):
                    index = []
                    for p, t, s, d, (lo, _), size in zip(
                        position, tap, strides, dilations, pads, spatial, strict=True
                    ):
                        index.append(source_index(p * s + t * d - lo, size, padding_mode))
                    if None in index:
                        continue  # a zero of "zeros" padding adds nothing
                    value = x_arr[(n, group * per_group + c, *index)]
                    total = total + value * w_arr[(o, c, *tap)]
            out[(n, o, *position)] = total
    return out
