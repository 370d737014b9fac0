"""Argument parsing: turn what a caller passed as an option into plain ints and strings.

Everything here reads plain values (no arrays of data) and runs before any arithmetic. Each
check raises ``TypeError`` (wrong kind) or ``ValueError`` (wrong value) with a message of
the form "`name` must be <constraint>, got <value>", quoting the shapes involved.

An int option is a Python int, a NumPy integer or a 0-d integer array (never a bool); a
per-axis option is one such int, one per spatial axis, or, as in PyTorch's convolutions, a
sequence of one int that stands for every axis. ``padding`` has one function per rule
(:func:`padding_pairs` dispatches), so a new rule is one new function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: A per-axis int option (``stride``, ``dilation``, ``output_padding``, ...): one int for
#: every spatial axis, one int per axis, or a one-element sequence (PyTorch's ``(2,)``).
IntOrInts = int | Sequence[int]
#: ``padding``: an :data:`IntOrInts`, one ``(before, after)`` pair per axis, or a name of
#: :data:`PADDING_STRINGS`.
PaddingArg = int | str | Sequence[Any]

#: Names accepted by ``padding_mode``, as PyTorch's ``nn.Conv2d`` spells them, plus NumPy's
#: ``"symmetric"`` (reflection that repeats the edge element).
PADDING_MODES = ("zeros", "reflect", "replicate", "circular", "symmetric")
#: Names accepted by ``padding`` as a string.
PADDING_STRINGS = ("valid", "same", "full", "same_lower")


def as_int(value: object, name: str) -> int:
    """Return ``value`` as a Python int, refusing bools, floats and other types.

    Python ints, NumPy integers and 0-d arrays of an integer dtype are accepted, the same
    for every int argument.

    Examples
    --------
    >>> as_int(np.int32(3), "stride")
    3
    >>> as_int(np.array(2), "groups")
    2
    >>> as_int(2.0, "stride")
    Traceback (most recent call last):
    ...
    TypeError: stride must be an int, got 2.0 of type float
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu":
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        msg = f"{name} must be an int, got {value!r} of type {type(value).__name__}"
        raise TypeError(msg)
    return int(value)


def as_shape(value: object, name: str) -> tuple[int, ...]:
    """Return a shape given as a sequence of non-negative ints as a tuple.

    Examples
    --------
    >>> as_shape([1, 3, np.int64(5), 5], "input_shape")
    (1, 3, 5, 5)
    >>> as_shape(5, "input_shape")
    Traceback (most recent call last):
    ...
    TypeError: input_shape must be a sequence of ints (a shape), got 5 of type int
    >>> as_shape((3, 5.0), "input_shape")
    Traceback (most recent call last):
    ...
    TypeError: input_shape must be an int, got 5.0 of type float
    >>> as_shape((2, -1), "weight_shape")
    Traceback (most recent call last):
    ...
    ValueError: weight_shape must have non-negative sizes, got (2, -1)
    """
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = list(value)  # its items, checked one by one by as_int
    if not isinstance(value, Sequence) or isinstance(value, str):
        kind = type(value).__name__
        msg = f"{name} must be a sequence of ints (a shape), got {value!r} of type {kind}"
        raise TypeError(msg)
    shape = tuple(as_int(item, name) for item in value)
    if any(item < 0 for item in shape):
        msg = f"{name} must have non-negative sizes, got {shape}"
        raise ValueError(msg)
    return shape


def _per_axis_items(value: object) -> Sequence[Any] | None:
    """Return the items of a per-axis option given as a sequence (or 1-d array), else None."""
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return list(value)  # its items, checked one by one by as_int
    if isinstance(value, Sequence) and not isinstance(value, str):
        return value
    return None


