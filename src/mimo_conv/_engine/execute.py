"""The engine: run one validated call exactly as its plan says, add the bias, cast the result.

Arguments arrive already validated (:func:`mimo_conv._core.arguments.prepare_call`) and
planned (:func:`mimo_conv._engine.plan.plan_conv`); nothing here checks user input again or
decides anything the plan did not. The plan says whether the input is copied (padding, a
dtype conversion, a C-contiguous copy for ``"matmul"``) at once or in chunks of images, and
in which chunks the path computes; the temporaries alive at any moment are those the plan
counted in its workspace, within the budget.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import InputCopyPlan, chunks
from mimo_conv._core.dtypes import DtypePlan
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import pad_input
from mimo_conv._engine.plan import ConvPlan, plan_conv
from mimo_conv._paths.registry import PATH_SPECS


def plan_for(
    x: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    plan: DtypePlan,
    budget: int,
    method: str,
    bias: NDArray[Any] | None = None,
) -> ConvPlan:
    """Plan a call on these operands (their dtypes and layout), under ``budget``.

    Examples
    --------
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),), batched=False,
    ... )
    >>> dtypes = plan_dtypes(np.dtype(np.int64), np.dtype(np.int64))
    >>> plan_for(np.ones((1, 3), int), np.ones((1, 1, 2), int), g, dtypes, 4096, "gemm").chosen
    'gemm'
    """
    batched = x if geometry.batched else x[np.newaxis]
    operands = (x.dtype, weight.dtype) if bias is None else (x.dtype, weight.dtype, bias.dtype)
    return plan_conv(geometry, plan, operands, batched.flags.c_contiguous, budget, method)


def run_conv(
    x: NDArray[Any],
    weight: NDArray[Any],
    bias: NDArray[Any] | None,
    call: ConvPlan,
) -> NDArray[Any]:
    """Compute a validated convolution as ``call`` plans it.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, *spatial) or (C_in, *spatial)
        The input as the caller gave it (never written to).
    weight : ndarray of shape (C_out, C_in // groups, *kernel)
    bias : ndarray of shape (C_out,) or None
    call : ConvPlan
        The plan (:func:`plan_for`); ``MemoryError`` if no path fits.

    Returns
    -------
    ndarray of shape ``geometry.out_shape`` and dtype ``plan.output``
        A new, writeable, C-contiguous array sharing no memory with the inputs.

    Examples
    --------
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),), batched=False,
    ... )
    >>> dtypes = plan_dtypes(np.dtype(np.int64), np.dtype(np.int64))
    >>> x, w = np.array([[1, 2, 3]]), np.array([[[1, 10]]])
    >>> run_conv(x, w, None, plan_for(x, w, g, dtypes, 4096, "gemm"))
    array([[21, 32]])
    """
    cost = call.cost  # raises the plan's MemoryError when nothing fits
    geometry, compute, output = call.geometry, call.plan.compute, call.plan.output
    spec = PATH_SPECS[cost.method]
    batch = geometry.batch_size
    copying = cost.copy or InputCopyPlan(batch, 0, chunked=False)
    batched_x = x if geometry.batched else x[np.newaxis]
    kernels = weight.astype(compute, copy=False)
    shift = None if bias is None else bias.astype(compute, copy=False)
    order: Literal["C", "K"] = "C" if spec.contiguous_input else "K"
    # inf * 0, inf - inf and overflow give the IEEE results (nan, inf) that propagate only
    # to the outputs whose windows hold them; they are results, not warnings.
    with np.errstate(all="ignore"):
        if not copying.chunked:
            x_padded = pad_input(batched_x.astype(compute, order=order, copy=False), geometry)
            out = _with_bias(spec.correlate(x_padded, kernels, geometry, cost.chunking), shift)
            del x_padded
        else:  # each chunk's result, bias added in the compute dtype, rounded once
            out = np.empty((batch, geometry.out_channels, *geometry.output_shape), output)
            for image_slice in chunks(batch, copying.images):
                count = image_slice.stop - image_slice.start
                part = dataclasses.replace(geometry, batch_size=count)
                source = batched_x[image_slice].astype(compute, order=order, copy=False)
                x_part = pad_input(source, part)
                del source
                out[image_slice] = _with_bias(
                    spec.correlate(x_part, kernels, part, cost.chunking), shift
                )
                del x_part  # before the next chunk's copy is allocated
        if not geometry.batched:
            out = out[0]
        return np.ascontiguousarray(out.astype(output, copy=False))


def _with_bias(out: NDArray[Any], bias: NDArray[Any] | None) -> NDArray[Any]:
    """Add the bias (in the compute dtype) to every position of its channel, in place."""
    if bias is not None:
        out += bias.reshape((-1,) + (1,) * (out.ndim - 2))
    return out
