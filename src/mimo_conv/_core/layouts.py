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
only what it copies anyway: gemm's im2col chunks, the padded input, ...).

Two memory orders have names (:data:`MemoryLayout`): ``"channels_first"``, the canonical
``(N, C, *spatial)`` C-contiguous, and ``"channels_last"``, ``(N, *spatial, C)``
C-contiguous with the spatial axes in the kernel's order (``"NHWC"`` with ``"HWIO"`` or
``"OIHW"`` kernels, ``"NWC"``, ``"NDHWC"``, ``"HWC"`` unbatched). A call whose ``layout`` is
channels last asks the engine for a channels-last result (:attr:`LayoutSpec.result_layout`):
a path that works channels last (:mod:`mimo_conv._paths.channels_last`) writes it directly;
any other path's result is copied into it, a copy the planner counts. :func:`from_canonical`
then only views the result in the caller's axis order. Other orders (``"NCWH"``,
``"NHCW"``, ...) are computed channels first and copied into the caller's order there.

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
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.operands import as_numeric_array
from mimo_conv._core.windows import NUMPY_PAD_MODES

#: Letters with a fixed meaning; every other upper-case letter names a spatial axis.
BATCH, CHANNEL, OUT_CHANNEL, IN_CHANNEL = "N", "C", "O", "I"
_RESERVED = frozenset("NCOI")

#: The two named memory orders of a canonical-order array: C-contiguous as
#: ``(N, C, *spatial)``, or C-contiguous as ``(N, *spatial, C)``.
MemoryLayout = Literal["channels_first", "channels_last"]
CHANNELS_FIRST: MemoryLayout = "channels_first"
CHANNELS_LAST: MemoryLayout = "channels_last"


@dataclass(frozen=True)
class MemoryOrders:
    """The memory orders of one call, for the planner: the input's as given, the result's as asked.

    Attributes
    ----------
    input_channels_last : bool
        The (batched) input is C-contiguous as ``(N, *spatial, C)``.
    result : {"channels_first", "channels_last"}
        The memory order the result is to be returned in.

    Examples
    --------
    >>> MemoryOrders()
    MemoryOrders(input_channels_last=False, result='channels_first')
    """

    input_channels_last: bool = False
    result: MemoryLayout = "channels_first"


