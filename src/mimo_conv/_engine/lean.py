"""Lean execution of a plan that is one small matrix product, for tiny calls made again and again.

On the textbook's example or a squeeze-and-excite block (a 1 x 1 kernel on a 1 x 1 map) the
arithmetic takes a few microseconds, so the general engine's bookkeeping (padding and
conversion checks, chunk loops, tap tables) would cost more than the product.
:func:`lean_product` looks at a plan once and, when the whole call is *one* product on the
caller's own arrays, precomputes everything that depends only on shapes: the gather index
of the im2col columns and the shapes of the views. Running it is then three NumPy calls.

It computes exactly what the chosen path computes, operation for operation, so the result is
bit for bit the path's (tests/test_call_cache.py holds it to the engine's result in integers,
floats and complex numbers):

* ``"gemm"`` with one gathered chunk: ``columns = x.take(index)`` builds the same
  ``(N, groups, C_in/groups * prod(kernel), positions)`` buffer as the path's ``np.take``
  (the path's per-image index, offset by image), then the same batched ``np.matmul``.
  A padded call gathers from the input itself too: the index maps each padded position to
  the input element the padding mode copies there, or, for zero padding, to one zero
  appended after the input, so the columns hold exactly the padded copy's values;
* ``"matmul"`` at stride 1 with one chunk of images: ``x`` viewed as
  ``(N, groups, C_in/groups, pixels)``, then the same ``np.matmul``;
* the bias added in place per output channel, as :func:`mimo_conv._engine.execute.run_conv`
  adds it.

A lean run needs: operands already in the compute dtype and returned in it (no float16
rounding), a C-contiguous input, a non-empty output, and one chunk (and no padding for
``"matmul"``). Anything else returns None and the engine runs the plan.
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import pad_input
from mimo_conv._engine.plan import ConvPlan
from mimo_conv._paths.gemm import LEAN_INDEX_ELEMENTS, build_gather_index, gather_index

try:  # where NumPy 2 keeps its floating-point error modes (see _QuietModes)
    from numpy._core import _ufunc_config
except ImportError:  # pragma: no cover - another NumPy layout: np.errstate is used
    _ufunc_config = None  # type: ignore[assignment]

#: Largest gather index (elements, all images of the call) a lean run keeps: 2**15 intp
#: entries are 256 KiB. Larger calls do not need the shortcut (their arithmetic dominates).
#: The gemm path's cost formula counts such calls as one gather.
MAX_INDEX_ELEMENTS = LEAN_INDEX_ELEMENTS


@dataclass(frozen=True, eq=False)
class LeanProduct:
    """The shapes of one call's single matrix product, and its gather index if any.

    Attributes
    ----------
    index : ndarray of intp or None
        For ``"gemm"``: where each element of the columns buffer sits in the flat input,
        shaped ``(N, groups, C_in/groups * prod(kernel), positions)``. None for
        ``"matmul"``, whose columns are a view of the input.
    columns_shape : tuple of int
        The columns' shape ``(N, groups, K, positions)`` (the view's, for ``"matmul"``).
    matrices_shape : tuple of int
        The kernels viewed as ``(groups, C_out/groups, K)``.
    bias_shape : tuple of int
        The bias viewed as ``(groups, C_out/groups, 1)``, to add along positions.
    out_shape : tuple of int
        The result's shape, as the caller gets it (unbatched when the input was).
    floating : bool
        Whether the dtype is a float or complex one (whose IEEE exceptions are silenced).
    zero_slot : bool
        Whether ``index`` reads a zero one past the input's last element (zero padding).

    Leading axes of length 1 (one image, one group) are left out of the product's operands:
    NumPy's ``matmul`` runs the same product on each matrix of the broadcast axes, so fewer
    axes only save its loop set-up (about a microsecond on the textbook's example).
    """

    index: NDArray[np.intp] | None
    columns_shape: tuple[int, ...]
    matrices_shape: tuple[int, ...]
    bias_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    floating: bool
    zero_slot: bool = False

    @property
    def nbytes(self) -> int:
        """Bytes held by the gather index (0 without one)."""
        return 0 if self.index is None else self.index.nbytes

    def __call__(
        self, x: NDArray[Any], weight: NDArray[Any], bias: NDArray[Any] | None
    ) -> NDArray[Any]:
        """Compute the call: the columns, one product, the bias; a new C-contiguous array."""
        # mode="wrap": the index is ours and always in range, and NumPy's take skips its
        # bounds check for it (10.2 against 13.5 us on the classroom's 27 x 1024 float32
        # gather, 1 thread).
        if self.index is None:
            columns = x.reshape(self.columns_shape)
        elif self.zero_slot:  # the padded zeros: one zero after the input's elements
            columns = np.concatenate((x.reshape(-1), np.zeros(1, dtype=x.dtype))).take(
                self.index, mode="wrap"
            )
        else:
            columns = x.take(self.index, mode="wrap")
        if not self.floating:  # integers: exact, and range-checked before the call
            out = np.matmul(weight.reshape(self.matrices_shape), columns)
            if bias is not None:
                out += bias.reshape(self.bias_shape)
            exact: NDArray[Any] = out.reshape(self.out_shape)
            return exact
        # inf * 0, inf - inf and overflow give their IEEE results, as in the engine.
        token = _quiet.enter()
        try:
            out = np.matmul(weight.reshape(self.matrices_shape), columns)
            if bias is not None:
                out += bias.reshape(self.bias_shape)
        finally:
            _quiet.exit(token)
        result: NDArray[Any] = out.reshape(self.out_shape)
        return result


class _QuietModes:
    """``np.errstate(all="ignore")`` for one call, in a fraction of its time.

    NumPy keeps its floating-point error modes in a context variable; ``errstate`` derives a
    new modes object from the current one and sets it, then resets the variable on exit. On
    the textbook's example that costs ~1.3 us of a ~6 us call, mostly in building the new
    object. Here the quiet object derived from the current one is kept (one pair, replaced
    whole when the caller's modes change), so a call only sets and resets the variable.
    The variable is NumPy's private ``numpy._core._ufunc_config._extobj_contextvar``; a
    NumPy without it gets ``np.errstate`` itself.
    """

    def __init__(self) -> None:
        self.modes: contextvars.ContextVar[object] | None = getattr(
            _ufunc_config, "_extobj_contextvar", None
        )
        self.last: tuple[object, object] = (None, None)  # (caller's modes, their quiet form)

    def enter(self) -> object:
        """Ignore floating-point errors from here; return what :meth:`exit` undoes."""
        if self.modes is None:
            state = np.errstate(all="ignore")
            state.__enter__()
            return state
        current = self.modes.get()
        source, quiet = self.last
        if source is not current:
            with np.errstate(all="ignore"):
                quiet = self.modes.get()
            self.last = (current, quiet)
        return self.modes.set(quiet)

    def exit(self, token: object) -> None:
        """Restore the caller's floating-point error modes."""
        if self.modes is None:
            token.__exit__(None, None, None)  # type: ignore[attr-defined]
        else:
            self.modes.reset(token)  # type: ignore[arg-type]


_quiet = _QuietModes()


def lean_product(
    call: ConvPlan,
    x: NDArray[Any],
    weight: NDArray[Any],
    bias: NDArray[Any] | None,
) -> LeanProduct | None:
    """Return the lean run of ``call`` for operands laid out as these, or None if it has none.

    Only the operands' dtypes and ``x``'s layout are read, never their values: the result
    serves every later call whose arrays have the same shapes, dtypes and strides.

    Examples
    --------
    The textbook's example (its answer is 56, 72, 104, 120):

    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> from mimo_conv._core.geometry import ConvGeometry
    >>> from mimo_conv._engine.execute import plan_for, run_conv
    >>> X = np.array([[[0.0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
    >>> K = np.array([[[[0.0, 1], [2, 3]], [[1, 2], [3, 4]]]])
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=1, groups=1, input_shape=(3, 3),
    ...     kernel_shape=(2, 2), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ...     batched=False,
    ... )
    >>> call = plan_for(X, K, g, plan_dtypes(X.dtype, K.dtype), 2**28, "gemm")
    >>> lean = lean_product(call, X, K, None)
    >>> lean(X, K, None)
    array([[[ 56.,  72.],
            [104., 120.]]])
    >>> bool((lean(X, K, None) == run_conv(X, K, None, call)).all())
    True
    """
    if call.chosen not in ("gemm", "matmul"):
        return None
    g, dtypes = call.geometry, call.plan
    cost = call.cost
    operands = (x, weight) if bias is None else (x, weight, bias)
    batched_x = x if g.batched else x[np.newaxis]
    if (
        (g.is_padded and call.chosen == "matmul")
        or dtypes.output != dtypes.compute
        or any(operand.dtype != dtypes.compute for operand in operands)
        or not batched_x.flags.c_contiguous
        or math.prod(g.out_shape) == 0
        or (cost.copy is not None and cost.copy.chunked)
        or cost.chunking is None
        or cost.chunking.images < g.batch_size
    ):
        return None
    positions = math.prod(g.output_shape)
    per_group = g.out_channels_per_group
    if call.chosen == "matmul":
        if any(step != 1 for step in g.stride):
            return None
        index = None
        inner = g.in_channels_per_group
    else:
        if cost.chunking.rows < g.output_shape[0]:
            return None
        size = g.in_channels * math.prod(g.kernel_shape) * math.prod(g.output_shape)
        if g.batch_size * size > MAX_INDEX_ELEMENTS:
            return None
        # The path's cached index where it gathers too, else the same index built here.
        image_index = gather_index(g)
        if image_index is None:
            image_index = build_gather_index(g)
        image_size = g.in_channels * math.prod(g.input_shape)
        offsets = np.arange(g.batch_size, dtype=np.intp)[:, np.newaxis] * image_size
        inner = g.terms_per_output
        if g.is_padded:  # padded position -> the input element there, or -1 for a zero
            image_index = _unpadded(g)[image_index]
        index = offsets + image_index
        if g.is_padded:
            index[:, image_index < 0] = g.batch_size * image_size  # the appended zero
        index = index.reshape((g.batch_size, g.groups, inner, positions))
    # (N, groups, K, positions) and (groups, C_out/groups, K) without leading 1-axes.
    lead = (g.batch_size, g.groups) if g.groups > 1 else (g.batch_size,) * (g.batch_size > 1)
    columns_shape = (*lead, inner, positions)
    if index is not None:
        index = index.reshape(columns_shape)
    groups = (g.groups,) * (g.groups > 1)
    return LeanProduct(
        index=index,
        columns_shape=columns_shape,
        matrices_shape=(*groups, per_group, inner),
        bias_shape=(*groups, per_group, 1),
        out_shape=g.out_shape,
        floating=dtypes.compute.kind in "fc",
        zero_slot=g.is_padded and g.padding_mode == "zeros",
    )


def _unpadded(geometry: ConvGeometry) -> NDArray[np.intp]:
    """For each position of one padded image, the flat input element there (-1: a zero).

    The padding itself, applied to the positions: ``pad_input`` of the numbers
    ``1 .. C * prod(input_shape)`` (zeros padded as 0), less one.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(1,), stride=(1,), dilation=(1,), padding=((2, 1),),
    ... )
    >>> _unpadded(g)
    array([-1, -1,  0,  1,  2, -1])
    >>> _unpadded(dataclasses.replace(g, padding_mode="reflect"))
    array([2, 1, 0, 1, 2, 1])
    """
    one = dataclasses.replace(geometry, batch_size=1)
    count = geometry.in_channels * math.prod(geometry.input_shape)
    positions = np.arange(1, count + 1, dtype=np.intp).reshape(
        (1, geometry.in_channels, *geometry.input_shape)
    )
    flat: NDArray[np.intp] = pad_input(positions, one).reshape(-1) - 1
    return flat
