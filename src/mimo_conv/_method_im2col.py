"""The ``"im2col"`` method: copy the windows into a matrix, then one matrix product.

The textbook's exercise 6 answered: :func:`~mimo_conv._unfold.unfold_padded` copies each
window of the padded input into a column, ``(N, C_in * prod(k), L)``; the kernels,
flattened to ``(C_out, C_in/groups * prod(k))``, multiply those columns in one
``np.matmul`` (one product per group, broadcast over the batch). This is how GEMM-based
convolution libraries work (Chellapilla et al. 2006; Caffe's ``im2col``).

Cost: ``N * C_out * L * C_in/groups * prod(k)`` multiply-adds in BLAS for floats (object
and integer dtypes use NumPy's own loops); a temporary column matrix of
``N * C_in * prod(k) * L`` elements, about ``prod(k) / prod(stride)`` times the input.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._geometry import ConvGeometry
from mimo_conv._unfold import unfold_padded


def correlate_im2col(
    x_padded: NDArray[Any], weight: NDArray[Any], geometry: ConvGeometry
) -> NDArray[Any]:
    """Cross-correlate as ``weight_matrix @ unfold(x)``, one product per group.

    Parameters
    ----------
    x_padded : ndarray of shape (N, C_in, *padded_shape)
        The padded input, in the compute dtype.
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
    >>> g = ConvGeometry(1, 1, 1, 1, (3, 3), (2, 2), (1, 1), (1, 1), ((0, 0), (0, 0)))
    >>> correlate_im2col(x, w, g)
    array([[[[19, 25],
             [37, 43]]]])
    """
    batch, groups = geometry.batch_size, geometry.groups
    columns = math.prod(geometry.output_shape)
    rows_per_group = geometry.terms_per_output
    # (N, C_in * prod(k), L): channel-major rows, so each group's rows are contiguous.
    cols = unfold_padded(x_padded, geometry).reshape((batch, groups, rows_per_group, columns))
    matrices = weight.reshape((groups, geometry.out_channels_per_group, rows_per_group))
    out: NDArray[Any] = np.matmul(matrices, cols)
    return np.ascontiguousarray(out.reshape((batch, geometry.out_channels, *geometry.output_shape)))
