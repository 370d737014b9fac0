"""The printed plan: the table :func:`mimo_conv.explain_method` shows for a call.

Examples
--------
>>> format_seconds(0.0025)
'2.5 ms'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from mimo_conv._core.budget import InputCopyPlan
from mimo_conv._core.dtypes import DtypePlan
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.layouts import CHANNELS_LAST, MemoryOrders
from mimo_conv._core.memory import format_bytes


class _Row(Protocol):
    """What a table row reads of a :class:`~mimo_conv._engine.plan.PathCost`."""

    @property
    def method(self) -> str: ...
    @property
    def flops(self) -> int: ...
    @property
    def bytes_moved(self) -> int: ...
    @property
    def calls(self) -> int: ...
    @property
    def workspace(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def note(self) -> str: ...
    @property
    def needs(self) -> int: ...
    @property
    def copy(self) -> InputCopyPlan | None: ...
    @property
    def feasible(self) -> bool: ...


class _Plan(Protocol):
    """What the table reads of a :class:`~mimo_conv._engine.plan.ConvPlan` (which imports this)."""

    @property
    def geometry(self) -> ConvGeometry: ...
    @property
    def plan(self) -> DtypePlan: ...
    @property
    def budget(self) -> int: ...
    @property
    def candidates(self) -> Sequence[_Row]: ...
    @property
    def chosen(self) -> str | None: ...
    @property
    def layouts(self) -> MemoryOrders: ...
    @property
    def threads(self) -> int: ...
    def memory_error(self) -> str: ...


def format_seconds(seconds: float) -> str:
    """Format a predicted time with a readable unit, ``-`` for a path that cannot run.

    Examples
    --------
    >>> format_seconds(float("inf"))
    '-'
    >>> format_seconds(2e-5)
    '20 us'
    """
    if not math.isfinite(seconds):
        return "-"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def render_plan(plan: _Plan) -> str:
    """Render the plan as a table: one line per path, the chosen one marked ``*``.

    The header names the thread count the predictions assume: the plan's own (the
    :func:`mimo_conv.get_threads` it was made under; plans are cached per thread count).

    Examples
    --------
    >>> import numpy as np
    >>> import mimo_conv as mc
    >>> print(mc.explain_method(np.ones((1, 1, 3)), np.ones((1, 1, 2))))  # doctest: +ELLIPSIS
    method='auto' for x (1, 1, 3) * weight (1, 1, 2), groups=1, ...
    compute dtype float64, memory budget 256.0 MiB, ... thread(s)
    <BLANKLINE>
      path          FLOP      moved   calls  workspace   predicted  note
    ...
    chosen: ...
    """
    g = plan.geometry
    lines = [
        (
            f"method='auto' for x {(g.batch_size, g.in_channels, *g.input_shape)} * weight "
            f"{(g.out_channels, g.in_channels_per_group, *g.kernel_shape)}, "
            f"groups={g.groups}, stride={g.stride}, dilation={g.dilation}, "
            f"padding={g.padding} -> {(g.batch_size, g.out_channels, *g.output_shape)}"
        ),
        (
            f"compute dtype {plan.plan.compute}, memory budget {format_bytes(plan.budget)}, "
            f"{plan.threads} thread(s)"
        ),
    ]
    if plan.layouts.result == CHANNELS_LAST:
        given = "channels last" if plan.layouts.input_channels_last else "not channels last"
        wanted = plan.layouts.result.replace("_", " ")
        lines.append(f"memory order: input {given}, result {wanted}")
    width = max(8, *(len(cost.method) for cost in plan.candidates))
    lines += [
        "",
        (
            f"  {'path':<{width}} {'FLOP':>9} {'moved':>10} {'calls':>7} {'workspace':>10} "
            f"{'predicted':>11}  note"
        ),
    ]
    for cost in plan.candidates:
        mark = "*" if cost.method == plan.chosen else " "
        if cost.feasible:
            note = cost.note + (
                ", input copied in chunks" if cost.copy and cost.copy.chunked else ""
            )
            workspace = format_bytes(cost.workspace)
        else:
            note = f"needs a budget of {format_bytes(cost.needs)}" if cost.needs else cost.note
            workspace = "-"
        lines.append(
            f"{mark} {cost.method:<{width}} {cost.flops:>9.3g} "
            f"{format_bytes(cost.bytes_moved):>10} {cost.calls:>7} {workspace:>10} "
            f"{format_seconds(cost.seconds):>11}  {note}"
        )
    lines.append("")
    if plan.chosen is None:
        lines.append("chosen: none fits the memory budget")
        lines.append(plan.memory_error())
    else:
        lines.append(f"chosen: {plan.chosen!r}")
    return "\n".join(lines)
