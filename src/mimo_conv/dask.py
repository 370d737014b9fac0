"""Convolutions of arrays larger than memory: mimo_conv on dask arrays, chunk by chunk.

Needs the optional extra ``dask`` (``pip install "mimo_conv[dask]"``); import it as
``import mimo_conv.dask``. Every function takes a dask array (or anything
``dask.array.asarray`` accepts) for the large operand, NumPy arrays for the kernels, and
returns a lazy dask array (or, for :func:`conv_weight`, a small one); nothing is computed
until ``.compute()``, on whatever scheduler is in force (threads, processes, a
``distributed`` cluster).

How the chunks are cut:

* **Over the batch** no chunk needs anything from its neighbours: each runs
  :func:`mimo_conv.conv` as it is (``map_blocks``).
* **Over a spatial axis** the input is first padded as a whole (``dask.array.pad`` with
  NumPy's modes, which are exactly mimo_conv's ``padding_mode`` values, so chunk edges
  never see a padding they should not), then rechunked so that every chunk starts at a
  multiple of the stride, and each chunk borrows a halo of ``dilation * (k - 1) + 1 -
  stride`` elements from its right neighbour (``dask.array.overlap.overlap`` with
  ``boundary="none"``). Each chunk then holds exactly the windows of its own outputs, and a
  ``padding=0`` convolution of it gives them.
* The channel axis is always one chunk (every output channel reads every input channel of
  its group).

Each output element is computed from the same products as :func:`mimo_conv.conv` on the
whole array, so integer results are identical bit for bit; float results agree within the
rounding bound (a chunk may take another path, which sums in another order).
``memory_budget=`` applies to each chunk's own call, so a task holds at most about its
chunk, its halo, its result and that budget.

Examples
--------
>>> import numpy as np
>>> import dask.array as da
>>> import mimo_conv as mc
>>> import mimo_conv.dask as mcd
>>> x = np.arange(2 * 1 * 12 * 12).reshape(2, 1, 12, 12)
>>> w = np.array([[[[1, 0, -1]] * 3]])
>>> lazy = mcd.conv(da.from_array(x, chunks=(1, 1, 5, 5)), w, padding=1)
>>> lazy.chunks[2]  # chunk boundaries follow the (padded, stride-aligned) input chunks
(5, 5, 2)
>>> np.array_equal(lazy.compute(scheduler="sync"), mc.conv(x, w, padding=1))
True
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import NDArray

import mimo_conv as mc
from mimo_conv import grad
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.geometry_cache import build_geometry
from mimo_conv._core.windows import NUMPY_PAD_MODES
from mimo_conv._ops.transpose import transpose_geometry

if TYPE_CHECKING:
    import dask.array

__all__ = ["conv", "conv_input", "conv_transpose", "conv_weight"]


def _dask_array() -> Any:
    """Import ``dask.array``, or explain which extra installs it."""
    try:
        import dask.array  # noqa: PLC0415 - optional extra, imported on first use
    except ImportError as error:
        msg = (
            'mimo_conv.dask needs dask: pip install "mimo_conv[dask]" '
            "(installs dask[array] and distributed)"
        )
        raise ImportError(msg) from error
    return dask.array


def _delayed() -> Any:
    """``dask.delayed`` (after :func:`_dask_array` checked that dask is installed)."""
    _dask_array()
    from dask.delayed import delayed  # noqa: PLC0415 - optional extra

    return delayed


def conv(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    memory_budget: int | None = None,
) -> dask.array.Array:
    """Cross-correlate a dask array chunk by chunk: :func:`mimo_conv.conv`, out of core.

    Parameters
    ----------
    x : dask array (or array_like) of shape (N, C_in, *spatial) or (C_in, *spatial)
        Chunked over any axes but the channels (which are merged into one chunk).
    weight : array_like of shape (C_out, C_in // groups, *kernel)
        Small: every task gets a copy.
    bias, stride, padding, dilation, groups, padding_mode, method
        As in :func:`mimo_conv.conv`, validated the same way before anything is built.
    memory_budget : int, optional
        The budget of each chunk's own :func:`mimo_conv.conv` call.

    Returns
    -------
    dask array of shape and dtype of ``mimo_conv.conv(x, weight, ...)``
        Lazy; its spatial chunks follow the input's (stride-aligned) chunks.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import mimo_conv as mc
    >>> x = np.arange(40).reshape(1, 2, 20) % 7
    >>> w = np.arange(12).reshape(3, 2, 2) - 5
    >>> lazy = conv(da.from_array(x, chunks=(1, 2, 6)), w, stride=2, padding=1,
    ...             padding_mode="reflect")
    >>> lazy.shape, lazy.chunks[2]
    ((1, 3, 11), (3, 3, 3, 2))
    >>> expected = mc.conv1d(x, w, stride=2, padding=1, padding_mode="reflect")
    >>> np.array_equal(lazy.compute(scheduler="sync"), expected)
    True
    """
    da = _dask_array()
    x = da.asarray(x)
    weight, bias = np.asarray(weight), None if bias is None else np.asarray(bias)
    geometry = build_geometry(
        tuple(x.shape),
        weight.shape,
        None if bias is None else bias.shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    batched = x if geometry.batched else x[np.newaxis]
    result = _conv_batched(batched, weight, bias, geometry, method, memory_budget)
    return cast("dask.array.Array", result if geometry.batched else result[0])


def _conv_batched(
    x: Any,
    weight: NDArray[Any],
    bias: NDArray[Any] | None,
    geometry: ConvGeometry,
    method: str,
    memory_budget: int | None,
) -> Any:
    """Do the work of :func:`conv` on a batched dask array with a validated geometry."""
    da = _dask_array()
    dims = geometry.spatial_dims
    x = x.rechunk({1: -1})
    dtype = _result_dtype(x.dtype, weight, bias, geometry)
    block = functools.partial(
        _conv_block,
        weight=weight,
        bias=bias,
        stride=geometry.stride,
        dilation=geometry.dilation,
        groups=geometry.groups,
        method=method,
        memory_budget=memory_budget,
    )
    if all(len(x.chunks[2 + axis]) == 1 for axis in range(dims)):
        # Chunks over the batch only: each is a whole call, padding included (map_blocks).
        whole = functools.partial(
            _conv_block,
            weight=weight,
            bias=bias,
            stride=geometry.stride,
            dilation=geometry.dilation,
            groups=geometry.groups,
            method=method,
            memory_budget=memory_budget,
            padding=geometry.padding,
            padding_mode=geometry.padding_mode,
        )
        chunks = (x.chunks[0], (geometry.out_channels,), *((n,) for n in geometry.output_shape))
        return da.map_blocks(whole, x, chunks=chunks, dtype=dtype)
    padded = _pad(x, geometry)
    aligned, halos, out_chunks = _align(padded, _preferred(x), geometry)
    depth = {0: 0, 1: 0, **{2 + axis: (0, halos[axis]) for axis in range(dims)}}
    overlapped = (
        da.overlap.overlap(aligned, depth=depth, boundary="none") if any(halos) else aligned
    )
    chunks = (aligned.chunks[0], (geometry.out_channels,), *out_chunks)
    return da.map_blocks(block, overlapped, chunks=chunks, dtype=dtype)


def _conv_block(
    block: NDArray[Any],
    *,
    weight: NDArray[Any],
    bias: NDArray[Any] | None,
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
    method: str,
    memory_budget: int | None,
    padding: Any = 0,
    padding_mode: str = "zeros",
) -> NDArray[Any]:
    """One task: :func:`mimo_conv.conv` of one chunk (with its halo, already padded)."""
    return mc.conv(
        block,
        weight,
        bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
        method=method,
        memory_budget=memory_budget,
    )


def _result_dtype(
    dtype: np.dtype[Any], weight: NDArray[Any], bias: NDArray[Any] | None, geometry: ConvGeometry
) -> np.dtype[Any]:
    """Return the dtype mimo_conv.conv gives for these operands, from a one-window call."""
    window = np.zeros((1, geometry.in_channels, *geometry.window_extent), dtype=dtype)
    return mc.conv(window, weight, bias, dilation=geometry.dilation, groups=geometry.groups).dtype


def _preferred(x: Any) -> tuple[int, ...]:
    """Return the largest chunk of each spatial axis of the unpadded input: the size to aim for."""
    return tuple(max(chunks) for chunks in x.chunks[2:])


def _pad(x: Any, geometry: ConvGeometry) -> Any:
    """Pad the spatial axes of the whole dask array as mimo_conv pads one NumPy array."""
    da = _dask_array()
    if not geometry.is_padded:
        return x
    widths = ((0, 0), (0, 0), *geometry.padding)
    if geometry.padding_mode == "zeros":
        return da.pad(x, widths, mode="constant", constant_values=0)
    return da.pad(x, widths, mode=NUMPY_PAD_MODES[geometry.padding_mode])


def aligned_chunks(
    length: int, preferred: int, stride: int, extent: int
) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
    """Stride-aligned chunks of a padded axis, the right halo, and the output chunks.

    Every chunk but the last is a multiple of ``stride`` and at least ``extent`` (the
    dilated kernel's span) long, the last at least ``extent``; a chunk of ``L`` elements
    plus the halo ``max(0, extent - stride)`` borrowed from its right neighbour holds
    exactly the windows of ``L / stride`` outputs (the last chunk those that remain).

    Parameters
    ----------
    length : int
        Length of the padded axis.
    preferred : int
        The chunk length to aim for (the input's first chunk).
    stride, extent : int
        The axis's stride and ``dilation * (k - 1) + 1``.

    Returns
    -------
    (chunks, halo, output_chunks)

    Examples
    --------
    >>> aligned_chunks(22, 5, 2, 3)  # (22 - 3) // 2 + 1 = 10 outputs of stride 2
    ((6, 6, 6, 4), 1, (3, 3, 3, 1))
    >>> aligned_chunks(10, 4, 1, 5)  # chunks at least a window long; 10 - 5 + 1 = 6 outputs
    ((5, 5), 4, (5, 1))
    """
    halo = max(0, extent - stride)
    size = max(preferred, extent, halo, stride)
    size = -(-size // stride) * stride
    sizes = [size] * (length // size)
    if length % size:
        sizes.append(length % size)
    if len(sizes) > 1 and sizes[-1] < extent:
        last = sizes.pop()
        sizes[-1] += last
    outputs = []
    for number, chunk in enumerate(sizes):
        span = chunk + (halo if number < len(sizes) - 1 else 0)
        outputs.append((span - extent) // stride + 1 if span >= extent else 0)
    return tuple(sizes), halo, tuple(outputs)


def _align(
    padded: Any, preferred: tuple[int, ...], geometry: ConvGeometry
) -> tuple[Any, tuple[int, ...], list[tuple[int, ...]]]:
    """Rechunk the padded array stride-aligned; return it, the halos and the output chunks."""
    chunks: dict[int, tuple[int, ...]] = {}
    halos, outputs = [], []
    for axis in range(geometry.spatial_dims):
        sizes, halo, out = aligned_chunks(
            padded.shape[2 + axis],
            preferred[axis],
            geometry.stride[axis],
            geometry.window_extent[axis],
        )
        chunks[2 + axis] = sizes
        halos.append(halo)
        outputs.append(out)
    return padded.rechunk(chunks), tuple(halos), outputs


def conv_transpose(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    *,
    method: str = "auto",
    memory_budget: int | None = None,
) -> dask.array.Array:
    """Transposed convolution of a dask array: :func:`mimo_conv.conv_transpose`, out of core.

    Chunks over the batch only run :func:`mimo_conv.conv_transpose` per chunk. Spatial
    chunks use the identity the input gradient rests on: the transposed convolution is the
    cross-correlation, with the kernels flipped and their channel axes swapped, of the input
    with ``stride - 1`` zeros inserted between neighbours and padded by ``dilation * (k - 1)
    - padding`` (plus ``output_padding`` after); that correlation is chunked as in
    :func:`conv`.

    Parameters
    ----------
    x : dask array (or array_like) of shape (N, C_in, *spatial) or (C_in, *spatial)
    weight : array_like of shape (C_in, C_out // groups, *kernel)
    bias, stride, padding, output_padding, groups, dilation, method
        As in :func:`mimo_conv.conv_transpose`.
    memory_budget : int, optional
        The budget of each chunk's own call.

    Returns
    -------
    dask array of the shape and dtype of ``mimo_conv.conv_transpose(x, weight, ...)``

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import mimo_conv as mc
    >>> x = np.arange(2 * 3 * 9 * 9).reshape(2, 3, 9, 9) % 11 - 5
    >>> w = np.arange(3 * 2 * 3 * 3).reshape(3, 2, 3, 3) % 7 - 3
    >>> lazy = conv_transpose(da.from_array(x, chunks=(1, 3, 4, 4)), w, stride=2, padding=1,
    ...                       output_padding=1)
    >>> expected = mc.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)
    >>> lazy.shape == expected.shape
    True
    >>> np.array_equal(lazy.compute(scheduler="sync"), expected)
    True
    """
    da = _dask_array()
    x = da.asarray(x)
    weight, bias = np.asarray(weight), None if bias is None else np.asarray(bias)
    geometry = transpose_geometry(
        tuple(x.shape),
        weight.shape,
        None if bias is None else bias.shape,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=groups,
        dilation=dilation,
    )
    batched = x if geometry.batched else x[np.newaxis]
    if _batch_chunks_only(batched):
        block = functools.partial(
            mc.conv_transpose,
            weight=weight,
            bias=bias,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            groups=groups,
            dilation=dilation,
            method=method,
            memory_budget=memory_budget,
        )
        batched = batched.rechunk({1: -1})
        chunks = (batched.chunks[0], (geometry.in_channels,), *((n,) for n in geometry.input_shape))
        dtype = mc.conv_transpose(
            np.zeros((1, *batched.shape[1:2], *(1,) * geometry.spatial_dims), batched.dtype),
            weight,
            bias,
            groups=groups,
        ).dtype
        result = da.map_blocks(block, batched, chunks=chunks, dtype=dtype)
    else:
        result = _transposed(batched, weight, bias, geometry, method, memory_budget)
    return cast("dask.array.Array", result if geometry.batched else result[0])


def _batch_chunks_only(x: Any) -> bool:
    """Whether a batched dask array is chunked over the batch (and channels) only."""
    return all(len(chunks) == 1 for chunks in x.chunks[2:])


def _transposed(
    x: Any,
    weight: NDArray[Any],
    bias: NDArray[Any] | None,
    forward: ConvGeometry,
    method: str,
    memory_budget: int | None,
) -> Any:
    """Compute the transposed convolution of the forward ``geometry`` as a chunked correlation.

    ``x`` is batched and has the forward call's output shape; the result has its input
    shape.
    """
    da = _dask_array()
    dims = forward.spatial_dims
    kernel = forward.kernel_shape
    # Zeros between neighbours: each chunk of L elements becomes L * stride long, then the
    # stride - 1 trailing zeros of the last element are cut off.
    if any(step > 1 for step in forward.stride):
        chunks = (
            x.chunks[0],
            x.chunks[1],
            *(tuple(n * s for n in c) for c, s in zip(x.chunks[2:], forward.stride, strict=True)),
        )
        x = da.map_blocks(
            functools.partial(_insert_zeros, stride=forward.stride), x, chunks=chunks, dtype=x.dtype
        )
        x = x[
            (
                slice(None),
                slice(None),
                *(
                    slice(0, (n - 1) * s + 1)
                    for n, s in zip(forward.output_shape, forward.stride, strict=True)
                ),
            )
        ]
    widths = []
    crops = []
    for axis in range(dims):
        full = forward.dilation[axis] * (kernel[axis] - 1)
        before, after = forward.padding[axis]
        length = (forward.output_shape[axis] - 1) * forward.stride[axis] + 1
        extra = forward.input_shape[axis] - (length + 2 * full - before - after - full)
        left, right = full - before, full - after + extra
        widths.append((max(0, left), max(0, right)))
        crops.append(slice(max(0, -left), None if right >= 0 else right))
    x = x[(slice(None), slice(None), *crops)]
    if any(w for pair in widths for w in pair):
        x = da.pad(x, ((0, 0), (0, 0), *widths), mode="constant", constant_values=0)
    groups = forward.groups
    per_in, per_out = weight.shape[0] // groups, weight.shape[1]
    flipped = (
        weight.reshape((groups, per_in, per_out, *kernel))
        .swapaxes(1, 2)
        .reshape((groups * per_out, per_in, *kernel))[
            (slice(None), slice(None), *(slice(None, None, -1),) * dims)
        ]
    )
    flipped = np.ascontiguousarray(flipped)
    geometry = build_geometry(
        tuple(x.shape),
        flipped.shape,
        None if bias is None else bias.shape,
        stride=1,
        padding=0,
        dilation=forward.dilation,
        groups=groups,
        padding_mode="zeros",
    )
    return _conv_batched(x, flipped, bias, geometry, method, memory_budget)


def _insert_zeros(block: NDArray[Any], *, stride: tuple[int, ...]) -> NDArray[Any]:
    """``stride - 1`` zeros after every element of the spatial axes of one chunk."""
    shape = (*block.shape[:2], *(n * s for n, s in zip(block.shape[2:], stride, strict=True)))
    out = np.zeros(shape, dtype=block.dtype)
    out[(slice(None), slice(None), *(slice(None, None, s) for s in stride))] = block
    return out


def conv_input(
    input_shape: tuple[int, ...],
    weight: Any,
    grad_output: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    method: str = "auto",
    memory_budget: int | None = None,
) -> dask.array.Array:
    """Gradient of a convolution with respect to its input, for a dask ``grad_output``.

    :func:`mimo_conv.grad.conv_input` out of core (zero padding): the transposed
    convolution of ``grad_output``, chunked as :func:`conv_transpose` is.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from mimo_conv import grad
    >>> w = np.arange(4 * 3 * 3 * 3).reshape(4, 3, 3, 3) % 5 - 2
    >>> g = np.arange(2 * 4 * 5 * 5).reshape(2, 4, 5, 5) % 7 - 3
    >>> lazy = conv_input((2, 3, 10, 10), w, da.from_array(g, chunks=(1, 4, 2, 3)), stride=2,
    ...                   padding=1)
    >>> expected = grad.conv2d_input((2, 3, 10, 10), w, g, stride=2, padding=1)
    >>> np.array_equal(lazy.compute(scheduler="sync"), expected)
    True
    """
    da = _dask_array()
    grad_output = da.asarray(grad_output)
    weight = np.asarray(weight)
    geometry = build_geometry(
        tuple(input_shape),
        weight.shape,
        None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode="zeros",
    )
    if tuple(grad_output.shape) != geometry.out_shape:
        msg = (
            f"grad_output must have the forward output's shape {geometry.out_shape}, "
            f"got {tuple(grad_output.shape)}"
        )
        raise ValueError(msg)
    batched = grad_output if geometry.batched else grad_output[np.newaxis]
    # The forward kernels (C_out, C_in/groups, ...) are already laid out as the transposed
    # convolution's (its input channels first).
    batched = batched.rechunk({1: -1})
    result = _transposed(batched, weight, None, geometry, method, memory_budget)
    return cast("dask.array.Array", result if geometry.batched else result[0])


def conv_weight(
    x: Any,
    weight_shape: tuple[int, ...],
    grad_output: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    memory_budget: int | None = None,
) -> dask.array.Array:
    """Gradient of a convolution with respect to its weight, for dask ``x`` and ``grad_output``.

    :func:`mimo_conv.grad.conv_weight` out of core: ``x`` is padded, aligned and given its
    halo as in :func:`conv`, ``grad_output`` is cut into the matching output chunks, each
    pair of chunks gives one partial weight gradient, and the partial gradients are summed
    (a tree of additions; exact on integers).

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from mimo_conv import grad
    >>> x = np.arange(2 * 3 * 10 * 10).reshape(2, 3, 10, 10) % 9 - 4
    >>> g = np.arange(2 * 4 * 10 * 10).reshape(2, 4, 10, 10) % 5 - 2
    >>> lazy = conv_weight(da.from_array(x, chunks=(1, 3, 4, 4)), (4, 3, 3, 3), g, padding=1,
    ...                    padding_mode="circular")
    >>> expected = grad.conv2d_weight(x, (4, 3, 3, 3), g, padding=1, padding_mode="circular")
    >>> np.array_equal(lazy.compute(scheduler="sync"), expected)
    True
    """
    da = _dask_array()
    x, grad_output = da.asarray(x), da.asarray(grad_output)
    geometry = build_geometry(
        tuple(x.shape),
        tuple(weight_shape),
        None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    if tuple(grad_output.shape) != geometry.out_shape:
        msg = (
            f"grad_output must have the forward output's shape {geometry.out_shape}, "
            f"got {tuple(grad_output.shape)}"
        )
        raise ValueError(msg)
    if not geometry.batched:
        x, grad_output = x[np.newaxis], grad_output[np.newaxis]
    x = x.rechunk({1: -1})
    aligned, halos, out_chunks = _align(_pad(x, geometry), _preferred(x), geometry)
    dims = geometry.spatial_dims
    depth = {0: 0, 1: 0, **{2 + axis: (0, halos[axis]) for axis in range(dims)}}
    overlapped = (
        da.overlap.overlap(aligned, depth=depth, boundary="none") if any(halos) else aligned
    )
    grad_output = grad_output.rechunk((aligned.chunks[0], -1, *out_chunks))
    partial = functools.partial(
        _weight_block,
        weight_shape=tuple(weight_shape),
        stride=geometry.stride,
        dilation=geometry.dilation,
        groups=geometry.groups,
        method=method,
        memory_budget=memory_budget,
    )
    delayed = _delayed()
    pieces = [
        delayed(partial)(x_block, g_block)
        for x_block, g_block in zip(
            overlapped.to_delayed().ravel(), grad_output.to_delayed().ravel(), strict=True
        )
    ]
    total = delayed(_tree_sum)(pieces)
    dtype = grad.conv_weight(
        np.zeros((1, geometry.in_channels, *geometry.window_extent), x.dtype),
        tuple(weight_shape),
        np.zeros((1, geometry.out_channels, *(1,) * dims), grad_output.dtype),
        dilation=geometry.dilation,
        groups=geometry.groups,
    ).dtype
    return cast("dask.array.Array", da.from_delayed(total, shape=tuple(weight_shape), dtype=dtype))


def _weight_block(
    x_block: NDArray[Any],
    g_block: NDArray[Any],
    *,
    weight_shape: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
    method: str,
    memory_budget: int | None,
) -> NDArray[Any]:
    """One task: the weight gradient of one chunk of ``x`` (with halo) and of grad_output."""
    if g_block.size == 0:
        return np.zeros(weight_shape, dtype=np.result_type(x_block, g_block))
    return grad.conv_weight(
        x_block,
        weight_shape,
        g_block,
        stride=stride,
        dilation=dilation,
        groups=groups,
        method=method,
        memory_budget=memory_budget,
    )


def _tree_sum(pieces: list[NDArray[Any]]) -> NDArray[Any]:
    """Sum the partial gradients pairwise (the order is fixed by the chunking)."""
    while len(pieces) > 1:
        pieces = [
            pieces[i] + pieces[i + 1] if i + 1 < len(pieces) else pieces[i]
            for i in range(0, len(pieces), 2)
        ]
    return pieces[0]
