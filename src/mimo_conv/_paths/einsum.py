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
chunks of images and output rows, as the plan chose them: temporary memory
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

from mimo_conv._core.budget import Chunking, chunks
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import window_view
from mimo_conv._paths.gemm import reads_strided, window_copy_runs
from mimo_conv._paths.spec import PathSpec, Work

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
    x_padded: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    chunking: Chunking | None = None,
) -> NDArray[Any]:
    """Cross-correlate with one ``np.einsum`` over a sliding-window view.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C_in, *padded_shape)
        The padded input, already in the compute dtype.
    weight : ndarray of shape (C_out, C_in // groups, *kernel_shape)
        The kernels, in the compute dtype.
    geometry : ConvGeometry
    chunking : Chunking, optional
        Images and output rows per chunk, as the plan chose them; one chunk when None.

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
    step = chunking or Chunking(max(1, batch), max(1, output_shape[0]))
    subscripts = einsum_subscripts(geometry.spatial_dims)
    for image_slice in chunks(batch, step.images):
        windows = window_view(x_padded[image_slice], geometry)
        windows = windows.reshape(
            (windows.shape[0], groups, geometry.in_channels_per_group, *windows.shape[2:])
        )
        for row_slice in chunks(output_shape[0], step.rows):
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


def einsum_applies(geometry: ConvGeometry) -> str | None:
    """Why ``"einsum"`` cannot compute a geometry (None: it can).

    Examples
    --------
    >>> einsum_applies(ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )) is None
    True
    """
    if geometry.spatial_dims > MAX_SPATIAL_DIMS:
        return (
            f"names each spatial axis with a letter and supports at most {MAX_SPATIAL_DIMS} "
            f"spatial dimensions, got {geometry.spatial_dims}"
        )
    return None


def einsum_work(geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> Work:
    """Count the work: tensordot's window copy, one contraction per chunk.

    With groups the contraction has a batch axis (``g``) that tensordot cannot take, so
    NumPy's own einsum loop computes it, without BLAS.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> einsum_work(g, 4, Chunking(1, 56)).einsum_calls  # one per image
    8
    """
    g = geometry
    taps = math.prod(g.kernel_shape)
    positions = g.batch_size * math.prod(g.output_shape)
    count = chunking.count(g.batch_size, g.output_shape[0])
    windows = 2 * positions * g.in_channels * taps * itemsize
    return Work(
        bytes_moved=windows + 2 * positions * g.out_channels * itemsize,
        calls=count,
        products=count,
        product_rows=g.out_channels_per_group,
        product_inner=g.in_channels_per_group * taps,
        product_columns=min(chunking.images, max(1, g.batch_size))
        * min(chunking.rows, max(1, g.output_shape[0]))
        * math.prod(g.output_shape[1:]),
        strided_bytes=windows if reads_strided(g) else 0,
        copy_runs=window_copy_runs(g),
        einsum_calls=count,
        window_views=-(-max(1, g.batch_size) // max(1, chunking.images)),
        elementwise=g.groups > 1,
        note="tensordot" if g.groups == 1 else "einsum loop (groups: no BLAS)",
    )


#: The record of this path (:mod:`mimo_conv._paths.registry`).
PATH = PathSpec(
    name="einsum",
    correlate=correlate_einsum,
    summary="contracts a sliding-window view with one ``np.einsum`` per chunk",
    chunk_name="window copy of one output row",
    bytes_per_row=einsum_bytes_per_row,
    granularity="rows",
    work=einsum_work,
    applies=einsum_applies,
)
