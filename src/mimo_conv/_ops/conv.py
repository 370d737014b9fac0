"""The public convolution functions: ``conv`` and its rank-checked ``conv1d/2d/3d``."""

from __future__ import annotations

from typing import Any

from numpy.typing import ArrayLike, NDArray

from mimo_conv._core.arguments import IntOrInts, PaddingArg
from mimo_conv._core.budget import resolve_budget
from mimo_conv._core.layouts import (
    CHANNELS_FIRST,
    MemoryLayout,
    canonical,
    from_canonical,
    parse_layouts,
)
from mimo_conv._core.operands import prepare_call
from mimo_conv._engine.execute import plan_for, run_conv
from mimo_conv._ops import call_cache
from mimo_conv._paths.registry import check_method, lists_the_methods


@lists_the_methods
def conv(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    memory_budget: int | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """N-d multi-input, multi-output cross-correlation with PyTorch's semantics.

    What deep-learning libraries call convolution: the kernel slides over the input
    without being flipped. The number of spatial dimensions is ``weight.ndim - 2``.

    Parameters
    ----------
    x : array_like of shape (N, C_in, *spatial) or (C_in, *spatial)
        The input, batched or unbatched. Never modified.
    weight : array_like of shape (C_out, C_in // groups, *kernel)
        The kernels. Never modified.
    bias : array_like of shape (C_out,), optional
        Added to every output element of its channel.
    stride : int or sequence of int, optional
        Step between windows, >= 1; one int for every axis or one per spatial axis.
    padding : int, sequence, or {"valid", "same", "same_lower", "full"}, optional
        An int for every side; one int per axis (both sides); one ``(before, after)`` pair
        per axis (asymmetric); ``"valid"`` (none); ``"same"`` (``ceil(in / stride)``
        outputs, the odd element after: PyTorch's rule at stride 1, TensorFlow's, JAX's and
        ONNX's ``SAME_UPPER`` at any stride); ``"same_lower"`` (the odd element before,
        ONNX's ``SAME_LOWER``); ``"full"`` (``dilation * (k - 1)`` both sides: every partial
        overlap).
    dilation : int or sequence of int, optional
        Spacing between kernel taps, >= 1 (1 is a dense kernel).
    groups : int, optional
        Split channels into this many independent groups; ``groups == C_in`` is a
        depthwise convolution. Must divide ``C_in`` and ``C_out``.
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}, optional
        How padded elements are filled. ``"reflect"`` mirrors without repeating the edge
        (padding < input size), ``"symmetric"`` mirrors repeating it, ``"circular"`` wraps
        around (padding <= input size), ``"replicate"`` repeats the edge.
    method : {METHOD_NAMES}, optional
        The computational path. ``"naive"`` loops over output positions (the reference);
        ``"einsum"`` contracts a sliding-window view; ``"matmul"`` is one matrix product
        and needs a 1 x 1 kernel; ``"im2col"`` builds the column matrix of whole images;
        ``"gemm"`` copies windows into a chunked im2col buffer for one matrix product per
        chunk (the fast general path); ``"shift"`` sums one small product per kernel
        tap (the low-memory path); ``"depthwise"`` does per-tap elementwise multiply-adds
        over flat views (for few channels per group); ``"row_gemm"`` copies only the later
        kernel axes and runs one product per tap of the first, over row-shifted views
        (``"fold"``, its old name, still works with a ``DeprecationWarning``);
        ``"channels_last"`` is im2col and one product on ``(N, *spatial, C)`` memory,
        writing a channels-last result (for ``layout="NHWC"``); ``"auto"``
        picks the fastest path
        that fits the memory budget by a cost model (:func:`explain_method` prints the
        plan). All give the same result: bit for bit on integers, within rounding error on
        floats.
    memory_budget : int, optional
        Largest temporary memory, in bytes, this call may hold at once (the padded or
        converted input copy, im2col chunks, ...); default :func:`get_memory_budget`
        (256 MiB unless changed with :func:`set_memory_budget` or a
        :func:`memory_budget` block). Work is chunked over images and output rows to stay
        under it; when no path fits, a ``MemoryError`` before any work names each path's
        smallest working set and the budget that would run it.
    layout : str, optional
        The axes of ``x`` and of the result, e.g. ``"NHWC"``: ``N`` (batched only), ``C``
        and one letter per spatial axis in any order; default channels first (``"NCHW"``
        for 2-d, either rank accepted). ``x`` is read through a transposed view (no copy).
        Channels last (``"NHWC"``, ``"NWC"``, ...) runs the ``"channels_last"`` path where
        the cost model finds it faster (1 x 1 and strided layers), which reads the input in
        place and writes the result in this layout; other paths' results are copied into
        it (one copy of the output).
    weight_layout : str, optional
        The axes of ``weight``, e.g. ``"HWIO"`` (TensorFlow, JAX) or ``"OHWI"``: ``O``,
        ``I`` and the spatial letters of ``layout``; default ``"OI"`` then ``layout``'s
        spatial letters. ``stride``, ``padding`` and ``dilation`` list the spatial axes in
        this string's order.

    Returns
    -------
    ndarray of shape (N, C_out, *out) or (C_out, *out)
        A new array: ``out = floor((in + before + after - dilation * (k - 1) - 1) / stride)
        + 1`` along each axis. Its dtype is that of the inputs after promotion: float16
        accumulates in float32 and is rounded once; integers accumulate and return in
        int64; ``dtype=object`` computes with Python numbers (exact for ints and
        :class:`fractions.Fraction`).

    Raises
    ------
    TypeError
        A non-numeric dtype, or a float or bool where an int is needed.
    ValueError
        Shapes that do not fit together or an option out of range; the message names the
        argument and quotes the values.
    OverflowError
        Integer inputs whose sums could leave the int64 range.
    MemoryError
        An output larger than this machine's memory, raised before any work.

    See Also
    --------
    conv1d, conv2d, conv3d : The same, with the number of spatial dimensions checked.

    Notes
    -----
    For output channel ``o`` in group ``g`` and output position ``p``::

        out[n, o, p] = bias[o] + sum_{c, t} x_pad[n, g * C_in/groups + c,
                                                 p * stride + t * dilation] * weight[o, c, t]

    with ``c`` over the group's ``C_in / groups`` channels and ``t`` over the kernel taps.
    Complex inputs follow deep-learning semantics: the kernel is **not** conjugated
    (``scipy.signal.correlate`` conjugates it).

    Examples
    --------
    The textbook's two-channel example, as a batch of one:

    >>> import numpy as np
    >>> X = np.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]],
    ...               [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
    >>> K = np.array([[[[0, 1], [2, 3]], [[1, 2], [3, 4]]]])
    >>> conv(X[np.newaxis], K)
    array([[[[ 56,  72],
             [104, 120]]]])

    Padding, stride and a bias:

    >>> conv(X, K, bias=[100], padding=1, stride=2)
    array([[[104, 126],
            [157, 220]]])

    Asymmetric padding and a wrap-around border:

    >>> conv([[1.0, 2.0, 3.0]], [[[1.0, 1.0]]], padding=[(0, 1)], padding_mode="circular")
    array([[3., 5., 4.]])

    Channels last, TensorFlow's kernel layout and its ``SAME`` at stride 2:

    >>> x = np.arange(2 * 5 * 5 * 3.0).reshape(2, 5, 5, 3)
    >>> conv(x, np.ones((3, 3, 3, 4)), stride=2, padding="same", layout="NHWC",
    ...      weight_layout="HWIO").shape
    (2, 3, 3, 4)
    """
    return _convolve(
        x,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        padding_mode,
        method,
        memory_budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )


def _convolve(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None,
    stride: IntOrInts,
    padding: PaddingArg,
    dilation: IntOrInts,
    groups: int,
    padding_mode: str,
    method: str,
    spatial_dims: int | None = None,
    *,
    memory_budget: int | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """Validate once, choose a path, compute: the one pipeline behind every public function.

    A call repeating a remembered one's signature runs its plan directly
    (:mod:`mimo_conv._ops.call_cache`).
    """
    signature = None
    if layout is None and weight_layout is None:
        options = (stride, padding, dilation, groups, padding_mode, method, memory_budget)
        signature = call_cache.call_signature(x, weight, bias, options, spatial_dims)
        short = call_cache.find(signature)
        if short is not None:
            return short(x, weight, bias)  # type: ignore[arg-type]
    layouts = parse_layouts(layout, weight_layout, spatial_dims=spatial_dims, transposed=False)
    x = canonical(x, layouts.input_order, "x")  # strided views: no copy
    weight = canonical(weight, layouts.weight_order, "weight")
    return from_canonical(
        _convolve_canonical(
            x, weight, bias, stride, padding, dilation, groups, padding_mode, method,
            spatial_dims, memory_budget=memory_budget, signature=signature,
            result_layout=layouts.result_layout,
        ),
        layouts.input_order,
    )  # fmt: skip


def _convolve_canonical(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None,
    stride: IntOrInts,
    padding: PaddingArg,
    dilation: IntOrInts,
    groups: int,
    padding_mode: str,
    method: str,
    spatial_dims: int | None = None,
    *,
    memory_budget: int | None = None,
    signature: call_cache.Signature | None = None,
    result_layout: MemoryLayout = CHANNELS_FIRST,
) -> NDArray[Any]:
    """Run the pipeline on canonical ``(N, C, *spatial)`` / ``(O, I, *kernel)`` operands.

    The result has the canonical axis order, laid out in memory as ``result_layout``. With
    a ``signature`` (:func:`mimo_conv._ops.call_cache.call_signature`) the validated,
    planned call is remembered under it.
    """
    x_array, weight_array, bias_array, geometry, plan = prepare_call(
        x,
        weight,
        bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
        spatial_dims=spatial_dims,
    )
    chosen = check_method(method, geometry, dtype=plan.compute)
    budget = resolve_budget(memory_budget)
    call = plan_for(
        x_array, weight_array, geometry, plan, budget, chosen, bias_array,
        result_layout=result_layout,
    )  # fmt: skip
    call_cache.remember(signature, call)
    return run_conv(x_array, weight_array, bias_array, call)


def conv1d(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    memory_budget: int | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """1-d convolution: :func:`conv` with ``weight`` of shape ``(C_out, C_in // groups, k)``.

    Examples
    --------
    >>> conv1d([[1, 2, 3, 4]], [[[1, -1]]])
    array([[-1, -1, -1]])
    """
    return _convolve(
        x,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        padding_mode,
        method,
        1,
        memory_budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )


def conv2d(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    memory_budget: int | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """2-d convolution: :func:`conv` with ``weight`` of shape ``(C_out, C_in // groups, kH, kW)``.

    Examples
    --------
    >>> import numpy as np
    >>> conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), padding="same").shape
    (1, 2, 5, 5)
    >>> conv2d(np.ones((3, 5)), np.ones((1, 3, 3)))
    Traceback (most recent call last):
    ...
    ValueError: weight must have 4 dimensions ... got weight of shape (1, 3, 3)
    """
    return _convolve(
        x,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        padding_mode,
        method,
        2,
        memory_budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )


def conv3d(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrInts = 1,
    padding: PaddingArg = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    memory_budget: int | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """3-d convolution: :func:`conv` with ``weight`` of shape ``(C_out, C_in/groups, kD, kH, kW)``.

    Examples
    --------
    >>> import numpy as np
    >>> conv3d(np.ones((2, 4, 4, 4)), np.ones((1, 2, 2, 2, 2)), stride=2)
    array([[[[16., 16.],
             [16., 16.]],
    <BLANKLINE>
            [[16., 16.],
             [16., 16.]]]])
    """
    return _convolve(
        x,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        padding_mode,
        method,
        3,
        memory_budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )
