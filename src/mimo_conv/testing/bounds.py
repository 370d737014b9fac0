"""The forward error bound of a convolution computed in floating point, in any summation order.

Every output element is a dot product of ``n = C_in / groups * prod(kernel)`` products plus,
optionally, a bias. Higham (*Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
section 3.1) shows that a dot product computed in **any** order (sequential, pairwise,
blocked BLAS, with or without fused multiply-adds) with unit roundoff ``u`` satisfies::

    |fl(x . w) - x . w| <= gamma_n * sum_i |x_i| |w_i|,    gamma_n = n u / (1 - n u).

This module turns that into an elementwise bound for a whole convolution:

* the magnitudes ``M = conv(|x|, |w|) + |b|`` are computed in float64 (``longdouble`` for
  ``longdouble`` inputs), never in the low precision, and inflated for their own rounding;
* a bias is one more term: ``gamma_{n+1}``;
* underflow: a product that falls into the subnormal range is rounded with an absolute
  error of at most half the smallest subnormal ``eta``, so ``n * eta * (1 + gamma)`` is
  added (twice what is needed, because ``eta / 2`` is not representable; additions are
  exact when their result is subnormal, so they add nothing), and the bound's own float64
  arithmetic adds a few float64 subnormals;
* complex: the real and the imaginary part are each a real dot product of ``2n`` terms whose
  magnitudes sum to at most ``sum |x_i| |w_i|`` (Cauchy-Schwarz), so the modulus of the
  error is at most ``sqrt(2)`` times the real bound for ``2n`` terms;
* a result rounded once more to a narrower dtype (float16 computed in float32) adds that
  rounding: ``u_out * (M + bound) + eta_out / 2``;
* exact arithmetic (int64, or object arrays of Python ints and fractions) has bound 0.

Cost: one float64 convolution of the magnitudes (the same multiply-adds as the call).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from mimo_conv._core.dtypes import DtypePlan, plan_dtypes
from mimo_conv._core.operands import prepare_call
from mimo_conv._ops.conv import conv

#: ``sqrt(2)`` rounded up: float64 ``1.4142135623730951`` is above the true value.
_SQRT2_UP = 1.4142135623730951


def gamma(n: int, unit_roundoff: float) -> float:
    """Return Higham's ``gamma_n = n u / (1 - n u)``.

    Parameters
    ----------
    n : int
        Number of rounded operations a term goes through.
    unit_roundoff : float
        ``u``, half the machine epsilon of the working precision.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        When ``n u >= 1``: no bound of this form exists.

    Examples
    --------
    >>> gamma(3, 2.0**-24)
    1.788139...e-07
    >>> gamma(2**24, 2.0**-24)
    Traceback (most recent call last):
    ...
    ValueError: n * u must be < 1 for the error bound gamma_n, got n = 16777216, u = 5.96...e-08
    """
    nu = n * unit_roundoff
    if nu >= 1:
        msg = f"n * u must be < 1 for the error bound gamma_n, got n = {n}, u = {unit_roundoff}"
        raise ValueError(msg)
    return nu / (1 - nu)


def _object_plan(*arrays: NDArray[Any] | None) -> DtypePlan | None:
    """Return the float plan of object arrays holding inexact numbers (None if exact)."""
    kinds: set[str] = set()
    for array in arrays:
        if array is None or array.dtype.kind != "O":
            continue
        for value in array.flat:
            if isinstance(value, numbers.Rational):
                continue
            kinds.add("f" if isinstance(value, numbers.Real) else "c")
    if not kinds:
        return None
    dtype = np.dtype(np.complex128 if "c" in kinds else np.float64)
    return DtypePlan(compute=dtype, output=dtype)


def _magnitude_dtype(plan: DtypePlan) -> np.dtype[Any]:
    """float64, or longdouble when the call computes in something wider than float64."""
    precision = np.finfo(plan.compute).precision
    return np.dtype(np.longdouble if precision > np.finfo(np.float64).precision else np.float64)


def conv_error_bound(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    *,
    padding_mode: str = "zeros",
    dtype: DTypeLike | None = None,
) -> NDArray[np.floating[Any]]:
    """Elementwise bound on the rounding error of a convolution, for any summation order.

    Parameters
    ----------
    x, weight, bias, stride, padding, dilation, groups, padding_mode
        As in :func:`mimo_conv.conv`; the inputs are taken as exact values.
    dtype : dtype, optional
        The dtype of the result being bounded. Default: the dtype :func:`mimo_conv.conv`
        returns for these inputs. float16 is bounded as computed in float32 and rounded
        once, as :func:`mimo_conv.conv` computes it.

    Returns
    -------
    ndarray of float64 (longdouble for longdouble inputs), shape of the conv's output
        ``|computed - exact| <= bound`` elementwise (for complex results, the modulus).
        Zeros for exact arithmetic; non-finite where an input in the window is non-finite.

    Examples
    --------
    Three float32 products, summed in any order:

    >>> x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    >>> w = np.array([[[1.0, -1.0, 0.5]]], dtype=np.float32)
    >>> conv_error_bound(x, w)  # gamma_3 * (1 + 2 + 1.5) = 4.5 * 3 * 2**-24 / (1 - 3 * 2**-24)
    array([[8.0466...e-07]])

    Integer arithmetic is exact:

    >>> conv_error_bound([[1, 2, 3]], [[[1, -1]]])
    array([[0., 0.]])
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
    )
    if dtype is not None:
        plan = plan_dtypes(np.dtype(dtype))
    if plan.compute.kind == "O":
        object_plan = _object_plan(x_array, weight_array, bias_array)
        if object_plan is None:
            return np.zeros(geometry.out_shape)
        plan = object_plan
    if plan.compute.kind in "iu":
        return np.zeros(geometry.out_shape)

    magnitude = _magnitude_dtype(plan)
    n = geometry.terms_per_output
    kwargs = {
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "padding_mode": padding_mode,
    }
    # |x| and |w| in the magnitude dtype: exact for real inputs, within an ulp for complex.
    abs_x = np.abs(np.asarray(x_array, dtype=_complex_or_real(x_array, magnitude)))
    abs_w = np.abs(np.asarray(weight_array, dtype=_complex_or_real(weight_array, magnitude)))
    # A direct summation path: its own rounding is covered by the inflation below.
    total = conv(abs_x.astype(magnitude), abs_w.astype(magnitude), method="einsum", **kwargs)
    if bias_array is not None:
        abs_b = np.abs(np.asarray(bias_array, dtype=_complex_or_real(bias_array, magnitude)))
        total = total + abs_b.astype(magnitude).reshape((-1,) + (1,) * geometry.spatial_dims)
    info_mag = np.finfo(magnitude)
    u_mag = float(info_mag.eps) / 2
    # The magnitudes went through at most n + 3 roundings each (|.| of a complex, the product,
    # n - 1 additions, the bias); the bound's own arithmetic below adds a few more. A factor
    # 1 + 2 gamma_{n+16} in the magnitude precision covers them all (at least float64's: the
    # factors gamma below are Python floats), and (n + 1) smallest subnormals cover products
    # of magnitudes that underflowed.
    slack = 1 + 2 * gamma(n + 16, max(u_mag, 2.0**-53))
    under_mag = (n + 1) * info_mag.smallest_subnormal
    total = total * magnitude.type(slack) + under_mag

    complex_result = plan.compute.kind == "c"
    info = np.finfo(plan.compute)
    u, eta = float(info.eps) / 2, float(info.smallest_subnormal)
    products = 2 * n if complex_result else n
    terms = products + (1 if bias_array is not None else 0)
    g = gamma(terms, u)
    # n eta (1 + g) >= n (eta / 2) (1 + g): eta / 2 itself may not be representable.
    bound = g * total + products * eta * (1 + g)
    if complex_result:
        bound = bound * _SQRT2_UP
    if plan.output != plan.compute:
        out_info = np.finfo(plan.output)
        u_out, eta_out = float(out_info.eps) / 2, float(out_info.smallest_subnormal)
        bound = bound + u_out * (total + bound) + eta_out
    # Each operation above may also underflow, by at most half a subnormal of the magnitude
    # dtype: a few of those cover them (the final addition is exact or relatively covered).
    bound = bound * magnitude.type(slack) + 8 * info_mag.smallest_subnormal
    result: NDArray[np.floating[Any]] = np.asarray(bound, dtype=magnitude)
    return result


def _complex_or_real(array: NDArray[Any], magnitude: np.dtype[Any]) -> np.dtype[Any]:
    """Return the dtype to read ``array`` in before ``|.|``: complex for complex values."""
    if array.dtype.kind == "c" or (
        array.dtype.kind == "O" and any(isinstance(v, complex) for v in array.flat)
    ):
        return np.result_type(magnitude, np.complex64)
    return magnitude