#: The memory orders of a call that asks nothing of them: channels first in and out.
CANONICAL_ORDERS = MemoryOrders()


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

    @property
    def result_layout(self) -> MemoryLayout:
        """The memory order the caller's ``layout`` asks of the result.

        ``"channels_last"`` when ``layout`` puts ``C`` last and the spatial letters in the
        kernel's order (``"NHWC"``, ``"NWC"``, ``"HWC"``), so that a channels-last result
        is already C-contiguous in the caller's layout; ``"channels_first"`` otherwise.

        Examples
        --------
        >>> parse_layouts("NHWC", "HWIO", spatial_dims=2, transposed=False).result_layout
        'channels_last'
        >>> parse_layouts("NHWC", "WHIO", spatial_dims=2, transposed=False).result_layout
        'channels_first'
        >>> LayoutSpec(None, None, None).result_layout
        'channels_first'
        """
        order = self.input_order
        if order is None:
            return CHANNELS_FIRST
        lead = 1 if self.batched else 0  # canonical index of C
        spatial = tuple(range(lead + 1, len(order)))
        last = (*range(lead), *spatial, lead)  # canonical axes in channels-last order
        return CHANNELS_LAST if self.output_order == last else CHANNELS_FIRST


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
    A result the engine already wrote in the caller's memory order
    (:attr:`LayoutSpec.result_layout`) is only viewed, not copied.

    Examples
    --------
    >>> out = np.arange(6).reshape(1, 2, 3)  # (N, C, W)
    >>> from_canonical(out, (0, 2, 1))  # back to NWC
    array([[[0, 3],
            [1, 4],
            [2, 5]]])
    >>> laid_out = channels_first(np.arange(6).reshape(1, 3, 2))  # NWC memory, NCW axes
    >>> np.shares_memory(from_canonical(laid_out, (0, 2, 1)), laid_out)  # only a view
    True
    """
    if order is None:
        return array
    return np.ascontiguousarray(array.transpose(inverse(order)))  # a view if laid out already


def channels_last(array: NDArray[Any]) -> NDArray[Any]:
    """View a canonical ``(N, C, *spatial)`` array as ``(N, *spatial, C)`` (no copy).

    Examples
    --------
    >>> channels_last(np.zeros((2, 3, 4, 5))).shape
    (2, 4, 5, 3)
    """
    return np.moveaxis(array, 1, -1)


def channels_first(array: NDArray[Any]) -> NDArray[Any]:
    """View an ``(N, *spatial, C)`` array in the canonical order ``(N, C, *spatial)`` (no copy).

    Examples
    --------
    >>> channels_first(np.zeros((2, 4, 5, 3))).shape
    (2, 3, 4, 5)
    """
    return np.moveaxis(array, -1, 1)


def is_laid_out(array: NDArray[Any], layout: MemoryLayout) -> bool:
    """Whether a canonical-order batched array is C-contiguous in the memory order ``layout``.

    Examples
    --------
    >>> nhwc = np.zeros((2, 4, 5, 3))
    >>> is_laid_out(channels_first(nhwc), "channels_last"), is_laid_out(nhwc, "channels_last")
    (True, False)
    """
    if layout == CHANNELS_FIRST or array.ndim < 3:
        return bool(array.flags.c_contiguous)
    if array.size == 0:
        return True
    # C-contiguous as (N, *spatial, C): each axis, innermost first, steps over the ones
    # inside it (axes of length 1 may have any stride). Read from the strides: cheaper than
    # a moved-axes view, and this runs on every call.
    step = array.itemsize
    for axis in (1, *range(array.ndim - 1, 1, -1), 0):
        if array.shape[axis] != 1 and array.strides[axis] != step:
            return False
        step *= array.shape[axis]
    return True


def empty_in_layout(
    shape: tuple[int, ...], dtype: np.dtype[Any], layout: MemoryLayout
) -> NDArray[Any]:
    """Allocate an array of the canonical batched ``shape``, C-contiguous in the order ``layout``.

    Examples
    --------
    >>> out = empty_in_layout((2, 3, 4, 5), np.dtype(np.float32), "channels_last")
    >>> out.shape, out.strides
    ((2, 3, 4, 5), (240, 4, 60, 12))
    """
    if layout == CHANNELS_FIRST:
        return np.empty(shape, dtype)
    return channels_first(np.empty((shape[0], *shape[2:], shape[1]), dtype))


def in_layout(array: NDArray[Any], dtype: np.dtype[Any], layout: MemoryLayout) -> NDArray[Any]:
    """``array`` in ``dtype``, C-contiguous in the memory order ``layout``: itself if it is.

    Otherwise one copy that converts and re-lays-out at once.

    Examples
    --------
    >>> a = np.arange(6.0).reshape(1, 2, 3)
    >>> b = in_layout(a, np.dtype(np.float32), "channels_last")
    >>> b.dtype, channels_last(b).flags.c_contiguous, bool((b == a).all())
    (dtype('float32'), True, True)
    >>> in_layout(a, a.dtype, "channels_first") is a
    True
    """
    if array.dtype == dtype and is_laid_out(array, layout):
        return array
    result = empty_in_layout(array.shape, dtype, layout)
    np.copyto(result, array, casting="unsafe")
    return result


def pad_channels_last(x: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """Pad the spatial axes of a canonical-order input into a new channels-last array.

    ``x`` is ``(N, C, *spatial)`` in any memory order; the result, ``(N, C, *padded_shape)``
    in the canonical axis order, is C-contiguous as ``(N, *padded_shape, C)``. Without
    padding it is ``x`` itself. Every ``padding_mode`` fills as
    :func:`mimo_conv._core.windows.pad_input` does (zeros: the Python int 0 for objects).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=1, groups=1, input_shape=(2,),
    ...     kernel_shape=(1,), stride=(1,), dilation=(1,), padding=((1, 0),),
    ... )
    >>> padded = pad_channels_last(np.array([[[5, 6], [7, 8]]]), g)
    >>> padded.tolist(), is_laid_out(padded, "channels_last")
    ([[[0, 5, 6], [0, 7, 8]]], True)
    """
    if not geometry.is_padded:
        return x
    last = channels_last(x)
    if geometry.padding_mode != "zeros":
        widths = ((0, 0), *geometry.padding, (0, 0))
        return channels_first(np.pad(last, widths, mode=NUMPY_PAD_MODES[geometry.padding_mode]))
    padded = np.full((x.shape[0], *geometry.padded_shape, x.shape[1]), 0, dtype=x.dtype)
    inside = tuple(
        slice(before, before + size)
        for (before, _), size in zip(geometry.padding, geometry.input_shape, strict=True)
    )
    padded[(slice(None), *inside)] = last
    return channels_first(padded)


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
