"""``jax.lax.conv_general_dilated`` and ``jax.lax.conv_transpose``, computed by mimo_conv.

XLA's general convolution in JAX's signature, pure NumPy. What each argument means here
(``docs/frameworks.md`` puts it beside JAX's own documentation):

* ``dimension_numbers``: None (``("NCHW", "OIHW", "NCHW")`` and its 1-d/3-d analogues), three
  layout strings ``(lhs, rhs, out)``, or three integer specs (JAX's ``ConvDimensionNumbers``:
  batch/feature axis first, then the spatial axes). Spatial axes are paired in the order of
  the kernel's (``rhs``) string, and ``window_strides``, ``padding`` and the dilations list
  them in that order.
* ``padding``: ``"VALID"``, ``"SAME"`` (odd element after), ``"SAME_LOWER"`` (odd element
  before), or one ``(low, high)`` pair per spatial axis, **negative values crop** the input.
  Strings are refused together with an input dilation, as JAX does.
* ``lhs_dilation``: ``d - 1`` zeros inserted between input elements (a transposed
  convolution's fractional stride), done here by building the zero-inserted input (one array
  of the dilated size) and convolving it: exact, and ``prod(d)`` times the work of a scatter.
* ``batch_group_count``: the batch is cut into that many consecutive blocks and the output
  features into as many; block ``g`` of the batch is convolved with block ``g`` of the
  kernels (the weight gradient of a grouped convolution is one), one mimo_conv call per block.
* ``precision`` is accepted and ignored: mimo_conv has one precision, that of its dtype plan.
* ``preferred_element_type``: the operands are cast to it first (a widening is exact), and the
  result is in it; integer results wrap modulo ``2**bits`` as an accumulator of that width
  does in any summation order. Without it the result has the operands' dtype.

Examples
--------
>>> import numpy as np
>>> x = np.arange(5.0).reshape(1, 1, 5)
>>> conv_general_dilated(x, np.ones((1, 1, 2)), (1,), [(-1, 0)])  # crops one element
array([[[3., 5., 7.]]])
>>> conv_general_dilated(x, np.ones((1, 1, 2)), (1,), [(0, 0)], lhs_dilation=(2,))
array([[[0., 1., 1., 2., 2., 3., 3., 4.]]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from mimo_conv._core.padding_rules import same_padding
from mimo_conv._ops.conv import conv
from mimo_conv.compat._shared import cast_result, crop_and_pad, int_tuple, pairs_of, zero_insert

__all__ = ["conv_general_dilated", "conv_transpose"]

DimensionNumbers = Sequence[str] | Sequence[Sequence[int]] | None
PaddingLike = str | Sequence[tuple[int, int]]


def _permutations(
    dimension_numbers: DimensionNumbers, rank: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Axis orders taking lhs, rhs and out to ``(N, C, *spatial)`` / ``(O, I, *spatial)``."""
    canonical = tuple(range(rank + 2))
    if dimension_numbers is None:
        return canonical, canonical, canonical
    specs = tuple(dimension_numbers)
    if len(specs) != 3:
        msg = f"dimension_numbers must be (lhs_spec, rhs_spec, out_spec), got {dimension_numbers!r}"
        raise ValueError(msg)
    if all(isinstance(spec, str) for spec in specs):
        lhs, rhs, out = (str(spec) for spec in specs)
        pairs = (("N", "C"), ("O", "I"), ("N", "C"))
        for name, given, (first, second) in zip(("lhs", "rhs", "out"), specs, pairs, strict=True):
            spec = str(given)
            letters = set(spec) - {first, second}
            if (
                len(spec) != rank + 2
                or spec.count(first) != 1
                or spec.count(second) != 1
                or len(set(spec)) != len(spec)
                or letters != set(rhs) - {"O", "I"}
            ):
                msg = (
                    f"dimension_numbers {name}_spec must hold {first!r}, {second!r} and the "
                    f"kernel's {rank} spatial letters once each, got {dimension_numbers!r}"
                )
                raise ValueError(msg)
        spatial = [c for c in rhs if c not in "OI"]
        return (
            tuple(lhs.index(c) for c in ("N", "C", *spatial)),
            tuple(rhs.index(c) for c in ("O", "I", *spatial)),
            tuple(out.index(c) for c in ("N", "C", *spatial)),
        )
    perms = tuple(tuple(int(axis) for axis in cast("Sequence[Any]", spec)) for spec in specs)
    if any(sorted(perm) != list(canonical) for perm in perms):
        msg = (
            f"dimension_numbers must be three permutations of range({rank + 2}), "
            f"got {dimension_numbers!r}"
        )
        raise ValueError(msg)
    return perms[0], perms[1], perms[2]


