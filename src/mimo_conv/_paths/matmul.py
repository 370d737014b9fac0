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

from mimo_conv._core.budget import chunks, plan_chunks
from mimo_conv._core.geometry import ConvGeometry


def correlate_matmul(
    x_padded: NDArray[Any], weight: NDArray[Any], geometry: ConvGeometry
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
    if not geometry.is_pointwise:
        msg = (
            "method='matmul' needs a 1 x 1 kernel, "
            f"got kernel shape {geometry.kernel_shape}; use method='einsum' or 'auto'"
        )
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
    # A strided or non-contiguous input is copied by reshape (or inside matmul): one image of
    # C_in * pixels elements at a time at most, in chunks under the memory budget.
    copies = not pixels.flags.c_contiguous
    per_image = geometry.in_channels * pixel_count * x_padded.itemsize if copies else 0
    images, _ = plan_chunks(batch, 1, per_image, "strided copy of the input")
    for image_slice in chunks(batch, images):
        count = image_slice.stop - image_slice.start
        columns = pixels[image_slice].reshape(
            (count, groups, geometry.in_channels_per_group, pixel_count)
        )
        np.matmul(matrices, columns, out=out_view[image_slice])
    return out
