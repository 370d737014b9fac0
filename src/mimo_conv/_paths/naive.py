"""The ``"naive"`` method: plain loops over output positions, the reference.

This is the textbook's definition written out. For each batch element, each output
channel and each output position it takes the window of the input that the kernel covers
and sums the products, exactly as

    Y[n, o, p] = sum over c (in o's group) and taps t of
                 x_padded[n, c, p * stride + t * dilation] * weight[o, c, t]

Cost: ``N * C_out * prod(output_shape)`` Python-level iterations, each multiplying
``C_in / groups * prod(kernel)`` numbers; no temporary larger than one window. Slow, and
meant to be read, not used on large inputs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import Chunking
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._paths.spec import PathSpec, Work


def correlate_naive(
    x_padded: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    chunking: Chunking | None = None,
) -> NDArray[Any]:
    """Cross-correlate with explicit loops over output positions.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C_in, *padded_shape)
        The padded input, already in the compute dtype.
    weight : ndarray of shape (C_out, C_in // groups, *kernel_shape)
        The kernels, in the compute dtype.
    geometry : ConvGeometry
    chunking : Chunking, optional
        Unused: the only temporary is one window.

    Returns
    -------
    ndarray of shape (N, C_out, *output_shape)
        A new array in the compute dtype, without bias.

    Examples
    --------
    >>> x = np.arange(9).reshape(1, 1, 3, 3)
    >>> w = np.array([[[[0, 1], [2, 3]]]])
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3, 3),
    ...     kernel_shape=(2, 2), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> correlate_naive(x, w, g)
    array([[[[19, 25],
             [37, 43]]]])
    """
    del chunking
    out = np.zeros(
        (geometry.batch_size, geometry.out_channels, *geometry.output_shape),
        dtype=x_padded.dtype,
    )
    per_group = geometry.in_channels_per_group
    outputs_per_group = geometry.out_channels_per_group
    for n, o in itertools.product(range(geometry.batch_size), range(geometry.out_channels)):
        group = o // outputs_per_group
        channels = slice(group * per_group, (group + 1) * per_group)
        for position in np.ndindex(*geometry.output_shape):
            # The window: from position * stride, one element every `dilation`, k taps.
            window: tuple[slice, ...] = tuple(
                slice(p * step, p * step + spacing * (taps - 1) + 1, spacing)
                for p, step, spacing, taps in zip(
                    position,
                    geometry.stride,
                    geometry.dilation,
                    geometry.kernel_shape,
                    strict=True,
                )
            )
            index: tuple[int | slice, ...] = (n, channels, *window)
            # IEEE results, not warnings: inf * 0 is nan, inf + -inf is nan.
            with np.errstate(all="ignore"):
                products = x_padded[index] * weight[o]
                out[(n, o, *position)] = products.sum()
    return out


def window_bytes(geometry: ConvGeometry, itemsize: int) -> int:
    """Bytes of the one temporary: the products of one window.

    Examples
    --------
    >>> window_bytes(ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=1, groups=1, input_shape=(3, 3),
    ...     kernel_shape=(2, 2), stride=(1, 1), dilation=(1, 1), padding=((0, 0),) * 2,
    ... ), 8)
    64
    """
    return geometry.terms_per_output * itemsize


def naive_work(geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> Work:
    """Count the work: one Python iteration per output element, elementwise arithmetic.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=1, groups=1, input_shape=(3, 3),
    ...     kernel_shape=(2, 2), stride=(1, 1), dilation=(1, 1), padding=((0, 0),) * 2,
    ... )
    >>> naive_work(g, 8, Chunking(1, 2)).python_iterations
    4
    """
    del itemsize, chunking
    outputs = geometry.batch_size * math.prod(geometry.output_shape) * geometry.out_channels
    return Work(
        bytes_moved=0,
        calls=0,
        products=0,
        product_rows=1,
        product_inner=1,
        python_iterations=outputs,
        elementwise=True,
        note="Python loops",
    )


#: The record of this path (:mod:`mimo_conv._paths.registry`).
PATH = PathSpec(
    name="naive",
    correlate=correlate_naive,
    summary="loops over output positions (the reference)",
    chunk_name="window",
    bytes_per_row=window_bytes,
    granularity="window",
    work=naive_work,
)
