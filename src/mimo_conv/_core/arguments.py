"""Argument validation: turn what a caller passed into arrays, a geometry and a dtype plan.

Everything here runs before any arithmetic. Each check raises ``TypeError`` (wrong kind)
or ``ValueError`` (wrong value) with a message of the form "`name` must be <constraint>,
got <value>", quoting the shapes involved.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.dtypes import (
    DtypePlan,
    check_integer_range,
    check_numeric_dtype,
    plan_dtypes,
    python_integers,
)
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.memory import check_output_fits
from mimo_conv._core.padding_rules import is_same_string, same_padding

#: Names accepted by ``padding_mode``, as PyTorch's ``nn.Conv2d`` spells them, plus NumPy's
#: ``"symmetric"`` (reflection that repeats the edge element).
PADDING_MODES = ("zeros", "reflect", "replicate", "circular", "symmetric")
#: Names accepted by ``padding`` as a string.
PADDING_STRINGS = ("valid", "same", "full", "same_lower")


def as_numeric_array(value: object, name: str) -> NDArray[Any]:
    """Convert an array-like to an ndarray of numbers without copying when possible.

    Object arrays have each stored element checked once (a broadcast view's stored
    elements only: see :func:`mimo_conv._core.dtypes.distinct_elements`).

    Examples
    --------
    >>> as_numeric_array([[1, 2], [3, 4]], "x").shape
    (2, 2)
    >>> as_numeric_array([[1, 2], [3]], "x")
    Traceback (most recent call last):
    ...
    ValueError: x must be a rectangular array-like of numbers, got a ragged nested sequence
    """
    try:
        array = np.asarray(value)
    except ValueError as error:
        msg = f"{name} must be a rectangular array-like of numbers, got a ragged nested sequence"
        raise ValueError(msg) from error
    check_numeric_dtype(array, name)
    return array


def as_int(value: object, name: str) -> int:
    """Return ``value`` as a Python int, refusing bools, floats and other types.

    Examples
    --------
    >>> as_int(np.int32(3), "stride")
    3
    >>> as_int(2.0, "stride")
    Traceback (most recent call last):
    ...
    TypeError: stride must be an int, got 2.0 of type float
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        msg = f"{name} must be an int, got {value!r} of type {type(value).__name__}"
        raise TypeError(msg)
    return int(value)


