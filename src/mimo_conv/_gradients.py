"""The backward pass of :func:`mimo_conv.conv`: gradients of the input, weight and bias.

For ``y = conv(x, w)`` and a gradient ``g = dL/dy`` of the output:

* ``dL/dx`` is first the gradient of the padded input, then the adjoint of the padding
  (:func:`~mimo_conv._padding_adjoint.unpad_adjoint`) folds its border back into the
  input, so reflect, replicate, circular and symmetric padding route their gradient to the
  elements they copied. ``method="auto"`` scatters ``w^T g`` back through the windows:
  one matrix product per group gives, for every window position, the gradient of each
  tap of the window (``(C_in * prod(k), L)`` columns), and
  :func:`~mimo_conv._unfold.fold_taps` adds the columns into the padded input (col2im).
  A named ``method`` (and ``"auto"`` when one image's columns do not fit the budget)
  computes the padded gradient instead as a forward correlation of ``g`` with
  ``stride - 1`` zeros inserted, by the kernels flipped and with their channel axes
  swapped per group (:func:`input_gradient_geometry`), run by the forward engine on that
  path. Images are processed in chunks within the memory budget (:mod:`mimo_conv._budget`).
* ``dL/dw`` is a forward convolution of ``x`` (batch and channel axes swapped) by ``g``
  (swapped likewise) with stride and dilation exchanged (:func:`weight_gradient_geometry`),
  run by the forward engine on any of its paths (``method=``) within the memory budget;
  ``"matmul"``, and ``"auto"`` when one image fits the budget, use instead the direct
  product of ``g`` with the windows of the padded input (im2col), one matrix product per
  image and group, summed over chunks of images.
* ``dL/db`` sums ``g`` over the batch and spatial axes.

Validation is the forward pass's (:func:`mimo_conv._validation.build_geometry`) plus a
check that ``grad_output`` has the forward output's shape; the dtype policy is the forward
pass's too (integers exact in int64 with an overflow check, float16 accumulated in float32,
``dtype=object`` exact). Complex inputs get the plain transpose (no conjugation), matching
:func:`mimo_conv.conv`'s unconjugated kernel.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._budget import call_budget, chunks, get_memory_budget, memory_budget, units_per_chunk
from mimo_conv._cost_model import choose_method
from mimo_conv._dtypes import DtypePlan, check_integer_range, plan_dtypes, python_integers
from mimo_conv._engine import run_conv
from mimo_conv._geometry import ConvGeometry
from mimo_conv._memory import check_output_fits
from mimo_conv._methods import check_method
from mimo_conv._padding_adjoint import copies_per_element, unpad_adjoint
from mimo_conv._unfold import fold_taps, unfold_padded
from mimo_conv._validation import as_int, as_numeric_array, build_geometry
from mimo_conv._windows import pad_input

IntOrInts = int | Sequence[int]
PaddingArg = int | str | Sequence[Any]
_ONE = np.ones(1, dtype=np.int64)


def as_shape(value: object, name: str) -> tuple[int, ...]:
    """Return a shape given as a sequence of non-negative ints as a tuple.

    Examples
    --------
    >>> as_shape([1, 3, 5, 5], "input_shape")
    (1, 3, 5, 5)
    >>> as_shape(5, "input_shape")
    Traceback (most recent call last):
    ...
    TypeError: input_shape must be a sequence of ints (a shape), got 5 of type int
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, Sequence) or isinstance(value, str):
        kind = type(value).__name__
        msg = f"{name} must be a sequence of ints (a shape), got {value!r} of type {kind}"
        raise TypeError(msg)
    shape = tuple(as_int(item, name) for item in value)
    if any(item < 0 for item in shape):
        msg = f"{name} must have non-negative sizes, got {shape}"
        raise ValueError(msg)
    return shape


