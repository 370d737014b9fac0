"""The rounding-error bound of ``method="winograd"`` (F(2 x 2, 3 x 3)), elementwise.

The ``"winograd"`` path is not bounded by the direct bound ``gamma_n conv(|x|, |w|)`` of
:func:`mimo_conv.testing.bound`: its transforms form sums the direct definition never forms.
:func:`winograd_bound` is its own rigorous bound, derived in docs/performance.md ("Winograd
F(2 x 2, 3 x 3): the error bound"): with ``C'`` real products per transformed position
(``C_in/groups``; twice that for complex operands) and ``k = C' + 10`` roundings per term
(one more with a bias),

    |result - exact| <= gamma_k (T + |bias|) + (1 + gamma_k) (eta / 2) (rho TV + 9 C'),
    T  = |A^T| (sum_c |G||g_c||G^T| * |B^T||d_c||B|) |A|,
    TV = |A^T| (sum_c |B^T||d_c||B|) |A|,

per 2 x 2 output tile (``d_c`` its 4 x 4 padded input tile, ``g_c`` the 3 x 3 kernel,
``eta`` the compute dtype's smallest subnormal, ``rho`` 1 for real and 2 for complex
operands), plus one rounding to the output dtype when it is narrower (float16), and times
``sqrt(2)`` for the modulus of a complex error. ``T`` and ``TV`` are computed here by
running the same transforms on the magnitudes with ``|A|, |B|, |G|`` in float64, and
raised to cover that computation's own roundings.

Examples
--------
>>> import numpy as np
>>> import mimo_conv as mc
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
>>> w = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
>>> limit = winograd_bound(x, w, padding=1)
>>> exact = mc.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1)
>>> bool(np.all(np.abs(mc.conv2d(x, w, padding=1, method="winograd") - exact) <= limit))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.operands import prepare_call
from mimo_conv._core.windows import pad_input
from mimo_conv._paths.winograd import tiles, winograd_accepts, winograd_applies

__all__ = ["winograd_bound"]

#: ``|B^T|``, ``|G|`` and ``|A^T|`` of F(2 x 2, 3 x 3): every entry is exact in float64.
ABS_BT = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 0, 1]], dtype=np.float64)
ABS_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0, 0, 1]], dtype=np.float64)
ABS_AT = np.array([[1, 1, 1, 0], [0, 1, 1, 1]], dtype=np.float64)

#: Roundings of the float64 magnitudes' computation per term, beyond the channel sum:
#: 16-term sums for ``V`` and the output, 9-term ones for ``U``, one product, with room.
_MAGNITUDE_ROUNDINGS = 48

_U64 = 2.0**-53
_ETA64 = float(np.finfo(np.float64).smallest_subnormal)


def _gamma(k: int, unit_roundoff: float) -> float:
    """``k u / (1 - k u)``, or ``ValueError`` when ``k u >= 1`` (no bound of this form)."""
    if k * unit_roundoff >= 1:
        msg = f"no Winograd bound for {k} roundings of unit roundoff {unit_roundoff}: k u >= 1"
        raise ValueError(msg)
    return k * unit_roundoff / (1 - k * unit_roundoff)


def _tiles_of(padded: NDArray[np.float64], geometry: ConvGeometry) -> NDArray[np.float64]:
    """Return the 4 x 4 input tiles ``(N, C, tile rows, tile columns, 4, 4)``, zero-extended."""
    rows, columns = tiles(geometry)
    batch, channels = padded.shape[:2]
    extended = np.zeros((batch, channels, 2 * rows + 2, 2 * columns + 2))
    extended[:, :, : padded.shape[2], : padded.shape[3]] = padded[
        :, :, : 2 * rows + 2, : 2 * columns + 2
    ]
    windows = np.lib.stride_tricks.sliding_window_view(extended, (4, 4), axis=(2, 3))
    return np.ascontiguousarray(windows[:, :, ::2, ::2])


def _magnitudes(
    x: NDArray[np.float64], weight: NDArray[np.float64], geometry: ConvGeometry
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``T`` and ``TV`` of the module's formula, computed in float64 (not yet raised)."""
    g = geometry
    groups = g.groups
    d = _tiles_of(pad_input(x, g), g)  # (N, C, R, S, 4, 4)
    v = np.einsum("ai,bj,ncrsij->abncrs", ABS_BT, ABS_BT, d)
    u = np.einsum("ap,bq,kcpq->abkc", ABS_G, ABS_G, weight)
    batch, _, rows, columns = v.shape[2:6]
    in_per, out_per = g.in_channels_per_group, g.out_channels_per_group
    v_groups = v.reshape((4, 4, batch, groups, in_per, rows, columns))
    u_groups = u.reshape((4, 4, groups, out_per, in_per))
    m = np.einsum("abhkc,abnhcrs->abnhkrs", u_groups, v_groups)
    m = m.reshape((4, 4, batch, g.out_channels, rows, columns))
    tv = np.broadcast_to(
        v_groups.sum(axis=4)[:, :, :, :, np.newaxis], (4, 4, batch, groups, out_per, rows, columns)
    ).reshape((4, 4, batch, g.out_channels, rows, columns))
    height, width = g.output_shape

    def output(values: NDArray[np.float64]) -> NDArray[np.float64]:
        y: NDArray[np.float64] = np.einsum("xa,yb,abnkrs->nkrxsy", ABS_AT, ABS_AT, values)
        return y.reshape((batch, g.out_channels, 2 * rows, 2 * columns))[:, :, :height, :width]

    return output(m), output(tv)