def conv_general_dilated(
    lhs: ArrayLike,
    rhs: ArrayLike,
    window_strides: Sequence[int],
    padding: PaddingLike,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: DimensionNumbers = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: object = None,
    preferred_element_type: DTypeLike | None = None,
) -> NDArray[Any]:
    """XLA's general dilated convolution with ``jax.lax.conv_general_dilated``'s arguments.

    Parameters
    ----------
    lhs : array_like
        The input, axes as ``dimension_numbers[0]`` says (default ``NC`` then spatial).
    rhs : array_like
        The kernels, axes as ``dimension_numbers[1]`` says (default ``OI`` then spatial),
        ``I = C / feature_group_count``.
    window_strides : sequence of int
        One stride per spatial axis.
    padding : {"VALID", "SAME", "SAME_LOWER"} or sequence of (int, int)
        See the module notes; negative pairs crop.
    lhs_dilation, rhs_dilation : sequence of int, optional
        Input dilation (zeros between input elements) and kernel dilation (atrous).
    dimension_numbers : tuple, optional
        ``(lhs_spec, rhs_spec, out_spec)`` as strings or integer specs.
    feature_group_count, batch_group_count : int, optional
        Channel groups (mimo_conv's ``groups``) and batch groups (see the module notes); at
        most one of the two may exceed 1.
    precision : object, optional
        Ignored.
    preferred_element_type : dtype, optional
        The accumulation and result dtype.

    Returns
    -------
    ndarray
        Axes as ``dimension_numbers[2]`` says; spatial sizes
        ``max(0, floor((dilated_in + low + high - rhs_dilation * (k - 1) - 1) / stride) + 1)``.

    Examples
    --------
    Batch groups: block ``g`` of the batch meets block ``g`` of the output features.

    >>> x = np.arange(4.0).reshape(4, 1, 1)
    >>> w = np.array([1.0, 100.0]).reshape(2, 1, 1)
    >>> conv_general_dilated(x, w, (1,), "VALID", batch_group_count=2)[:, :, 0]
    array([[  0., 200.],
           [  1., 300.]])
    """
    del precision  # one precision: that of the dtype plan
    lhs_array, rhs_array = np.asarray(lhs), np.asarray(rhs)
    if lhs_array.ndim != rhs_array.ndim or lhs_array.ndim < 3:
        msg = (
            "lhs and rhs must have the same number of dimensions (>= 3), got lhs of shape "
            f"{lhs_array.shape} and rhs of shape {rhs_array.shape}"
        )
        raise ValueError(msg)
    if lhs_array.dtype != rhs_array.dtype:
        msg = (
            "lhs and rhs must have the same dtype (as jax.lax requires), got "
            f"{lhs_array.dtype} and {rhs_array.dtype}"
        )
        raise TypeError(msg)
    rank = lhs_array.ndim - 2
    lhs_perm, rhs_perm, out_perm = _permutations(dimension_numbers, rank)
    x = lhs_array.transpose(lhs_perm)
    weight = rhs_array.transpose(rhs_perm)
    result_dtype = np.dtype(
        lhs_array.dtype if preferred_element_type is None else preferred_element_type
    )
    if preferred_element_type is not None:
        x, weight = x.astype(result_dtype), weight.astype(result_dtype)
    strides = int_tuple(window_strides, "window_strides", rank)
    input_dilation = int_tuple(lhs_dilation, "lhs_dilation", rank)
    kernel_dilation = int_tuple(rhs_dilation, "rhs_dilation", rank)
    kernel = weight.shape[2:]
    if isinstance(padding, str):
        if input_dilation != (1,) * rank:
            msg = (
                "padding must be explicit (low, high) pairs with lhs_dilation (as in JAX: use "
                f"conv_transpose for string padding), got padding={padding!r}"
            )
            raise ValueError(msg)
        mode = padding.upper()
        if mode not in ("VALID", "SAME", "SAME_LOWER"):
            msg = f"padding must be 'VALID', 'SAME', 'SAME_LOWER' or pairs, got {padding!r}"
            raise ValueError(msg)
        pads = ((0, 0),) * rank if mode == "VALID" else same_padding(
            x.shape[2:], kernel, kernel_dilation, strides, lower=mode == "SAME_LOWER"
        )  # fmt: skip
    else:
        pads = pairs_of(padding, "padding", rank)
    x, pairs = crop_and_pad(zero_insert(x, input_dilation), pads)
    return _grouped(
        x, weight, strides, pairs, kernel_dilation, feature_group_count, batch_group_count,
        result_dtype, out_perm,
    )  # fmt: skip


