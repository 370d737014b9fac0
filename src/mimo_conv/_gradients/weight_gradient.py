"""The weight gradient ``dL/dw`` of :func:`mimo_conv.conv`.

A forward convolution of ``x`` (batch and channel axes swapped) by ``g = dL/dy`` (swapped
likewise) with stride and dilation exchanged (:func:`weight_gradient_geometry`), run by the
forward engine on any of its paths (``method=``) within the memory budget; ``"matmul"``
uses instead the direct product of ``g`` with the windows of the padded input (im2col),
one matrix product per image and group, summed over chunks of images, and ``"auto"`` takes
whichever of the two the cost model predicts faster among those that fit the budget.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import chunks, resolve_budget, units_per_chunk
from mimo_conv._core.columns import unfold_padded
from mimo_conv._core.dtypes import DtypePlan, check_integer_range, plan_dtypes, python_integers
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.memory import check_output_fits, format_bytes
from mimo_conv._core.windows import pad_input
from mimo_conv._engine.execute import run_conv
from mimo_conv._engine.formulas import flop_count, predict_seconds
from mimo_conv._engine.plan import ConvPlan, plan_conv
from mimo_conv._paths.registry import check_method
from mimo_conv._paths.spec import Work


def weight_gradient_plan(
    x: NDArray[Any], grad_output: NDArray[Any], geometry: ConvGeometry
) -> DtypePlan:
    """Dtype plan of ``dL/dw``, after the overflow and memory checks (before any work).

    An element of ``dL/dw`` sums ``N * prod(output_shape)`` products.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> weight_gradient_plan(np.ones((1, 1, 3), np.int8), np.ones((1, 1, 2), np.int8), g)
    DtypePlan(compute=dtype('int64'), output=dtype('int64'))
    """
    plan = plan_dtypes(x.dtype, grad_output.dtype)
    if plan.compute.kind == "i":
        terms = geometry.batch_size * math.prod(geometry.output_shape)
        check_integer_range(x, grad_output, None, terms)
    weight_shape = (geometry.out_channels, geometry.in_channels_per_group, *geometry.kernel_shape)
    check_output_fits(weight_shape, plan.compute)
    return plan


def weight_gradient_geometry(geometry: ConvGeometry) -> ConvGeometry:
    """Return the geometry of the forward convolution that computes one group of ``dL/dw``.

    ``grad_w[o, c, t] = sum_{n, p} g[n, o, p] * x_pad[n, c, p * stride + t * dilation]``
    is a cross-correlation whose batch is the input channel ``c``, whose channels are the
    images ``n``, whose input is ``x`` with those two axes swapped (padded as the forward
    call pads it), and whose kernel is ``g`` swapped to ``(C_out, N, *out)``: the kernel
    taps are the output positions ``p``, spaced by the forward ``stride`` (its
    dilation), and the window positions are the taps ``t``, spaced by the forward
    ``dilation`` (its stride).

    Along an axis with padded length ``P``, ``out = (P - d*(k - 1) - 1) // s + 1``, so
    with ``r = (P - d*(k - 1) - 1) % s`` (the elements past the last window)::

        k' = (P - s*(out - 1) - 1) // d + 1 = (d*(k - 1) + r) // d + 1 = k + r // d

    windows: at least ``k``, and the first ``k`` are the kernel taps; the others (``r >=
    d`` only with stride > dilation) reach the leftover elements no forward window reads
    and are sliced off.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=2, in_channels=6, out_channels=4, groups=2, input_shape=(9,),
    ...     kernel_shape=(2,), stride=(3,), dilation=(1,), padding=((1, 0),),
    ... )  # P = 10, out = 3
    >>> inner = weight_gradient_geometry(g)
    >>> inner.batch_size, inner.in_channels, inner.out_channels, inner.kernel_shape
    (3, 2, 2, (3,))
    >>> inner.stride, inner.dilation, inner.output_shape  # r = 8 % 3 = 2: k' = 2 + 2
    ((1,), (3,), (4,))
    """
    return ConvGeometry(
        batch_size=geometry.in_channels_per_group,
        in_channels=geometry.batch_size,
        out_channels=geometry.out_channels_per_group,
        groups=1,
        input_shape=geometry.input_shape,
        kernel_shape=geometry.output_shape,
        stride=geometry.dilation,
        dilation=geometry.stride,
        padding=geometry.padding,
        padding_mode=geometry.padding_mode,
        batched=True,
    )


def weight_gradient(
    x: NDArray[Any],
    grad_output: NDArray[Any],
    geometry: ConvGeometry,
    *,
    method: str = "auto",
    budget: int | None = None,
    plan: DtypePlan | None = None,
) -> NDArray[Any]:
    """``dL/dw`` of a validated call, as a forward convolution on the path ``method``.

    ``plan`` is :func:`weight_gradient_plan`'s result when the caller has already run it
    (as :func:`mimo_conv._gradients.backward.conv_backward` does): the checks are then not
    repeated.

    For each group, :func:`mimo_conv._engine.execute.run_conv` correlates ``x`` (axes swapped to
    ``(C_in/groups, N, *spatial)``, padded by the engine with the forward padding and
    mode) with ``grad_output`` (swapped to ``(C_out/groups, N, *out)``) in the geometry of
    :func:`weight_gradient_geometry`; the result ``(C_in/groups, C_out/groups, *k')`` is
    sliced to the kernel shape and transposed. Every forward path and the memory budget
    apply: the engine chunks over input channels, the paths over channels and rows.

    ``"matmul"`` (1 x 1 kernels only, as in the forward pass) computes instead one matrix
    product per image and group of ``grad_output`` with the windows of the forward geometry
    (:func:`_direct_weight_gradient`): its shapes suit BLAS far better than the inner
    convolution's (a kernel as large as the output, an output as small as the kernel),
    2-10x faster on ResNet-like layers. ``"auto"`` plans both (:func:`plan_weight_gradient`)
    and takes the one the cost model predicts faster (:func:`direct_seconds`) among those
    whose temporaries fit the budget.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> weight_gradient(np.array([[[1, 2, 3]]]), np.array([[[1, 10]]]), g)
    array([[[21, 32]]])
    >>> weight_gradient(np.array([[[1, 2, 3]]]), np.array([[[1, 10]]]), g, method="shift")
    array([[[21, 32]]])
    """
    method = check_method(method, geometry, forward=False)
    if plan is None:
        plan = weight_gradient_plan(x, grad_output, geometry)
    route = plan_weight_gradient(
        geometry, plan, (x.dtype, grad_output.dtype), method, resolve_budget(budget)
    )
    x_batch = python_integers(x if geometry.batched else x[np.newaxis])
    grads = python_integers(grad_output if geometry.batched else grad_output[np.newaxis])
    if route.inner is None:
        return _direct_weight_gradient(x_batch, grads, geometry, plan, route.images)
    shape = (geometry.out_channels, geometry.in_channels_per_group, *geometry.kernel_shape)
    result = np.empty(shape, plan.output)
    kernel = tuple(slice(0, taps) for taps in geometry.kernel_shape)
    in_per, out_per = geometry.in_channels_per_group, geometry.out_channels_per_group
    for group in range(geometry.groups):
        x_group = x_batch[:, group * in_per : (group + 1) * in_per].swapaxes(0, 1)
        g_group = grads[:, group * out_per : (group + 1) * out_per].swapaxes(0, 1)
        out = run_conv(x_group, g_group, None, route.inner)
        result[group * out_per : (group + 1) * out_per] = out[
            (slice(None), slice(None), *kernel)
        ].swapaxes(0, 1)
    return result


@dataclasses.dataclass(frozen=True)
class WeightGradientRoute:
    """How :func:`weight_gradient` computes: the direct product, or the engine on a plan.

    Attributes
    ----------
    images : int
        Images per chunk of the direct product.
    inner : ConvPlan or None
        The plan of each group's forward correlation (None: the direct product).
    """

    images: int
    inner: ConvPlan | None


def plan_weight_gradient(
    geometry: ConvGeometry,
    plan: DtypePlan,
    operands: tuple[np.dtype[Any], np.dtype[Any]],
    method: str,
    budget: int,
) -> WeightGradientRoute:
    """Plan ``dL/dw`` before any work; ``MemoryError`` when it cannot fit ``budget``.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> i64 = np.dtype(np.int64)
    >>> plan_weight_gradient(g, plan_dtypes(i64), (i64, i64), "shift", 4096).inner.chosen
    'shift'
    """
    # dtype=object operands holding NumPy integers are copied whole to Python ints first
    # (exact arithmetic): counted as held for the whole call.
    held = object_copy_bytes(geometry, operands)
    if held >= budget:
        msg = (
            "the weight gradient first copies its dtype=object operands to Python numbers: "
            f"{held} bytes ({format_bytes(held)}), not less than the memory budget of "
            f"{budget} bytes ({format_bytes(budget)}); raise it with "
            "mimo_conv.set_memory_budget(...) or memory_budget=..."
        )
        raise MemoryError(msg)
    budget -= held
    direct_bytes = direct_bytes_per_image(geometry, plan)
    direct_fits = direct_bytes <= budget
    if method == "matmul":
        images = units_per_chunk(
            direct_bytes, "windows of one image for the weight gradient", budget
        )
        return WeightGradientRoute(images, None)
    inner = weight_gradient_geometry(geometry)
    # Each group's x is a view with the batch and channel axes swapped: not C-contiguous.
    planned = plan_conv(inner, plan, operands, False, budget, method)
    if method == "auto" and direct_fits:
        images = units_per_chunk(
            direct_bytes, "windows of one image for the weight gradient", budget
        )
        engine = planned.cost.seconds if planned.chosen is not None else math.inf
        if direct_seconds(geometry, plan, images) <= engine:
            return WeightGradientRoute(images, None)
    if planned.chosen is None:
        msg = (
            "the weight gradient runs as a forward convolution whose 'images' are "
            f"the input channels (each holding the whole batch): {planned.memory_error()}"
        )
        raise MemoryError(msg)
    return WeightGradientRoute(0, planned)


def object_copy_bytes(geometry: ConvGeometry, operands: tuple[np.dtype[Any], ...]) -> int:
    """Bytes of the whole-batch copies of ``dtype=object`` operands (x, then grad_output).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=2, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> object_copy_bytes(g, (np.dtype(object), np.dtype(np.int64)))  # 2 * 3 pointers
    48
    """
    g = geometry
    sizes = (
        g.batch_size * g.in_channels * math.prod(g.input_shape),
        g.batch_size * g.out_channels * math.prod(g.output_shape),
    )
    return sum(
        size * dtype.itemsize
        for size, dtype in zip(sizes, operands, strict=False)
        if dtype.kind == "O"
    )


def direct_seconds(geometry: ConvGeometry, plan: DtypePlan, images: int) -> float:
    """Predicted time of :func:`_direct_weight_gradient`, by the forward cost model's rates.

    Per chunk of images: its conversion, padding and im2col copies, one product per image
    and group of ``(C_out/groups, L) @ (L, C_in/groups * prod(k))``, and the sum.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> direct_seconds(g, plan_dtypes(np.dtype(np.int64)), 1) > 0
    True
    """
    g = geometry
    itemsize = plan.compute.itemsize
    positions = math.prod(g.output_shape)
    chunk_count = -(-g.batch_size // max(1, images))
    copied = (
        g.batch_size
        * g.in_channels
        * (
            math.prod(g.input_shape)
            + math.prod(g.padded_shape)
            + math.prod(g.kernel_shape) * positions
        )
    )
    work = Work(
        bytes_moved=2 * copied * itemsize,
        calls=6 * chunk_count,
        products=g.batch_size * g.groups,
        product_rows=g.out_channels_per_group,
        product_inner=positions,
    )
    return predict_seconds(work, flop_count(g, plan), plan)


def direct_bytes_per_image(geometry: ConvGeometry, plan: DtypePlan) -> int:
    """Temporary bytes of one image in :func:`_direct_weight_gradient`.

    Its input converted and padded, its windows (im2col), its ``grad_output`` converted and
    its ``(C_out, C_in/groups * prod(k))`` products.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> direct_bytes_per_image(g, plan_dtypes(np.dtype(np.int64)))  # 8 * (6 + 4 + 4)
    112
    """
    positions = math.prod(geometry.output_shape)
    per_channel = (
        math.prod(geometry.input_shape)
        + math.prod(geometry.padded_shape)
        + math.prod(geometry.kernel_shape) * positions
    )
    per_output = geometry.terms_per_output + positions
    return plan.compute.itemsize * (
        geometry.in_channels * per_channel + geometry.out_channels * per_output
    )


def _direct_weight_gradient(
    x: NDArray[Any],
    grads: NDArray[Any],
    geometry: ConvGeometry,
    plan: DtypePlan,
    images: int,
) -> NDArray[Any]:
    """``dL/dw`` as ``grad_output`` times the windows of the padded input, per image.

    One ``(C_out/groups, L) @ (L, C_in/groups * prod(k))`` product per image and group
    (im2col of the forward geometry), summed over chunks of images that keep the
    temporaries of :func:`direct_bytes_per_image` within the budget. Chunks split the sum
    over the images, so float results may change in the last bits with the budget.
    """
    batch, groups = geometry.batch_size, geometry.groups
    per_group, positions = geometry.out_channels_per_group, math.prod(geometry.output_shape)
    total = np.zeros((groups, per_group, geometry.terms_per_output), plan.compute)
    # inf * 0 and overflow give IEEE results (nan, inf) in the outputs they reach, no warnings.
    with np.errstate(all="ignore"):
        for image_slice in chunks(batch, images):
            count = image_slice.stop - image_slice.start
            part = dataclasses.replace(geometry, batch_size=count)
            rows = grads[image_slice].astype(plan.compute, copy=False)
            rows = rows.reshape((count, groups, per_group, positions))
            x_padded = pad_input(x[image_slice].astype(plan.compute, copy=False), part)
            cols = unfold_padded(x_padded, part).reshape(
                (count, groups, geometry.terms_per_output, positions)
            )
            del x_padded
            total += np.matmul(rows, cols.swapaxes(-1, -2)).sum(axis=0)
            del rows, cols  # before the next chunk's copies are allocated
        result = total.astype(plan.output)
    shape = (geometry.out_channels, geometry.in_channels_per_group, *geometry.kernel_shape)
    return np.ascontiguousarray(result.reshape(shape))