def gradient_geometry(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    grad_output: NDArray[Any],
    *,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
    padding_mode: object,
    spatial_dims: int | None = None,
) -> ConvGeometry:
    """Validate a backward call: the forward call's checks, then ``grad_output``'s shape."""
    geometry = build_geometry(
        x_shape,
        weight_shape,
        None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
        spatial_dims=spatial_dims,
    )
    if grad_output.shape != geometry.out_shape:
        msg = (
            f"grad_output must have the shape of the convolution's output, "
            f"{geometry.out_shape} for x of shape {x_shape} and weight of shape "
            f"{weight_shape} (stride={geometry.stride}, padding={geometry.padding}, "
            f"dilation={geometry.dilation}), got grad_output of shape {grad_output.shape}"
        )
        raise ValueError(msg)
    return geometry


def scatter_windows(
    grad_output: NDArray[Any], weight: NDArray[Any], geometry: ConvGeometry
) -> NDArray[Any]:
    """Gradient of the padded input: ``fold(weight^T @ grad_output)``, no checks.

    Parameters
    ----------
    grad_output : ndarray of shape (N, C_out, *positions)
        In the compute dtype. ``positions`` may differ from ``geometry.output_shape``
        (:func:`mimo_conv.conv_transpose` with ``output_padding >= stride``) as long as
        every window lies inside ``geometry.padded_shape``.
    weight : ndarray of shape (C_out, C_in // groups, *kernel)
        In the compute dtype.
    geometry : ConvGeometry

    Returns
    -------
    ndarray of shape (N, C_in, *geometry.padded_shape)
        ``N * C_in * prod(k) * L * C_out/groups`` multiply-adds in one ``np.matmul`` and a
        temporary of ``N * C_in * prod(k) * L`` elements (the columns).

    Examples
    --------
    >>> g = ConvGeometry(1, 1, 1, 1, (3,), (2,), (1,), (1,), ((0, 0),))
    >>> scatter_windows(np.array([[[1, 10]]]), np.array([[[2, 3]]]), g)
    array([[[ 2, 23, 30]]])
    """
    batch, groups = grad_output.shape[0], geometry.groups
    positions = grad_output.shape[2:]
    taps = math.prod(geometry.kernel_shape)
    per_group = geometry.out_channels_per_group
    grads = grad_output.reshape((batch, groups, per_group, math.prod(positions)))
    transposed = weight.reshape((groups, per_group, geometry.terms_per_output)).transpose(0, 2, 1)
    # (N, groups, C_in/groups * prod(k), L); a contraction over one channel (depthwise) is
    # a broadcast product, much faster than a stack of matrix products with inner size 1.
    cols = transposed * grads if per_group == 1 else np.matmul(transposed, grads)
    cols = cols.reshape((batch, geometry.in_channels, taps, *positions))
    return fold_taps(
        cols, geometry.padded_shape, geometry.kernel_shape, geometry.stride, geometry.dilation
    )


def input_gradient_plan(
    grad_output: NDArray[Any], weight: NDArray[Any], geometry: ConvGeometry
) -> DtypePlan:
    """Dtype plan of ``dL/dx``, after the overflow and memory checks (before any work).

    An element of ``dL/dx`` sums at most ``C_out/groups * prod(k)`` products per padded
    position that copies it (:func:`~mimo_conv._padding_adjoint.copies_per_element`).

    Examples
    --------
    >>> g = ConvGeometry(1, 1, 1, 1, (3,), (2,), (1,), (1,), ((0, 0),))
    >>> input_gradient_plan(np.ones((1, 1, 2), np.float16), np.ones((1, 1, 2)), g).output
    dtype('float64')
    """
    plan = plan_dtypes(grad_output.dtype, weight.dtype)
    if plan.compute.kind == "i":
        terms = (
            geometry.out_channels_per_group
            * math.prod(geometry.kernel_shape)
            * copies_per_element(geometry)
        )
        check_integer_range(grad_output, weight, None, terms)
    padded = (geometry.batch_size, geometry.in_channels, *geometry.padded_shape)
    check_output_fits(padded, plan.compute)
    return plan


