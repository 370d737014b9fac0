"""The ``"winograd"`` method: Winograd's minimal filtering F(2 x 2, 3 x 3) (Lavin and Gray, 2016).

For a 2-d call with a 3 x 3 kernel, stride 1 and dilation 1, the output is cut into 2 x 2
tiles; tile ``(r, s)`` reads the 4 x 4 input tile ``d`` starting at ``(2r, 2s)`` and is

    Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A        (* elementwise, over 4 x 4)

with

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].

So the channel sums are 16 matrix products ``U[a, b] (C_out/groups, C_in/groups) @ V[a, b]
(C_in/groups, tiles)``, one per position of the 4 x 4 transformed tile and per group: 16
multiply-adds per tile and channel pair where the direct sum takes 36 (2.25x fewer). Every
step is vectorised: the input transform is adds and subtracts of strided tile views (two
per element and axis), the kernels are transformed once per call (as ``(2G) g (2G)^T / 4``:
additions, then one exact scaling), the 16 products run in one batched ``np.matmul``
(BLAS), and the output transform is the 3-term sums of ``A^T`` on both axes, written into
the output with the partial last tile (odd output sizes) cropped.

Accuracy. The result is **not** bounded pointwise by the direct bound ``gamma_n conv(|x|,
|w|)`` that every other path meets: the transforms add and subtract terms that the direct
sum never forms, so an output can carry an error where the direct sum is exact. It is
bounded by the derived ``gamma_(C+10) |A^T| (sum_c |G||g_c||G^T| * |B^T||d_c||B|) |A|`` plus
underflow terms (``C = C_in/groups``; docs/performance.md, "Winograd F(2 x 2, 3 x 3): the
error bound", derives it and its normwise corollary, and
:func:`mimo_conv.testing.winograd_bound` computes it), so ``method="auto"`` never chooses this
path: it runs only when named. Gradients and transposed convolutions do not offer it.

Non-finite values. A NaN or an infinity in an input element makes exactly the outputs
non-finite whose windows hold it, as the direct definition does (along each axis a tile's
element 0 reaches only the tile's first output, element 3 only its second, elements 1 and 2
both). But an infinity at an inner position of a tile (element 1 or 2 along an axis) enters
two transformed values with opposite signs, and their sum ``inf - inf`` is NaN: where the
direct definition gives ``+-inf`` such an output is usually NaN here. Infinite kernels do
the same.

Dtypes. Float and complex compute dtypes (float16 computes in float32, as on every path);
integer and ``dtype=object`` calls are refused with a ``TypeError`` (the 1/2 of ``G`` would
make their exact results inexact), as are longdouble ones (no BLAS).

Cost: ``16 * ceil(H/2) * ceil(W/2) * N * C_out * C_in/groups`` multiply-adds in BLAS, about
4/9 of the direct count, plus about ``(8 C_in + 4 C_out) * 16`` additions per tile.
Temporary memory: the transformed kernels (``16 C_out C_in/groups`` elements, with the
transform's own 12 more per pair) for the whole call, and per image and row of tiles the
input transform's half-done rows, the transformed tiles ``V``, the products ``M`` and the
output transform's half-done sums, chunked over images and rows of tiles within the memory
budget (a chunk of ``rows`` output rows in the plan is that many rows of *tiles* here,
which the workspace counts). Chunks change no sum: each product's column is one tile, and
the order of its channel sum is BLAS's for the product's shape.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import Chunking, chunks
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._paths.spec import PathSpec, Work

#: Compute dtypes the path runs in: float and complex, with BLAS.
ACCEPTED_KINDS = {"f": (4, 8), "c": (8, 16)}


def tiles(geometry: ConvGeometry) -> tuple[int, int]:
    """Rows and columns of 2 x 2 output tiles (the last ones partial for odd sizes).

    Examples
    --------
    >>> tiles(ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(7, 8),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... ))
    (4, 4)
    """
    height, width = geometry.output_shape
    return -(-height // 2), -(-width // 2)


def winograd_applies(geometry: ConvGeometry) -> str | None:
    """Why ``"winograd"`` cannot compute a geometry (None: it can).

    Examples
    --------
    >>> winograd_applies(ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(5, 5),
    ...     kernel_shape=(3, 3), stride=(2, 2), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... ))
    'computes F(2 x 2, 3 x 3) at stride 1 only, got stride (2, 2)'
    """
    g = geometry
    if len(g.kernel_shape) != 2:
        return f"computes 2-d convolutions only, got {len(g.kernel_shape)} spatial dimension(s)"
    if g.kernel_shape != (3, 3):
        return f"needs a 3 x 3 kernel, got kernel shape {g.kernel_shape}"
    if g.stride != (1, 1):
        return f"computes F(2 x 2, 3 x 3) at stride 1 only, got stride {g.stride}"
    if g.dilation != (1, 1):
        return f"computes F(2 x 2, 3 x 3) undilated only, got dilation {g.dilation}"
    return None


def winograd_accepts(dtype: np.dtype[Any]) -> str | None:
    """Why ``"winograd"`` cannot compute in a compute dtype (None: it can).

    Examples
    --------
    >>> print(winograd_accepts(np.dtype(np.float32)))
    None
    >>> winograd_accepts(np.dtype(np.int64))
    'computes in float or complex only (its transforms halve, inexact on integers and on the exact dtype=object numbers), got compute dtype int64'
    """  # noqa: E501
    if dtype.itemsize in ACCEPTED_KINDS.get(dtype.kind, ()):
        return None
    if dtype.kind in "fc":
        return f"runs on BLAS's float32, float64, complex64 and complex128 only, got {dtype}"
    return (
        "computes in float or complex only (its transforms halve, inexact on integers and on "
        f"the exact dtype=object numbers), got compute dtype {dtype}"
    )


def transform_weight(weight: NDArray[Any], groups: int) -> NDArray[Any]:
    """``U = G g G^T`` of every kernel, as ``(16, groups, C_out/groups, C_in/groups)``.

    Computed as ``((2G) g (2G)^T) / 4``: per axis ``2 g0``, ``(g0 + g2) + g1``,
    ``(g0 + g2) - g1``, ``2 g2`` (at most two rounded additions per term and axis; the
    doublings are exact), then one multiplication by 1/4, exact unless it underflows.

    Examples
    --------
    >>> u = transform_weight(np.arange(9.0).reshape(1, 1, 3, 3), 1)
    >>> u.shape, float(u[0, 0, 0, 0]), float(u[5, 0, 0, 0])  # g[0, 0]; the sum of all / 4
    ((16, 1, 1, 1), 0.0, 9.0)
    """
    out_channels, per_group = weight.shape[:2]
    # Along the first kernel axis: h[a] (C_out, C_in/groups, 3).
    h = np.empty((4, out_channels, per_group, 3), dtype=weight.dtype)
    np.add(weight[:, :, 0], weight[:, :, 0], out=h[0])
    np.add(weight[:, :, 0], weight[:, :, 2], out=h[1])
    np.subtract(h[1], weight[:, :, 1], out=h[2])
    h[1] += weight[:, :, 1]
    np.add(weight[:, :, 2], weight[:, :, 2], out=h[3])
    u = np.empty((4, 4, out_channels, per_group), dtype=weight.dtype)
    np.add(h[..., 0], h[..., 0], out=u[:, 0])
    np.add(h[..., 0], h[..., 2], out=u[:, 1])
    np.subtract(u[:, 1], h[..., 1], out=u[:, 2])
    u[:, 1] += h[..., 1]
    np.add(h[..., 2], h[..., 2], out=u[:, 3])
    del h
    u *= 0.25
    return u.reshape((16, groups, out_channels // groups, per_group))


def _transform_rows(source: NDArray[Any], target: NDArray[Any], count: int) -> None:
    """``target[a] = (B^T d)[a]`` along the second-to-last axis of ``source`` into ``count`` rows.

    ``source`` holds rows ``0 .. 2 count + 1`` (the last may be missing: a partial tile,
    whose missing row is a zero); rows ``i, i + 2, ...`` are tile element ``i``.
    """
    d = [source[..., i : i + 2 * count : 2, :] for i in range(4)]
    np.subtract(d[0], d[2], out=target[0])
    np.add(d[1], d[2], out=target[1])
    np.subtract(d[2], d[1], out=target[2])
    short = d[3].shape[-2]
    np.subtract(d[1][..., :short, :], d[3], out=target[3][..., :short, :])
    if short < count:  # the missing row is zero: d1 - 0
        target[3][..., short:, :] = d[1][..., short:, :]


def _transform_columns(source: NDArray[Any], target: NDArray[Any], count: int) -> None:
    """``target[b] = (d B)[b]`` along the last axis of ``source`` into ``count`` columns."""
    d = [source[..., i : i + 2 * count : 2] for i in range(4)]
    np.subtract(d[0], d[2], out=target[0])
    np.add(d[1], d[2], out=target[1])
    np.subtract(d[2], d[1], out=target[2])
    short = d[3].shape[-1]
    np.subtract(d[1][..., :short], d[3], out=target[3][..., :short])
    if short < count:
        target[3][..., short:] = d[1][..., short:]


def correlate_winograd(
    x_padded: NDArray[Any],
    weight: NDArray[Any],
    geometry: ConvGeometry,
    chunking: Chunking | None = None,
) -> NDArray[Any]:
    """Cross-correlate a 3 x 3 kernel at stride 1 by Winograd's F(2 x 2, 3 x 3).

    Parameters
    ----------
    x_padded : ndarray of shape (N, C_in, H + 2, W + 2)
        The padded input, in a float or complex compute dtype.
    weight : ndarray of shape (C_out, C_in // groups, 3, 3)
        The kernels, in the compute dtype.
    geometry : ConvGeometry
        A 2-d, 3 x 3, stride-1, undilated geometry (:func:`winograd_applies`).
    chunking : Chunking, optional
        Images and rows *of tiles* per chunk, as the plan chose them; one chunk when None.

    Returns
    -------
    ndarray of shape (N, C_out, H, W)
        A new C-contiguous array in the compute dtype, without bias.

    Examples
    --------
    >>> x = np.arange(25.0).reshape(1, 1, 5, 5)
    >>> w = np.ones((1, 1, 3, 3))
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(5, 5),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> correlate_winograd(x, w, g)  # a partial last tile: 3 x 3 outputs
    array([[[[ 54.,  63.,  72.],
             [ 99., 108., 117.],
             [144., 153., 162.]]]])
    >>> correlate_winograd(x, w, g, Chunking(1, 1))[0, 0, 2]  # one row of tiles at a time
    array([144., 153., 162.])
    """
    g = geometry
    batch, groups = g.batch_size, g.groups
    height, width = g.output_shape
    rows, columns = tiles(g)
    out = np.empty((batch, g.out_channels, height, width), dtype=x_padded.dtype)
    if out.size == 0:
        return out
    step = chunking or Chunking(max(1, batch), max(1, rows))
    u = transform_weight(weight, groups)
    in_channels, out_channels = g.in_channels, g.out_channels
    padded_width = x_padded.shape[-1]
    for tile_rows in chunks(rows, step.rows):
        count = tile_rows.stop - tile_rows.start
        first = 2 * tile_rows.start
        out_rows = [range(first + i, min(2 * tile_rows.stop, height), 2) for i in range(2)]
        for image_slice in chunks(batch, step.images):
            images = image_slice.stop - image_slice.start
            source = x_padded[image_slice, :, first : first + 2 * count + 2]
            # B^T d along the rows, as (4, C_in, images, tile rows, padded width).
            half = np.empty((4, in_channels, images, count, padded_width), dtype=out.dtype)
            _transform_rows(source, half.transpose(0, 2, 1, 3, 4), count)
            # ... then along the columns: V (4, 4, C_in, images, tile rows, tile columns).
            v = np.empty((4, 4, in_channels, images, count, columns), dtype=out.dtype)
            _transform_columns(half, v.transpose(1, 0, 2, 3, 4, 5), columns)
            del half
            positions = images * count * columns
            m = np.empty((16, groups, out_channels // groups, positions), dtype=out.dtype)
            np.matmul(u, v.reshape((16, groups, in_channels // groups, positions)), out=m)
            del v
            m4 = m.reshape((4, 4, out_channels, images, count, columns))
            # A^T m along the rows: s[x] (4, C_out, images, tile rows, tile columns).
            s = np.empty((2, 4, out_channels, images, count, columns), dtype=out.dtype)
            np.add(m4[0], m4[1], out=s[0])
            s[0] += m4[2]
            np.subtract(m4[1], m4[2], out=s[1])
            s[1] -= m4[3]
            del m, m4
            # ... then along the columns, into the output (partial tiles cropped).
            target = out[image_slice].transpose(1, 0, 2, 3)
            for x in range(2):
                height_x = len(out_rows[x])
                if height_x == 0:
                    continue
                rows_x = slice(out_rows[x].start, out_rows[x].stop, 2)
                for y in range(2):
                    width_y = len(range(y, width, 2))
                    into = target[:, :, rows_x, y::2]
                    part = s[x][..., :height_x, :width_y]
                    if y == 0:
                        np.add(part[0], part[1], out=into)
                        into += part[2]
                    else:
                        np.subtract(part[1], part[2], out=into)
                        into -= part[3]
            del s
    return out


def winograd_bytes_per_row(geometry: ConvGeometry, itemsize: int) -> int:
    """Peak temporary bytes per image and row of tiles (a "row" of the plan's chunks).

    The largest of: the half-done input rows with ``V`` (``4 C_in (2 tw + 2) + 16 C_in tw``
    elements), ``V`` with the products ``M`` (``16 (C_in + C_out) tw``), and ``M`` with the
    half-done output sums (``24 C_out tw``), for ``tw`` tile columns.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=256, out_channels=256, groups=1, input_shape=(14, 14),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> winograd_bytes_per_row(g, 4)  # V and M: 16 * 512 channels * 7 tiles * 4 bytes
    229376
    """
    g = geometry
    columns = tiles(g)[1]
    padded_width = g.padded_shape[1] if len(g.padded_shape) == 2 else 0
    first = 4 * g.in_channels * padded_width + 16 * g.in_channels * columns
    second = 16 * (g.in_channels + g.out_channels) * columns
    third = 24 * g.out_channels * columns
    return max(first, second, third) * itemsize


def winograd_weight_bytes(geometry: ConvGeometry, itemsize: int) -> int:
    """Bytes of the transformed kernels with the transform's half-done ones (28 per pair).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> winograd_weight_bytes(g, 4)  # 28 * 64 * 64 * 4
    458752
    """
    return 28 * geometry.out_channels * geometry.in_channels_per_group * itemsize


def multiply_fraction(geometry: ConvGeometry) -> float:
    """Return the share of the direct multiply-adds the 16 products do (16 per tile, 9 per output).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> round(multiply_fraction(g), 4)  # 4/9 when the tiles fit exactly
    0.4444
    """
    rows, columns = tiles(geometry)
    outputs = math.prod(geometry.output_shape)
    return 16 * rows * columns / (9 * outputs) if outputs else 1.0


def winograd_work(geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> Work:
    """Count the work: the transforms' passes, 16 products per chunk and group, the output.

    Per chunk: 8 calls of the input transform (reading the input rows twice, writing the
    half-done rows, reading them twice, writing ``V``), one batched product of 16 x groups
    products of ``(C_out/groups, C_in/groups) @ (C_in/groups, tiles)``, 4 calls of the
    row sums (reading ``M`` 1.5 times, writing the sums), and 8 of the column sums into
    the output. The additions stream in contiguous rows of tile columns; their strided
    reads (every other element) are counted as strided.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=256, out_channels=256, groups=1, input_shape=(14, 14),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> work = winograd_work(g, 4, Chunking(8, 14))
    >>> work.products, work.product_rows, work.product_inner, work.product_columns
    (16, 256, 256, 392)
    """
    g = geometry
    rows, columns = tiles(g)
    count = chunking.count(g.batch_size, rows) if rows else 1
    tile_count = g.batch_size * rows * columns
    padded_width = g.padded_shape[1] if len(g.padded_shape) == 2 else 0
    row_elements = g.batch_size * g.in_channels * rows * padded_width
    v_elements = 16 * g.in_channels * tile_count
    m_elements = 16 * g.out_channels * tile_count
    out_elements = g.batch_size * g.out_channels * math.prod(g.output_shape)
    input_bytes = (2 * 4 * row_elements + 4 * row_elements + 2 * v_elements + v_elements) * itemsize
    output_bytes = (m_elements * 3 // 2 + m_elements // 2 * 2 + 2 * out_elements) * itemsize
    tile_rows = min(chunking.rows, max(1, rows))
    images = min(chunking.images, max(1, g.batch_size))
    return Work(
        bytes_moved=input_bytes + output_bytes,
        calls=count * (8 + 3 + 4 + 8 + 6) + 12,
        products=count * 16 * g.groups,
        product_rows=g.out_channels_per_group,
        product_inner=g.in_channels_per_group,
        product_columns=images * tile_rows * columns,
        strided_bytes=(2 * 4 * row_elements + 2 * v_elements + 2 * out_elements) * itemsize,
        copy_runs=count * 16 * g.in_channels * images * tile_rows,
        note="Winograd F(2x2,3x3): 16 GEMMs on transformed tiles",
        multiply_fraction=multiply_fraction(g),
    )


#: The record of this path (:mod:`mimo_conv._paths.registry`).
PATH = PathSpec(
    name="winograd",
    correlate=correlate_winograd,
    summary="Winograd F(2x2, 3x3): 16 matrix products on transformed 4 x 4 tiles, 4/9 of "
    "the multiply-adds (3 x 3 kernels at stride 1; a normwise error bound, so only by name)",
    chunk_name="transformed tiles of one row of tiles",
    bytes_per_row=winograd_bytes_per_row,
    granularity="rows",
    work=winograd_work,
    applies=winograd_applies,
    accepts=winograd_accepts,
    weight_bytes=winograd_weight_bytes,
    offered_to_auto=False,
    forward_only=True,
)
