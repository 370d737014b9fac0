"""Build the :class:`ConvGeometry` of a call from its shapes and options, and cache it.

:func:`build_geometry` checks shapes and options against each other (channels, groups,
bias, the kernel fitting the padded input) with the parsers of
:mod:`mimo_conv._core.arguments`, and keeps the geometries of recent valid calls under a
strict key: a training loop that calls ``conv`` with the same shapes and options pays for
the checks once.
"""

from __future__ import annotations

from collections.abc import Hashable

from mimo_conv._core import padding_rules
from mimo_conv._core.arguments import (
    check_groups,
    check_padding_mode,
    check_ranks,
    int_per_axis,
    padding_pairs,
)
from mimo_conv._core.geometry import ConvGeometry


def strict_key(value: object) -> Hashable:
    """Build a cache key that tells ``1`` from ``1.0``, ``True`` and ``np.int64(1)``.

    Plain equality would let a cached geometry answer for ``stride=1.0`` (which must raise),
    so every value is keyed with its type, recursively through tuples and lists.
    Raises ``TypeError`` for values that cannot be hashed (arrays, dicts).

    Examples
    --------
    >>> strict_key(1) == strict_key(1.0), strict_key(1) == strict_key(True)
    (False, False)
    >>> strict_key([1, (2, 3)])
    (<class 'list'>, ((<class 'int'>, 1), (<class 'tuple'>, ((<class 'int'>, 2), (<class 'int'>, 3)))))
    """  # noqa: E501 - a doctest's output is one line
    kind = type(value)
    if kind is int or kind is str:  # the common case, first
        return (kind, value)
    if isinstance(value, (tuple, list)):
        return (kind, tuple(strict_key(item) for item in value))
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
            strict_key(option) for option in (stride, padding, dilation, groups, padding_mode)
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


#: Geometries of recent valid calls, by :func:`strict_key` of their arguments. Cleared
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

    group_count = check_groups(
        groups, out_channels, shape=weight_shape, name="weight", kind="output"
    )
    check_groups(group_count, in_channels, shape=x_shape, name="x", kind="input")
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
    if padding_rules.is_same_string(padding) and (
        padding == "same_lower" or strides != (1,) * rank
    ):
        # TF/JAX/ONNX SAME: the padding depends on the input size (see _core/padding_rules.py)
        lower = padding != "same"
        pairs = padding_rules.same_padding(
            input_shape, kernel_shape, dilations, strides, lower=lower
        )
    else:
        pairs = padding_pairs(padding, kernel_shape, dilations, strides)
    mode = check_padding_mode(padding_mode, pairs, input_shape)

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