def int_per_axis(value: object, name: str, spatial_dims: int, *, minimum: int) -> tuple[int, ...]:
    """Normalise an int or a sequence of ints to one int per spatial axis.

    Examples
    --------
    >>> int_per_axis(2, "stride", 3, minimum=1)
    (2, 2, 2)
    >>> int_per_axis((1, 2), "dilation", 2, minimum=1)
    (1, 2)
    >>> int_per_axis((1, 2), "stride", 3, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: stride must be an int or a sequence of 3 ints ... got (1, 2) of length 2
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != spatial_dims:
            msg = (
                f"{name} must be an int or a sequence of {spatial_dims} ints (one per spatial "
                f"dimension), got {tuple(value)!r} of length {len(value)}"
            )
            raise ValueError(msg)
        values = tuple(as_int(item, name) for item in value)
    else:
        values = (as_int(value, name),) * spatial_dims
    if any(item < minimum for item in values):
        shown = values[0] if not isinstance(value, Sequence) else values
        msg = f"{name} must be >= {minimum} along every axis, got {shown!r}"
        raise ValueError(msg)
    return values


def padding_pairs(
    padding: object,
    kernel_shape: tuple[int, ...],
    dilation: tuple[int, ...],
    stride: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:
    """Normalise every accepted form of ``padding`` to one ``(before, after)`` pair per axis.

    Accepted forms: an int; one int per axis; one ``(before, after)`` pair per axis;
    ``"valid"`` (none); ``"same"`` (PyTorch's rule: total ``dilation * (k - 1)``, the odd
    element after, stride 1 only); ``"full"`` (``dilation * (k - 1)`` on both sides).

    Examples
    --------
    >>> padding_pairs(1, (3, 3), (1, 1), (1, 1))
    ((1, 1), (1, 1))
    >>> padding_pairs("same", (4,), (1,), (1,))
    ((1, 2),)
    >>> padding_pairs(((0, 1), (2, 3)), (3, 3), (1, 1), (1, 1))
    ((0, 1), (2, 3))
    """
    spatial_dims = len(kernel_shape)
    spans = [step * (taps - 1) for taps, step in zip(kernel_shape, dilation, strict=True)]
    if isinstance(padding, np.ndarray):
        padding = padding.tolist()
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * spatial_dims
        if padding == "same":
            if any(step != 1 for step in stride):
                msg = (
                    f"padding='same' needs stride 1 along every axis (as in PyTorch), "
                    f"got stride={stride!r}"
                )
                raise ValueError(msg)
            return tuple((span // 2, span - span // 2) for span in spans)
        if padding == "full":
            return tuple((span, span) for span in spans)
        msg = f"padding must be an int, a sequence, or one of {PADDING_STRINGS!r}, got {padding!r}"
        raise ValueError(msg)
    if isinstance(padding, Sequence):
        if len(padding) != spatial_dims:
            msg = (
                f"padding must have one entry per spatial dimension ({spatial_dims}), "
                f"got {tuple(padding)!r} of length {len(padding)}"
            )
            raise ValueError(msg)
        pairs = tuple(_pair(item, padding) for item in padding)
    else:
        amount = as_int(padding, "padding")
        pairs = ((amount, amount),) * spatial_dims
    if any(before < 0 or after < 0 for before, after in pairs):
        msg = f"padding must be >= 0 along every axis, got {padding!r}"
        raise ValueError(msg)
    return pairs


def _pair(item: object, padding: Sequence[Any]) -> tuple[int, int]:
    """One axis of a per-axis padding: an int (both sides) or a ``(before, after)`` pair."""
    if isinstance(item, Sequence) and not isinstance(item, str):
        if len(item) != 2:
            msg = (
                "padding entries must be an int or a (before, after) pair, "
                f"got {tuple(item)!r} in padding={padding!r}"
            )
            raise ValueError(msg)
        return as_int(item[0], "padding"), as_int(item[1], "padding")
    amount = as_int(item, "padding")
    return amount, amount


def _check_padding_mode(
    padding_mode: object, pairs: tuple[tuple[int, int], ...], input_shape: tuple[int, ...]
) -> str:
    """Check the mode's name and that the input is large enough for that kind of padding."""
    if padding_mode not in PADDING_MODES:
        msg = f"padding_mode must be one of {PADDING_MODES!r}, got {padding_mode!r}"
        raise ValueError(msg)
    mode = str(padding_mode)
    for axis, (size, (before, after)) in enumerate(zip(input_shape, pairs, strict=True)):
        widest = max(before, after)
        if widest == 0 or mode == "zeros":
            continue
        if mode == "reflect" and widest >= size:
            rule = f"padding < input size ({size})"
        elif mode in ("circular", "symmetric") and widest > size:
            rule = f"padding <= input size ({size})"
        elif mode == "replicate" and size == 0:
            rule = "a non-empty input"
        else:
            continue
        msg = (
            f"padding_mode={mode!r} needs {rule} along spatial axis {axis}, "
            f"got padding {(before, after)!r}"
        )
        raise ValueError(msg)
    return mode


