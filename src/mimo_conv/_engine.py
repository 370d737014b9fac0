"""The engine: run one validated call on the chosen path, add the bias, cast the result.

Arguments arrive already validated (:func:`mimo_conv._validation.prepare_call`); nothing
here checks user input again.

Memory: the padded copy of the input (and its conversion to the compute dtype) is itself a
temporary. It may take half of the memory budget: when the whole batch's copy fits it is
made once, otherwise the batch is processed in chunks of images, each padded, computed and
written into the output. The path then runs under what remains of the budget, so the
temporaries alive at any moment stay within the budget whatever the batch size.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._budget import chunks, get_memory_budget, memory_budget, units_per_chunk
from mimo_conv._dtypes import DtypePlan
from mimo_conv._geometry import ConvGeometry
from mimo_conv._methods import METHODS
from mimo_conv._windows import pad_input


def input_copy_bytes(x: NDArray[Any], geometry: ConvGeometry, plan: DtypePlan) -> int:
    """Bytes of the padded, converted copy of the input (0 when the input is used as it is).

    Examples
    --------
    >>> from mimo_conv._dtypes import plan_dtypes
    >>> g = ConvGeometry(2, 3, 1, 1, (4,), (3,), (1,), (1,), ((1, 1),))
    >>> plan = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
    >>> input_copy_bytes(np.zeros((2, 3, 4)), g, plan)  # 2 * 3 * 6 * 8
    288
    """
    if not geometry.is_padded and x.dtype == plan.compute:
        return 0
    return (
        geometry.batch_size
        * geometry.in_channels
        * math.prod(geometry.padded_shape)
        * plan.compute.itemsize
    )


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

    Raises
    ------
    MemoryError
        If the padded copy of one input image, or a path's smallest chunk, exceeds the
        memory budget (:func:`mimo_conv.get_memory_budget`); raised before that allocation.

    Examples
    --------
    >>> from mimo_conv._dtypes import plan_dtypes
    >>> g = ConvGeometry(1, 1, 1, 1, (3,), (2,), (1,), (1,), ((0, 0),), batched=False)
    >>> plan = plan_dtypes(np.dtype(np.int64), np.dtype(np.int64))
    >>> run_conv(np.array([[1, 2, 3]]), np.array([[[1, 10]]]), None, g, plan, "gemm")
    array([[21, 32]])
    """
    compute = plan.compute
    path = METHODS[method]
    batched_x = x if geometry.batched else x[np.newaxis]
    kernels = weight.astype(compute, copy=False)
    copy_bytes = input_copy_bytes(batched_x, geometry, plan)
    budget = get_memory_budget()
    # inf * 0, inf - inf and overflow give the IEEE results (nan, inf) that propagate only
    # to the outputs whose windows hold them; they are results, not warnings.
    with np.errstate(all="ignore"):
        if copy_bytes <= budget // 2:
            x_padded = pad_input(batched_x.astype(compute, copy=False), geometry)
            if copy_bytes:
                with memory_budget(max(1, budget - copy_bytes)):
                    out = path(x_padded, kernels, geometry)
            else:
                out = path(x_padded, kernels, geometry)
        else:
            # The padded copy takes at most half the budget, the path the rest (its result
            # for the chunk, copied into the output, included).
            per_image = copy_bytes // max(1, geometry.batch_size)
            with memory_budget(max(1, budget // 2)):
                images = units_per_chunk(
                    per_image, "padded copy of one input image (allowed half the budget)"
                )
            out = np.empty(
                (geometry.batch_size, geometry.out_channels, *geometry.output_shape), compute
            )
            result_bytes = out[:images].nbytes
            with memory_budget(max(1, budget - images * per_image - result_bytes)):
                for image_slice in chunks(geometry.batch_size, images):
                    count = image_slice.stop - image_slice.start
                    part = dataclasses.replace(geometry, batch_size=count)
                    x_part = pad_input(batched_x[image_slice].astype(compute, copy=False), part)
                    out[image_slice] = path(x_part, kernels, part)
                    del x_part  # before the next chunk's copy is allocated
        if bias is not None:
            out += bias.astype(compute, copy=False).reshape((-1,) + (1,) * geometry.spatial_dims)
        if not geometry.batched:
            out = out[0]
        return np.ascontiguousarray(out.astype(plan.output, copy=False))