def int_per_axis(value: object, name: str, spatial_dims: int, *, minimum: int) -> tuple[int, ...]:
    """Normalise an int or a sequence of ints to one int per spatial axis.

    A sequence of one int stands for every axis, as in PyTorch's ``conv2d(stride=(2,))``.

    Examples
    --------
    >>> int_per_axis(2, "stride", 3, minimum=1)
    (2, 2, 2)
    >>> int_per_axis((1, 2), "dilation", 2, minimum=1)
    (1, 2)
    >>> int_per_axis((2,), "stride", 2, minimum=1)
    (2, 2)
    >>> int_per_axis((1, 2), "stride", 3, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: stride must be an int or a sequence of 3 ints ... got (1, 2) of length 2
    """
    items = _per_axis_items(value)
    if items is None:
        values = (as_int(value, name),) * spatial_dims
    elif len(items) == 1:
        values = (as_int(items[0], name),) * spatial_dims
    elif len(items) == spatial_dims:
        values = tuple(as_int(item, name) for item in items)
    else:
        msg = (
            f"{name} must be an int or a sequence of {spatial_dims} ints (one per spatial "
            f"dimension), got {tuple(items)!r} of length {len(items)}"
        )
        raise ValueError(msg)
    if any(item < minimum for item in values):
        shown = values if items is not None and len(items) > 1 else values[0]
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

    Accepted forms: an int; one int per axis; one ``(before, after)`` pair per axis (a
    sequence of one entry stands for every axis); ``"valid"`` (none, :func:`valid_padding`);
    ``"same"`` (:func:`same_padding`); ``"full"`` (:func:`full_padding`).

    Examples
    --------
    >>> padding_pairs(1, (3, 3), (1, 1), (1, 1))
    ((1, 1), (1, 1))
    >>> padding_pairs((1,), (3, 3), (1, 1), (1, 1))
    ((1, 1), (1, 1))
    >>> padding_pairs("same", (4,), (1,), (1,))
    ((1, 2),)
    >>> padding_pairs(((0, 1), (2, 3)), (3, 3), (1, 1), (1, 1))
    ((0, 1), (2, 3))
    """
    if isinstance(padding, str):
        rule = PADDING_RULES.get(padding)
        if rule is None:
            msg = (
                f"padding must be an int, a sequence, or one of {PADDING_STRINGS!r}, "
                f"got {padding!r}"
            )
            raise ValueError(msg)
        return rule(kernel_shape, dilation, stride)
    pairs = explicit_padding(padding, len(kernel_shape))
    if any(before < 0 or after < 0 for before, after in pairs):
        shown = padding.tolist() if isinstance(padding, np.ndarray) else padding
        msg = f"padding must be >= 0 along every axis, got {shown!r}"
        raise ValueError(msg)
    return pairs


def explicit_padding(padding: object, spatial_dims: int) -> tuple[tuple[int, int], ...]:
    """Parse padding given as numbers: an int, one entry per axis, or one for every axis.

    Each entry is an int (both sides) or a ``(before, after)`` pair. Signs are not checked
    here (:func:`padding_pairs` does).

    Examples
    --------
    >>> explicit_padding(2, 2)
    ((2, 2), (2, 2))
    >>> explicit_padding([(0, 1)], 2)
    ((0, 1), (0, 1))
    >>> explicit_padding((1, 2, 3), 2)
    Traceback (most recent call last):
    ...
    ValueError: padding must have one entry per spatial dimension (2), got (1, 2, 3) of length 3
    """
    items = _per_axis_items(padding)
    if items is None:
        amount = as_int(padding, "padding")
        return ((amount, amount),) * spatial_dims
    if len(items) == 1:
        return (_pair(items[0], padding),) * spatial_dims
    if len(items) != spatial_dims:
        msg = (
            f"padding must have one entry per spatial dimension ({spatial_dims}), "
            f"got {tuple(items)!r} of length {len(items)}"
        )
        raise ValueError(msg)
    return tuple(_pair(item, padding) for item in items)


def _pair(item: object, padding: object) -> tuple[int, int]:
    """One axis of a per-axis padding: an int (both sides) or a ``(before, after)`` pair."""
    sides = _per_axis_items(item)
    if sides is None:
        amount = as_int(item, "padding")
        return amount, amount
    if len(sides) != 2:
        msg = (
            "padding entries must be an int or a (before, after) pair, "
            f"got {tuple(sides)!r} in padding={padding!r}"
        )
        raise ValueError(msg)
    return as_int(sides[0], "padding"), as_int(sides[1], "padding")


def _spans(kernel_shape: tuple[int, ...], dilation: tuple[int, ...]) -> list[int]:
    """``dilation * (k - 1)`` per axis: how far the dilated kernel reaches past one element."""
    return [step * (taps - 1) for taps, step in zip(kernel_shape, dilation, strict=True)]


def valid_padding(
    kernel_shape: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[tuple[int, int], ...]:
    """``padding="valid"``: no padding, every window inside the input.

    Examples
    --------
    >>> valid_padding((3, 3), (1, 1), (2, 2))
    ((0, 0), (0, 0))
    """
    del dilation, stride  # every rule takes the same arguments
    return ((0, 0),) * len(kernel_shape)


def same_padding(
    kernel_shape: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[tuple[int, int], ...]:
    """``padding="same"``, PyTorch's rule: total ``dilation * (k - 1)``, the odd element after.

    Stride 1 only, as in PyTorch (the output then has the input's size).

    Examples
    --------
    >>> same_padding((4, 3), (1, 2), (1, 1))
    ((1, 2), (2, 2))
    >>> same_padding((3,), (1,), (2,))
    Traceback (most recent call last):
    ...
    ValueError: padding='same' needs stride 1 along every axis (as in PyTorch), got stride=(2,)
    """
    if any(step != 1 for step in stride):
        msg = (
            f"padding='same' needs stride 1 along every axis (as in PyTorch), got stride={stride!r}"
        )
        raise ValueError(msg)
    return tuple((span // 2, span - span // 2) for span in _spans(kernel_shape, dilation))


def full_padding(
    kernel_shape: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[tuple[int, int], ...]:
    """``padding="full"``: ``dilation * (k - 1)`` on both sides, every partial overlap.

    Examples
    --------
    >>> full_padding((3,), (2,), (1,))
    ((4, 4),)
    """
    del stride  # every rule takes the same arguments
    return tuple((span, span) for span in _spans(kernel_shape, dilation))


#: The padding rule of each name of :data:`PADDING_STRINGS`.
PADDING_RULES = {"valid": valid_padding, "same": same_padding, "full": full_padding}


def check_padding_mode(
    padding_mode: object, pairs: tuple[tuple[int, int], ...], input_shape: tuple[int, ...]
) -> str:
    """Check the mode's name and that the input is large enough for that kind of padding.

    Examples
    --------
    >>> check_padding_mode("reflect", ((1, 1),), (3,))
    'reflect'
    >>> check_padding_mode("reflect", ((3, 0),), (3,))
    Traceback (most recent call last):
    ...
    ValueError: padding_mode='reflect' needs padding < input size (3) along spatial axis 0, ...
    """
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        msg = f"padding_mode must be one of {PADDING_MODES!r}, got {padding_mode!r}"
        raise ValueError(msg)
    mode = padding_mode
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


def check_groups(
    groups: object, channels: int, *, shape: tuple[int, ...], name: str, kind: str
) -> int:
    """Return ``groups`` as an int after checking it is >= 1 and divides ``channels``.

    Parameters
    ----------
    groups : object
        The caller's ``groups``.
    channels : int
        The channel count it must divide.
    shape : tuple of int
        Shape of the array those channels belong to, quoted in the message.
    name : str
        That array's name (``"x"``, ``"weight"``).
    kind : str
        Which channels they are (``"input"``, ``"output"``).

    Examples
    --------
    >>> check_groups(np.array(2), 4, shape=(1, 4, 5), name="x", kind="input")
    2
    >>> check_groups(3, 4, shape=(1, 4, 5), name="x", kind="input")
    Traceback (most recent call last):
    ...
    ValueError: groups must divide the input channels: x of shape (1, 4, 5) has 4 input ...
    """
    group_count = as_int(groups, "groups")
    if group_count < 1:
        msg = f"groups must be >= 1, got {group_count}"
        raise ValueError(msg)
    if channels % group_count:
        msg = (
            f"groups must divide the {kind} channels: {name} of shape {shape} has "
            f"{channels} {kind} channels, which groups={group_count} does not divide"
        )
        raise ValueError(msg)
    return group_count


#: NumPy's largest number of array dimensions (``np.pad`` and strided views need
#: ``ndim + spatial_dims`` of them for a window view): NumPy 2 allows 64.
MAX_DIMS = 64


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
    # A window view has N, C, the output's and the kernel's spatial axes: 2 + 2 * rank.
    if 2 + 2 * rank > MAX_DIMS:
        msg = (
            f"weight must have at most {MAX_DIMS // 2 - 1} spatial dimensions (NumPy arrays "
            f"have at most {MAX_DIMS} axes, and a {operation}'s windows need 2 + 2 * spatial "
            f"of them), got weight of shape {weight_shape} with {rank}"
        )
        raise ValueError(msg)
    return rank