def check_ranks(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    spatial_dims: int | None,
    *,
    weight_layout: str = "C_out, C_in/groups",
    operation: str = "convolution",
) -> int:
    """Check the ranks of ``x`` and ``weight``; return the number of spatial axes.

    Parameters
    ----------
    x_shape, weight_shape : tuple of int
        Shapes of the input and of the kernels.
    spatial_dims : int or None
        Required number of spatial axes (``conv2d`` passes 2), or None to take it from
        ``weight``.
    weight_layout : str, optional
        The two leading axes of ``weight``, as the message should name them.
    operation : str, optional
        The operation, as the message should name it.

    Examples
    --------
    >>> check_ranks((1, 3, 8, 8), (4, 3, 3, 3), 2)
    2
    >>> check_ranks((3, 8), (4, 3, 3, 3), None)
    Traceback (most recent call last):
    ...
    ValueError: x must have 3 (unbatched) or 4 (batched) dimensions ... got x of shape (3, 8)
    """
    if spatial_dims is not None and len(weight_shape) != spatial_dims + 2:
        msg = (
            f"weight must have {spatial_dims + 2} dimensions ({weight_layout}, "
            f"{spatial_dims} kernel dims) for a {spatial_dims}-d {operation}, "
            f"got weight of shape {weight_shape}"
        )
        raise ValueError(msg)
    if len(weight_shape) < 3:
        msg = (
            f"weight must have at least 3 dimensions ({weight_layout}, *kernel), "
            f"got weight of shape {weight_shape}"
        )
        raise ValueError(msg)
    rank = len(weight_shape) - 2
    if len(x_shape) not in (rank + 1, rank + 2):
        msg = (
            f"x must have {rank + 1} (unbatched) or {rank + 2} (batched) dimensions for a "
            f"weight of shape {weight_shape}, got x of shape {x_shape}"
        )
        raise ValueError(msg)
    return rank


def _strict_key(value: object) -> Hashable:
    """Build a cache key that tells ``1`` from ``1.0``, ``True`` and ``np.int64(1)``.

    Plain equality would let a cached geometry answer for ``stride=1.0`` (which must raise),
    so every value is keyed with its type, recursively through tuples and lists.
    Raises ``TypeError`` for values that cannot be hashed (arrays, dicts).
    """
    kind = type(value)
    if kind is int or kind is str:  # the common case, first
        return (kind, value)
    if isinstance(value, (tuple, list)):
        return (kind, tuple(_strict_key(item) for item in value))
    hash(value)
    return (kind, value)


def build_geometry(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    *,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
    padding_mode: object,
    spatial_dims: int | None = None,
) -> ConvGeometry:
    """Validate the shapes and options of a call and return its :class:`ConvGeometry`.

    The work depends only on plain values, so results are cached: a training loop that
    calls ``conv`` with the same shapes and options pays for the checks once. Arguments
    that cannot be hashed (an ndarray ``stride``, say) are validated afresh each time.

    Parameters
    ----------
    x_shape : tuple of int
        ``(N, C_in, *spatial)`` or ``(C_in, *spatial)``.
    weight_shape : tuple of int
        ``(C_out, C_in // groups, *kernel)``.
    bias_shape : tuple of int or None
        ``(C_out,)``, or None for no bias.
    stride, padding, dilation, groups, padding_mode
        As in :func:`mimo_conv.conv`.
    spatial_dims : int or None
        Required number of spatial axes (``conv2d`` passes 2), or None to take it from
        ``weight``.

    Returns
    -------
    ConvGeometry

    Examples
    --------
    >>> build_geometry((1, 3, 8, 8), (4, 3, 3, 3), None, stride=2, padding="same",
    ...                dilation=1, groups=1, padding_mode="zeros").padding
    ((0, 1), (0, 1))
    >>> build_geometry((1, 3, 8, 8), (4, 3, 3, 3), None, stride=2, padding=1,
    ...                dilation=1, groups=1, padding_mode="zeros").out_shape
    (1, 4, 4, 4)
    """
    arguments = (
        x_shape, weight_shape, bias_shape, stride, padding, dilation, groups, padding_mode,
        spatial_dims,
    )  # fmt: skip
    try:
        # Shapes are tuples of ints from ndarray.shape: only the options need strict keys.
        options = tuple(
            _strict_key(option) for option in (stride, padding, dilation, groups, padding_mode)
        )
        key = (x_shape, weight_shape, bias_shape, spatial_dims, options)
    except TypeError:
        return _build_geometry(*arguments)
    geometry = _GEOMETRY_CACHE.get(key)
    if geometry is None:
        geometry = _build_geometry(*arguments)  # raises for invalid arguments: not cached
        if len(_GEOMETRY_CACHE) >= _GEOMETRY_CACHE_SIZE:
            _GEOMETRY_CACHE.clear()
        _GEOMETRY_CACHE[key] = geometry
    return geometry