def weight_gradient_plan(
    x: NDArray[Any], grad_output: NDArray[Any], geometry: ConvGeometry
) -> DtypePlan:
    """Dtype plan of ``dL/dw``, after the overflow and memory checks (before any work).

    An element of ``dL/dw`` sums ``N * prod(output_shape)`` products.

    Examples
    --------
    >>> g = ConvGeometry(1, 1, 1, 1, (3,), (2,), (1,), (1,), ((0, 0),))
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


def input_gradient_geometry(geometry: ConvGeometry) -> ConvGeometry:
    """Return the geometry of the forward correlation that computes ``dL/d(x_padded)``.

    Along one axis (stride ``s``, dilation ``d``, ``k`` taps, padded length ``P``, ``out``
    output positions) the forward pass reads ``x_pad[p*s + t*d]`` with weight ``w[t]``, so

    ``dL/dx_pad[j] = sum_{p, t : p*s + t*d = j} g[p] * w[t]``.

    Insert ``s - 1`` zeros between the elements of ``g`` (``u[p*s] = g[p]``, zero
    elsewhere, ``(out - 1)*s + 1`` elements): the sum is ``sum_t u[j - t*d] * w[t]``. With
    ``t' = k - 1 - t`` and ``v`` = ``u`` padded by ``d*(k - 1)`` zeros in front
    (``v[i] = u[i - d*(k - 1)]``) it becomes ``sum_{t'} v[j + t'*d] * w[k - 1 - t']``: a
    cross-correlation of ``v`` with the flipped kernel, dilation ``d``, stride 1. Its ``P``
    outputs need ``P + d*(k - 1)`` elements of ``v``, so ``v`` is also padded at the end,
    by ``d*(k - 1) + r`` with ``r = P - ((out - 1)*s + d*(k - 1) + 1)`` (the elements of
    the padded input that no window reaches, whose gradient is zero). Channels: output
    channel ``o`` of group ``G`` reads input channel ``c`` of the same group, so the
    correlation's input has the ``C_out`` channels of ``g`` and its output the ``C_in``
    channels of ``x``, in the same ``groups``, with kernels
    ``w'[G*C_in/groups + c, o, t'] = w[G*C_out/groups + o, c, k - 1 - t']``
    (:func:`input_gradient_kernels`).

    The returned geometry's input is the zero-inserted ``grad_output`` (unpadded: the
    engine pads it with zeros), its output the padded input's shape.

    Examples
    --------
    >>> g = ConvGeometry(2, 6, 4, 2, (9,), (2,), (3,), (1,), ((1, 0),))  # P = 10, out = 3
    >>> inner = input_gradient_geometry(g)
    >>> inner.in_channels, inner.out_channels, inner.groups, inner.input_shape
    (4, 6, 2, (7,))
    >>> inner.padding, inner.stride, inner.dilation  # r = 10 - (6 + 1 + 1) = 2
    (((1, 3),), (1,), (1,))
    >>> inner.output_shape == g.padded_shape
    True
    """
    inserted = tuple(
        (out - 1) * step + 1
        for out, step in zip(geometry.output_shape, geometry.stride, strict=True)
    )
    padding = tuple(
        (extent - 1, extent - 1 + padded - ((out - 1) * step + extent))
        for extent, padded, out, step in zip(
            geometry.window_extent,
            geometry.padded_shape,
            geometry.output_shape,
            geometry.stride,
            strict=True,
        )
    )
    return ConvGeometry(
        batch_size=geometry.batch_size,
        in_channels=geometry.out_channels,
        out_channels=geometry.in_channels,
        groups=geometry.groups,
        input_shape=inserted,
        kernel_shape=geometry.kernel_shape,
        stride=(1,) * geometry.spatial_dims,
        dilation=geometry.dilation,
        padding=padding,
        padding_mode="zeros",
        batched=True,
    )


def input_gradient_kernels(weight: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """Return the kernels of :func:`input_gradient_geometry`: channels swapped, flipped.

    ``(C_out, C_in/groups, *k)`` becomes ``(C_in, C_out/groups, *k)``, reversed along every
    spatial axis; a new contiguous array.

    Examples
    --------
    >>> g = ConvGeometry(1, 1, 2, 1, (3,), (2,), (1,), (1,), ((0, 0),))  # C_in 1, C_out 2
    >>> input_gradient_kernels(np.array([[[1, 2]], [[3, 4]]]), g)
    array([[[2, 1],
            [4, 3]]])
    """
    groups, kernel = geometry.groups, geometry.kernel_shape
    per_group = weight.reshape(
        (groups, geometry.out_channels_per_group, geometry.in_channels_per_group, *kernel)
    ).swapaxes(1, 2)
    flipped = np.flip(per_group, axis=tuple(range(3, 3 + len(kernel))))
    return np.ascontiguousarray(
        flipped.reshape((geometry.in_channels, geometry.out_channels_per_group, *kernel))
    )


def zero_inserted(grads: NDArray[Any], stride: tuple[int, ...], dtype: Any) -> NDArray[Any]:
    """Return ``grads`` in ``dtype`` with ``stride - 1`` zeros between its elements.

    Along each spatial axis ``out`` elements become ``(out - 1) * stride + 1``; with every
    stride 1, ``grads`` converted (no copy when it already has the dtype).

    Examples
    --------
    >>> zero_inserted(np.array([[[1, 2, 3]]]), (2,), np.dtype(np.int64))
    array([[[1, 0, 2, 0, 3]]])
    """
    if all(step == 1 for step in stride):
        return grads.astype(dtype, copy=False)
    spatial = tuple(
        (size - 1) * step + 1 for size, step in zip(grads.shape[2:], stride, strict=True)
    )
    inserted = np.zeros((*grads.shape[:2], *spatial), dtype)
    inserted[(slice(None), slice(None), *(slice(None, None, step) for step in stride))] = grads
    return inserted


def input_gradient(
    grad_output: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    *,
    method: str = "auto",
    budget: int | None = None,
) -> NDArray[Any]:
    """``dL/dx`` of a validated call, in the dtype the policy gives ``grad_output, weight``.

    ``method="auto"`` runs the scatter (:func:`scatter_windows`, then
    :func:`~mimo_conv._padding_adjoint.unpad_adjoint`) on chunks of images sized by
    :func:`~mimo_conv._budget.units_per_chunk`, so the column buffer, the padded gradient
    and the converted ``grad_output`` of one chunk stay within the memory budget; when those
    of one image do not fit it takes the engine route below on the path the cost model picks
    (:func:`mimo_conv._cost_model.choose_method`) instead. A named ``method`` (validated by
    :func:`mimo_conv._methods.check_method`, as the forward pass does) takes the engine
    route on that path: :func:`_engine_input_gradient`. Chunks split the batch, never a
    sum, so the result does not depend on the budget (bit for bit, floats too); integer
    and ``dtype=object`` results are the same on every path.

    Examples
    --------
    Reflect padding sends the gradient of the border back to the mirrored element:

    >>> g = ConvGeometry(1, 1, 1, 1, (3,), (1,), (1,), (1,), ((1, 0),), "reflect")
    >>> input_gradient(np.array([[[1, 2, 3, 4]]]), np.array([[[1]]]), g)
    array([[[2, 4, 4]]])
    >>> input_gradient(np.array([[[1, 2, 3, 4]]]), np.array([[[1]]]), g, method="matmul")
    array([[[2, 4, 4]]])
    """
    check_method(method, geometry)
    plan = input_gradient_plan(grad_output, weight, geometry)
    grads = grad_output if geometry.batched else grad_output[np.newaxis]
    with call_budget(budget):
        per_image = scatter_bytes_per_image(geometry, plan)
        if method == "auto" and per_image <= get_memory_budget():
            result = _scatter_input_gradient(grads, weight, geometry, plan, per_image)
        else:
            result = _engine_input_gradient(grads, weight, geometry, plan, method)
    return result if geometry.batched else np.ascontiguousarray(result[0])


def scatter_bytes_per_image(geometry: ConvGeometry, plan: DtypePlan) -> int:
    """Temporary bytes of one image in the scatter of :func:`input_gradient`.

    Its ``grad_output`` in the compute dtype and its padded gradient, alive with first its
    columns, then the interior copies of ``unpad_adjoint`` (at most two alive at once, each
    at most the padded size).

    Examples
    --------
    >>> g = ConvGeometry(1, 1, 1, 1, (5,), (3,), (1,), (1,), ((0, 0),))
    >>> scatter_bytes_per_image(g, plan_dtypes(np.dtype(np.int64)))  # 8 * (3 + 5 + 10)
    144
    """
    taps, positions = math.prod(geometry.kernel_shape), math.prod(geometry.output_shape)
    padded = math.prod(geometry.padded_shape)
    return plan.compute.itemsize * (
        geometry.out_channels * positions
        + geometry.in_channels * (padded + max(taps * positions, 2 * padded))
    )


def _scatter_input_gradient(
    grads: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    plan: DtypePlan,
    per_image: int,
) -> NDArray[Any]:
    """``dL/dx`` of a batch as ``P^T fold(w^T g)``, over chunks of images in the budget."""
    kernels = python_integers(weight).astype(plan.compute, copy=False)
    batch = geometry.batch_size
    result = np.empty((batch, geometry.in_channels, *geometry.input_shape), plan.output)
    images = units_per_chunk(per_image, "column buffer of one image for the input gradient")
    # inf * 0 and overflow give IEEE results (nan, inf) in the outputs they reach, no warnings.
    with np.errstate(all="ignore"):
        for image_slice in chunks(batch, images):
            part = dataclasses.replace(geometry, batch_size=image_slice.stop - image_slice.start)
            chunk = python_integers(grads[image_slice]).astype(plan.compute, copy=False)
            columns_folded = scatter_windows(chunk, kernels, part)
            del chunk
            result[image_slice] = unpad_adjoint(columns_folded, part)
            del columns_folded  # before the next chunk's columns are allocated
    return result


def engine_bytes_per_image(geometry: ConvGeometry, plan: DtypePlan) -> int:
    """Temporary bytes of one image in :func:`_engine_input_gradient`, besides the path's.

    Its zero-inserted ``grad_output`` (:func:`input_gradient_geometry`) alive with its
    padded gradient (the engine's result), which is then alive with the interior copies of
    ``unpad_adjoint`` (at most two, each at most the padded size).

    Examples
    --------
    >>> g = ConvGeometry(1, 1, 1, 1, (5,), (2,), (2,), (1,), ((0, 0),))  # out = 2: 3 inserted
    >>> engine_bytes_per_image(g, plan_dtypes(np.dtype(np.int64)))  # 8 * (5 + max(3, 10))
    120
    """
    inserted = math.prod(input_gradient_geometry(geometry).input_shape)
    padded = math.prod(geometry.padded_shape)
    return plan.compute.itemsize * (
        geometry.in_channels * padded
        + max(geometry.out_channels * inserted, 2 * geometry.in_channels * padded)
    )


def _engine_input_gradient(
    grads: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    plan: DtypePlan,
    method: str,
) -> NDArray[Any]:
    """``dL/dx`` of a batch as the forward correlation of :func:`input_gradient_geometry`.

    Over chunks of images whose own temporaries (:func:`engine_bytes_per_image`) take at
    most half the budget; :func:`mimo_conv._engine.run_conv` runs the path ``method``
    (``"auto"``: :func:`~mimo_conv._cost_model.choose_method`) under the rest, then
    :func:`~mimo_conv._padding_adjoint.unpad_adjoint` folds the padded gradient back.
    """
    budget = get_memory_budget()
    batch = geometry.batch_size
    inner = input_gradient_geometry(geometry)
    inner_plan = DtypePlan(compute=plan.compute, output=plan.compute)
    per_image = engine_bytes_per_image(geometry, plan)
    with memory_budget(max(1, budget // 2)):
        images = units_per_chunk(
            per_image,
            "zero-inserted grad_output and padded gradient of one image for the input "
            "gradient (allowed half the budget)",
        )
    rest = max(1, budget - min(images, max(1, batch)) * per_image)
    chosen = (
        choose_method(dataclasses.replace(inner, batch_size=min(images, batch)), inner_plan, rest)
        if method == "auto"
        else method
    )
    kernels = input_gradient_kernels(
        python_integers(weight).astype(plan.compute, copy=False), geometry
    )
    result = np.empty((batch, geometry.in_channels, *geometry.input_shape), plan.output)
    # inf * 0 and overflow give IEEE results (nan, inf) in the outputs they reach, no warnings.
    with np.errstate(all="ignore"):
        for image_slice in chunks(batch, images):
            count = image_slice.stop - image_slice.start
            part = dataclasses.replace(geometry, batch_size=count)
            inserted = zero_inserted(
                python_integers(grads[image_slice]), geometry.stride, plan.compute
            )
            try:
                with memory_budget(rest):
                    padded = run_conv(
                        inserted,
                        kernels,
                        None,
                        dataclasses.replace(inner, batch_size=count),
                        inner_plan,
                        chosen,
                    )
            except MemoryError as error:
                msg = (
                    "the input gradient runs as a forward convolution of the zero-inserted "
                    f"grad_output by the flipped kernels: {error}"
                )
                raise MemoryError(msg) from error
            del inserted
            result[image_slice] = unpad_adjoint(padded, part)
            del padded  # before the next chunk's buffers are allocated
    return result


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
    >>> g = ConvGeometry(2, 6, 4, 2, (9,), (2,), (3,), (1,), ((1, 0),))  # P = 10, out = 3
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
) -> NDArray[Any]:
    """``dL/dw`` of a validated call, as a forward convolution on the path ``method``.

    For each group, :func:`mimo_conv._engine.run_conv` correlates ``x`` (axes swapped to
    ``(C_in/groups, N, *spatial)``, padded by the engine with the forward padding and
    mode) with ``grad_output`` (swapped to ``(C_out/groups, N, *out)``) in the geometry of
    :func:`weight_gradient_geometry`; the result ``(C_in/groups, C_out/groups, *k')`` is
    sliced to the kernel shape and transposed. Every forward path and the memory budget
    apply: the engine chunks over input channels, the paths over channels and rows.

    ``"matmul"`` (1 x 1 kernels only, as in the forward pass) and ``"auto"`` when the
    temporaries of one image fit the budget (:func:`direct_bytes_per_image`) compute
    instead one matrix product per image and group of ``grad_output`` with the windows of
    the forward geometry (:func:`_direct_weight_gradient`): its shapes suit BLAS far
    better than the inner convolution's (a kernel as large as the output, an output as
    small as the kernel), 2-10x faster on ResNet-like layers. Otherwise ``"auto"`` asks
    :func:`mimo_conv._cost_model.choose_method` about the inner geometry.

    Examples
    --------
    >>> g = ConvGeometry(1, 1, 1, 1, (3,), (2,), (1,), (1,), ((0, 0),))
    >>> weight_gradient(np.array([[[1, 2, 3]]]), np.array([[[1, 10]]]), g)
    array([[[21, 32]]])
    >>> weight_gradient(np.array([[[1, 2, 3]]]), np.array([[[1, 10]]]), g, method="shift")
    array([[[21, 32]]])
    """
    check_method(method, geometry)
    plan = weight_gradient_plan(x, grad_output, geometry)
    x_batch = python_integers(x if geometry.batched else x[np.newaxis])
    grads = python_integers(grad_output if geometry.batched else grad_output[np.newaxis])
    shape = (geometry.out_channels, geometry.in_channels_per_group, *geometry.kernel_shape)
    with call_budget(budget):
        direct_bytes = direct_bytes_per_image(geometry, plan)
        if method == "matmul" or (method == "auto" and direct_bytes <= get_memory_budget()):
            return _direct_weight_gradient(x_batch, grads, geometry, plan, direct_bytes)
        inner = weight_gradient_geometry(geometry)
        chosen = choose_method(inner, plan) if method == "auto" else method
        result = np.empty(shape, plan.output)
        kernel = tuple(slice(0, taps) for taps in geometry.kernel_shape)
        in_per, out_per = geometry.in_channels_per_group, geometry.out_channels_per_group
        for group in range(geometry.groups):
            x_group = x_batch[:, group * in_per : (group + 1) * in_per].swapaxes(0, 1)
            g_group = grads[:, group * out_per : (group + 1) * out_per].swapaxes(0, 1)
            try:
                out = run_conv(x_group, g_group, None, inner, plan, chosen)
            except MemoryError as error:
                msg = (
                    "the weight gradient runs as a forward convolution whose 'images' are "
                    f"the input channels (each holding the whole batch): {error}"
                )
                raise MemoryError(msg) from error
            result[group * out_per : (group + 1) * out_per] = out[
                (slice(None), slice(None), *kernel)
            ].swapaxes(0, 1)
    return result


def direct_bytes_per_image(geometry: ConvGeometry, plan: DtypePlan) -> int:
    """Temporary bytes of one image in :func:`_direct_weight_gradient`.

    Its input converted and padded, its windows (im2col), its ``grad_output`` converted and
    its ``(C_out, C_in/groups * prod(k))`` products.

    Examples
    --------
    >>> g = ConvGeometry(1, 1, 1, 1, (3,), (2,), (1,), (1,), ((0, 0),))
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
    per_image: int,
) -> NDArray[Any]:
    """``dL/dw`` as ``grad_output`` times the windows of the padded input, per image.

    One ``(C_out/groups, L) @ (L, C_in/groups * prod(k))`` product per image and group
    (im2col of the forward geometry), summed over chunks of images that keep the
    temporaries of :func:`direct_bytes_per_image` within the budget. Chunks split the sum
    over the images, so float results may change in the last bits with the budget.
    """
    batch, groups = geometry.batch_size, geometry.groups
    per_group, positions = geometry.out_channels_per_group, math.prod(geometry.output_shape)
    images = units_per_chunk(per_image, "windows of one image for the weight gradient")
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


def bias_gradient(grad_output: NDArray[Any], *, batched: bool) -> NDArray[Any]:
    """``dL/db``: ``grad_output`` summed over every axis but the channel axis.

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
        (:func:`mimo_conv.grad.conv_input`: ``"auto"`` is the scatter, a named path the
        correlation of the zero-inserted ``grad_output`` by the flipped kernels).
    memory_budget : int, optional
        Largest temporary buffer, in bytes, for this call, as in :func:`mimo_conv.conv`;
        default :func:`mimo_conv.get_memory_budget`.

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
    grads = as_numeric_array(grad_output, "grad_output")
    x_array = as_numeric_array(x, "x")
    weight_array = as_numeric_array(weight, "weight")
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
    # Every check of all three gradients runs before any of them is computed.
    check_method(method, geometry)
    input_gradient_plan(grads, weight_array, geometry)
    weight_gradient_plan(x_array, grads, geometry)
    bias_gradient_plan(grads, 1 if geometry.batched else 0)
    return (
        input_gradient(grads, weight_array, geometry, method=method, budget=memory_budget),
        weight_gradient(x_array, grads, geometry, method=method, budget=memory_budget),
        bias_gradient(grads, batched=geometry.batched),
    )
