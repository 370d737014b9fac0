"""Transposed convolution (PyTorch's ``conv_transpose{1,2,3}d``), any spatial rank.

A transposed convolution is the input gradient of a convolution used as a layer: each
input element scatters a copy of its kernel, scaled by its value, into the output at
``stride`` spacing, and overlapping copies add up. It shares its computation with
:func:`mimo_conv.grad.conv_input`
(:func:`mimo_conv._gradients.input_gradient.input_gradient`, with its ``method=`` and
memory budget); only the shape rules differ, and they are checked here.
:func:`explain_conv_transpose` shows the plan of a call without computing it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._core.arguments import (
    IntOrInts,
    PaddingArg,
    check_groups,
    check_ranks,
    int_per_axis,
    padding_pairs,
)
from mimo_conv._core.budget import resolve_budget
from mimo_conv._core.dtypes import DtypePlan
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.layouts import (
    canonical,
    from_canonical,
    parse_layouts,
)
from mimo_conv._core.memory import check_output_fits
from mimo_conv._core.operands import as_operands, exact_operands, operands_plan
from mimo_conv._gradients.input_gradient import (
    InputGradientRoute,
    input_gradient,
    input_gradient_plan,
    plan_input_gradient,
)
from mimo_conv._ops.output_size import output_padding_for_size
from mimo_conv._paths.registry import check_method


def _check_shapes(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    groups: object,
    spatial_dims: int | None,
) -> int:
    """Check ranks, channels, groups and bias of a transposed convolution; return groups."""
    rank = check_ranks(
        x_shape,
        weight_shape,
        spatial_dims,
        weight_layout="C_in, C_out/groups",
        operation="transposed convolution",
    )
    group_count = check_groups(
        groups, weight_shape[0], shape=weight_shape, name="weight", kind="input"
    )
    in_channels = x_shape[-rank - 1]
    if in_channels != weight_shape[0]:
        msg = (
            f"Given transposed=1, weight of shape {weight_shape}, expected x of shape {x_shape} "
            f"to have {weight_shape[0]} channels, but got {in_channels} channels instead"
        )
        raise ValueError(msg)
    out_channels = weight_shape[1] * group_count
    if bias_shape is not None and bias_shape != (out_channels,):
        msg = (
            f"bias must have shape ({out_channels},) to match weight of shape {weight_shape} "
            f"and groups={group_count}, got bias of shape {bias_shape}"
        )
        raise ValueError(msg)
    if any(taps < 1 for taps in weight_shape[2:]):
        msg = (
            f"weight must have at least one kernel tap per axis, got weight of shape {weight_shape}"
        )
        raise ValueError(msg)
    return group_count


def transpose_geometry(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    *,
    stride: object,
    padding: object,
    output_padding: object,
    groups: object,
    dilation: object,
    spatial_dims: int | None = None,
) -> ConvGeometry:
    """Validate a transposed convolution and return the geometry of the convolution it inverts.

    The returned geometry describes the *forward* convolution whose input gradient this
    transposed convolution is: its input is the transposed convolution's output
    (``C_out = weight.shape[1] * groups`` channels), its output the transposed
    convolution's input.

    Examples
    --------
    >>> g = transpose_geometry((1, 2, 3), (2, 4, 3), None, stride=2, padding=1,
    ...                        output_padding=1, groups=1, dilation=1)
    >>> g.input_shape, g.in_channels, g.out_channels
    ((6,), 4, 2)
    """
    group_count = _check_shapes(x_shape, weight_shape, bias_shape, groups, spatial_dims)
    rank = len(weight_shape) - 2
    kernel = tuple(weight_shape[2:])
    strides = int_per_axis(stride, "stride", rank, minimum=1)
    dilations = int_per_axis(dilation, "dilation", rank, minimum=1)
    if isinstance(padding, str):
        msg = (
            "padding must be an int, one int per axis or one (before, after) pair per axis for "
            f"a transposed convolution (as in PyTorch, no padding strings), got {padding!r}"
        )
        raise ValueError(msg)  # noqa: TRY004 - a str is a valid kind for conv's padding
    pairs = padding_pairs(padding, kernel, dilations, strides)
    extra = int_per_axis(output_padding, "output_padding", rank, minimum=0)
    for axis, (add, step, spacing) in enumerate(zip(extra, strides, dilations, strict=True)):
        if add >= step and add >= spacing:
            msg = (
                f"output_padding must be smaller than either stride or dilation, got "
                f"output_padding={extra}, stride={strides}, dilation={dilations} "
                f"(spatial axis {axis})"
            )
            raise ValueError(msg)
    in_shape = x_shape[-rank:]
    out_shape = tuple(
        (size - 1) * step - before - after + spacing * (taps - 1) + add + 1
        for size, step, (before, after), spacing, taps, add in zip(
            in_shape, strides, pairs, dilations, kernel, extra, strict=True
        )
    )
    if any(size < 1 for size in out_shape):
        msg = (
            "the output of a transposed convolution must have at least one element per axis: "
            "(in - 1) * stride - padding_before - padding_after + dilation * (k - 1) "
            f"+ output_padding + 1 = {out_shape} for x of shape {x_shape}, weight of shape "
            f"{weight_shape}, stride={strides}, padding={pairs}, dilation={dilations}, "
            f"output_padding={extra}"
        )
        raise ValueError(msg)
    batched = len(x_shape) == rank + 2
    return ConvGeometry(
        batch_size=x_shape[0] if batched else 1,
        in_channels=weight_shape[1] * group_count,
        out_channels=weight_shape[0],
        groups=group_count,
        input_shape=out_shape,
        kernel_shape=kernel,
        stride=strides,
        dilation=dilations,
        padding=pairs,
        padding_mode="zeros",
        batched=batched,
    )


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """A validated transposed convolution: operands in the compute dtype, the geometry."""

    x: NDArray[Any]
    weight: NDArray[Any]
    bias: NDArray[Any] | None
    geometry: ConvGeometry
    plan: DtypePlan
    order: tuple[int, ...] | None


def _prepare(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None,
    stride: IntOrInts,
    padding: PaddingArg,
    output_padding: IntOrInts,
    groups: int,
    dilation: IntOrInts,
    spatial_dims: int | None,
    *,
    output_size: IntOrInts | None,
    layout: str | None,
    weight_layout: str | None,
) -> _Prepared:
    """Validate a transposed convolution, before any work (its checks and conversions)."""
    layouts = parse_layouts(layout, weight_layout, spatial_dims=spatial_dims, transposed=True)
    x = canonical(x, layouts.input_order, "x")  # strided views: no copy
    weight = canonical(weight, layouts.weight_order, "weight")
    x_array, weight_array, bias_array = as_operands(x, weight, bias)
    if output_size is not None:  # PyTorch's forward(x, output_size): decides output_padding
        check_ranks(x_array.shape, weight_array.shape, spatial_dims)
        output_padding = output_padding_for_size(
            output_size, x_array.shape, weight_array.shape,
            stride=stride, padding=padding, dilation=dilation, output_padding=output_padding,
            order=layouts.input_order,
        )  # fmt: skip
    geometry = transpose_geometry(
        x_array.shape,
        weight_array.shape,
        None if bias_array is None else bias_array.shape,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=groups,
        dilation=dilation,
        spatial_dims=spatial_dims,
    )
    plan = operands_plan(x_array, weight_array, bias_array)
    terms = geometry.out_channels_per_group * math.prod(geometry.kernel_shape)
    x_array, weight_array, bias_array = exact_operands(
        x_array, weight_array, bias_array, plan, terms
    )
    batch = (geometry.batch_size, geometry.in_channels)
    check_output_fits((*batch, *geometry.padded_shape), plan.compute)
    # The operands go in already in the compute dtype, so the gradient comes back in it
    # (float16 stays in float32) and the bias is added before the one final rounding.
    return _Prepared(
        x_array.astype(plan.compute, copy=False),
        weight_array.astype(plan.compute, copy=False),
        bias_array,
        geometry,
        plan,
        layouts.input_order,
    )


def _transpose(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None,
    stride: IntOrInts,
    padding: PaddingArg,
    output_padding: IntOrInts,
    groups: int,
    dilation: IntOrInts,
    spatial_dims: int | None,
    *,
    method: str,
    memory_budget: int | None,
    output_size: IntOrInts | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """Validate once, then run the input gradient: the pipeline behind ``conv_transpose*``."""
    call = _prepare(
        x, weight, bias, stride, padding, output_padding, groups, dilation, spatial_dims,
        output_size=output_size, layout=layout, weight_layout=weight_layout,
    )  # fmt: skip
    out = input_gradient(call.x, call.weight, call.geometry, method=method, budget=memory_budget)
    # inf * 0 and overflow give IEEE results (nan, inf) in the outputs they reach, no warnings.
    with np.errstate(all="ignore"):
        if call.bias is not None:
            out += call.bias.astype(call.plan.compute, copy=False).reshape(
                (-1,) + (1,) * call.geometry.spatial_dims
            )
        out = out.astype(call.plan.output, copy=False)
    return from_canonical(np.ascontiguousarray(out), call.order)


def explain_conv_transpose(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrInts = 0,
    groups: int = 1,
    dilation: IntOrInts = 1,
    *,
    method: str = "auto",
    memory_budget: int | None = None,
    output_size: IntOrInts | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> InputGradientRoute:
    """Show the plan of a :func:`conv_transpose` call, computing nothing.

    Takes :func:`conv_transpose`'s arguments, validated the same way, and returns the
    route it would run. Its ``str`` lists the routes ``method="auto"`` compares (the
    scatter of ``x^T w`` through the windows, the correlation of each group of stride
    phases, and for floats the correlation of the zero-inserted ``x``) with their
    predicted times, the chosen one marked ``*``, then the forward plan
    (:func:`mimo_conv.explain_method`'s table) of each correlation it runs. Like the call,
    it raises ``MemoryError`` when no route fits the memory budget.

    Returns
    -------
    InputGradientRoute
        ``.name`` is the route (``"scatter"``, ``"phases"`` or ``"zero-inserted"``);
        ``.candidates`` the routes compared.

    Examples
    --------
    The 2 x upsampling layer runs as one correlation of its four stride phases:

    >>> route = explain_conv_transpose(np.ones((8, 64, 28, 28), np.float32),
    ...                                np.ones((64, 32, 4, 4), np.float32), stride=2, padding=1)
    >>> route.name, [len(group.phases) for group in route.phases.layout.groups]
    ('phases', [4])
    >>> print(route)  # doctest: +SKIP
    input gradient, memory budget 256.0 MiB
    <BLANKLINE>
      scatter           14 ms  w^T g, then one strided addition per tap; 8 image(s) per chunk
    * phases          9.3 ms  1 correlation over 4 phase(s), no zeros inserted ...
      zero-inserted     47 ms  correlation of the zero-inserted grad_output ...
    ...
    """
    call = _prepare(
        x, weight, bias, stride, padding, output_padding, groups, dilation, None,
        output_size=output_size, layout=layout, weight_layout=weight_layout,
    )  # fmt: skip
    geometry = call.geometry
    method = check_method(method, geometry, forward=False)
    input_gradient_plan(call.x, call.weight, geometry)
    grads = call.x if geometry.batched else call.x[np.newaxis]
    return plan_input_gradient(
        geometry,
        call.plan,
        method,
        resolve_budget(memory_budget),
        grads.shape[2:],
        grads.flags.c_contiguous,
    )


def conv_transpose(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrInts = 0,
    groups: int = 1,
    dilation: IntOrInts = 1,
    *,
    method: str = "auto",
    memory_budget: int | None = None,
    output_size: IntOrInts | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """N-d transposed convolution with PyTorch's ``conv_transpose{n}d`` semantics.

    The number of spatial dimensions is ``weight.ndim - 2``. The positional order is
    PyTorch's (``output_padding`` and ``groups`` before ``dilation``), so calls port
    unchanged.

    Parameters
    ----------
    x : array_like of shape (N, C_in, *spatial) or (C_in, *spatial)
        The input, batched or unbatched. Never modified.
    weight : array_like of shape (C_in, C_out // groups, *kernel)
        The kernels; note the transposed layout (input channels first).
    bias : array_like of shape (C_out,), optional
        Added to every output element of its channel.
    stride, dilation : int or sequence of int, optional
        Those of the convolution this one transposes: the input elements land ``stride``
        apart in the output; the kernel taps are ``dilation`` apart.
    padding : int, sequence of int, or sequence of (before, after) pairs, optional
        Removed from the output's borders (the padding of the convolution this one
        transposes); asymmetric pairs are an extension of PyTorch's ints. No strings.
    output_padding : int or sequence of int, optional
        Extra elements at the end of each output axis, to pick one of the input sizes a
        strided convolution maps to the same output size. Must be smaller than the
        stride or the dilation of its axis.
    groups : int, optional
        Independent channel groups; must divide ``C_in``.
    method : str, optional
        The computational path, as for :func:`mimo_conv.grad.conv_input` (a transposed
        convolution is that input gradient): ``"auto"`` takes, by the cost model, the
        fastest of scattering the windows' gradients, one forward correlation per group
        of stride phases (no zeros inserted; :func:`explain_conv_transpose` shows the
        plan) and, for floats, the correlation of the zero-inserted ``x``; a forward
        path's name (``"gemm"``, ``"row_gemm"``, ...) correlates ``x``, with
        ``stride - 1`` zeros inserted between its elements, with the flipped kernels on
        that path.
    memory_budget : int, optional
        Bytes of temporary memory allowed for this call (see :func:`mimo_conv.conv`).
    output_size : sequence of int, optional
        The output's spatial size (or its whole shape), as PyTorch's
        ``ConvTranspose{n}d.forward(x, output_size)``: it decides ``output_padding`` (which
        must then be 0). Any size from the smallest output to ``max(stride, dilation) - 1``
        more is reachable; others raise a ``ValueError`` quoting the range.
    layout, weight_layout : str, optional
        The axes of ``x`` (and of the result) and of ``weight``, as for
        :func:`mimo_conv.conv`; the kernel's default is ``"IO"`` then the spatial letters
        (``I`` is ``x``'s channels, ``O`` the output channels per group: TensorFlow's
        ``conv2d_transpose`` filters are ``"HWOI"``).

    Returns
    -------
    ndarray of shape (N, C_out, *out) or (C_out, *out)
        ``out = (in - 1) * stride - before - after + dilation * (k - 1) + output_padding
        + 1`` along each axis; dtype as :func:`mimo_conv.conv` (integers in int64,
        float16 accumulated in float32, ``dtype=object`` exact).

    Raises
    ------
    TypeError, ValueError, OverflowError, MemoryError
        As :func:`mimo_conv.conv`, and ``ValueError`` for an ``output_padding`` not
        smaller than the stride or the dilation, or a non-positive output size.

    See Also
    --------
    mimo_conv.grad.conv_input : The same operation, given the input shape instead.

    Notes
    -----
    ``conv_transpose(x, w, stride=s, padding=p, dilation=d, groups=g)`` equals
    ``grad.conv_input(out_shape, w, x, stride=s, padding=p, dilation=d, groups=g)``: for
    ``c`` in the group of input channel ``i``::

        out_pad[n, c, q * stride + t * dilation] += x[n, i, q] * weight[i, c, t]

    and the padding is then cut off. Cost: the scatter and the stride phases do ``N * C_in
    * L_in * C_out/groups * prod(k)`` multiply-adds; the scatter in one matrix product per
    group and chunk of images, with a column temporary of ``C_out * prod(k) * L_in``
    elements per image (chunked within the memory budget) and a strided sum per kernel
    tap; the phases as forward correlations of ``x`` with the sub-kernels of the taps
    each output phase meets (at stride 1 one correlation, the result itself), each phase
    copied into its strided view of the result. A named path does ``prod(stride)`` times
    the multiplications, on the zero-inserted input. Complex kernels are not conjugated.

    Examples
    --------
    Each input element places a scaled copy of the kernel, ``stride`` apart:

    >>> conv_transpose([[[1, 10]]], [[[1, 2, 3]]], stride=2)
    array([[[ 1,  2, 13, 20, 30]]])

    Padding trims the borders; ``output_padding`` adds an element at the end:

    >>> conv_transpose([[[1, 10]]], [[[1, 2, 3]]], stride=2, padding=1, output_padding=1)
    array([[[ 2, 13, 20, 30]]])

    The classic 2 x upsampling layer doubles a 2-d size:

    >>> conv_transpose(np.ones((1, 3, 4, 4)), np.ones((3, 8, 4, 4)), stride=2, padding=1).shape
    (1, 8, 8, 8)

    ``output_size`` picks one of the sizes a stride-2 convolution maps to 4 x 4, here
    channels last:

    >>> conv_transpose(np.ones((1, 4, 4, 3)), np.ones((3, 8, 3, 3)), stride=2, padding=1,
    ...                output_size=(8, 8), layout="NHWC").shape
    (1, 8, 8, 8)
    """
    return _transpose(
        x, weight, bias, stride, padding, output_padding, groups, dilation, None,
        method=method, memory_budget=memory_budget, output_size=output_size, layout=layout,
        weight_layout=weight_layout,
    )  # fmt: skip


def conv_transpose1d(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrInts = 0,
    groups: int = 1,
    dilation: IntOrInts = 1,
    *,
    method: str = "auto",
    memory_budget: int | None = None,
    output_size: IntOrInts | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """1-d :func:`conv_transpose`: ``weight`` of shape ``(C_in, C_out // groups, k)``.

    Examples
    --------
    >>> conv_transpose1d([[1, 2]], [[[1, 1]]])
    array([[1, 3, 2]])
    """
    return _transpose(
        x, weight, bias, stride, padding, output_padding, groups, dilation, 1,
        method=method, memory_budget=memory_budget, output_size=output_size, layout=layout,
        weight_layout=weight_layout,
    )  # fmt: skip


def conv_transpose2d(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrInts = 0,
    groups: int = 1,
    dilation: IntOrInts = 1,
    *,
    method: str = "auto",
    memory_budget: int | None = None,
    output_size: IntOrInts | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """2-d :func:`conv_transpose`: ``weight`` of shape ``(C_in, C_out // groups, kH, kW)``.

    Examples
    --------
    >>> conv_transpose2d([[[1, 2], [3, 4]]], [[[[1, 1], [1, 1]]]], stride=2)
    array([[[1, 1, 2, 2],
            [1, 1, 2, 2],
            [3, 3, 4, 4],
            [3, 3, 4, 4]]])
    """
    return _transpose(
        x, weight, bias, stride, padding, output_padding, groups, dilation, 2,
        method=method, memory_budget=memory_budget, output_size=output_size, layout=layout,
        weight_layout=weight_layout,
    )  # fmt: skip


def conv_transpose3d(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrInts = 0,
    groups: int = 1,
    dilation: IntOrInts = 1,
    *,
    method: str = "auto",
    memory_budget: int | None = None,
    output_size: IntOrInts | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """3-d :func:`conv_transpose`: ``weight`` of shape ``(C_in, C_out // groups, *k)``.

    Examples
    --------
    >>> conv_transpose3d(np.ones((1, 1, 1, 1)), np.ones((1, 2, 2, 2, 2)), bias=[0, 1]).sum()
    np.float64(24.0)
    """
    return _transpose(
        x, weight, bias, stride, padding, output_padding, groups, dilation, 3,
        method=method, memory_budget=memory_budget, output_size=output_size, layout=layout,
        weight_layout=weight_layout,
    )  # fmt: skip
