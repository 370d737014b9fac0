"""The stride-phase decomposition of the input gradient: no zeros inserted.

The gradient of a strided convolution's input (a transposed convolution) reads, along one
axis with stride ``s``, dilation ``d`` and ``k`` taps, ``dx_pad[j] = sum g[p] * w[t]`` over
``p*s + t*d = j``. Split the positions ``j`` by their phase ``j mod s``: a position of
phase ``r`` meets only the taps with ``t*d = r (mod s)``, which are every
``tau = s / gcd(s, d)``-th tap from the first such ``t0``; consecutive ones of them reach
``g`` ``delta = d / gcd(s, d)`` elements apart. So the positions of one phase are an
ordinary forward cross-correlation of ``g`` (stride 1, dilation ``delta``) with that
sub-kernel, flipped: ``M = (k - 1 - t0) // tau + 1`` taps instead of the ``k`` of the
zero-inserted form, whose other multiplications all meet inserted zeros. Over every phase
that is exactly the scatter's ``C_in * prod(k) * L * C_out/groups`` multiply-adds, with no
zero-inserted copy of ``g`` (JAX's "lhs dilation" done without the dilation).

In several dimensions a phase is one phase per axis. Phases whose sub-kernels have the same
shape read ``g`` through windows of the same size, at offsets a few elements apart: they
run as **one** correlation whose output channels are the phases' kernels stacked (per
channel group), over the union of their windows, each phase's outputs then copied into its
strided view of the result. So the 2 x upsampling layer (``k = 4``, ``s = 2``) is one
correlation with four times the output channels and ``2 x 2`` kernels, and a stride-1
gradient is a single correlation that writes the result itself. Each correlation is planned
and run by the forward engine (:func:`mimo_conv._engine.plan.plan_conv`, on the path its
cost model picks or on a named one), within the memory budget.

Examples
--------
``conv_transpose([[[1, 10]]], [[[1, 2, 3]]], stride=2, padding=1)`` is ``[2, 13, 20, 30]``:
the even positions meet the middle tap only (``2 = 1 * 2``, ``20 = 10 * 2``), the odd ones
the outer two (``13 = 1 * 3 + 10 * 1``, ``30 = 10 * 3`` and a zero of the padding):

>>> for phase in axis_phases(2, 4, 1, 2, 1, 3):
...     print(phase)
AxisPhase(start=0, count=2, taps=slice(1, 2, 2), offset=0)
AxisPhase(start=1, count=2, taps=slice(0, 3, 2), offset=0)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import chunks
from mimo_conv._core.dtypes import DtypePlan
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.padding_adjoint import unpad_adjoint
from mimo_conv._engine.constants import COPY_BYTES_PER_SECOND, SECONDS_PER_CALL
from mimo_conv._engine.execute import plan_for, run_conv
from mimo_conv._engine.plan import ConvPlan, plan_conv


@dataclasses.dataclass(frozen=True)
class AxisPhase:
    """The positions of one phase along one axis, and the correlation that computes them.

    Attributes
    ----------
    start : int
        The phase's first position in the target (the phase is ``start, start + s, ...``).
    count : int
        How many target positions the phase has.
    taps : slice
        Its taps, as a slice of the kernel *flipped* along this axis (ascending order).
    offset : int
        The element of ``g`` the correlation's first window starts at: the window of the
        phase's ``q``-th position reads ``g[offset + q + m * delta]``, ``m < M``. Negative,
        or past the end of ``g``: those elements are the correlation's zero padding.
    """

    start: int
    count: int
    taps: slice
    offset: int

    @property
    def tap_count(self) -> int:
        """``M``, the number of taps of the phase's sub-kernel."""
        return len(range(self.taps.start, self.taps.stop, self.taps.step))


