"""The gradient functions behind :mod:`mimo_conv.grad` (``torch.nn.grad``'s names).

They sit with the other public operations so that the testing toolkit can use them too;
:mod:`mimo_conv.grad` is their public face.

Examples
--------
>>> import numpy as np
>>> w = np.array([[[[1, 2], [3, 4]]]])
>>> conv2d_input((1, 1, 3, 3), w, np.ones((1, 1, 2, 2), dtype=int))
array([[[[ 1,  3,  2],
         [ 4, 10,  6],
         [ 3,  7,  4]]]])
"""

from __future__ import annotations

from typing import Any

from numpy.typing import ArrayLike, NDArray

from mimo_conv._core.arguments import IntOrInts, PaddingArg, as_shape
from mimo_conv._core.layouts import canonical, from_canonical, gradient_layouts
from mimo_conv._core.operands import as_numeric_array
from mimo_conv._gradients.backward import bias_gradient
from mimo_conv._gradients.common import gradient_geometry
from mimo_conv._gradients.input_gradient import input_gradient
from mimo_conv._gradients.weight_gradient import weight_gradient
from mimo_conv._paths.registry import lists_the_methods

__all__ = [
    "conv1d_input",
    "conv1d_weight",
    "conv2d_input",
    "conv2d_weight",
    "conv3d_input",
    "conv3d_weight",
    "conv_bias",
    "conv_input",
    "conv_weight",
]


def _options(
    stride: object, padding: object, dilation: object, groups: object, padding_mode: object
) -> dict[str, object]:
    """Collect the forward call's options for the backward validation (``gradient_geometry``)."""
    return {
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "padding_mode": padding_mode,
    }