#: Geometries of recent valid calls, by :func:`_strict_key` of their arguments. Cleared
#: whole when full: simple, and a workload rarely cycles through more distinct calls.
_GEOMETRY_CACHE: dict[Hashable, ConvGeometry] = {}
_GEOMETRY_CACHE_SIZE = 256


def _build_geometry(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
    padding_mode: object,
    spatial_dims: int | None = None,
) -> ConvGeometry:
    """Validate the shapes and options of a call: the uncached work of :func:`build_geometry`."""
    rank = check_ranks(x_shape, weight_shape, spatial_dims)
    batched = len(x_shape) == rank + 2
    batch_size = x_shape[0] if batched else 1
    in_channels = x_shape[-rank - 1]
    input_shape = tuple(x_shape[-rank:])
    out_channels, weight_channels = weight_shape[0], weight_shape[1]
    kernel_shape = tuple(weight_shape[2:])

    group_count = as_int(groups, "groups")
    if group_count < 1:
        msg = f"groups must be >= 1, got {group_count}"
        raise ValueError(msg)
    if out_channels % group_count:
        msg = (
            f"groups must divide the output channels: weight of shape {weight_shape} has "
            f"{out_channels} output channels, which groups={group_count} does not divide"
        )
        raise ValueError(msg)
    if in_channels % group_count:
        msg = (
            f"groups must divide the input channels: x of shape {x_shape} has "
            f"{in_channels} input channels, which groups={group_count} does not divide"
        )
        raise ValueError(msg)
    if in_channels != weight_channels * group_count:
        msg = (
            f"Given groups={group_count}, weight of shape {weight_shape}, expected x of shape "
            f"{x_shape} to have {weight_channels * group_count} channels, "
            f"but got {in_channels} channels instead"
        )
        raise ValueError(msg)
    if bias_shape is not None and bias_shape != (out_channels,):
        msg = (
            f"bias must have shape ({out_channels},) to match weight of shape {weight_shape}, "
            f"got bias of shape {bias_shape}"
        )
        raise ValueError(msg)
    if any(taps < 1 for taps in kernel_shape):
        msg = (
            f"weight must have at least one kernel tap per axis, got weight of shape {weight_shape}"
        )
        raise ValueError(msg)

    strides = int_per_axis(stride, "stride", rank, minimum=1)
    dilations = int_per_axis(dilation, "dilation", rank, minimum=1)
    if is_same_string(padding) and (padding == "same_lower" or strides != (1,) * rank):
        # TF/JAX/ONNX SAME: depends on the input size (see _core/padding_rules.py)
        pairs = same_padding(input_shape, kernel_shape, dilations, strides, lower=padding != "same")
    else:
        pairs = padding_pairs(padding, kernel_shape, dilations, strides)
    mode = _check_padding_mode(padding_mode, pairs, input_shape)

    geometry = ConvGeometry(
        batch_size=batch_size,
        in_channels=in_channels,
        out_channels=out_channels,
        groups=group_count,
        input_shape=input_shape,
        kernel_shape=kernel_shape,
        stride=strides,
        dilation=dilations,
        padding=pairs,
        padding_mode=mode,
        batched=batched,
    )
    for axis, (padded, extent) in enumerate(
        zip(geometry.padded_shape, geometry.window_extent, strict=True)
    ):
        if extent > padded:
            msg = (
                f"the (dilated) kernel must fit in the padded input: along spatial axis {axis} "
                f"the kernel spans {extent} (weight of shape {weight_shape}, "
                f"dilation={dilations}) but the padded input has {padded} "
                f"(x of shape {x_shape}, padding={pairs})"
            )
            raise ValueError(msg)
    return geometry


