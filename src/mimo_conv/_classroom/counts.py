"""What a convolution costs: output shape, arithmetic and memory, without running it.

Exercises 2, 3 and 4 of the section ask for the forward and backward cost of a
convolution in multiplications and additions and for its memory footprint. Here they are
one call: :func:`cost` turns shapes and options into a :class:`ConvCost`.

The counts are those of the definition, the sums the result is made of, not of any one
path: an output element that sums ``n`` products costs ``n`` multiplications and
``n - 1`` additions, plus one addition for the bias. Gradients are sums too, counted the
same way: ``dL/dx[i]`` sums one product per (output, tap) pair that reads ``x[i]``, and
``dL/dweight[t]`` one per output position. With ``exclude_padding=True`` the products
with padded zeros (which are known to be zero) are not counted, nor the additions of
those zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from mimo_conv._core.arguments import IntOrInts, PaddingArg, as_shape
from mimo_conv._core.dtypes import plan_dtypes
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.geometry_cache import build_geometry
from mimo_conv._core.memory import format_bytes
from mimo_conv._engine.cost_model import workspace_bytes
from mimo_conv._paths.registry import METHODS, check_method

ShapeArg = tuple[int, ...] | list[int]


def _geometry(
    input_shape: object,
    weight_shape: object,
    *,
    bias: bool,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
    padding_mode: object = "zeros",
) -> ConvGeometry:
    """Validate shapes and options exactly as :func:`mimo_conv.conv` would."""
    weight = as_shape(weight_shape, "weight_shape")
    return build_geometry(
        as_shape(input_shape, "input_shape"),
        weight,
        (weight[0],) if bias and weight else None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )


def output_shape(
    input_shape: ShapeArg,
    weight_shape: ShapeArg,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
) -> tuple[int, ...]:
    """Return the shape :func:`mimo_conv.conv` gives for inputs of these shapes.

    Parameters
    ----------
    input_shape : tuple of int
        ``(N, C_in, *spatial)`` or ``(C_in, *spatial)``.
    weight_shape : tuple of int
        ``(C_out, C_in // groups, *kernel)``.
    stride, padding, dilation, groups
        As in :func:`mimo_conv.conv`, and checked the same way.

    Returns
    -------
    tuple of int
        ``(N, C_out, *out)`` or ``(C_out, *out)``, each spatial size by the law
        ``floor((in + before + after - dilation * (k - 1) - 1) / stride) + 1``.

    Examples
    --------
    >>> output_shape((2, 3, 3), (3, 2, 2, 2))
    (3, 2, 2)
    >>> output_shape((8, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3)
    (8, 64, 112, 112)
    >>> output_shape((3, 5, 5), (2, 3, 3, 3), padding="same", dilation=2)
    (2, 5, 5)
    >>> output_shape((3, 5, 5), (2, 4, 3, 3))
    Traceback (most recent call last):
    ...
    ValueError: Given groups=1, weight of shape (2, 4, 3, 3), expected x of shape (3, 5, 5) ...
    """
    geometry = _geometry(
        input_shape,
        weight_shape,
        bias=False,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    return geometry.out_shape


@dataclass(frozen=True)
class ConvCost:
    """Arithmetic and memory of one convolution, as :func:`cost` counts them.

    Every count is exact (a Python int). Printing a ``ConvCost`` shows a table.

    Attributes
    ----------
    geometry : ConvGeometry
        The validated shapes and options.
    dtype : numpy.dtype
        The dtype the memory is counted in.
    bias : bool
        Whether the layer adds a bias.
    exclude_padding : bool
        Whether products with padded zeros (and the additions of them) are left out.
    forward_multiplications, forward_additions : int
        The forward pass ``y = conv(x, weight) + bias``.
    backward_input_multiplications, backward_input_additions : int
        The gradient with respect to the input, ``dL/dx`` from ``dL/dy``.
    backward_weight_multiplications, backward_weight_additions : int
        The gradient with respect to the weight, and the bias's (additions only).
    input_bytes, weight_bytes, bias_bytes, output_bytes : int
        The arrays of the forward pass.
    saved_for_backward_bytes : int
        What the forward pass must keep for the backward pass: the input (to form
        ``dL/dweight``) and the weight (to form ``dL/dx``).
    gradient_bytes : int
        The gradients the backward pass returns: as large as the input, weight and bias.
    workspace : tuple of (str, int)
        Temporary bytes each applicable method allocates besides its output, from
        :func:`mimo_conv._engine.cost_model.workspace_bytes`.

    Examples
    --------
    >>> c = cost((2, 3, 3), (3, 2, 2, 2), bias=True)
    >>> c.forward_multiplications, c.forward_additions  # 12 outputs x (8 products, 7 + 1 adds)
    (96, 96)
    >>> c.backward_input_multiplications, c.backward_weight_multiplications
    (96, 96)
    >>> c.input_bytes, c.output_bytes  # float32
    (72, 48)
    >>> "naive" in dict(c.workspace), "matmul" in dict(c.workspace)  # matmul needs 1 x 1
    (True, False)
    """

    geometry: ConvGeometry
    dtype: np.dtype[Any]
    bias: bool
    exclude_padding: bool
    forward_multiplications: int
    forward_additions: int
    backward_input_multiplications: int
    backward_input_additions: int
    backward_weight_multiplications: int
    backward_weight_additions: int
    input_bytes: int
    weight_bytes: int
    bias_bytes: int
    output_bytes: int
    saved_for_backward_bytes: int
    gradient_bytes: int
    workspace: tuple[tuple[str, int], ...]

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of the output, as :func:`output_shape` returns it."""
        return self.geometry.out_shape

    @property
    def forward_operations(self) -> int:
        """Multiplications plus additions of the forward pass."""
        return self.forward_multiplications + self.forward_additions

    @property
    def backward_operations(self) -> int:
        """Multiplications plus additions of both gradients."""
        return (
            self.backward_input_multiplications
            + self.backward_input_additions
            + self.backward_weight_multiplications
            + self.backward_weight_additions
        )

    def __str__(self) -> str:
        g = self.geometry
        leading = (g.batch_size,) if g.batched else ()
        input_shape = (*leading, g.in_channels, *g.input_shape)
        weight_shape = (g.out_channels, g.in_channels_per_group, *g.kernel_shape)
        options = (
            f"stride={g.stride}, padding={g.padding}, dilation={g.dilation}, groups={g.groups}"
        )
        counted = "products with padded zeros excluded" if self.exclude_padding else "all"
        rows: list[tuple[str, str, str]] = [
            ("", "multiplications", "additions"),
            ("forward", f"{self.forward_multiplications:,}", f"{self.forward_additions:,}"),
            (
                "backward: input",
                f"{self.backward_input_multiplications:,}",
                f"{self.backward_input_additions:,}",
            ),
            (
                "backward: weight" + (" + bias" if self.bias else ""),
                f"{self.backward_weight_multiplications:,}",
                f"{self.backward_weight_additions:,}",
            ),
        ]
        width = max(len(row[0]) for row in rows)
        number = max(len(cell) for row in rows for cell in row[1:])
        lines = [
            f"convolution of input {input_shape} with weight {weight_shape}"
            + (" and bias" if self.bias else ""),
            f"  {options}",
            f"  output shape {self.out_shape}, dtype {self.dtype}, counting {counted}",
            "",
        ]
        lines += [f"  {a:<{width}}  {b:>{number}}  {c:>{number}}" for a, b, c in rows]
        memory = [
            ("input", self.input_bytes),
            ("weight", self.weight_bytes),
            *([("bias", self.bias_bytes)] if self.bias else []),
            ("output", self.output_bytes),
            ("kept for backward (input, weight)", self.saved_for_backward_bytes),
            ("gradients (input, weight" + (", bias)" if self.bias else ")"), self.gradient_bytes),
            *((f"temporary of method {name!r}", size) for name, size in self.workspace),
        ]
        label = max(len(name) for name, _ in memory)
        digits = max(len(f"{size:,}") for _, size in memory)
        lines += ["", "  memory (bytes)"]
        lines += [
            f"  {name:<{label}}  {size:>{digits},}  ({format_bytes(size)})" for name, size in memory
        ]
        return "\n".join(lines)


def _ceil_div(numerator: int, denominator: int) -> int:
    """``ceil(numerator / denominator)`` in integers, for a positive denominator."""
    return -(-numerator // denominator)


def _multiples_in(low: int, high: int, step: int, count: int) -> int:
    """Count the ``i`` in ``[0, count)`` with ``low <= i * step < high``."""
    first = max(0, _ceil_div(low, step))
    stop = min(count, _ceil_div(high, step))
    return max(0, stop - first)


@dataclass(frozen=True)
class _Axis:
    """One spatial axis as two progressions: positions ``p * stride`` and taps ``t * dilation``.

    A kernel tap ``t`` of the window at output position ``p`` reads padded element
    ``p * stride + t * dilation``; the input itself holds padded elements
    ``[before, before + size)``.
    """

    size: int
    taps: int
    stride: int
    dilation: int
    before: int
    after: int
    out: int

    def pairs_reading(self, low: int, high: int) -> int:
        """Count the (position, tap) pairs that read a padded element in ``[low, high)``.

        One term per element of the shorter progression: ``O(min(out, taps))``.
        """
        if self.out <= self.taps:
            return sum(
                _multiples_in(
                    low - p * self.stride, high - p * self.stride, self.dilation, self.taps
                )
                for p in range(self.out)
            )
        return sum(
            _multiples_in(low - t * self.dilation, high - t * self.dilation, self.stride, self.out)
            for t in range(self.taps)
        )

    def positions_reading(self, low: int, high: int) -> int:
        """Count the output positions with at least one tap in ``[low, high)``."""
        return _covered(self.out, self.stride, self.taps, self.dilation, low, high)

    def taps_reading(self, low: int, high: int) -> int:
        """Count the kernel taps that read ``[low, high)`` from at least one output position."""
        return _covered(self.taps, self.dilation, self.out, self.stride, low, high)

    def elements_read(self, low: int, high: int) -> int:
        """Count the padded elements in ``[low, high)`` that some (position, tap) pair reads."""
        return _distinct_sums(self.out, self.stride, self.taps, self.dilation, low, high)


def _covered(count: int, step: int, other: int, other_step: int, low: int, high: int) -> int:
    """Count the ``i`` in ``[0, count)`` with a ``j`` in ``[0, other)`` reaching ``[low, high)``.

    That is ``low <= i * step + j * other_step < high``; ``O(min(count, other))`` steps.
    """
    if count <= other:
        return sum(
            1
            for i in range(count)
            if _multiples_in(low - i * step, high - i * step, other_step, other) > 0
        )
    # Each j admits an interval of i; the intervals move down as j grows: merge them.
    intervals = [
        (
            max(0, _ceil_div(low - j * other_step, step)),
            min(count, _ceil_div(high - j * other_step, step)),
        )
        for j in range(other)
    ]
    return _union_length(intervals)


def _distinct_sums(count: int, step: int, other: int, other_step: int, low: int, high: int) -> int:
    """Count the distinct ``i * step + j * other_step`` in ``[low, high)``.

    Here ``0 <= i < count`` and ``0 <= j < other``. Iterate over the shorter
    progression (say ``j``): its element ``j * other_step = r + q0 * step``
    (``0 <= r < step``) adds the values ``r + q * step`` for ``q`` in
    ``[q0, q0 + count)``. Values of one residue ``r`` are distinct exactly when their
    ``q`` are, so the answer is the length of the union of the ``q`` intervals of each
    residue, clipped to the range.
    """
    if count < other:
        count, step, other, other_step = other, other_step, count, step
    by_residue: dict[int, list[tuple[int, int]]] = {}
    for j in range(other):
        residue, q0 = (j * other_step) % step, (j * other_step) // step
        first = max(q0, _ceil_div(low - residue, step))
        stop = min(q0 + count, _ceil_div(high - residue, step))
        by_residue.setdefault(residue, []).append((first, stop))
    return sum(_union_length(intervals) for intervals in by_residue.values())


def _union_length(intervals: list[tuple[int, int]]) -> int:
    """Count the integers in the union of half-open intervals ``[start, stop)``."""
    total, reach = 0, None
    for start, stop in sorted(interval for interval in intervals if interval[0] < interval[1]):
        if reach is None or start >= reach:
            total += stop - start
            reach = stop
        elif stop > reach:
            total += stop - reach
            reach = stop
    return total


@dataclass(frozen=True)
class _Sums:
    """A grid of sums along one axis: how many sums, their terms in all, how many non-empty."""

    count: int
    terms: int
    non_empty: int


def _sum_cost(per_axis: list[_Sums], factor: int, extra: int = 0) -> tuple[int, int]:
    """Multiplications and additions of a grid of sums, counted per axis.

    The sum at grid point ``(i0, i1, ...)`` has ``n = factor * n0[i0] * n1[i1] * ...``
    products (``nk[ik]`` its terms along axis ``k``) and ``extra`` further terms that need
    no multiplication (the bias): ``n`` multiplications and ``n + extra - 1`` additions,
    none for an empty sum. The totals factor over the axes, so no grid is built.
    """
    multiplications = factor * math.prod(axis.terms for axis in per_axis)
    if extra > 0:
        non_empty = math.prod(axis.count for axis in per_axis)
    elif factor == 0:
        non_empty = 0
    else:
        non_empty = math.prod(axis.non_empty for axis in per_axis)
    return multiplications, multiplications + (extra - 1) * non_empty


def _counts(
    geometry: ConvGeometry, *, bias: bool, exclude_padding: bool
) -> tuple[int, int, int, int, int, int]:
    """Count the six operations of :class:`ConvCost`, from per-axis closed-form sums.

    Per axis, each of the three sums of the definition (an output over its taps, an input
    element's gradient over the pairs that read it, a tap's gradient over the positions)
    needs only how many sums there are, how many terms they hold together and how many
    are non-empty: :class:`_Axis` counts those without a loop over the positions.
    """
    g = geometry
    axes = [
        _Axis(size, taps, step, spacing, before, after, out)
        for size, taps, step, spacing, (before, after), out in zip(
            g.input_shape, g.kernel_shape, g.stride, g.dilation, g.padding, g.output_shape,
            strict=True,
        )
    ]  # fmt: skip
    forward_axes, input_axes, weight_axes = [], [], []
    for axis in axes:
        padded = axis.before + axis.size + axis.after
        # Padded elements [low, high) count: all of them, or only the input's own.
        low, high = (axis.before, axis.before + axis.size) if exclude_padding else (0, padded)
        pairs = axis.pairs_reading(low, high)
        forward_axes.append(_Sums(axis.out, pairs, axis.positions_reading(low, high)))
        input_axes.append(_Sums(high - low, pairs, axis.elements_read(low, high)))
        weight_axes.append(_Sums(axis.taps, pairs, axis.taps_reading(low, high)))

    # Forward: each output sums C_in/groups * (taps used) products, plus the bias.
    copies = g.batch_size * g.out_channels
    mul, add = _sum_cost(forward_axes, g.in_channels_per_group, int(bias))
    forward = (copies * mul, copies * add)

    # dL/dx: each (padded) input element sums one product per (output channel of its
    # group, position, tap) that reads it. Padded elements are dropped when excluded.
    mul, add = _sum_cost(input_axes, g.out_channels_per_group)
    copies = g.batch_size * g.in_channels
    backward_input = (copies * mul, copies * add)

    # dL/dweight: each tap sums one product per batch element and output position that
    # uses it; dL/dbias sums dL/dy over the batch and positions.
    mul, add = _sum_cost(weight_axes, g.batch_size)
    copies = g.out_channels * g.in_channels_per_group
    outputs = g.batch_size * math.prod(g.output_shape)
    bias_additions = g.out_channels * (outputs - 1) if bias and outputs > 0 else 0
    backward_weight = (copies * mul, copies * add + bias_additions)
    return (*forward, *backward_input, *backward_weight)


def cost(
    input_shape: ShapeArg,
    weight_shape: ShapeArg,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    *,
    bias: bool = False,
    dtype: DTypeLike = np.float32,
    exclude_padding: bool = False,
) -> ConvCost:
    """Count the arithmetic and memory of a convolution, without running it.

    Parameters
    ----------
    input_shape : tuple of int
        ``(N, C_in, *spatial)`` or ``(C_in, *spatial)``.
    weight_shape : tuple of int
        ``(C_out, C_in // groups, *kernel)``.
    stride, padding, dilation, groups
        As in :func:`mimo_conv.conv`, and checked the same way.
    bias : bool, optional
        Whether the layer adds a bias (one more addition per output, and its gradient).
    dtype : data-type, optional
        Dtype of every array, for the memory counts (float32 by default, as in training).
    exclude_padding : bool, optional
        Leave out the products with padded zeros and the additions of them: the cost of
        a path that skips the border instead of multiplying by zero. (This is zero
        padding; with ``padding_mode="reflect"`` and the like the padded elements are
        copies of the input and every product counts, as with the default ``False``.)

    Returns
    -------
    ConvCost
        Its ``str`` is a table.

    Notes
    -----
    An output element that sums ``n = C_in/groups * prod(kernel)`` products costs ``n``
    multiplications and ``n - 1`` additions (plus 1 for the bias), so the forward pass is
    ``N * C_out * prod(out) * n`` multiplications, not "2 x MACs" of each.
    The backward pass forms ``dL/dx`` (one product per (output, tap) pair, summed per
    input element) and ``dL/dweight`` (one product per output position, summed per tap):
    each has as many multiplications as the forward pass. The memory counts are
    ``prod(shape) * itemsize``; the temporary buffer of each method comes from the cost
    model the ``"auto"`` method uses, and methods that cannot compute the call (such as
    ``"matmul"`` for a kernel larger than 1 x 1) are left out.

    Examples
    --------
    The book's example: 3 output channels, 2 x 2 outputs, 2 channels x 2 x 2 taps each.

    >>> c = cost((2, 3, 3), (3, 2, 2, 2))
    >>> c.out_shape
    (3, 2, 2)
    >>> c.forward_multiplications, c.forward_additions  # 12 outputs x (8 products, 7 adds)
    (96, 84)

    Exercise 4, a 1 x 1 kernel: ``c_o * c_i * h * w`` multiplications.

    >>> cost((3, 3, 3), (2, 3, 1, 1)).forward_multiplications
    54

    Exercise 3: doubling the channels quadruples the work.

    >>> small = cost((3, 32, 32), (8, 3, 3, 3), padding=1)
    >>> large = cost((6, 32, 32), (16, 6, 3, 3), padding=1)
    >>> large.forward_multiplications / small.forward_multiplications
    4.0

    Padding adds products with zeros, unless they are excluded:

    >>> cost((1, 3, 3), (1, 1, 3, 3), padding=1).forward_multiplications
    81
    >>> cost((1, 3, 3), (1, 1, 3, 3), padding=1, exclude_padding=True).forward_multiplications
    49

    The whole table:

    >>> print(cost((3, 224, 224), (64, 3, 7, 7), stride=2, padding=3, bias=True))
    convolution of input (3, 224, 224) with weight (64, 3, 7, 7) and bias
      stride=(2, 2), padding=((3, 3), (3, 3)), dilation=(1, 1), groups=1
      output shape (64, 112, 112), dtype float32, counting all
    <BLANKLINE>
                               multiplications        additions
      forward                      118,013,952      118,013,952
      backward: input              118,013,952      117,856,629
      backward: weight + bias      118,013,952      118,807,296
    <BLANKLINE>
      memory (bytes)
      input                                602,112  (588.0 KiB)
      weight                                37,632  (36.8 KiB)
      bias                                     256  (256 B)
      output                             3,211,264  (3.1 MiB)
      kept for backward (input, weight)    639,744  (624.8 KiB)
      gradients (input, weight, bias)      640,000  (625.0 KiB)
      temporary of method 'naive'  ...
    """
    geometry = _geometry(
        input_shape,
        weight_shape,
        bias=bool(bias),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    item_dtype = np.dtype(dtype)
    plan = plan_dtypes(item_dtype, item_dtype)
    itemsize = item_dtype.itemsize
    g = geometry
    input_bytes = g.batch_size * g.in_channels * math.prod(g.input_shape) * itemsize
    weight_bytes = g.out_channels * g.terms_per_output * itemsize
    bias_bytes = g.out_channels * itemsize if bias else 0
    output_bytes = math.prod(g.out_shape) * itemsize
    workspace = []
    for method in METHODS:
        # Skip the methods that cannot compute this call (matmul for a kernel larger than
        # 1 x 1), and any the cost model does not describe yet.
        try:
            check_method(method, geometry)
            size = workspace_bytes(method, geometry, plan)
        except ValueError:
            continue
        workspace.append((method, size))
    counts = _counts(geometry, bias=bool(bias), exclude_padding=bool(exclude_padding))
    return ConvCost(
        geometry,
        item_dtype,
        bool(bias),
        bool(exclude_padding),
        forward_multiplications=counts[0],
        forward_additions=counts[1],
        backward_input_multiplications=counts[2],
        backward_input_additions=counts[3],
        backward_weight_multiplications=counts[4],
        backward_weight_additions=counts[5],
        input_bytes=input_bytes,
        weight_bytes=weight_bytes,
        bias_bytes=bias_bytes,
        output_bytes=output_bytes,
        saved_for_backward_bytes=input_bytes + weight_bytes,
        gradient_bytes=input_bytes + weight_bytes + bias_bytes,
        workspace=tuple(workspace),
    )
