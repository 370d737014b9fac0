"""What a computational path declares about itself: the record every path module exports.

A path is a function ``correlate(x_padded, weight, geometry, chunking) -> out`` plus what the
planner (:mod:`mimo_conv._engine.plan`) needs to know about it without running it: whether
it applies to a call (and why not, in words), the temporary bytes of its chunks, and the work
it does besides its multiply-adds (:class:`Work`), counted as bytes copied and NumPy calls.
The machine's speeds that turn these counts into seconds live in the engine
(:mod:`mimo_conv._engine.constants`), not here: a path says *what* it does, the engine says
how long that takes on this machine.

Examples
--------
>>> from mimo_conv._paths.naive import PATH
>>> PATH.name, PATH.granularity
('naive', 'window')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.budget import Chunking
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.layouts import CHANNELS_FIRST, MemoryLayout

#: ``correlate(x_padded, weight, geometry, chunking)``: the padded input
#: ``(N, C_in, *padded_shape)`` and the kernels in the compute dtype, the chunk sizes the plan
#: chose (None: one chunk); returns a new ``(N, C_out, *output_shape)`` array without bias.
Correlate = Callable[[NDArray[Any], NDArray[Any], ConvGeometry, Chunking | None], NDArray[Any]]


@dataclass(frozen=True)
class Work:
    """What one call of a path does besides its multiply-adds, for the cost model.

    Attributes
    ----------
    bytes_moved : int
        Bytes read and written outside the matrix-product kernel (tap copies, additions).
    calls : int
        NumPy calls issued from Python, each with a fixed overhead.
    products : int
        Separate small matrix products (one per image, group and chunk, or per tap).
    product_rows, product_inner : int
        Rows and inner length of one product: small ones run below BLAS's full rate.
    einsum_calls : int
        ``np.einsum`` calls (each parses its subscripts and plans its route).
    python_iterations : int
        Iterations of a Python loop (the naive path's windows).
    elementwise : bool
        The arithmetic is NumPy's elementwise multiply and sum, not a matrix product.
    stacked_products : int
        Products formed by elementwise multiplies over cache-resident views, each then
        added or reduced into a running sum (``"depthwise"``), on the busiest thread; when
        nonzero they stand for the arithmetic instead of the FLOP count.
    note : str
        What the path does, for the printed table.
    product_columns : int
        Columns of one product (output positions it computes); 0 when not counted, taken
        as many (BLAS's full rate along that dimension).
    strided_bytes : int
        The part of ``bytes_moved`` read element by element with a stride (a strided
        convolution's windows), slower than contiguous runs.
    copy_runs : int
        Contiguous runs the copies and additions start (one per copied row): each costs a
        fixed time, which decides copies of short rows.
    window_views : int
        Sliding-window views built (:func:`mimo_conv._core.windows.window_view`): each
        costs NumPy's Python-level stride bookkeeping, about as much as several calls.
    numpy_threads : int
        Threads the NumPy-side work (copies, additions, elementwise arithmetic) is split
        over (1: the calling thread alone; BLAS threads its products by itself).
    multiply_fraction : float
        The share of the call's direct multiply-adds its products do (1: all of them;
        ``"winograd"``'s 16 per 2 x 2 tile against 36 are 4/9).
    """

    bytes_moved: int
    calls: int
    products: int
    product_rows: int
    product_inner: int
    einsum_calls: int = 0
    python_iterations: int = 0
    elementwise: bool = False
    stacked_products: int = 0
    note: str = ""
    product_columns: int = 0
    strided_bytes: int = 0
    copy_runs: int = 0
    window_views: int = 0
    numpy_threads: int = 1
    multiply_fraction: float = 1.0


def always(geometry: ConvGeometry) -> str | None:
    """Say nothing against any geometry: the test of a path that computes every one.

    Examples
    --------
    >>> from mimo_conv._core.geometry import ConvGeometry
    >>> always(ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )) is None
    True
    """
    del geometry
    return None


def any_dtype(dtype: np.dtype[Any]) -> str | None:
    """Say nothing against any compute dtype: the test of a path that computes in every one.

    Examples
    --------
    >>> any_dtype(np.dtype(object)) is None
    True
    """
    del dtype
    return None


def never(geometry: ConvGeometry) -> bool:
    """Say no path reads an unpadded input: the default of :attr:`PathSpec.reads_unpadded`.

    Examples
    --------
    >>> from mimo_conv._core.geometry import ConvGeometry
    >>> never(ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((1, 1),),
    ... ))
    False
    """
    del geometry
    return False


@dataclass(frozen=True)
class PathSpec:
    """Everything about one computational path, in one place.

    Attributes
    ----------
    name : str
        The name ``method=`` selects it by.
    correlate : Correlate
        The function that computes it.
    summary : str
        One phrase for the ``method`` lists in docstrings.
    chunk_name : str
        What its smallest chunk holds, for messages.
    bytes_per_row : callable ``(geometry, itemsize) -> int``
        Temporary bytes per image and output row (``granularity="rows"``), per image and
        output row of a whole image (``"images"``), or of its one temporary (``"window"``).
    granularity : {"rows", "images", "window"}
        What its chunks are: images times ranges of output rows, whole images only, or a
        fixed temporary that does not grow with the call.
    work : callable ``(geometry, itemsize, chunking) -> Work``
        Its cost formula.
    applies : callable ``(geometry) -> str | None``
        None when it can compute the geometry, else why not (a phrase).
    contiguous_input : bool
        It needs a C-contiguous input; the engine copies (and budgets) one that is not.
    error_bound_factor : float
        Factor over the direct dot-product rounding bound ``gamma_n * conv(|x|, |w|)``
        (Higham, section 3.1): 1 for a path that sums the same products in another order.
    weight_copy : bool
        It copies the kernels into another layout (one kernel-sized temporary).
    layout : {"channels_first", "channels_last"}
        The memory order it reads its input in and writes its result in (the axis order is
        always the canonical one): the engine hands it an input in this order, copying one
        that is not, and copies its result into the order the caller asked for if that is
        another.
    preferred_chunk : int or None
        Largest chunk it prefers, in bytes, under a large budget; None for
        :data:`mimo_conv._core.budget.PREFERRED_CHUNK_BYTES`.
    reads_unpadded : callable ``(geometry) -> bool``
        True where it takes the input without its zero border (it never forms a product
        with a padded zero): the engine then makes no padded copy, and budgets none.
    accepts : callable ``(compute dtype) -> str | None``
        None when it computes in that dtype, else why not (a phrase); a named ``method``
        that refuses the call's compute dtype raises ``TypeError``.
    weight_bytes : callable ``(geometry, itemsize) -> int`` or None
        Bytes of its own transformed kernels, held for the whole call; None for one
        kernel-sized copy when ``weight_copy`` (else none).
    offered_to_auto : bool
        Whether ``method="auto"`` may choose it. False for a path whose error is not
        bounded by the direct bound (``"winograd"``): ``auto`` still costs it, for
        :func:`mimo_conv.explain_method`'s table, but never runs it.
    forward_only : bool
        It computes forward convolutions only: gradients and transposed convolutions
        refuse it by name (and ``auto`` there never considers it).
    """

    name: str
    correlate: Correlate
    summary: str
    chunk_name: str
    bytes_per_row: Callable[[ConvGeometry, int], int]
    granularity: Literal["rows", "images", "window"]
    work: Callable[[ConvGeometry, int, Chunking], Work]
    applies: Callable[[ConvGeometry], str | None] = always
    contiguous_input: bool = False
    error_bound_factor: float = 1.0
    weight_copy: bool = False
    layout: MemoryLayout = CHANNELS_FIRST
    preferred_chunk: int | None = None
    reads_unpadded: Callable[[ConvGeometry], bool] = never
    accepts: Callable[[np.dtype[Any]], str | None] = any_dtype
    weight_bytes: Callable[[ConvGeometry, int], int] | None = None
    offered_to_auto: bool = True
    forward_only: bool = False

    def smallest_chunk(self, geometry: ConvGeometry, itemsize: int) -> int:
        """Temporary bytes of its smallest chunk: one row, one image, or its one window.

        Examples
        --------
        >>> from mimo_conv._paths.gemm import PATH
        >>> g = ConvGeometry(
        ...     batch_size=8, in_channels=16, out_channels=16, groups=1, input_shape=(32, 32),
        ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1),) * 2,
        ... )
        >>> PATH.smallest_chunk(g, 4)  # 16 channels * 9 taps * 32 positions * 4 bytes
        18432
        """
        per_row = self.bytes_per_row(geometry, itemsize)
        if self.granularity == "images":
            return per_row * max(1, geometry.output_shape[0])
        return per_row

    def chunk_bytes(self, geometry: ConvGeometry, itemsize: int, chunking: Chunking) -> int:
        """Temporary bytes of its largest chunk under ``chunking``.

        Examples
        --------
        >>> from mimo_conv._paths.gemm import PATH
        >>> g = ConvGeometry(
        ...     batch_size=8, in_channels=16, out_channels=16, groups=1, input_shape=(32, 32),
        ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1),) * 2,
        ... )
        >>> PATH.chunk_bytes(g, 4, Chunking(2, 32))  # two whole images' im2col buffers
        1179648
        """
        per_row = self.bytes_per_row(geometry, itemsize)
        if self.granularity == "window":
            return per_row
        rows = max(1, geometry.output_shape[0])
        images = min(geometry.batch_size, chunking.images)
        return images * min(rows, chunking.rows) * per_row