def prepare_call(
    x: object,
    weight: object,
    bias: object,
    *,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
    padding_mode: object,
    spatial_dims: int | None = None,
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None, ConvGeometry, DtypePlan]:
    """Validate a whole call: arrays, geometry, dtype plan, integer range, output size.

    Returns
    -------
    x, weight, bias : ndarray
        The arguments as arrays (views of the caller's arrays where possible; never
        written to).
    geometry : ConvGeometry
    plan : DtypePlan
    """
    x_array, weight_array, bias_array = as_operands(x, weight, bias)
    geometry = build_geometry(
        x_array.shape,
        weight_array.shape,
        None if bias_array is None else bias_array.shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
        spatial_dims=spatial_dims,
    )
    plan = operands_plan(x_array, weight_array, bias_array)
    check_output_fits(geometry.out_shape, plan.compute)
    x_array, weight_array, bias_array = exact_operands(
        x_array, weight_array, bias_array, plan, geometry.terms_per_output
    )
    return x_array, weight_array, bias_array, geometry, plan


Operands = tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None]


def as_operands(x: object, weight: object, bias: object) -> Operands:
    """Convert ``x``, ``weight`` and ``bias`` (may be None) to arrays of numbers.

    Scans of the data (object elements, integer range) read each stored element once, so
    a huge ``np.broadcast_to`` view costs no more than the values it stores.

    Examples
    --------
    >>> x, weight, bias = as_operands([[1, 2]], [[[1]]], None)
    >>> x.shape, weight.shape, bias
    ((1, 2), (1, 1, 1), None)
    """
    x_array = as_numeric_array(x, "x")
    weight_array = as_numeric_array(weight, "weight")
    bias_array = None if bias is None else as_numeric_array(bias, "bias")
    return x_array, weight_array, bias_array


def operands_plan(x: NDArray[Any], weight: NDArray[Any], bias: NDArray[Any] | None) -> DtypePlan:
    """Plan the dtypes of a call: :func:`mimo_conv._core.dtypes.plan_dtypes` of its operands.

    Examples
    --------
    >>> operands_plan(np.ones(2, np.float16), np.ones(2, np.float16), None).compute
    dtype('float32')
    """
    if bias is None:
        return plan_dtypes(x.dtype, weight.dtype)
    return plan_dtypes(x.dtype, weight.dtype, bias.dtype)


def exact_operands(
    x: NDArray[Any],
    weight: NDArray[Any],
    bias: NDArray[Any] | None,
    plan: DtypePlan,
    terms_per_output: int,
) -> Operands:
    """Make exact arithmetic stay exact: check the int64 range, lift object ints.

    An int64 plan raises ``OverflowError`` when a sum of ``terms_per_output`` products
    (plus the bias) could leave the int64 range; an object plan gets NumPy integers inside
    object arrays replaced by Python ints, which never wrap around. Other plans pass
    through unchanged.

    Examples
    --------
    >>> x = np.array([np.int64(2**62)], dtype=object)
    >>> plan = operands_plan(x, x, None)
    >>> exact_operands(x, x, None, plan, 1)[0] * 4
    array([18446744073709551616], dtype=object)
    """
    if plan.compute.kind == "O":
        x, weight = python_integers(x), python_integers(weight)
        bias = None if bias is None else python_integers(bias)
    if plan.compute.kind == "i":
        check_integer_range(x, weight, bias, terms_per_output)
    return x, weight, bias
