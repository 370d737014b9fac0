"""The whole backward pass of :func:`mimo_conv.conv` in one call, and the bias gradient.

For ``y = conv(x, w) + b`` and a gradient ``g = dL/dy`` of the output,
:func:`conv_backward` returns ``dL/dx`` (:mod:`mimo_conv._gradients.input_gradient`), ``dL/dw``
(:mod:`mimo_conv._gradients.weight_gradient`) and ``dL/db``, the sum of ``g`` over the batch and
spatial axes (:func:`bias_gradient`).

Validation is the forward pass's (:func:`mimo_conv._core.geometry_cache.build_geometry`) plus a
check that ``grad_output`` has the forward output's shape
(:func:`mimo_conv._gradients.common.gradient_geometry`); the dtype policy is the forward
pass's too (integers exact in int64 with an overflow check, float16 accumulated in float32,
``dtype=object`` exact). Complex inputs get the plain transpose (no conjugation), matching
:func:`mimo_conv.conv`'s unconjugated kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._core.arguments import IntOrInts, PaddingArg
from mimo_conv._core.budget import resolve_budget
from mimo_conv._core.dtypes import DtypePlan, check_integer_range, plan_dtypes
from mimo_conv._core.layouts import canonical, from_canonical, parse_layouts
from mimo_conv._core.operands import as_numeric_array
from mimo_conv._gradients.common import gradient_geometry
from mimo_conv._gradients.input_gradient import (
    input_gradient,
    input_gradient_plan,
    plan_input_gradient,
)
from mimo_conv._gradients.weight_gradient import (
    plan_weight_gradient,
    weight_gradient,
    weight_gradient_plan,
)
from mimo_conv._paths.registry import check_method

_ONE = np.ones(1, dtype=np.int64)


def bias_gradient_plan(grad_output: NDArray[Any], channel_axis: int) -> DtypePlan:
    """Dtype plan of ``dL/db``, after the overflow check.

    Examples
    --------
    >>> bias_gradient_plan(np.ones((2, 3), np.float16), 1)
    DtypePlan(compute=dtype('float32'), output=dtype('float16'))
    """
    plan = plan_dtypes(grad_output.dtype)
    channels = grad_output.shape[channel_axis]
    if plan.compute.kind == "i":
        terms = grad_output.size // channels if channels else 0
        check_integer_range(grad_output, _ONE, None, terms)
    return plan


def bias_gradient(
    grad_output: NDArray[Any], *, batched: bool, plan: DtypePlan | None = None
) -> NDArray[Any]:
    """``dL/db``: ``grad_output`` summed over every axis but the channel axis.

    ``plan`` is :func:`bias_gradient_plan`'s result when the caller has already run it.

    Examples
    --------
    >>> bias_gradient(np.arange(8).reshape(2, 2, 2), batched=True)
    array([10, 18])
    """
    channel_axis = 1 if batched else 0
    if grad_output.ndim <= channel_axis:
        msg = (
            f"grad_output must have a channel axis ({channel_axis + 1} dimensions or more), "
            f"got grad_output of shape {grad_output.shape}"
        )
        raise ValueError(msg)
    if plan is None:
        plan = bias_gradient_plan(grad_output, channel_axis)
    axes = tuple(axis for axis in range(grad_output.ndim) if axis != channel_axis)
    # inf * 0 and overflow give IEEE results (nan, inf) in the outputs they reach, no warnings.
    with np.errstate(all="ignore"):
        summed = np.asarray(grad_output.astype(plan.compute, copy=False).sum(axis=axes))
        result = summed.astype(plan.output, copy=False)
    return np.ascontiguousarray(result)


def conv_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    weight: ArrayLike,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    memory_budget: int | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Gradients of :func:`mimo_conv.conv` with respect to ``x``, ``weight`` and the bias.

    Parameters
    ----------
    grad_output : array_like of shape (N, C_out, *out) or (C_out, *out)
        ``dL/dy`` for ``y = conv(x, weight, bias, ...)``; batched exactly when ``x`` is.
    x : array_like of shape (N, C_in, *spatial) or (C_in, *spatial)
        The forward call's input.
    weight : array_like of shape (C_out, C_in // groups, *kernel)
        The forward call's kernels.
    stride, padding, dilation, groups, padding_mode
        The forward call's options: every form :func:`mimo_conv.conv` accepts.
    method : str, optional
        Any value :func:`mimo_conv.conv` accepts, validated the same way (the same
        ``ValueError``s). It selects the forward path that computes ``grad_weight``
        (:func:`mimo_conv.grad.conv_weight`) and the one that computes ``grad_x``
        (:func:`mimo_conv.grad.conv_input`: ``"auto"`` is the scatter or the engine route,
        whichever the cost model predicts faster, a named path the
        correlation of the zero-inserted ``grad_output`` by the flipped kernels).
    memory_budget : int, optional
        Largest temporary buffer, in bytes, for this call, as in :func:`mimo_conv.conv`;
        default :func:`mimo_conv.get_memory_budget`.
    layout, weight_layout : str, optional
        The axes of ``x`` and ``grad_output`` (and ``grad_x``), and of ``weight`` (and
        ``grad_weight``), as for :func:`mimo_conv.conv` (e.g. ``"NHWC"``, ``"HWIO"``).

    Returns
    -------
    grad_x : ndarray of the shape of ``x``
        ``dL/dx``, as :func:`mimo_conv.grad.conv_input` computes it.
    grad_weight : ndarray of the shape of ``weight``
        ``dL/dweight``, as :func:`mimo_conv.grad.conv_weight` computes it.
    grad_bias : ndarray of shape (C_out,)
        ``dL/dbias`` (whether or not the forward call had a bias: the bias does not change
        the other two gradients), as :func:`mimo_conv.grad.conv_bias`.

    Raises
    ------
    TypeError, ValueError, OverflowError, MemoryError
        As :func:`mimo_conv.conv`, and a ``ValueError`` when ``grad_output`` does not have
        the forward output's shape.

    Notes
    -----
    With ``c`` in ``o``'s group and ``P`` the padding operator (``x_pad = P x``)::

        grad_x      = P^T fold(weight^T grad_output)
                    = P^T conv(zero_inserted(grad_output), flipped(weight^T))
        grad_weight[o, c, t] = sum_{n, p} grad_output[n, o, p]
                               * x_pad[n, c, p * stride + t * dilation]
        grad_bias[o] = sum_{n, p} grad_output[n, o, p]

    Cost: twice the forward pass's ``N * C_out * L * C_in/groups * prod(k)``
    multiply-adds (``grad_weight`` a few more when ``stride > dilation``: see
    :func:`weight_gradient_geometry`; ``grad_x`` on a named path about ``prod(stride)``
    times more, the products with the inserted zeros), with the temporaries of each
    (column buffers, padded copies) chunked within the memory budget.

    Examples
    --------
    >>> x = np.arange(4.0).reshape(1, 1, 4)
    >>> w = np.array([[[1.0, -1.0]]])
    >>> grad_x, grad_w, grad_b = conv_backward(np.ones((1, 1, 3)), x, w)
    >>> grad_x
    array([[[ 1.,  0.,  0., -1.]]])
    >>> grad_w, grad_b
    (array([[[3., 6.]]]), array([3.]))

    Circular padding wraps the border's gradient around to the other edge:

    >>> conv_backward([[1, 1, 1]], [[5, 6, 7]], [[[1, 1]]], padding=[(0, 1)],
    ...               padding_mode="circular")[0]
    array([[2, 2, 2]])
    """
    layouts = parse_layouts(layout, weight_layout, spatial_dims=None, transposed=False)
    grads = as_numeric_array(
        canonical(grad_output, layouts.input_order, "grad_output"), "grad_output"
    )
    x_array = as_numeric_array(canonical(x, layouts.input_order, "x"), "x")  # views: no copy
    weight_array = as_numeric_array(canonical(weight, layouts.weight_order, "weight"), "weight")
    geometry = gradient_geometry(
        x_array.shape,
        weight_array.shape,
        grads,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    # Every check and every plan of all three gradients runs before any is computed: a
    # budget too small for the weight gradient fails before the input gradient is spent.
    method = check_method(method, geometry, forward=False)
    budget = resolve_budget(memory_budget)
    input_plan = input_gradient_plan(grads, weight_array, geometry)
    weight_plan = weight_gradient_plan(x_array, grads, geometry)
    bias_plan = bias_gradient_plan(grads, 1 if geometry.batched else 0)
    plan_input_gradient(geometry, input_plan, method, budget)
    operands = (x_array.dtype, grads.dtype)
    plan_weight_gradient(geometry, weight_plan, operands, method, budget)
    # The gradients are handed their dtype plans so that they do not check again.
    return (
        from_canonical(
            input_gradient(
                grads, weight_array, geometry, method=method, budget=budget, plan=input_plan
            ),
            layouts.input_order,
        ),
        from_canonical(
            weight_gradient(
                x_array, grads, geometry, method=method, budget=budget, plan=weight_plan
            ),
            layouts.weight_order,
        ),
        bias_gradient(grads, batched=geometry.batched, plan=bias_plan),
    )
