"""The ``"einsum"`` method: sliding windows and one ``np.einsum`` contraction.

The padded input is viewed as windows (:func:`mimo_conv._core.windows.window_view`, no copy)
and contracted with the kernels over input channels and kernel taps in one call.

Subscript legend (for a 2-d convolution the call is ``"ngcABij,gocij->ngoAB"``):

* ``n`` batch element, ``g`` channel group,
* ``c`` input channel within the group, ``o`` output channel within the group,
* ``A``, ``B``, ... output position along each spatial axis,
* ``i``, ``j``, ... kernel tap along each spatial axis.

Cost: ``N * C_out * prod(output_shape) * C_in/groups * prod(kernel)`` multiply-adds.
NumPy's contraction for two operands goes through ``tensordot``, which reaches BLAS but
first copies the windows into a buffer of ``C_in * prod(output_shape) * prod(kernel)``
elements per image (about ``prod(kernel)`` times the input at stride 1); object and integer
dtypes take the same route without BLAS. To keep that copy bounded the contraction runs in
chunks of images and output rows (:func:`mimo_conv._core.budget.plan_chunks`): temporary memory
is two chunks of that buffer (einsum's BLAS route holds two copies at its peak) plus one
chunk of the contraction's result.
"""

from __future__ import annotations

import math
import string
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import chunks, plan_chunks
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import window_view

#: Letters naming output positions, one per spatial axis.
POSITION_LETTERS = string.ascii_uppercase
#: Letters naming kernel taps, one per spatial axis (n, g, c and o are taken).
TAP_LETTERS = "ijklmpqrstuvwxyz"
#: Most spatial axes the subscripts can name.
MAX_SPATIAL_DIMS = len(TAP_LETTERS)


@lru_cache(maxsize=64)
def einsum_subscripts(spatial_dims: int) -> str:
    """Return the einsum subscripts for a convolution with this many spatial axes.

    Examples
    --------
    >>> einsum_subscripts(2)
    'ngcABij,gocij->ngoAB'
    >>> einsum_subscripts(1)
    'ngcAi,goci->ngoA'
    """
    positions = POSITION_LETTERS[:spatial_dims]
    taps = TAP_LETTERS[:spatial_dims]
    return f"ngc{positions}{taps},goc{taps}->ngo{positions}"


def correlate_einsum(
    x_padded: NDArray[Any], weight: NDArray[Any], geometry: ConvGeometry
) -> NDArray[Any]:
    """Cross-correlate with one ``np.einsum`` over a sliding-window view.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C_in, *padded_shape)
        The padded input, already in the compute dtype.
    weight : ndarray of shape (C_out, C_in // groups, *kernel_shape)
        The kernels, in the compute dtype.
    geometry : ConvGeometry

    Returns
    -------
    ndarray of shape (N, C_out, *output_shape)
        A new C-contiguous array in the compute dtype, without bias.

    Examples
    --------
    >>> x = np.arange(9).reshape(1, 1, 3, 3)
    >>> w = np.array([[[[0, 1], [2, 3]]]])
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3, 3),
    ...     kernel_shape=(2, 2), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> correlate_einsum(x, w, g)
    array([[[[19, 25],
             [37, 43]]]])
    """
    groups, batch = geometry.groups, geometry.batch_size
    output_shape = geometry.output_shape
    out = np.empty((batch, geometry.out_channels, *output_shape), dtype=x_padded.dtype)
    if out.size == 0:
        return out
    out_view = out.reshape((batch, groups, geometry.out_channels_per_group, *output_shape))
    kernels = weight.reshape((groups, geometry.out_channels_per_group, *weight.shape[1:]))
    images, row_step = plan_chunks(
        batch, output_shape[0], einsum_bytes_per_row(geometry, x_padded.itemsize), "einsum buffer"
    )
    subscripts = einsum_subscripts(geometry.spatial_dims)
    for image_slice in chunks(batch, images):
        windows = window_view(x_padded[image_slice], geometry)
        windows = windows.reshape(
            (windows.shape[0], groups, geometry.in_channels_per_group, *windows.shape[2:])
        )
        for row_slice in chunks(output_shape[0], row_step):
            # With an explicit two-operand path NumPy hands the contraction to tensordot
            # (BLAS for floats) without spending time searching for a path.
            out_view[image_slice, :, :, row_slice] = np.einsum(
                subscripts,
                windows[:, :, :, row_slice],
                kernels,
                optimize=["einsum_path", (0, 1)],
            )
    return out


def einsum_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Temporary bytes per image and output row: two copies of the windows and the result.

    ``np.einsum``'s route to BLAS holds two window-sized buffers at its peak (the
    ``tensordot`` copy and one more; measured with ``tracemalloc`` on NumPy 2.4), plus the
    contraction's result before it is written into the output.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> einsum_bytes_per_row(g, 4)  # (2 * 64 * 9 + 64) * 56 positions * 4 bytes
    272384
    """
    inner = math.prod(geometry.output_shape[1:])
    taps = math.prod(geometry.kernel_shape)
    return (2 * geometry.in_channels * taps + geometry.out_channels) * inner * itemsize
