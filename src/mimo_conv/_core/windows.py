"""Shared window helpers: padding the input and viewing every window without copying.

Each computational path starts from :func:`pad_input` and most of them from
:func:`window_view`, so stride, dilation and every padding mode are handled in one place.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from mimo_conv._core.geometry import ConvGeometry

#: How each ``padding_mode`` is spelled for ``np.pad`` (``"zeros"`` is done by hand so that
#: object arrays are padded with the Python int 0, not ``np.int64(0)``).
NUMPY_PAD_MODES: dict[str, Literal["reflect", "edge", "wrap", "symmetric"]] = {
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",
}


def pad_input(x: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """Pad the spatial axes of a batched input ``(N, C, *spatial)``.

    Returns ``x`` itself when there is no padding (callers never write to it), otherwise a
    new array of shape ``(N, C, *geometry.padded_shape)``. Costs one copy of the padded
    input.

    Examples
    --------
    >>> x = np.arange(3).reshape(1, 1, 3)
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(1,), stride=(1,), dilation=(1,), padding=((2, 1),),
    ...     padding_mode='reflect',
    ... )
    >>> pad_input(x, g)
    array([[[2, 1, 0, 1, 2, 1]]])
    """
    if not geometry.is_padded:
        return x
    widths = ((0, 0), (0, 0), *geometry.padding)
    if geometry.padding_mode == "zeros":
        return pad_constant(x, geometry, 0)
    padded_copy: NDArray[Any] = np.pad(x, widths, mode=NUMPY_PAD_MODES[geometry.padding_mode])
    return padded_copy


def pad_constant(x: NDArray[Any], geometry: ConvGeometry, value: object) -> NDArray[Any]:
    """Pad the spatial axes of ``(N, C, *spatial)`` with ``value``, by ``geometry.padding``.

    Zero padding (``value`` 0: for ``dtype=object`` the Python int 0, not ``np.int64(0)``)
    and any other constant, such as the -1 that marks "no input element" in
    :func:`mimo_conv.conv_matrix`. Always a new array.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(2,),
    ...     kernel_shape=(1,), stride=(1,), dilation=(1,), padding=((1, 2),),
    ... )
    >>> pad_constant(np.array([[[5, 6]]]), g, -1)
    array([[[-1,  5,  6, -1, -1]]])
    """
    padded = np.full(x.shape[:2] + geometry.padded_shape, value, dtype=x.dtype)
    inside = tuple(
        slice(before, before + size)
        for (before, _), size in zip(geometry.padding, geometry.input_shape, strict=True)
    )
    padded[(slice(None), slice(None), *inside)] = x
    return padded


def window_view(x_padded: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """View every window of a padded input, without copying.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C, *padded_shape)
        Output of :func:`pad_input`.
    geometry : ConvGeometry

    Returns
    -------
    ndarray of shape (N, C, *output_shape, *kernel_shape)
        A read-only strided view: element ``[n, c, *p, *t]`` is the input element that
        kernel tap ``t`` meets when the kernel sits at output position ``p``, that is
        ``x_padded[n, c, *(p * stride + t * dilation)]``. Stride and dilation are applied by
        slicing the view of ``sliding_window_view``, so the cost is O(1) in time and memory.

    Examples
    --------
    >>> x = np.arange(5).reshape(1, 1, 5)
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(5,),
    ...     kernel_shape=(2,), stride=(2,), dilation=(2,), padding=((0, 0),),
    ... )
    >>> window_view(x, g)[0, 0]
    array([[0, 2],
           [2, 4]])
    """
    dims = geometry.spatial_dims
    spatial_axes = tuple(range(2, 2 + dims))
    windows = sliding_window_view(x_padded, geometry.window_extent, axis=spatial_axes)
    positions = tuple(slice(None, None, step) for step in geometry.stride)
    taps = tuple(slice(None, None, spacing) for spacing in geometry.dilation)
    return windows[(slice(None), slice(None), *positions, *taps)]


def tap_slices(
    geometry: ConvGeometry, start: int, stop: int
) -> tuple[tuple[tuple[int, ...], tuple[slice, ...]], ...]:
    """Index, for every kernel tap, of the input elements it meets for a range of output rows.

    Parameters
    ----------
    geometry : ConvGeometry
    start, stop : int
        The range of output positions along the first spatial axis.

    Returns
    -------
    tuple of (tap, index)
        For each kernel tap (a tuple of ints, in C order), a tuple of slices that picks from
        ``x_padded`` of shape ``(N, C, *padded_shape)`` the view of shape
        ``(N, C, stop - start, *output_shape[1:])`` whose element ``[n, c, r, *p]`` is
        ``x_padded[n, c, (start + r) * stride[0] + tap[0] * dilation[0],
        *(p * stride[1:] + tap[1:] * dilation[1:])]``. Slicing makes strided views, no copies.

    Examples
    --------
    >>> x = np.arange(10).reshape(1, 1, 10)
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(10,),
    ...     kernel_shape=(3,), stride=(2,), dilation=(2,), padding=((0, 0),),
    ... )
    >>> g.output_shape
    (3,)
    >>> [(tap, x[index].tolist()) for tap, index in tap_slices(g, 0, 3)]
    [((0,), [[[0, 2, 4]]]), ((1,), [[[2, 4, 6]]]), ((2,), [[[4, 6, 8]]])]
    >>> [x[index].tolist() for _, index in tap_slices(g, 1, 3)]
    [[[[2, 4]]], [[[4, 6]]], [[[6, 8]]]]
    """
    g = geometry
    return _tap_slices(g.output_shape, g.kernel_shape, g.stride, g.dilation, start, stop)


#: Index tuples per tap are rebuilt by every chunk of every call otherwise (about 20 us for a
#: 3 x 3 kernel, a third of a small call); an entry holds a few hundred bytes per tap.
@lru_cache(maxsize=64)
def _tap_slices(
    output_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    start: int,
    stop: int,
) -> tuple[tuple[tuple[int, ...], tuple[slice, ...]], ...]:
    """:func:`tap_slices` from the geometry's fields that matter (cached; no batch size)."""
    starts = (start, *(0 for _ in output_shape[1:]))
    counts = (stop - start, *output_shape[1:])
    per_axis = [
        [
            slice(begin, begin + step * (count - 1) + 1 if count else begin, step)
            for begin in (first * step + offset * spacing for offset in range(taps))
        ]
        for first, count, taps, step, spacing in zip(
            starts, counts, kernel_shape, stride, dilation, strict=True
        )
    ]
    every = (slice(None), slice(None))
    return tuple(
        (tap, (*every, *(axis[offset] for axis, offset in zip(per_axis, tap, strict=True))))
        for tap in itertools.product(*(range(taps) for taps in kernel_shape))
    )