def axis_phases(
    length: int, target: int, first: int, stride: int, dilation: int, taps: int
) -> tuple[AxisPhase, ...]:
    """Return the phases of one axis that have positions and taps, in order of start.

    Parameters
    ----------
    length : int
        Elements of ``g`` along the axis.
    target : int
        Positions computed: the padded input's positions ``first, ..., first + target - 1``.
    first : int
        The padded position of target position 0 (the padding before, to compute the
        unpadded gradient directly; 0 for the whole padded gradient).
    stride, dilation, taps : int
        The forward convolution's, along this axis.

    Returns
    -------
    tuple of AxisPhase
        A phase with no tap (possible when ``k < s`` or ``gcd(s, d) > 1``) receives no
        gradient and is left out: its positions are zero.

    Examples
    --------
    Stride 2 and 4 taps: each phase has two of them, the even and the odd ones:

    >>> [(p.start, p.taps, p.offset) for p in axis_phases(3, 6, 1, 2, 1, 4)]
    [(0, slice(0, 3, 2), -1), (1, slice(1, 4, 2), 0)]

    Stride 2 and dilation 2: only the even positions are ever reached:

    >>> axis_phases(3, 7, 0, 2, 2, 2)
    (AxisPhase(start=0, count=4, taps=slice(0, 2, 1), offset=-1),)
    """
    period = stride // math.gcd(stride, dilation)
    spacing = dilation // math.gcd(stride, dilation)
    phases = []
    for start in range(min(stride, target)):
        position = start + first  # padded position of the phase's first target position
        first_tap = next(
            (t for t in range(min(taps, period)) if (t * dilation - position) % stride == 0),
            None,
        )
        if first_tap is None:
            continue
        count = -(-(target - start) // stride)
        tap_count = (taps - 1 - first_tap) // period + 1
        last_tap = first_tap + (tap_count - 1) * period
        offset = (position - first_tap * dilation) // stride - (tap_count - 1) * spacing
        flipped = slice(taps - 1 - last_tap, taps - first_tap, period)
        phases.append(AxisPhase(start, count, flipped, offset))
    return tuple(phases)


@dataclasses.dataclass(frozen=True)
class PhaseGroup:
    """Phases with one sub-kernel shape, computed by one forward correlation.

    Attributes
    ----------
    phases : tuple of tuple of AxisPhase
        The group's phases, one :class:`AxisPhase` per spatial axis each: the product of
        one set of phases per axis (those whose sub-kernels have the group's tap count).
    geometry : ConvGeometry
        The correlation of the whole batch: input ``g`` cropped to ``crop`` (a view) and
        zero padded, ``len(phases) * C_in`` output channels in the forward call's groups
        (each group's phases stacked), stride 1, dilation ``delta``.
    crop : tuple of slice
        The elements of ``g`` the correlation reads, per spatial axis.
    starts : tuple of tuple of int
        Per phase, the correlation output position of the phase's first position, per axis.
    reads_all : bool
        Whether ``crop`` is all of ``g`` (the view is then as contiguous as ``g``).
    """

    phases: tuple[tuple[AxisPhase, ...], ...]
    geometry: ConvGeometry
    crop: tuple[slice, ...]
    starts: tuple[tuple[int, ...], ...]
    reads_all: bool


@dataclasses.dataclass(frozen=True)
class PhaseLayout:
    """The phase decomposition of one input gradient, before any dtype or budget.

    Attributes
    ----------
    groups : tuple of PhaseGroup
    whole : bool
        Every target position belongs to some group (else the others are zero).
    padded : bool
        The target is the padded gradient (non-zero padding modes, then folded back by
        :func:`~mimo_conv._core.padding_adjoint.unpad_adjoint`); else the gradient itself.
    target_shape : tuple of int
        Spatial shape of the target.
    """

    groups: tuple[PhaseGroup, ...]
    whole: bool
    padded: bool
    target_shape: tuple[int, ...]

    @property
    def direct(self) -> bool:
        """One correlation whose output is the whole target, as it is (stride 1, zeros)."""
        if not (self.whole and not self.padded and len(self.groups) == 1):
            return False
        group = self.groups[0]
        return len(group.phases) == 1 and group.geometry.output_shape == self.target_shape

    def output_elements(self, group: PhaseGroup) -> int:
        """Elements of one image's output of ``group``'s correlation."""
        return group.geometry.out_channels * math.prod(group.geometry.output_shape)


def phase_layout(geometry: ConvGeometry, positions: tuple[int, ...]) -> PhaseLayout:
    """Decompose the input gradient of ``geometry`` into phase groups.

    ``positions`` is the spatial shape of ``grad_output`` (for a transposed convolution
    with ``output_padding >= stride`` it is smaller than ``geometry.output_shape``: the
    missing positions are zero padding of the correlations).

    Examples
    --------
    The 2 x upsampling layer: four phases of 2 x 2 taps, one correlation:

    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=3, out_channels=8, groups=1, input_shape=(8, 8),
    ...     kernel_shape=(4, 4), stride=(2, 2), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> layout = phase_layout(g, (4, 4))
    >>> [len(group.phases) for group in layout.groups], layout.direct
    ([4], False)
    >>> inner = layout.groups[0].geometry
    >>> inner.out_channels, inner.kernel_shape, inner.padding, inner.output_shape
    (12, (2, 2), ((1, 1), (1, 1)), (5, 5))
    """
    padded = geometry.padding_mode != "zeros"
    target_shape = geometry.padded_shape if padded else geometry.input_shape
    per_axis = [
        axis_phases(length, target, 0 if padded else before, step, spacing, taps)
        for length, target, (before, _), step, spacing, taps in zip(
            positions,
            target_shape,
            geometry.padding,
            geometry.stride,
            geometry.dilation,
            geometry.kernel_shape,
            strict=True,
        )
    ]
    whole = all(
        sum(phase.count for phase in phases) == target
        for phases, target in zip(per_axis, target_shape, strict=True)
    )
    by_taps = [
        {count: tuple(p for p in phases if p.tap_count == count) for count in _tap_counts(phases)}
        for phases in per_axis
    ]
    groups = []
    for shape in itertools.product(*(sorted(counts) for counts in by_taps)):
        axes = [counts[taps] for counts, taps in zip(by_taps, shape, strict=True)]
        group = _group(geometry, positions, shape, axes)
        if group is None:  # its windows miss g entirely: zero
            whole = False
        else:
            groups.append(group)
    return PhaseLayout(tuple(groups), whole, padded, target_shape)


def _tap_counts(phases: tuple[AxisPhase, ...]) -> list[int]:
    """Return the distinct tap counts of one axis's phases."""
    return list(dict.fromkeys(phase.tap_count for phase in phases))


def _group(
    geometry: ConvGeometry,
    positions: tuple[int, ...],
    shape: tuple[int, ...],
    axes: list[tuple[AxisPhase, ...]],
) -> PhaseGroup | None:
    """Return the correlation of the phases ``product(*axes)``, sub-kernels of ``shape``."""
    crops, pads, lowests, dilations = [], [], [], []
    for length, along, taps, step, spacing in zip(
        positions, axes, shape, geometry.stride, geometry.dilation, strict=True
    ):
        delta = spacing // math.gcd(step, spacing)
        lowest = min(phase.offset for phase in along)
        span = max(phase.offset - lowest + phase.count for phase in along)
        end = lowest + span + (taps - 1) * delta  # one past the last element read
        low, high = max(lowest, 0), min(end, length)
        if low >= high:
            return None
        crops.append(slice(low, high))
        pads.append((low - lowest, end - high))
        lowests.append(lowest)
        dilations.append(delta)
    phases = tuple(itertools.product(*axes))
    starts = tuple(
        tuple(phase.offset - lowest for phase, lowest in zip(combo, lowests, strict=True))
        for combo in phases
    )
    inner = ConvGeometry(
        batch_size=geometry.batch_size,
        in_channels=geometry.out_channels,
        out_channels=len(phases) * geometry.in_channels,
        groups=geometry.groups,
        input_shape=tuple(crop.stop - crop.start for crop in crops),
        kernel_shape=shape,
        stride=(1,) * geometry.spatial_dims,
        dilation=tuple(dilations),
        padding=tuple(pads),
        padding_mode="zeros",
        batched=True,
    )
    reads_all = all(
        crop.start == 0 and crop.stop == length
        for crop, length in zip(crops, positions, strict=True)
    )
    return PhaseGroup(phases, inner, tuple(crops), starts, reads_all)


def phase_kernels(weight: NDArray[Any], geometry: ConvGeometry, group: PhaseGroup) -> NDArray[Any]:
    """Return the stacked kernels of ``group``'s correlation: per channel group, by phase.

    ``weight`` ``(C_out, C_in/groups, *k)`` is viewed with its channel axes swapped per
    group and flipped (as :func:`~mimo_conv._gradients.input_gradient.input_gradient_kernels`
    does), each phase takes its sub-kernel, and the phases are stacked inside each channel
    group: output channel ``(G * phases + f) * C_in/groups + c`` of the correlation is
    phase ``f``'s channel ``c`` of group ``G``. A new contiguous array, at most the size
    of ``weight``.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(4,),
    ...     kernel_shape=(3,), stride=(2,), dilation=(1,), padding=((1, 1),),
    ... )
    >>> layout = phase_layout(g, (2,))
    >>> [phase_kernels(np.array([[[1, 2, 3]]]), g, group) for group in layout.groups]
    [array([[[2]]]), array([[[3, 1]]])]
    """
    count, groups, kernel = len(group.phases), geometry.groups, geometry.kernel_shape
    swapped = weight.reshape(
        (groups, geometry.out_channels_per_group, geometry.in_channels_per_group, *kernel)
    ).swapaxes(1, 2)
    flipped = np.flip(swapped, axis=tuple(range(3, 3 + len(kernel))))
    indices: list[tuple[Any, ...]] = [
        (Ellipsis, *(phase.taps for phase in combo)) for combo in group.phases
    ]
    stacked = np.stack([flipped[index] for index in indices], axis=1)
    return np.ascontiguousarray(
        stacked.reshape(
            (
                count * geometry.in_channels,
                geometry.out_channels_per_group,
                *group.geometry.kernel_shape,
            )
        )
    )


@dataclasses.dataclass(frozen=True)
class PhasePlan:
    """The planned phase route: chunks of images and one forward plan per phase group.

    Attributes
    ----------
    layout : PhaseLayout
    images : int
        Images per chunk.
    plans : tuple of ConvPlan
        Per group, the plan of one chunk's correlation.
    seconds : float
        Predicted time of the whole call.
    own_bytes : int
        The route's own temporaries besides the paths': the largest chunk's phase outputs
        and padded gradient, and the stacked kernels.
    """

    layout: PhaseLayout
    images: int
    plans: tuple[ConvPlan, ...]
    seconds: float
    own_bytes: int

    @property
    def note(self) -> str:
        """One line: the correlations, their phases and paths."""
        groups = self.layout.groups
        paths = ", ".join(
            f"{len(group.phases)} x {'x'.join(map(str, group.geometry.kernel_shape))} on "
            f"{plan.chosen!r}"
            for group, plan in zip(groups, self.plans, strict=True)
        )
        return (
            f"{len(groups)} correlation{'s' if len(groups) != 1 else ''} over "
            f"{sum(len(group.phases) for group in groups)} phase(s), no zeros inserted "
            f"(phases x taps on path: {paths}); {self.images} image(s) per chunk"
        )


def phase_bytes_per_image(layout: PhaseLayout, itemsize: int, channels: int) -> int:
    """Temporary bytes of one image in the phase route, besides the paths' own.

    A group's correlation output (unless it is the result itself: :attr:`PhaseLayout.direct`),
    alive with the padded gradient when the target is padded, which is then alive with the
    interior copies of ``unpad_adjoint`` (at most two, each at most the padded size).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(5,),
    ...     kernel_shape=(2,), stride=(2,), dilation=(1,), padding=((0, 0),),
    ... )  # two phases of one tap each, one correlation of 2 channels over 3 positions
    >>> phase_bytes_per_image(phase_layout(g, (2,)), 8, 1)
    48
    """
    outputs = 0 if layout.direct else max(layout.output_elements(g) for g in layout.groups)
    if not layout.padded:
        return itemsize * outputs
    target = channels * math.prod(layout.target_shape)
    return itemsize * (target + max(outputs, 2 * target))


def plan_phases(
    geometry: ConvGeometry,
    plan: DtypePlan,
    method: str,
    budget: int,
    positions: tuple[int, ...],
    contiguous: bool = True,
    operand: np.dtype[Any] | None = None,
) -> PhasePlan | None:
    """Plan the phase route within ``budget`` (None: it does not fit, or has no work).

    ``positions`` is the spatial shape of ``grad_output``, ``contiguous`` whether it is
    C-contiguous (a correlation reading all of it then reads it in place), ``operand`` its
    dtype (default the compute dtype): the engine converts it, within its plan's budget.

    As the engine route: chunks of images whose own buffers take at most half the budget,
    else one image if every group's path still fits beside it; a direct correlation (its
    output is the result) runs the whole batch and leaves the chunks to the engine.

    Examples
    --------
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> g = ConvGeometry(
    ...     batch_size=2, in_channels=3, out_channels=4, groups=1, input_shape=(9, 9),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(2, 2), padding=((2, 2), (2, 2)),
    ... )
    >>> planned = plan_phases(g, plan_dtypes(np.dtype(np.float64)), "auto", 2**20, (5, 5))
    >>> planned.layout.direct, planned.images, planned.own_bytes  # only the kernels' copy
    (True, 2, 864)
    """
    layout = phase_layout(geometry, positions)
    if not layout.groups or geometry.batch_size == 0:
        return None
    item = plan.compute.itemsize
    own = phase_bytes_per_image(layout, item, geometry.in_channels)
    kernels = _kernel_bytes(geometry, item)
    batch = geometry.batch_size
    options = (batch,) if own == 0 else (min(batch, (budget // 2) // own), 1)
    for images in dict.fromkeys(options):
        room = budget - images * own - kernels
        if images < 1 or room <= 0:
            continue
        plans = tuple(
            _plan_group(group, plan, method, images, room, (contiguous, operand), layout.direct)
            for group in layout.groups
        )
        if all(planned.chosen is not None for planned in plans):
            seconds = _seconds(layout, plans, images, batch, item, geometry.in_channels)
            return PhasePlan(layout, images, plans, seconds, images * own + kernels)
    return None


def _plan_group(
    group: PhaseGroup,
    plan: DtypePlan,
    method: str,
    images: int,
    room: int,
    source: tuple[bool, np.dtype[Any] | None],
    direct: bool,
) -> ConvPlan:
    """Plan one group's correlation of ``images`` images in ``room`` bytes.

    ``source``: whether ``grad_output`` is C-contiguous, and its dtype (None: the compute
    dtype). A direct correlation rounds to the output dtype itself; the others give the
    compute dtype, each position rounded once when its phase is copied.
    """
    contiguous, operand = source
    part = dataclasses.replace(group.geometry, batch_size=images)
    inner_plan = DtypePlan(compute=plan.compute, output=plan.output if direct else plan.compute)
    operands = (plan.compute if operand is None else operand, plan.compute)
    return plan_conv(part, inner_plan, operands, contiguous and group.reads_all, room, method)


def _seconds(
    layout: PhaseLayout,
    plans: tuple[ConvPlan, ...],
    images: int,
    batch: int,
    itemsize: int,
    channels: int,
) -> float:
    """Predicted time: every chunk's correlations, the phase copies and the padding adjoint."""
    chunk_count = -(-batch // images)
    moved = 0 if layout.direct else 2 * sum(layout.output_elements(g) for g in layout.groups)
    if not layout.whole:
        moved += channels * math.prod(layout.target_shape)  # the zeros
    if layout.padded:
        moved += 4 * channels * math.prod(layout.target_shape)
    calls = sum(len(group.phases) for group in layout.groups) + 2
    return (
        chunk_count * sum(planned.cost.seconds for planned in plans)
        + batch * itemsize * moved / COPY_BYTES_PER_SECOND
        + chunk_count * calls * SECONDS_PER_CALL
    )


def phase_input_gradient(
    grads: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    plan: DtypePlan,
    route: PhasePlan,
) -> NDArray[Any]:
    """``dL/dx`` of a batch (``grads`` and ``weight`` in the compute dtype) by ``route``.

    Examples
    --------
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(4,),
    ...     kernel_shape=(3,), stride=(2,), dilation=(1,), padding=((1, 1),),
    ... )
    >>> dtypes = plan_dtypes(np.dtype(np.int64))
    >>> route = plan_phases(g, dtypes, "auto", 4096, (2,))
    >>> phase_input_gradient(np.array([[[1, 10]]]), np.array([[[1, 2, 3]]]), g, dtypes, route)
    array([[[ 2, 13, 20, 30]]])
    """
    layout = route.layout
    batch, channels = geometry.batch_size, geometry.in_channels
    kernels = [phase_kernels(weight, geometry, group) for group in layout.groups]
    if layout.direct:  # one correlation, whose output is the gradient itself
        group = layout.groups[0]
        view = grads[(slice(None), slice(None), *group.crop)]
        inner = dataclasses.replace(group.geometry, batch_size=batch)
        planned = route.plans[0]
        method = planned.cost.method
        call = plan_for(view, kernels[0], inner, planned.plan, planned.budget, method)
        with np.errstate(all="ignore"):
            return run_conv(view, kernels[0], None, call)
    # The gradient itself is the target when the padding is zeros: each position is written
    # once, by its phase (zeros first where no phase reaches); else a padded target per chunk.
    fill = np.zeros if not (layout.whole or layout.padded) else np.empty
    result = fill((batch, channels, *geometry.input_shape), plan.output)
    # inf * 0 and overflow give IEEE results (nan, inf) in the outputs they reach, no warnings.
    with np.errstate(all="ignore"):
        for image_slice in chunks(batch, route.images):
            count = image_slice.stop - image_slice.start
            if layout.padded:
                shape = (count, channels, *layout.target_shape)
                target = (np.empty if layout.whole else np.zeros)(shape, plan.compute)
            else:
                target = result[image_slice]
            for group, stacked, planned in zip(layout.groups, kernels, route.plans, strict=True):
                _run_group(grads[image_slice], stacked, group, planned, target, geometry)
            if layout.padded:
                part = dataclasses.replace(geometry, batch_size=count)
                result[image_slice] = unpad_adjoint(target, part)
            del target  # before the next chunk's buffers are allocated
    return result


def _run_group(
    grads: NDArray[Any],
    kernels: NDArray[Any],
    group: PhaseGroup,
    planned: ConvPlan,
    target: NDArray[Any],
    geometry: ConvGeometry,
) -> None:
    """One group's correlation on a chunk, each phase copied into its strided view of ``target``."""
    count = grads.shape[0]
    view = grads[(slice(None), slice(None), *group.crop)]
    inner = dataclasses.replace(group.geometry, batch_size=count)
    call = plan_for(view, kernels, inner, planned.plan, planned.budget, planned.cost.method)
    out = run_conv(view, kernels, None, call)
    groups, per_group = geometry.groups, geometry.in_channels_per_group
    spatial = out.shape[2:]
    phased = out.reshape((count, groups, len(group.phases), per_group, *spatial))
    into = target.reshape((count, groups, per_group, *target.shape[2:]))
    for index, (combo, starts) in enumerate(zip(group.phases, group.starts, strict=True)):
        source = tuple(
            slice(start, start + phase.count) for phase, start in zip(combo, starts, strict=True)
        )
        strided = tuple(
            slice(phase.start, None, step)
            for phase, step in zip(combo, geometry.stride, strict=True)
        )
        destination: tuple[Any, ...] = (slice(None), slice(None), slice(None), *strided)
        origin: tuple[Any, ...] = (slice(None), slice(None), index, slice(None), *source)
        into[destination] = phased[origin]


def phase_budget(
    geometry: ConvGeometry,
    plan: DtypePlan,
    positions: tuple[int, ...],
    operand: np.dtype[Any] | None = None,
) -> int | None:
    """Return the least budget under which :func:`plan_phases` plans the route (None: no work).

    One image's own buffers (the whole batch when the correlation writes the result
    itself), the stacked kernels, and the largest of the groups' smallest working sets.

    Examples
    --------
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(5,),
    ...     kernel_shape=(3,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> least = phase_budget(g, plan_dtypes(np.dtype(np.int64)), (3,))
    >>> plan_phases(g, plan_dtypes(np.dtype(np.int64)), "auto", least, (3,)) is not None
    True
    >>> plan_phases(g, plan_dtypes(np.dtype(np.int64)), "auto", least - 1, (3,)) is None
    True
    """
    layout = phase_layout(geometry, positions)
    if not layout.groups or geometry.batch_size == 0:
        return None
    item = plan.compute.itemsize
    own = phase_bytes_per_image(layout, item, geometry.in_channels)
    images = geometry.batch_size if own == 0 else 1
    paths = max(
        min(
            cost.needs
            for cost in _plan_group(
                group, plan, "auto", images, 2**62, (True, operand), layout.direct
            ).candidates
            if cost.needs > 0
        )
        for group in layout.groups
    )
    return images * own + _kernel_bytes(geometry, item) + paths


def _kernel_bytes(geometry: ConvGeometry, itemsize: int) -> int:
    """Bytes of the stacked kernels of every group: at most those of ``weight``."""
    return itemsize * geometry.out_channels * geometry.terms_per_output