def _grouped(
    x: NDArray[Any],
    weight: NDArray[Any],
    strides: tuple[int, ...],
    pairs: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    feature_groups: int,
    batch_groups: int,
    dtype: np.dtype[Any],
    out_perm: tuple[int, ...],
) -> NDArray[Any]:
    """Run the canonical convolution, one call per batch group, in ``out_perm``'s layout."""
    batch, out_channels = x.shape[0], weight.shape[0]
    for name, count in (
        ("feature_group_count", feature_groups),
        ("batch_group_count", batch_groups),
    ):
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 1:
            msg = f"{name} must be an int >= 1, got {count!r}"
            raise ValueError(msg)
    if batch_groups > 1 and (
        feature_groups > 1 or batch % batch_groups or out_channels % batch_groups
    ):
        msg = (
            f"batch_group_count={batch_groups} must divide the batch ({batch}) and the output "
            f"features ({out_channels}), with feature_group_count 1 (got {feature_groups})"
        )
        raise ValueError(msg)
    if batch_groups > 1 and x.shape[1] != weight.shape[1]:
        msg = (
            f"with batch_group_count > 1 the kernel's input features ({weight.shape[1]}) must "
            f"be the input's ({x.shape[1]})"
        )
        raise ValueError(msg)
    padded = [n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pairs, strict=True)]
    extents = [d * (k - 1) + 1 for d, k in zip(dilation, weight.shape[2:], strict=True)]
    out_spatial = tuple(
        (size - extent) // step + 1 if size >= extent else 0
        for size, extent, step in zip(padded, extents, strides, strict=True)
    )
    if 0 in out_spatial:  # XLA gives an empty output where no window fits
        if x.shape[1] != weight.shape[1] * feature_groups:
            msg = (
                f"the input's features ({x.shape[1]}) must be feature_group_count "
                f"({feature_groups}) times the kernel's ({weight.shape[1]})"
            )
            raise ValueError(msg)
        out = np.zeros((batch // batch_groups, out_channels, *out_spatial), dtype)
    else:
        x_blocks = np.split(x, batch_groups, axis=0)
        weight_blocks = np.split(weight, batch_groups, axis=0)
        blocks = [
            conv(xb, wb, None, strides, pairs, dilation, feature_groups)
            for xb, wb in zip(x_blocks, weight_blocks, strict=True)
        ]
        out = np.concatenate(blocks, axis=1) if batch_groups > 1 else blocks[0]
    return cast_result(out.transpose(np.argsort(out_perm)), dtype)


def _transpose_pads(
    kernel: int, stride: int, padding: str | tuple[int, int], consistent: bool
) -> tuple[int, int]:
    """JAX's padding of the zero-inserted input for one axis of ``conv_transpose``.

    ``kernel`` is the dilated kernel extent. ``"SAME"`` gives ``in * stride`` outputs,
    ``"VALID"`` ``in * stride + max(kernel - stride, 0)``; a pair is the transposed
    convolution's own padding, or (``consistent``) the forward convolution's.
    """
    if padding == "SAME":
        total = kernel + stride - 2
        before = kernel - 1 if stride > kernel - 1 else -(-total // 2)
        return before, total - before
    if padding == "VALID":
        total = kernel + stride - 2 + max(kernel - stride, 0)
        return kernel - 1, total - (kernel - 1)
    low, high = cast("tuple[int, int]", padding)
    if consistent:
        return kernel - 1 - low, kernel - 1 - high
    return low, high


def conv_transpose(
    lhs: ArrayLike,
    rhs: ArrayLike,
    strides: Sequence[int],
    padding: PaddingLike,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: DimensionNumbers = None,
    transpose_kernel: bool = False,
    precision: object = None,
    preferred_element_type: DTypeLike | None = None,
    use_consistent_padding: bool = False,
) -> NDArray[Any]:
    """``jax.lax.conv_transpose``: a convolution of the zero-inserted input.

    Parameters
    ----------
    lhs, rhs : array_like
        Input and kernels; default ``dimension_numbers`` are TensorFlow's (``"NHWC"``,
        ``"HWIO"``, and their 1-d and 3-d analogues ``"NHC"``/``"HIO"``,
        ``"NHWDC"``/``"HWDIO"``), unlike :func:`conv_general_dilated`'s.
    strides : sequence of int
        The fractional strides (the input dilation).
    padding : {"SAME", "VALID"} or sequence of (int, int)
        Strings: the forward convolution's padding (``SAME`` gives ``in * stride``
        outputs); pairs: the padding of the zero-inserted input, or with
        ``use_consistent_padding`` the forward convolution's (PyTorch's meaning).
    rhs_dilation : sequence of int, optional
        Kernel dilation.
    dimension_numbers : tuple, optional
        As for :func:`conv_general_dilated`.
    transpose_kernel : bool, optional
        Flip the spatial axes and swap ``O`` and ``I`` of ``rhs`` first, making this the
        gradient of a forward convolution with that kernel (TensorFlow's ``conv2d_transpose``).
    precision, preferred_element_type
        As for :func:`conv_general_dilated`.
    use_consistent_padding : bool, optional
        Read pairs as the forward convolution's padding.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> conv_transpose(np.array([[[1.0], [10.0]]]), np.ones((2, 1, 1)), (2,), "VALID")[0, :, 0]
    array([ 1.,  1., 10., 10.])
    """
    lhs_array, rhs_array = np.asarray(lhs), np.asarray(rhs)
    rank = lhs_array.ndim - 2
    if dimension_numbers is None:
        spatial = {1: "H", 2: "HW", 3: "HWD"}.get(rank)
        if spatial is None:
            msg = f"dimension_numbers must be given for {rank} spatial dimensions (no default)"
            raise ValueError(msg)
        dimension_numbers = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    _, rhs_perm, _ = _permutations(dimension_numbers, rank)
    kernel = [rhs_array.shape[axis] for axis in rhs_perm[2:]]
    dilation = int_tuple(rhs_dilation, "rhs_dilation", rank)
    steps = int_tuple(strides, "strides", rank)
    extents = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)]
    per_axis: list[Any] = (
        [padding] * rank if isinstance(padding, str) else list(pairs_of(padding, "padding", rank))
    )
    if isinstance(padding, str) and padding not in ("SAME", "VALID"):
        msg = f"padding must be 'SAME', 'VALID' or (low, high) pairs, got {padding!r}"
        raise ValueError(msg)
    consistent = use_consistent_padding or isinstance(padding, str)
    pads = [
        _transpose_pads(extent, step, item, consistent)
        for extent, step, item in zip(extents, steps, per_axis, strict=True)
    ]
    if transpose_kernel:
        flip = tuple(slice(None, None, -1) if axis in rhs_perm[2:] else slice(None)
                     for axis in range(rhs_array.ndim))  # fmt: skip
        rhs_array = np.swapaxes(rhs_array[flip], rhs_perm[0], rhs_perm[1])
    return conv_general_dilated(
        lhs_array, rhs_array, (1,) * rank, pads, lhs_dilation=steps, rhs_dilation=dilation,
        dimension_numbers=dimension_numbers, precision=precision,
        preferred_element_type=preferred_element_type,
    )  # fmt: skip