def _exactly_converted(array: NDArray[Any] | None, compute: np.dtype[Any]) -> bool:
    """Whether ``array`` converts to ``compute`` exactly (floats widen; integers must fit)."""
    if array is None or array.dtype.kind not in "iub" or array.size == 0:
        return True
    limit = 2 ** (np.finfo(compute).nmant + 1)
    return bool(np.all(np.abs(array.astype(object)) <= limit))


def winograd_bound(
    x: Any,
    weight: Any,
    bias: Any = None,
    *,
    padding: Any = 0,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> NDArray[np.float64]:
    """Bound ``|mc.conv2d(x, weight, bias, ..., method="winograd") - exact|`` elementwise.

    Parameters
    ----------
    x : array_like of shape (N, C_in, H, W) or (C_in, H, W)
    weight : array_like of shape (C_out, C_in // groups, 3, 3)
    bias : array_like of shape (C_out,), optional
    padding, groups, padding_mode
        As in :func:`mimo_conv.conv2d` (stride and dilation are 1: the path's only case).

    Returns
    -------
    ndarray of float64, of the result's shape
        The bound on the absolute error (the modulus of a complex one) against the exact
        convolution of the inputs as given, for finite inputs whose result does not
        overflow. Temporary memory: about ``16 (C_in + 2 C_out) / 4`` float64 numbers per
        output position (it is a test helper, not budgeted).

    Raises
    ------
    ValueError
        For a call the path cannot compute (not 2-d, not 3 x 3, a stride or a dilation), an
        integer operand that does not convert exactly to the compute dtype, or channels so
        many that ``k u >= 1``.
    TypeError
        For integer or ``dtype=object`` calls, which the path refuses.

    Examples
    --------
    >>> import numpy as np
    >>> b = winograd_bound(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32))
    >>> b.shape, bool(b[0, 0, 0, 0] < 1e-4)
    ((1, 1, 2, 2), True)
    """
    x_array, weight_array, bias_array, geometry, plan = prepare_call(
        x, weight, bias, stride=1, padding=padding, dilation=1, groups=groups,
        padding_mode=padding_mode, spatial_dims=2,
    )  # fmt: skip
    if (reason := winograd_applies(geometry)) is not None:
        msg = f"method='winograd' {reason}"
        raise ValueError(msg)
    compute, out_dtype = plan.compute, plan.output
    if (reason := winograd_accepts(compute)) is not None:
        msg = f"method='winograd' {reason}"
        raise TypeError(msg)
    for name, array in (("x", x_array), ("weight", weight_array), ("bias", bias_array)):
        if not _exactly_converted(array, compute):
            msg = f"{name} must convert exactly to the compute dtype {compute}, got {array!r}"
            raise ValueError(msg)
    complex_ = compute.kind == "c"
    real = np.finfo(compute)
    per = geometry.in_channels_per_group * (2 if complex_ else 1)
    k = per + 10 + (bias_array is not None)
    gamma = _gamma(k, float(real.eps) / 2)
    eta = float(real.smallest_subnormal)

    batched = x_array if geometry.batched else x_array[np.newaxis]
    with np.errstate(over="ignore", invalid="ignore"):
        magnitude, tile_sums = _magnitudes(
            np.abs(batched).astype(np.float64),
            np.abs(weight_array).astype(np.float64),
            geometry,
        )
        # Raise the float64 sums of nonnegative terms above the true ones: each term went
        # through at most per + 48 roundings, and each underflow loses at most eta64 / 2.
        raise_by = 1 / (1 - _gamma(per + _MAGNITUDE_ROUNDINGS, _U64)) * (1 + 4 * _U64)
        slack = (per + 1) * 4096 * _ETA64
        magnitude = magnitude * raise_by + slack
        tile_sums = tile_sums * raise_by + slack
        shift = np.zeros((geometry.out_channels,))
        if bias_array is not None:
            shift = np.abs(bias_array).astype(np.float64)
        total = magnitude + shift.reshape((-1, 1, 1))
        rho = 2.0 if complex_ else 1.0
        error = gamma * total + (1 + gamma) * (eta / 2) * (rho * tile_sums + 9 * per)
        if out_dtype != compute:  # rounded once more, to float16
            narrow = np.finfo(out_dtype)
            error = (
                error
                + float(narrow.eps) / 2 * (total + error)
                + float(narrow.smallest_subnormal) / 2
            )
        if complex_:
            error = error * np.sqrt(2.0)
        error = error * (1 + 8 * _U64) + 4 * _ETA64
    return error if geometry.batched else error[0]
