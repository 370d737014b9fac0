"""The engine: run one validated call on the chosen path, add the bias, cast the result.

Arguments arrive already validated (:func:`mimo_conv._core.operands.prepare_call`); nothing
here checks user input again.

Memory: the padded copy of the input (and its conversion to the compute dtype) is itself a
temporary. When the whole batch's copy takes at most half of the memory budget and leaves
the path room for its smallest chunk (:func:`mimo_conv._paths.registry.minimum_chunk_bytes`), it is
made once; otherwise the batch is processed in chunks of images, each padded, computed and
written into the output, sized so that the path's smallest chunk still fits beside them
(:func:`mimo_conv._core.budget.plan_input_copy`). The path then runs under what remains of the
budget, so the temporaries alive at any moment stay within the budget whatever the batch
size.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import (
    InputCopyPlan,
    chunks,
    get_memory_budget,
    memory_budget,
)
from mimo_conv._core.dtypes import DtypePlan
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import pad_input
from mimo_conv._paths.registry import METHODS, input_copy_plan


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
        A key of :data:`mimo_conv._paths.registry.METHODS`.

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
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),), batched=False,
    ... )
    >>> plan = plan_dtypes(np.dtype(np.int64), np.dtype(np.int64))
    >>> run_conv(np.array([[1, 2, 3]]), np.array([[[1, 10]]]), None, g, plan, "gemm")
    array([[21, 32]])
    """
    compute = plan.compute
    path = METHODS[method]
    batched_x = x if geometry.batched else x[np.newaxis]
    kernels = weight.astype(compute, copy=False)
    batch = geometry.batch_size
    copies = geometry.is_padded or batched_x.dtype != compute
    copying = _copy_plan(geometry, compute, method, get_memory_budget(), copies=copies)
    # inf * 0, inf - inf and overflow give the IEEE results (nan, inf) that propagate only
    # to the outputs whose windows hold them; they are results, not warnings.
    with np.errstate(all="ignore"):
        if not copying.chunked:
            x_padded = pad_input(batched_x.astype(compute, copy=False), geometry)
            if copying.held:
                with memory_budget(max(1, get_memory_budget() - copying.held)):
                    out = path(x_padded, kernels, geometry)
            else:  # no copy: the path has the whole budget (and a tiny call no extra step)
                out = path(x_padded, kernels, geometry)
        else:
            out = np.empty((batch, geometry.out_channels, *geometry.output_shape), compute)
            with memory_budget(max(1, get_memory_budget() - copying.held)):
                for image_slice in chunks(batch, copying.images):
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


@lru_cache(maxsize=256)
def _copy_plan(
    geometry: ConvGeometry, compute: np.dtype[Any], method: str, budget: int, *, copies: bool
) -> InputCopyPlan:
    """How the engine copies the input for this call (cached: a tiny call cannot afford it).

    ``budget`` is the budget in force, part of the cache key.
    """
    del budget  # input_copy_plan reads the budget in force; here it is only a cache key
    return input_copy_plan(method, geometry, compute.itemsize, copies=copies)