def _input(
    input_shape: object,
    weight: ArrayLike,
    grad_output: ArrayLike,
    options: dict[str, object],
    spatial_dims: int | None,
    *,
    method: str,
    budget: int | None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """Validate once and compute ``dL/dx``: the pipeline behind every ``conv*_input``."""
    layouts, shape = gradient_layouts(
        layout, weight_layout, spatial_dims, as_shape(input_shape, "input_shape"), "input_shape"
    )
    grad_output = canonical(grad_output, layouts.input_order, "grad_output")  # views: no copy
    weight = canonical(weight, layouts.weight_order, "weight")
    weight_array = as_numeric_array(weight, "weight")
    grads = as_numeric_array(grad_output, "grad_output")
    geometry = gradient_geometry(
        shape, weight_array.shape, grads, spatial_dims=spatial_dims, **options
    )
    return from_canonical(
        input_gradient(grads, weight_array, geometry, method=method, budget=budget),
        layouts.input_order,
    )


def _weight(
    x: ArrayLike,
    weight_shape: object,
    grad_output: ArrayLike,
    options: dict[str, object],
    spatial_dims: int | None,
    *,
    method: str,
    budget: int | None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> NDArray[Any]:
    """Validate once and compute ``dL/dw``: the pipeline behind every ``conv*_weight``."""
    layouts, shape = gradient_layouts(
        layout, weight_layout, spatial_dims, as_shape(weight_shape, "weight_shape"),
        "weight_shape", weight=True,
    )  # fmt: skip
    x = canonical(x, layouts.input_order, "input")  # views: no copy
    grad_output = canonical(grad_output, layouts.input_order, "grad_output")
    x_array = as_numeric_array(x, "input")
    grads = as_numeric_array(grad_output, "grad_output")
    geometry = gradient_geometry(x_array.shape, shape, grads, spatial_dims=spatial_dims, **options)
    return from_canonical(
        weight_gradient(x_array, grads, geometry, method=method, budget=budget),
        layouts.weight_order,
    )


@lists_the_methods
def conv_input(
    input_shape: tuple[int, ...] | list[int],
    weight: ArrayLike,
    grad_output: ArrayLike,
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
    """Gradient of :func:`mimo_conv.conv` with respect to its input.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of the forward call's input, ``(N, C_in, *spatial)`` or ``(C_in, *spatial)``.
        It is needed because with a stride several input sizes give the same output size.
    weight : array_like of shape (C_out, C_in // groups, *kernel)
        The forward call's kernels.
    grad_output : array_like of shape (N, C_out, *out) or (C_out, *out)
        Gradient of the loss with respect to the forward output.
    stride, padding, dilation, groups, padding_mode
        The forward call's options, every form :func:`mimo_conv.conv` accepts.
    method : {METHOD_NAMES}, optional
        Validated exactly as :func:`mimo_conv.conv` validates it (same ``ValueError``s;
        ``"matmul"`` needs a 1 x 1 kernel). A named path computes the gradient as a
        forward cross-correlation of the zero-inserted ``grad_output`` on that path (see
        Notes). ``"auto"`` takes whichever route the cost model predicts fastest among
        those that fit the budget: the scatter described in the Notes, the stride phases
        (one forward correlation per group of output phases, each with the sub-kernel of
        the taps that reach it: no inserted zeros, a single correlation at stride 1) and,
        for floats or when the others do not fit, the zero-inserted correlation.
        Integer and ``dtype=object`` results are the same on every route; float results
        differ only by rounding.
    memory_budget : int, optional
        Largest temporary buffer, in bytes, for this call (default
        :func:`mimo_conv.get_memory_budget`). The scatter runs over chunks of images whose
        column buffer, padded gradient and converted ``grad_output`` fit in it. The
        correlation runs over chunks of images whose zero-inserted ``grad_output`` and
        padded gradient take at most half of it, the path the rest; a ``MemoryError`` is
        raised before those buffers are allocated when one image does not fit.
    layout, weight_layout : str, optional
        The axes of ``input_shape``, ``grad_output`` and the result, and of ``weight``, as
        for :func:`mimo_conv.conv` (e.g. ``"NHWC"``, ``"HWIO"``).

    Returns
    -------
    ndarray of shape ``input_shape``
        ``dL/dx``, in the dtype the forward policy gives ``grad_output`` and ``weight``.

    Raises
    ------
    TypeError, ValueError, OverflowError, MemoryError
        As :func:`mimo_conv.conv`; ``ValueError`` when ``grad_output`` does not have the
        shape of the forward output.

    See Also
    --------
    mimo_conv.conv_transpose : The same operation, named and parametrised as a layer.

    Notes
    -----
    ``conv`` is linear in ``x``: ``y = A x``; this returns ``A^T grad_output``, so
    ``<conv(x, w), g> == <x, conv_input(x.shape, w, g)>`` for every ``x`` (exactly, on
    integers). It is ``P^T`` (the adjoint of the padding ``P``: a reflected, replicated
    or wrapped border adds its gradient to the elements it copied, a zero border is cut)
    of the gradient of the padded input, computed one of two ways.

    The scatter (``"auto"``): ``fold(w^T g)``, one matrix product per group (``N * C_in
    * prod(k) * L * C_out/groups`` multiply-adds) and a strided sum per kernel tap, over
    chunks of images whose temporaries are at most ``C_in * (prod(padded) + max(prod(k)
    * L, 2 * prod(padded))) + C_out * L`` elements per image (plus a converted copy of
    ``weight``).

    The correlation (a named ``method``): along an axis with stride ``s``, dilation ``d``,
    ``k`` taps and padded length ``P``, the padded input's gradient at ``j`` sums
    ``g[p] * w[t]`` over ``p*s + t*d = j``. Inserting ``s - 1`` zeros between the elements
    of ``g`` and padding it by ``d*(k - 1)`` zeros on each side (plus, at the end, the
    ``P - ((out - 1)*s + d*(k - 1) + 1)`` padded elements no window reached) turns this
    into a forward cross-correlation with stride 1, dilation ``d`` and the kernel flipped
    along every spatial axis, its channel axes swapped per group (``(C_out, C_in/groups,
    *k)`` to ``(C_in, C_out/groups, *k)``): ``prod(stride)`` times the scatter's
    multiply-adds, on the forward path ``method``. Its chunks of images hold the
    zero-inserted ``grad_output`` and padded gradient in at most half the budget (one
    image when that is too much but the path fits beside it), and the forward engine runs
    the planned path in the rest.

    Chunks split the batch, never a sum, so the result does not depend on the budget.
    Complex values are not conjugated.

    Examples
    --------
    >>> w = np.array([[[1, 2, 3]]])
    >>> conv_input((1, 1, 5), w, [[[1, 0, 0]]])
    array([[[1, 2, 3, 0, 0]]])

    With stride 2 and padding 1 on both sides:

    >>> conv_input((1, 1, 4), w, [[[1, 10]]], stride=2, padding=1)
    array([[[ 2, 13, 20, 30]]])

    A replicated border adds its gradient to the edge element:

    >>> conv_input((1, 3), [[[1, 1, 1]]], [[1, 1, 1]], padding=1, padding_mode="replicate")
    array([[3, 3, 3]])

    Every forward path gives the same integers:

    >>> conv_input((1, 1, 4), w, [[[1, 10]]], stride=2, padding=1, method="gemm")
    array([[[ 2, 13, 20, 30]]])
    >>> conv_input((1, 1, 4), w, [[[1, 10]]], stride=2, padding=1, method="shift")
    array([[[ 2, 13, 20, 30]]])

    A budget too small for one image (the scatter's columns do not fit, then neither do
    the zero-inserted ``grad_output`` and the padded gradient beside the path) names the
    budget that would run:

    >>> conv_input((1, 1, 5), w, [[[1, 0, 0]]], memory_budget=64)
    Traceback (most recent call last):
    ...
    MemoryError: the input gradient runs as a forward convolution of the zero-inserted ...
    """
    options = _options(stride, padding, dilation, groups, padding_mode)
    return _input(
        input_shape,
        weight,
        grad_output,
        options,
        None,
        method=method,
        budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )


@lists_the_methods
def conv_weight(
    input: ArrayLike,  # noqa: A002 - torch.nn.grad's name, so keyword calls port unchanged
    weight_shape: tuple[int, ...] | list[int],
    grad_output: ArrayLike,
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
    """Gradient of :func:`mimo_conv.conv` with respect to its kernels.

    Parameters
    ----------
    input : array_like of shape (N, C_in, *spatial) or (C_in, *spatial)
        The forward call's input.
    weight_shape : sequence of int
        Shape of the forward call's kernels, ``(C_out, C_in // groups, *kernel)``.
    grad_output : array_like of shape (N, C_out, *out) or (C_out, *out)
        Gradient of the loss with respect to the forward output.
    stride, padding, dilation, groups, padding_mode
        The forward call's options, every form :func:`mimo_conv.conv` accepts.
    method : {METHOD_NAMES}, optional
        The forward path that computes the gradient, validated as :func:`mimo_conv.conv`
        validates it (same ``ValueError``s; ``"matmul"`` needs a 1 x 1 kernel). The
        gradient is itself a forward convolution (see Notes), which the forward engine
        runs on that path. ``"matmul"`` is one matrix product per image and group of
        ``grad_output`` with the (strided) input. ``"auto"`` uses that direct product per
        image (with the windows of a larger kernel: faster than any path on the inner
        convolution's unusual shapes) when one image's windows fit the memory budget, and
        otherwise the path the cost model picks for the inner convolution. Integer and
        ``dtype=object`` results are the same on every path; float results differ only by
        rounding.
    memory_budget : int, optional
        Largest temporary buffer, in bytes, for this call, as in :func:`mimo_conv.conv`
        (default :func:`mimo_conv.get_memory_budget`).
    layout, weight_layout : str, optional
        The axes of ``input`` and ``grad_output``, and of ``weight_shape`` and the result,
        as for :func:`mimo_conv.conv` (e.g. ``"NHWC"``, ``"HWIO"``).

    Returns
    -------
    ndarray of shape ``weight_shape``
        ``dL/dweight``, in the dtype the forward policy gives ``input`` and ``grad_output``.

    Raises
    ------
    TypeError, ValueError, OverflowError, MemoryError
        As :func:`conv_input`.

    Notes
    -----
    ``grad_weight[o, c, t] = sum_{n, p} grad_output[n, o, p] * x_pad[n, c, p * stride +
    t * dilation]``, so ``<conv(x, w), g> == <w, conv_weight(x, w.shape, g)>``. Per group
    this is a forward cross-correlation of ``x`` with its batch and channel axes swapped
    (padded as the forward call pads it: reflected and wrapped copies included) by
    ``grad_output`` swapped to ``(C_out/groups, N, *out)`` as kernel, with kernel
    dilation = ``stride`` and stride = ``dilation``; its ``k + r // dilation`` windows per
    axis (``r``: the padded elements past the last forward window) are cut to the ``k``
    taps. Cost: ``C_out * C_in/groups * prod(k) * N * L`` multiply-adds (a few more when
    ``stride > dilation``) on the chosen path, whose temporaries are chunked over input
    channels and rows within the memory budget, plus converted copies of ``grad_output``
    (the kernel of that convolution) outside it. The direct product (``"matmul"``, and
    ``"auto"`` when it fits) chunks images instead: per image, the converted and padded
    input, its ``C_in * prod(k) * L`` windows, the converted ``grad_output`` and the
    products, within the budget.

    Examples
    --------
    >>> x = np.array([[[1, 2, 3, 4]]])
    >>> conv_weight(x, (1, 1, 2), [[[1, 0, 1]]])
    array([[[4, 6]]])

    The border of a circular padding contributes too:

    >>> conv_weight(x, (1, 1, 2), [[[1, 0, 0, 1]]], padding=[(0, 1)], padding_mode="circular")
    array([[[5, 3]]])

    Every forward path gives the same integers:

    >>> conv_weight(x, (1, 1, 2), [[[1, 0, 1]]], method="shift")
    array([[[4, 6]]])
    >>> conv_weight(x, (1, 1, 2), [[[1, 0, 1]]], method="matmul")
    Traceback (most recent call last):
    ...
    ValueError: method='matmul' needs a 1 x 1 kernel, got kernel shape (2,); use ...
    """
    options = _options(stride, padding, dilation, groups, padding_mode)
    return _weight(
        input,
        weight_shape,
        grad_output,
        options,
        None,
        method=method,
        budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )


def conv_bias(grad_output: ArrayLike, *, batched: bool = True) -> NDArray[Any]:
    """Gradient of :func:`mimo_conv.conv` with respect to its bias.

    Parameters
    ----------
    grad_output : array_like of shape (N, C_out, *out), or (C_out, *out) if not batched
        Gradient of the loss with respect to the forward output.
    batched : bool, optional
        Whether ``grad_output`` has a batch axis first (the shape alone cannot tell:
        ``(2, 3, 4)`` is a batched 1-d or an unbatched 2-d output).

    Returns
    -------
    ndarray of shape (C_out,)
        ``grad_output`` summed over every axis but the channel axis: ``N * L`` additions
        per channel, in int64 for integers (with the overflow check), float32 for float16.

    Examples
    --------
    >>> conv_bias(np.ones((2, 3, 4, 4)))
    array([32., 32., 32.])
    >>> conv_bias([[1, 2], [3, 4]], batched=False)
    array([3, 7])
    """
    return bias_gradient(as_numeric_array(grad_output, "grad_output"), batched=batched)


def conv1d_input(
    input_shape: tuple[int, ...] | list[int],
    weight: ArrayLike,
    grad_output: ArrayLike,
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
    """:func:`conv_input` for a 1-d convolution (``weight`` of shape ``(C_out, C_in/g, k)``).

    Examples
    --------
    >>> conv1d_input((1, 4), [[[1, -1]]], [[1, 1, 1]])
    array([[ 1,  0,  0, -1]])
    """
    options = _options(stride, padding, dilation, groups, padding_mode)
    return _input(
        input_shape,
        weight,
        grad_output,
        options,
        1,
        method=method,
        budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )


def conv2d_input(
    input_shape: tuple[int, ...] | list[int],
    weight: ArrayLike,
    grad_output: ArrayLike,
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
    """:func:`conv_input` for a 2-d convolution (``weight`` of shape ``(C_out, C_in/g, kH, kW)``).

    Examples
    --------
    >>> conv2d_input((1, 1, 2, 2), np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), stride=2)
    array([[[[1., 0.],
             [0., 0.]]]])
    """
    options = _options(stride, padding, dilation, groups, padding_mode)
    return _input(
        input_shape,
        weight,
        grad_output,
        options,
        2,
        method=method,
        budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )


def conv3d_input(
    input_shape: tuple[int, ...] | list[int],
    weight: ArrayLike,
    grad_output: ArrayLike,
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
    """:func:`conv_input` for a 3-d convolution (``weight`` of shape ``(C_out, C_in/g, *k)``).

    Examples
    --------
    >>> conv3d_input((1, 2, 2, 2), np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 1, 1))).sum()
    np.float64(8.0)
    """
    options = _options(stride, padding, dilation, groups, padding_mode)
    return _input(
        input_shape,
        weight,
        grad_output,
        options,
        3,
        method=method,
        budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )


def conv1d_weight(
    input: ArrayLike,  # noqa: A002 - torch.nn.grad's name
    weight_shape: tuple[int, ...] | list[int],
    grad_output: ArrayLike,
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
    """:func:`conv_weight` for a 1-d convolution.

    Examples
    --------
    >>> conv1d_weight([[1, 2, 3]], (1, 1, 2), [[1, 1]])
    array([[[3, 5]]])
    """
    options = _options(stride, padding, dilation, groups, padding_mode)
    return _weight(
        input,
        weight_shape,
        grad_output,
        options,
        1,
        method=method,
        budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )


def conv2d_weight(
    input: ArrayLike,  # noqa: A002 - torch.nn.grad's name
    weight_shape: tuple[int, ...] | list[int],
    grad_output: ArrayLike,
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
    """:func:`conv_weight` for a 2-d convolution.

    Examples
    --------
    >>> conv2d_weight(np.ones((1, 1, 3, 3)), (1, 1, 2, 2), np.ones((1, 1, 2, 2)))
    array([[[[4., 4.],
             [4., 4.]]]])
    """
    options = _options(stride, padding, dilation, groups, padding_mode)
    return _weight(
        input,
        weight_shape,
        grad_output,
        options,
        2,
        method=method,
        budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )


def conv3d_weight(
    input: ArrayLike,  # noqa: A002 - torch.nn.grad's name
    weight_shape: tuple[int, ...] | list[int],
    grad_output: ArrayLike,
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
    """:func:`conv_weight` for a 3-d convolution.

    Examples
    --------
    >>> conv3d_weight(np.ones((1, 2, 2, 2)), (1, 1, 1, 1, 1), np.ones((1, 2, 2, 2)))
    array([[[[[8.]]]]])
    """
    options = _options(stride, padding, dilation, groups, padding_mode)
    return _weight(
        input,
        weight_shape,
        grad_output,
        options,
        3,
        method=method,
        budget=memory_budget,
        layout=layout,
        weight_layout=weight_layout,
    )
