"""The engine: run one validated call exactly as its plan says, add the bias, cast the result.

Arguments arrive already validated (:func:`mimo_conv._core.arguments.prepare_call`) and
planned (:func:`mimo_conv._engine.plan.plan_conv`); nothing here checks user input again or
decides anything the plan did not. The plan says whether the input is copied (padding, a
dtype conversion, a C-contiguous copy for ``"matmul"``, a channels-last one for
``"channels_last"``) at once or in chunks of images, and in which chunks the path computes;
the temporaries alive at any moment are those the plan counted in its workspace, within the
budget. The result comes back in the memory order the plan was asked for
(:attr:`mimo_conv._engine.plan.ConvPlan.layouts`): the chosen path writes it so, or its
result is copied into it once (with the rounding to float16, if any, in the same copy).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import InputCopyPlan, chunks
from mimo_conv._core.dtypes import DtypePlan
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.layouts import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    MemoryLayout,
    MemoryOrders,
    empty_in_layout,
    in_layout,
    is_laid_out,
    pad_channels_last,
)
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
    *,
    result_layout: MemoryLayout = CHANNELS_FIRST,
) -> ConvPlan:
    """Plan a call on these operands (their dtypes and memory order), under ``budget``.

    ``result_layout`` is the memory order the result is wanted in (``"channels_last"`` for
    ``layout="NHWC"``).

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
    # Only a channels-last result or path asks whether the input is channels last: the
    # check is skipped on the common channels-first call.
    wanted = result_layout == CHANNELS_LAST or (
        method != "auto" and PATH_SPECS[method].layout == CHANNELS_LAST
    )
    layouts = MemoryOrders(wanted and is_laid_out(batched, CHANNELS_LAST), result_layout)
    contiguous = batched.flags.c_contiguous
    return plan_conv(geometry, plan, operands, contiguous, budget, method, layouts=layouts)


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
        A new, writeable array sharing no memory with the inputs, C-contiguous in the memory
        order ``call.layouts.result`` (for ``"channels_last"``, its
        :func:`~mimo_conv._core.layouts.channels_last` view is C-contiguous).

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
    unpadded = spec.reads_unpadded(geometry)

    def padded(source: NDArray[Any], part: ConvGeometry) -> NDArray[Any]:
        """Convert (a chunk of) the input, lay it out as the path reads it, and pad it."""
        if spec.layout == CHANNELS_LAST:
            return pad_channels_last(in_layout(source, compute, CHANNELS_LAST), part)
        converted = source.astype(compute, order=order, copy=False)
        return converted if unpadded else pad_input(converted, part)

    # inf * 0, inf - inf and overflow give the IEEE results (nan, inf) that propagate only
    # to the outputs whose windows hold them; they are results, not warnings.
    with np.errstate(all="ignore"):
        if not copying.chunked:
            x_padded = padded(batched_x, geometry)
            out = _with_bias(spec.correlate(x_padded, kernels, geometry, cost.chunking), shift)
            del x_padded
            out = in_layout(out, output, call.layouts.result)  # rounded, re-laid-out: one copy
        else:  # each chunk's result, bias added in the compute dtype, rounded once
            out = empty_in_layout(
                (batch, geometry.out_channels, *geometry.output_shape), output, call.layouts.result
            )
            for image_slice in chunks(batch, copying.images):
                count = image_slice.stop - image_slice.start
                part = dataclasses.replace(geometry, batch_size=count)
                x_part = padded(batched_x[image_slice], part)
                out[image_slice] = _with_bias(
                    spec.correlate(x_part, kernels, part, cost.chunking), shift
                )
                del x_part  # before the next chunk's copy is allocated
        return out if geometry.batched else out[0]


def _with_bias(out: NDArray[Any], bias: NDArray[Any] | None) -> NDArray[Any]:
    """Add the bias (in the compute dtype) to every position of its channel, in place."""
    if bias is not None:
        out += bias.reshape((-1,) + (1,) * (out.ndim - 2))
    return out
