"""The input gradient ``dL/dx`` of :func:`mimo_conv.conv`, and of a transposed convolution.

First the gradient of the padded input, then the adjoint of the padding
(:func:`~mimo_conv._core.padding_adjoint.unpad_adjoint`) folds its border back into the
input, so reflect, replicate, circular and symmetric padding route their gradient to the
elements they copied. Three routes compute it, planned before any work
(:func:`plan_input_gradient`):

* the scatter: one matrix product ``w^T g`` per group gives, for every window position,
  the gradient of each tap of the window (``(C_in * prod(k), L)`` columns), and
  :func:`~mimo_conv._core.columns.fold_taps` adds the columns into the padded input (col2im);
* the stride phases (:mod:`mimo_conv._gradients.phases`): one forward correlation of ``g``
  per group of output phases, by the sub-kernels of the taps each phase meets, written into
  the strided views of the result; no zeros inserted, the scatter's multiply-adds on the
  forward engine's paths (at stride 1, a single correlation that writes the result);
* the zero-inserted correlation: ``g`` with ``stride - 1`` zeros inserted, correlated with
  the kernels flipped and their channel axes swapped per group
  (:func:`input_gradient_geometry`), ``prod(stride)`` times the multiply-adds.

``method="auto"`` takes whichever the cost model predicts fastest among those that fit the
memory budget (the zero-inserted one only for floats, or when the scatter does not fit); a
named ``method`` runs the zero-inserted correlation on that path. Images are processed in
chunks within the memory budget (:mod:`mimo_conv._core.budget`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import chunks, resolve_budget, units_per_chunk
from mimo_conv._core.columns import fold_taps
from mimo_conv._core.dtypes import (
    DtypePlan,
    check_integer_range,
    nonfinite,
    plan_dtypes,
    python_integers,
)
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.memory import check_output_fits, format_bytes
from mimo_conv._core.padding_adjoint import copies_per_element, unpad_adjoint
from mimo_conv._core.workers import get_threads
from mimo_conv._engine.constants import COPY_BYTES_PER_SECOND
from mimo_conv._engine.execute import plan_for, run_conv
from mimo_conv._engine.formulas import flop_count, predict_seconds
from mimo_conv._engine.plan import ConvPlan, plan_conv
from mimo_conv._engine.rendering import format_seconds
from mimo_conv._gradients.phases import PhasePlan, phase_budget, phase_input_gradient, plan_phases
from mimo_conv._paths.registry import check_method
from mimo_conv._paths.spec import Work


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
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
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
    position that copies it (:func:`~mimo_conv._core.padding_adjoint.copies_per_element`).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
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
    >>> g = ConvGeometry(
    ...     batch_size=2, in_channels=6, out_channels=4, groups=2, input_shape=(9,),
    ...     kernel_shape=(2,), stride=(3,), dilation=(1,), padding=((1, 0),),
    ... )  # P = 10, out = 3
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
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=2, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )  # C_in 1, C_out 2
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


def zero_inserted(
    grads: NDArray[Any],
    stride: tuple[int, ...],
    dtype: Any,
    output_shape: tuple[int, ...] | None = None,
) -> NDArray[Any]:
    """Return ``grads`` in ``dtype`` with ``stride - 1`` zeros between its elements.

    Along each spatial axis ``out`` elements become ``(out - 1) * stride + 1``; with every
    stride 1, ``grads`` converted (no copy when it already has the dtype). ``output_shape``,
    when larger than ``grads`` (a transposed convolution whose ``output_padding`` reaches
    ``stride``: the forward geometry has output positions that ``grads`` lacks), pads the
    end with zeros up to ``(output_shape - 1) * stride + 1``: those positions receive no
    gradient.

    Examples
    --------
    >>> zero_inserted(np.array([[[1, 2, 3]]]), (2,), np.dtype(np.int64))
    array([[[1, 0, 2, 0, 3]]])
    >>> zero_inserted(np.array([[[1, 2]]]), (1,), np.dtype(np.int64), (3,))
    array([[[1, 2, 0]]])
    """
    sizes = grads.shape[2:] if output_shape is None else output_shape
    spatial = tuple((size - 1) * step + 1 for size, step in zip(sizes, stride, strict=True))
    if all(step == 1 for step in stride) and spatial == grads.shape[2:]:
        return grads.astype(dtype, copy=False)
    inserted = np.zeros((*grads.shape[:2], *spatial), dtype)
    where = tuple(
        slice(0, (size - 1) * step + 1, step)
        for size, step in zip(grads.shape[2:], stride, strict=True)
    )
    inserted[(slice(None), slice(None), *where)] = grads
    return inserted


def input_gradient(
    grad_output: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    *,
    method: str = "auto",
    budget: int | None = None,
    plan: DtypePlan | None = None,
) -> NDArray[Any]:
    """``dL/dx`` of a validated call, in the dtype the policy gives ``grad_output, weight``.

    ``plan`` is :func:`input_gradient_plan`'s result when the caller has already run it
    (:func:`mimo_conv._gradients.backward.conv_backward` checks all three gradients first):
    the overflow scan and memory check are then not repeated.

    The route is :func:`plan_input_gradient`'s. The scatter (:func:`scatter_windows`, then
    :func:`~mimo_conv._core.padding_adjoint.unpad_adjoint`) runs on chunks of images sized by
    :func:`~mimo_conv._core.budget.units_per_chunk`, so the column buffer, the padded
    gradient and the converted ``grad_output`` of one chunk stay within the memory budget;
    the stride phases (:func:`~mimo_conv._gradients.phases.phase_input_gradient`) and the
    zero-inserted correlation (:func:`_engine_input_gradient`) on chunks whose own buffers
    take at most half of it, their paths the rest. A named ``method`` (validated by
    :func:`mimo_conv._paths.registry.check_method`, as the forward pass does) takes the
    zero-inserted correlation on that path. Kernels holding a NaN or an infinity take the
    scatter on every ``method`` (where it fits the budget): a correlation would multiply
    them by the zeros it inserts or pads with (``inf * 0`` is NaN) where the gradient has no
    such product. Chunks split the batch, never a sum, so the result does not depend on the
    budget (bit for bit, floats too); integer and ``dtype=object`` results are the same on
    every route and path.

    Examples
    --------
    Reflect padding sends the gradient of the border back to the mirrored element:

    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(1,), stride=(1,), dilation=(1,), padding=((1, 0),),
    ...     padding_mode='reflect',
    ... )
    >>> input_gradient(np.array([[[1, 2, 3, 4]]]), np.array([[[1]]]), g)
    array([[[2, 4, 4]]])
    >>> input_gradient(np.array([[[1, 2, 3, 4]]]), np.array([[[1]]]), g, method="matmul")
    array([[[2, 4, 4]]])
    """
    method = check_method(method, geometry, forward=False)
    if plan is None:
        plan = input_gradient_plan(grad_output, weight, geometry)
    grads = grad_output if geometry.batched else grad_output[np.newaxis]
    source = (grads.shape[2:], grads.flags.c_contiguous, grads.dtype)
    limit = resolve_budget(budget)
    route = plan_input_gradient(geometry, plan, method, limit, *source)
    if route.name != "scatter" and nonfinite(weight).any():
        # The correlations multiply every kernel element by the zeros they insert or pad
        # with, and inf * 0 is NaN where the gradient has no such term: the scatter forms
        # only the products that exist (the kernels are small: the check is cheap).
        per_image = scatter_bytes_per_image(geometry, plan)
        if per_image <= limit:
            images = units_per_chunk(per_image, "column buffer of one image", limit)
            route = InputGradientRoute(images, None, limit)
    if route.phases is not None:  # the engine converts grads, within its plan's budget
        kernels = python_integers(weight).astype(plan.compute, copy=False)
        integers = python_integers(grads)  # object arrays: Python ints, never wrapping
        result = phase_input_gradient(integers, kernels, geometry, plan, route.phases)
    elif route.inner is None:
        result = _scatter_input_gradient(grads, weight, geometry, plan, route.images)
    else:
        result = _engine_input_gradient(grads, weight, geometry, plan, route)
    return result if geometry.batched else np.ascontiguousarray(result[0])


@dataclasses.dataclass(frozen=True)
class RouteCost:
    """One route's predicted time for one call, as :func:`plan_input_gradient` compared them.

    Attributes
    ----------
    name : str
        ``"scatter"``, ``"zero-inserted"`` or ``"phases"``.
    seconds : float
        Predicted time; ``inf`` when the route does not fit the memory budget.
    note : str
        What the route does, or why it does not run.
    """

    name: str
    seconds: float
    note: str


@dataclasses.dataclass(frozen=True)
class InputGradientRoute:
    """How :func:`input_gradient` computes: the scatter, or correlations on planned paths.

    ``str()`` prints the routes compared, their predicted times, and the forward plans
    of the chosen one (what :func:`mimo_conv.explain_conv_transpose` shows).

    Attributes
    ----------
    images : int
        Images per chunk.
    inner : ConvPlan or None
        The plan of the zero-inserted correlation of one chunk (None: another route).
    budget : int
        The memory budget the route was planned under.
    phases : PhasePlan or None
        The planned stride phases (:mod:`mimo_conv._gradients.phases`), when they run.
    candidates : tuple of RouteCost
        The routes compared (``method="auto"``); the one that runs alone otherwise.
    """

    images: int
    inner: ConvPlan | None
    budget: int
    phases: PhasePlan | None = None
    candidates: tuple[RouteCost, ...] = ()

    @property
    def name(self) -> str:
        """The route that runs: ``"scatter"``, ``"zero-inserted"`` or ``"phases"``."""
        if self.phases is not None:
            return "phases"
        return "scatter" if self.inner is None else "zero-inserted"

    def __str__(self) -> str:
        lines = [f"input gradient, memory budget {format_bytes(self.budget)}", ""]
        lines += [
            f"{'*' if cost.name == self.name else ' '} {cost.name:<14}"
            f"{format_seconds(cost.seconds) if math.isfinite(cost.seconds) else '-':>10}  "
            f"{cost.note}"
            for cost in self.candidates
        ]
        lines += ["", f"chosen: {self.name!r}, {self.images} image(s) per chunk"]
        plans = (
            self.phases.plans
            if self.phases is not None
            else ()
            if self.inner is None
            else (self.inner,)
        )
        for planned in plans:
            lines += ["", str(planned)]
        return "\n".join(lines)

    __repr__ = __str__


def plan_input_gradient(
    geometry: ConvGeometry,
    plan: DtypePlan,
    method: str,
    budget: int,
    positions: tuple[int, ...] | None = None,
    contiguous: bool = True,
    operand: np.dtype[Any] | None = None,
) -> InputGradientRoute:
    """Plan ``dL/dx`` before any work; ``MemoryError`` when it cannot fit ``budget``.

    ``method="auto"`` compares, by the cost model, the routes that fit: the scatter
    (:func:`scatter_seconds`), the stride phases
    (:func:`~mimo_conv._gradients.phases.plan_phases`) and, for floats or when the scatter
    does not fit, the zero-inserted correlation (:func:`engine_seconds`), each correlation
    on the path the cost model picks. A named ``method`` runs the zero-inserted
    correlation on that path. ``positions`` is the spatial shape of ``grad_output``
    (default ``geometry.output_shape``), ``contiguous`` whether it is C-contiguous,
    ``operand`` its dtype (default the compute dtype).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(5,),
    ...     kernel_shape=(3,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> route = plan_input_gradient(g, plan_dtypes(np.dtype(np.int64)), "auto", 4096)
    >>> route.name  # stride 1: a single correlation, whose output is the gradient itself
    'phases'
    >>> [cost.name for cost in route.candidates]
    ['scatter', 'phases']
    >>> plan_input_gradient(g, plan_dtypes(np.dtype(np.int64)), "gemm", 4096).inner.chosen
    'gemm'
    """
    if positions is None:
        positions = geometry.output_shape
    source = (positions, contiguous, operand)
    return _plan_cached(geometry, plan, method, budget, source, get_threads())


@functools.lru_cache(maxsize=256)
def _plan_cached(
    geometry: ConvGeometry,
    plan: DtypePlan,
    method: str,
    budget: int,
    source: tuple[tuple[int, ...], bool, np.dtype[Any] | None],
    threads: int,
) -> InputGradientRoute:
    """:func:`plan_input_gradient`, cached (the thread count is a key: the paths read it)."""
    del threads
    positions, contiguous, operand = source
    if method != "auto":
        route = _engine_route(geometry, plan, method, budget)
        if route is None:
            raise MemoryError(_memory_error(geometry, plan, method, budget, None))
        seconds = engine_seconds(geometry, route.inner, route.images) if route.inner else 0.0
        note = _ZERO_INSERTED_NOTE + f" on {method!r}"
        return dataclasses.replace(route, candidates=(RouteCost(route.name, seconds, note),))
    routes: list[tuple[InputGradientRoute, RouteCost]] = []
    per_image = scatter_bytes_per_image(geometry, plan)
    if per_image <= budget:
        images = units_per_chunk(per_image, "column buffer of one image", budget)
        note = f"w^T g, then one strided addition per tap; {images} image(s) per chunk"
        cost = RouteCost("scatter", scatter_seconds(geometry, plan), note)
        routes.append((InputGradientRoute(images, None, budget), cost))
    else:
        note = f"one image's columns need {format_bytes(per_image)}: more than the budget"
        routes.append((InputGradientRoute(0, None, budget), RouteCost("scatter", math.inf, note)))
    phases = plan_phases(geometry, plan, "auto", budget, positions, contiguous, operand)
    if phases is not None:
        cost = RouteCost("phases", phases.seconds, phases.note)
        routes.append((InputGradientRoute(phases.images, None, budget, phases), cost))
    if plan.compute.kind in "fc" or per_image > budget:
        # The zero-inserted correlation: exact too, but prod(stride) times the products.
        engine = _engine_route(geometry, plan, method, budget)
        if engine is not None and engine.inner is not None:
            seconds = engine_seconds(geometry, engine.inner, engine.images)
            note = f"{_ZERO_INSERTED_NOTE} on {engine.inner.chosen!r}"
            routes.append((engine, RouteCost("zero-inserted", seconds, note)))
    feasible = [(route, cost) for route, cost in routes if math.isfinite(cost.seconds)]
    if not feasible:
        raise MemoryError(_memory_error(geometry, plan, method, budget, (positions, operand)))
    chosen, _ = min(feasible, key=lambda pair: pair[1].seconds)
    return dataclasses.replace(chosen, candidates=tuple(cost for _, cost in routes))


#: What the zero-inserted route does, in the printed plan.
_ZERO_INSERTED_NOTE = "correlation of the zero-inserted grad_output by the flipped kernels"


def _memory_error(
    geometry: ConvGeometry,
    plan: DtypePlan,
    method: str,
    budget: int,
    source: tuple[tuple[int, ...], np.dtype[Any] | None] | None,
) -> str:
    """Why no route fits: the least budget of the zero-inserted route (and of the phases)."""
    own = engine_bytes_per_image(geometry, plan)
    alone = _forward_plan(geometry, plan, method, 1, 2**62)  # beside one image's own buffers
    needed = own + min(cost.needs for cost in alone.candidates if cost.needs > 0)
    phases = ""
    if source is not None:
        least = phase_budget(geometry, plan, *source)
        if least is not None:
            phases = (
                f", or as one correlation per stride phase, whose own buffers and paths need "
                f"{least} bytes ({format_bytes(least)}),"
            )
    return (
        "the input gradient runs as a forward convolution of the zero-inserted grad_output "
        f"by the flipped kernels: the zero-inserted grad_output and padded gradient of one "
        f"image ({format_bytes(own)}) and the path's smallest working set need {needed} "
        f"bytes ({format_bytes(needed)}){phases} more than the memory budget of {budget} bytes "
        f"({format_bytes(budget)}); raise it with mimo_conv.set_memory_budget(...) or "
        "memory_budget=..."
    )


def _engine_route(
    geometry: ConvGeometry, plan: DtypePlan, method: str, budget: int
) -> InputGradientRoute | None:
    """Plan the engine route of :func:`plan_input_gradient` within ``budget`` (None: none fits).

    As the forward engine sizes its input copy: chunks of images whose own buffers take at
    most half the budget, else one image if the path still fits beside it.
    """
    own = engine_bytes_per_image(geometry, plan)
    for images in dict.fromkeys((min(geometry.batch_size, (budget // 2) // own), 1)):
        if images >= 1 and budget > images * own:
            planned = _forward_plan(geometry, plan, method, images, budget - images * own)
            if planned.chosen is not None:
                return InputGradientRoute(images, planned, budget)
    return None


def _forward_plan(
    geometry: ConvGeometry, plan: DtypePlan, method: str, images: int, room: int
) -> ConvPlan:
    """Plan the engine route's forward correlation of ``images`` images in ``room`` bytes."""
    part = dataclasses.replace(input_gradient_geometry(geometry), batch_size=images)
    inner_plan = DtypePlan(compute=plan.compute, output=plan.compute)
    operands = (plan.compute, plan.compute)
    return plan_conv(part, inner_plan, operands, True, max(1, room), method)


def scatter_seconds(geometry: ConvGeometry, plan: DtypePlan) -> float:
    """Predicted time of the scatter route, by the engine's cost formulas.

    One product ``w^T g`` per image and group (rows ``C_in/groups * prod(k)``, inner
    ``C_out/groups``), then one strided addition per tap into the padded gradient, and the
    padding's adjoint.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=2, in_channels=16, out_channels=16, groups=1, input_shape=(64, 64),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(2, 2), padding=((2, 2), (2, 2)),
    ... )
    >>> f32 = plan_dtypes(np.dtype(np.float32))
    >>> 1e-4 < scatter_seconds(g, f32) < 1e-1
    True
    """
    g, item = geometry, plan.compute.itemsize
    taps, positions = math.prod(g.kernel_shape), math.prod(g.output_shape)
    columns = g.batch_size * g.in_channels * taps * positions
    images = g.batch_size * g.in_channels
    moved = item * (
        3 * columns + images * (2 * math.prod(g.padded_shape) + 2 * math.prod(g.input_shape))
    )
    work = Work(
        bytes_moved=moved,
        calls=taps + 6,
        products=g.batch_size * g.groups,
        product_rows=g.in_channels_per_group * taps,
        product_inner=g.out_channels_per_group,
        elementwise=g.out_channels_per_group == 1,
        note="scatter",
    )
    return predict_seconds(work, flop_count(g, plan), plan)


def engine_seconds(geometry: ConvGeometry, inner: ConvPlan, images: int) -> float:
    """Predicted time of the engine route: the plan of its chunks of ``images``, plus its copies.

    The copies are the zero-inserted ``grad_output`` and the padded gradient of every image
    (:func:`engine_bytes_per_image`), each written once and read once.
    """
    chunk_count = -(-geometry.batch_size // max(1, images))
    own = engine_bytes_per_image(geometry, inner.plan) * geometry.batch_size
    return chunk_count * inner.cost.seconds + 2 * own / COPY_BYTES_PER_SECOND


def scatter_bytes_per_image(geometry: ConvGeometry, plan: DtypePlan) -> int:
    """Temporary bytes of one image in the scatter of :func:`input_gradient`.

    Its ``grad_output`` in the compute dtype and its padded gradient, alive with first its
    columns, then the interior copies of ``unpad_adjoint`` (at most two alive at once, each
    at most the padded size).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(5,),
    ...     kernel_shape=(3,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
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
    images: int,
) -> NDArray[Any]:
    """``dL/dx`` of a batch as ``P^T fold(w^T g)``, over chunks of images in the budget."""
    kernels = python_integers(weight).astype(plan.compute, copy=False)
    batch = geometry.batch_size
    result = np.empty((batch, geometry.in_channels, *geometry.input_shape), plan.output)
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
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(5,),
    ...     kernel_shape=(2,), stride=(2,), dilation=(1,), padding=((0, 0),),
    ... )  # out = 2: 3 inserted
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
    route: InputGradientRoute,
) -> NDArray[Any]:
    """``dL/dx`` of a batch as the forward correlation of :func:`input_gradient_geometry`.

    Over chunks of images whose own temporaries (:func:`engine_bytes_per_image`) take at
    most half the budget; :func:`mimo_conv._engine.execute.run_conv` runs the path the route
    planned (:func:`plan_input_gradient`) under the rest, then
    :func:`~mimo_conv._core.padding_adjoint.unpad_adjoint` folds the padded gradient back.
    """
    assert route.inner is not None
    batch, images = geometry.batch_size, route.images
    inner = input_gradient_geometry(geometry)
    inner_plan, chosen = route.inner.plan, route.inner.cost.method
    rest = route.inner.budget
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
                python_integers(grads[image_slice]),
                geometry.stride,
                plan.compute,
                geometry.output_shape,
            )
            part_inner = dataclasses.replace(inner, batch_size=count)
            padded = run_conv(
                inserted,
                kernels,
                None,
                plan_for(inserted, kernels, part_inner, inner_plan, rest, chosen),
            )
            del inserted
            result[image_slice] = unpad_adjoint(padded, part)
            del padded  # before the next chunk's buffers are allocated
    return result
