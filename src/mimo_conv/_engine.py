"""The engine: run one validated call on the chosen path, add the bias, cast the result.

Arguments arrive already validated (:func:`mimo_conv._validation.prepare_call`); nothing
here checks user input again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._dtypes import DtypePlan
from mimo_conv._geometry import ConvGeometry
from mimo_conv._methods import METHODS
from mimo_conv._windows import pad_input


def run_conv(
    x: NDArray[Any],
    weight: NDArray[Any],
    bias: NDArray[Any] | None,
    geometry: ConvGeometry,
    plan: DtypePlan,
    method: str,
) -> NDArray[Any]:
    """Compute a validated convolution on the path named ``method``.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, *spatial) or (C_in, *spatial)
        The input as the caller gave it (never written to).
    weight : ndarray of shape (C_out, C_in // groups, *kernel)
    bias : ndarray of shape (C_out,) or None
    geometry : ConvGeometry
    plan : DtypePlan
    method : str
        A key of :data:`mimo_conv._methods.METHODS`.

    Returns
    -------
    ndarray of shape ``geometry.out_shape`` and dtype ``plan.output``
        A new, writeable, C-contiguous array sharing no memory with the inputs.
    """
    compute = plan.compute
    batched_x = x if geometry.batched else x[np.newaxis]
    x_padded = pad_input(batched_x.astype(compute, copy=False), geometry)
    out = METHODS[method](x_padded, weight.astype(compute, copy=False), geometry)
    if bias is not None:
        out += bias.astype(compute, copy=False).reshape((-1,) + (1,) * geometry.spatial_dims)
    if not geometry.batched:
        out = out[0]
    return np.ascontiguousarray(out.astype(plan.output, copy=False))
