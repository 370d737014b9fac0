"""The ``"matmul"`` method: a 1 x 1 kernel is one matrix product per group.

With a 1 x 1 kernel no spatial neighbours interact: every output pixel is the
``(C_out, C_in)`` kernel matrix times that pixel's channel vector. Stacking the pixels as
columns turns the whole convolution into ``weight (C_out, C_in) @ x (C_in, H * W)``, the
product the textbook shows in ``corr2d_multi_in_out_1x1``. Groups make it a batch of
``groups`` products; stride picks every ``stride``-th pixel first.

Cost: ``N * C_out * prod(output_shape) * C_in / groups`` multiply-adds in BLAS (for
floats). Temporary memory: none for a contiguous input with stride 1 (the product reads the
input in place and writes into the output); otherwise a copy of the (strided) input made
in chunks of images of at most :data:`mimo_conv._core.budget.PREFERRED_CHUNK_BYTES`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import Chunking, chunks
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._paths.spec import PathSpec, Work


def correlate_matmul(
    x_padded: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    chunking: Chunking | None = None,
) -> NDArray[Any]:
    """Cross-correlate a 1 x 1 kernel as ``weight @ x``, one product per group.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C_in, *padded_shape)
        The padded input, in the compute dtype.
    weight : ndarray of shape (C_out, C_in // groups, 1, ..., 1)
        The kernels, in the compute dtype.
    geometry : ConvGeometry
        Must describe a 1 x 1 kernel (``geometry.is_pointwise``).
    chunking : Chunking, optional
        Images per chunk, as the plan chose them; one chunk when None.

    Returns
    -------
    ndarray of shape (N, C_out, *output_shape)
        A new C-contiguous array in the compute dtype, without bias.

    Examples
    --------
    >>> x = np.arange(8).reshape(1, 2, 2, 2)
    >>> w = np.array([[[[1]], [[10]]]])
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=1, groups=1, input_shape=(2, 2),
    ...     kernel_shape=(1, 1), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> correlate_matmul(x, w, g)
    array([[[[40, 51],
             [62, 73]]]])
    """
    if (reason := matmul_applies(geometry)) is not None:
        msg = f"method='matmul' {reason}; use method='einsum' or 'auto'"
        raise ValueError(msg)
    batch, groups = geometry.batch_size, geometry.groups
    pixels = x_padded[(slice(None), slice(None), *(slice(None, None, s) for s in geometry.stride))]
    # (N, C_in, *out) -> (N, groups, C_in/groups, pixels): each group's channels as rows.
    pixel_count = math.prod(geometry.output_shape)
    matrices = weight.reshape(
        (groups, geometry.out_channels_per_group, geometry.in_channels_per_group)
    )
    out = np.empty((batch, geometry.out_channels, *geometry.output_shape), dtype=x_padded.dtype)
    if out.size == 0:
        return out
    out_view = out.reshape((batch, groups, geometry.out_channels_per_group, pixel_count))
    # A strided input is copied by reshape: one image of C_in * pixels elements at a time
    # at most, in the chunks of images the plan chose (the engine hands this path a
    # C-contiguous input, copying one that is not).
    images = chunking.images if chunking else max(1, batch)
    for image_slice in chunks(batch, images):
        count = image_slice.stop - image_slice.start
        columns = pixels[image_slice].reshape(
            (count, groups, geometry.in_channels_per_group, pixel_count)
        )
        np.matmul(matrices, columns, out=out_view[image_slice])
    return out


def matmul_applies(geometry: ConvGeometry) -> str | None:
    """Why ``"matmul"`` cannot compute a geometry (None: it can).

    Examples
    --------
    >>> matmul_applies(ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... ))
    'needs a 1 x 1 kernel, got kernel shape (2,)'
    """
    if not geometry.is_pointwise:
        return f"needs a 1 x 1 kernel, got kernel shape {geometry.kernel_shape}"
    return None


def strided_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Bytes per output row of the strided copy of one image (0 at stride 1: none).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=4, out_channels=2, groups=1, input_shape=(6, 6),
    ...     kernel_shape=(1, 1), stride=(2, 2), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> strided_bytes_per_row(g, 8)  # 4 channels * 3 positions * 8 bytes
    96
    """
    if all(step == 1 for step in geometry.stride):
        return 0
    return geometry.in_channels * math.prod(geometry.output_shape[1:]) * itemsize


def matmul_work(geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> Work:
    """Count the work: one product per chunk of images, after a strided copy if any.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=4, out_channels=2, groups=1, input_shape=(6, 6),
    ...     kernel_shape=(1, 1), stride=(2, 2), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> matmul_work(g, 8, Chunking(1, 3)).bytes_moved  # read and write 4 * 9 elements
    576
    """
    g = geometry
    strided = any(step > 1 for step in g.stride)
    positions = g.batch_size * math.prod(g.output_shape)
    count = chunking.count(g.batch_size, 1)
    copied = 2 * positions * g.in_channels * itemsize if strided else 0
    return Work(
        bytes_moved=copied,
        calls=2 * count,
        products=count * g.groups,
        product_rows=g.out_channels_per_group,
        product_inner=g.in_channels_per_group,
        product_columns=math.prod(g.output_shape),
        strided_bytes=copied if g.stride[-1] > 1 else 0,
        copy_runs=g.batch_size * g.in_channels * math.prod(g.output_shape[:-1]) if strided else 0,
        note="one GEMM per image chunk",
    )


#: The record of this path (:mod:`mimo_conv._paths.registry`).
PATH = PathSpec(
    name="matmul",
    correlate=correlate_matmul,
    summary="is one matrix product and needs a 1 x 1 kernel",
    chunk_name="strided copy of one image",
    bytes_per_row=strided_bytes_per_row,
    granularity="images",
    work=matmul_work,
    applies=matmul_applies,
    contiguous_input=True,
)
