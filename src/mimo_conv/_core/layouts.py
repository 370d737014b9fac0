"""Memory layouts: parse ``layout="NHWC"`` / ``weight_layout="HWIO"`` and permute axes.

The engine computes in one canonical order: inputs and outputs ``(N, C, *spatial)`` (or
``(C, *spatial)`` unbatched), kernels ``(O, I, *spatial)`` for a convolution and
``(I, O, *spatial)`` for a transposed one (PyTorch's orders). A layout string names the axes
of an array in the caller's order, one letter per axis:

* ``layout`` (inputs, outputs, gradients of either): ``N`` (only when batched), ``C`` and one
  letter per spatial axis, e.g. ``"NCHW"``, ``"NHWC"``, ``"NWC"``, ``"NDHWC"``, ``"CHW"``;
* ``weight_layout``: ``O`` (output channels), ``I`` (input channels per group) and the same
  spatial letters, e.g. ``"OIHW"``, ``"HWIO"`` (TensorFlow, JAX), ``"OHWI"``.

Spatial letters are any upper-case letters except ``N``, ``C``, ``O`` and ``I``. The spatial
axes are taken in the order they appear in ``weight_layout`` (as JAX does), so ``stride[0]``
belongs to the first spatial letter of the kernel's layout; when only ``layout`` is given, the
kernel's default is ``"OI"`` followed by the input's spatial letters in its order.

Permuting is free: :func:`to_canonical` returns a strided view (``np.transpose``), never a
copy. The paths then read that view as they read any non-contiguous input (each path copies
only what it copies anyway: gemm's im2col chunks, the padded input, ...). The output is made
contiguous in the caller's layout, which costs one copy of the output.

Examples
--------
>>> import numpy as np
>>> spec = parse_layouts("NHWC", "HWIO", spatial_dims=2, transposed=False)
>>> spec.input_order, spec.weight_order
((0, 3, 1, 2), (3, 2, 0, 1))
>>> to_canonical(np.zeros((8, 5, 6, 3)), spec.input_order).shape
(8, 3, 5, 6)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.operands import as_numeric_array

#: Letters with a fixed meaning; every other upper-case letter names a spatial axis.
BATCH, CHANNEL, OUT_CHANNEL, IN_CHANNEL = "N", "C", "O", "I"
_RESERVED = frozenset("NCOI")


@dataclass(frozen=True)
class LayoutSpec:
    """The axis orders of one call: from the caller's layout to the canonical one.

    Attributes
    ----------
    input_order : tuple of int or None
        ``np.transpose`` axes taking an input in the caller's layout to ``(N, C, *spatial)``
        (or ``(C, *spatial)``); None when no ``layout`` was given (either rank is accepted).
    weight_order : tuple of int or None
        The same for the kernels, to ``(O, I, *spatial)`` (``(I, O, *spatial)`` transposed);
        None when neither layout was given.
    batched : bool or None
        Whether ``layout`` has an ``N``; None when no layout was given (the rank decides).
    """

    input_order: tuple[int, ...] | None
    weight_order: tuple[int, ...] | None
    batched: bool | None

    @property
    def output_order(self) -> tuple[int, ...] | None:
        """Axes taking a canonical output back to the caller's layout (the inverse order).

        Examples
        --------
        >>> LayoutSpec((0, 2, 3, 1), None, True).output_order
        (0, 3, 1, 2)
        """
        return None if self.input_order is None else inverse(self.input_order)


def inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    """Return the permutation that undoes ``order``.

    Examples
    --------
    >>> inverse((0, 3, 1, 2))
    (0, 2, 3, 1)
    """
    return tuple(int(axis) for axis in np.argsort(order))


def _check_letters(
    value: object, name: str, fixed: str, spatial_dims: int | None, optional: str = ""
) -> str:
    """Check a layout string: each fixed letter once, the rest distinct spatial letters."""
    example = {"layout": "'NCHW', 'NHWC', 'NWC' or 'CHW'", "weight_layout": "'OIHW' or 'HWIO'"}
    rank_words = "one letter per spatial axis" if spatial_dims is None else (
        f"{spatial_dims} spatial letter{'s' if spatial_dims != 1 else ''}"
    )  # fmt: skip
    optional_words = "".join(f"{c!r} (when batched), " for c in optional)
    wanted = (
        f"{name} must be a string of {optional_words}{', '.join(repr(c) for c in fixed)} and "
        f"{rank_words} "
        f"(upper-case letters other than N, C, O, I), e.g. {example[name]}"
    )
    if not isinstance(value, str):
        msg = f"{wanted}; got {value!r} of type {type(value).__name__}"
        raise TypeError(msg)
    spatial = [letter for letter in value if letter not in fixed + optional]
    problems = [
        not value.isascii() or not value.isalpha() or not value.isupper(),
        len(set(value)) != len(value),
        any(letter not in value for letter in fixed),
        any(letter in _RESERVED for letter in spatial),
        spatial_dims is not None and len(spatial) != spatial_dims,
    ]
    if any(problems):
        msg = f"{wanted}; got {value!r}"
        raise ValueError(msg)
    return value


def parse_layouts(
    layout: object,
    weight_layout: object,
    *,
    spatial_dims: int | None,
    transposed: bool,
) -> LayoutSpec:
    """Check ``layout`` and ``weight_layout`` and return the axis orders of the call.

    Parameters
    ----------
    layout : str or None
        The input's (and output's) axes; None for the canonical ``(N, C, *spatial)``.
    weight_layout : str or None
        The kernels' axes; None for ``"OI"`` (``"IO"`` if ``transposed``) followed by
        ``layout``'s spatial letters.
    spatial_dims : int or None
        The number of spatial axes when known (``conv2d`` passes 2).
    transposed : bool
        A transposed convolution, whose canonical kernel order is ``(I, O, *spatial)``.

    Examples
    --------
    >>> parse_layouts("NWC", None, spatial_dims=1, transposed=False)
    LayoutSpec(input_order=(0, 2, 1), weight_order=(0, 1, 2), batched=True)
    >>> parse_layouts("NHWC", "OIHD", spatial_dims=None, transposed=False)
    Traceback (most recent call last):
    ...
    ValueError: weight_layout must name the spatial letters of layout='NHWC' ('H', 'W'), ...
    """
    if layout is None and weight_layout is None:
        return LayoutSpec(None, None, None)
    if layout is not None:
        layout = _check_letters(layout, "layout", CHANNEL, spatial_dims, BATCH)
        spatial_dims = len(layout) - 1 - (BATCH in layout)
    channels = IN_CHANNEL + OUT_CHANNEL if transposed else OUT_CHANNEL + IN_CHANNEL
    if weight_layout is not None:
        weight_layout = _check_letters(weight_layout, "weight_layout", channels, spatial_dims)
    kernel_spatial = (
        [c for c in str(weight_layout) if c not in channels] if weight_layout is not None else None
    )
    if layout is None:
        assert kernel_spatial is not None  # one of the two layouts is given
        layout = "NC" + "".join(kernel_spatial)
        batched = None
    else:
        batched = BATCH in layout
    input_spatial = [c for c in layout if c not in BATCH + CHANNEL]
    if kernel_spatial is None:
        kernel_spatial = input_spatial
        weight_layout = channels + "".join(input_spatial)
    if sorted(kernel_spatial) != sorted(input_spatial):
        names = ", ".join(repr(c) for c in input_spatial)
        msg = (
            f"weight_layout must name the spatial letters of layout={layout!r} ({names}), "
            f"got weight_layout={weight_layout!r}"
        )
        raise ValueError(msg)
    lead = (BATCH, CHANNEL) if BATCH in layout else (CHANNEL,)
    input_order = tuple(layout.index(c) for c in (*lead, *kernel_spatial))
    weight_order = tuple(str(weight_layout).index(c) for c in (*channels, *kernel_spatial))
    return LayoutSpec(None if batched is None else input_order, weight_order, batched)


def to_canonical(array: NDArray[Any], order: tuple[int, ...] | None) -> NDArray[Any]:
    """View ``array`` in the canonical axis order (no copy).

    Examples
    --------
    >>> a = np.zeros((2, 5, 3))
    >>> v = to_canonical(a, (0, 2, 1))
    >>> v.shape, np.shares_memory(a, v)
    ((2, 3, 5), True)
    """
    return array if order is None else array.transpose(order)


def from_canonical(array: NDArray[Any], order: tuple[int, ...] | None) -> NDArray[Any]:
    """Return a canonical-order result in the caller's layout, C-contiguous.

    ``order`` is the forward order (:attr:`LayoutSpec.input_order`); its inverse is applied.

    Examples
    --------
    >>> out = np.arange(6).reshape(1, 2, 3)  # (N, C, W)
    >>> from_canonical(out, (0, 2, 1))  # back to NWC
    array([[[0, 3],
            [1, 4],
            [2, 5]]])
    """
    if order is None:
        return array
    return np.ascontiguousarray(array.transpose(inverse(order)))


def shape_to_canonical(shape: tuple[int, ...], order: tuple[int, ...] | None) -> tuple[int, ...]:
    """Reorder a shape given in the caller's layout to the canonical order.

    Examples
    --------
    >>> shape_to_canonical((3, 3, 4, 8), (3, 2, 0, 1))  # HWIO -> OIHW
    (8, 4, 3, 3)
    """
    return shape if order is None else tuple(shape[axis] for axis in order)


def check_layout_rank(array: NDArray[Any], order: tuple[int, ...] | None, name: str) -> None:
    """Raise ``ValueError`` when ``array`` has not one axis per letter of its layout.

    Examples
    --------
    >>> check_layout_rank(np.zeros((2, 3)), (0, 2, 1), "x")
    Traceback (most recent call last):
    ...
    ValueError: x must have 3 dimensions to match its layout, got x of shape (2, 3)
    """
    if order is not None and array.ndim != len(order):
        msg = (
            f"{name} must have {len(order)} dimensions to match its layout, "
            f"got {name} of shape {array.shape}"
        )
        raise ValueError(msg)


def canonical(value: object, order: tuple[int, ...] | None, name: str) -> Any:
    """``value`` as an array viewed in the canonical order; unchanged when ``order`` is None.

    Examples
    --------
    >>> spec = parse_layouts("NWC", "WIO", spatial_dims=1, transposed=False)
    >>> canonical(np.zeros((2, 7, 3)), spec.input_order, "x").shape
    (2, 3, 7)
    >>> canonical(np.zeros((5, 3, 4)), spec.weight_order, "weight").shape
    (4, 3, 5)
    """
    if order is None:
        return value
    array = as_numeric_array(value, name)
    check_layout_rank(array, order, name)
    return to_canonical(array, order)


def gradient_layouts(
    layout: object,
    weight_layout: object,
    spatial_dims: int | None,
    shape: tuple[int, ...],
    name: str,
    *,
    weight: bool = False,
) -> tuple[LayoutSpec, tuple[int, ...]]:
    """Parse a gradient's layouts and put the given shape (input's or kernel's) in canonical order.

    Examples
    --------
    >>> spec, shape = gradient_layouts("NHWC", "HWIO", None, (3, 3, 2, 8), "weight_shape",
    ...                                weight=True)
    >>> shape
    (8, 2, 3, 3)
    """
    spec = parse_layouts(layout, weight_layout, spatial_dims=spatial_dims, transposed=False)
    order = spec.weight_order if weight else spec.input_order
    if order is not None and len(shape) != len(order):
        msg = f"{name} must have {len(order)} entries to match its layout, got {name}={shape}"
        raise ValueError(msg)
    return spec, shape_to_canonical(shape, order)
