"""The exact reference of a convolution and the assertion that compares a result with it.

The reference is exact for every finite input: a binary float is an integer times a power
of two, so each real array is scaled to Python ints with one common exponent, convolved
with Python's exact integer arithmetic (``dtype=object``), and scaled back as
:class:`fractions.Fraction`. Complex inputs are four real convolutions. Object arrays of
Python ints and fractions are convolved directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.operands import prepare_call
from mimo_conv._ops.conv import conv
from mimo_conv.testing.bounds import conv_error_bound

#: An exact real array (object dtype, Python ints or fractions) and the power of two it
#: is scaled by: the values are ``array * 2**exponent``.
Scaled = tuple[NDArray[Any], int]

_CONV_OPTIONS = ("stride", "padding", "dilation", "groups", "padding_mode")


def _scaled_integers(array: NDArray[Any]) -> Scaled:
    """Write a finite real array exactly as ``ints * 2**exponent`` (object ints).

    Examples
    --------
    >>> ints, exponent = _scaled_integers(np.array([0.75, -2.0, 0.0]))
    >>> ints.tolist(), exponent
    ([3, -8, 0], -2)
    """
    if array.dtype.kind in "iub":
        return np.asarray(array.astype(object)), 0
    if array.dtype.kind == "O":
        return np.asarray(np.frompyfunc(to_fraction, 1, 1)(array), dtype=object), 0
    if np.finfo(array.dtype).precision > np.finfo(np.float64).precision:
        # longdouble mantissas do not fit int64: go through fractions, element by element.
        return np.asarray(np.frompyfunc(to_fraction, 1, 1)(array), dtype=object), 0
    if not np.all(np.isfinite(array)):
        msg = "the exact reference needs finite inputs, got an array with NaN or Inf"
        raise ValueError(msg)
    bits = np.finfo(array.dtype).nmant + 1
    mantissa, exponent = np.frexp(array)
    ints = np.ldexp(mantissa, bits).astype(np.int64)
    shifts = exponent.astype(np.int64) - bits
    nonzero = ints != 0
    # Drop trailing zero bits (x & -x is the lowest set bit): smaller ints, faster sums.
    trailing = np.log2(np.where(nonzero, ints & -ints, 1)).astype(np.int64)
    ints = ints >> trailing
    shifts = shifts + trailing
    lowest = int(shifts[nonzero].min()) if nonzero.any() else 0
    shifts = np.where(nonzero, shifts - lowest, 0)
    scaled = np.left_shift(ints.astype(object), shifts.astype(object))
    return np.asarray(scaled, dtype=object), lowest


def to_fraction(value: Any) -> Fraction:
    """Return the exact value of a real number (Python or NumPy) as a fraction."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int | np.integer):
        return Fraction(int(value))
    numerator, denominator = value.as_integer_ratio()
    return Fraction(numerator, denominator)


def _parts(array: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Split into real and imaginary parts (None when the array is real)."""
    if array.dtype.kind == "c":
        return array.real, array.imag
    if array.dtype.kind == "O" and any(
        isinstance(v, complex | np.complexfloating) for v in array.flat
    ):
        real = np.frompyfunc(lambda v: v.real, 1, 1)(array)
        imag = np.frompyfunc(lambda v: v.imag, 1, 1)(array)
        return np.asarray(real, dtype=object), np.asarray(imag, dtype=object)
    return array, None


def _times_power_of_two(values: NDArray[Any], exponent: int) -> NDArray[Any]:
    """``values * 2**exponent`` as exact Python numbers."""
    factor = Fraction(2) ** exponent
    return np.asarray(values * factor, dtype=object)


def exact_conv(
    x: Any, weight: Any, bias: Any = None, **conv_kwargs: Any
) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Compute the exact convolution of finite inputs: its real and imaginary parts.

    Parameters
    ----------
    x, weight, bias, **conv_kwargs
        As in :func:`mimo_conv.conv` (``method`` is not accepted).

    Returns
    -------
    real, imag : object ndarray of :class:`fractions.Fraction`, or None
        The exact result; ``imag`` is None for real inputs.

    Examples
    --------
    >>> real, imag = exact_conv(np.array([[0.1, 0.2]]), np.array([[[3.0]]]))
    >>> real[0, 0] == 3 * Fraction(0.1), imag is None
    (True, True)
    """
    x_array, weight_array, bias_array, *_ = prepare_call(
        x,
        weight,
        bias,
        stride=conv_kwargs.get("stride", 1),
        padding=conv_kwargs.get("padding", 0),
        dilation=conv_kwargs.get("dilation", 1),
        groups=conv_kwargs.get("groups", 1),
        padding_mode=conv_kwargs.get("padding_mode", "zeros"),
    )
    options = {name: conv_kwargs[name] for name in _CONV_OPTIONS if name in conv_kwargs}

    def real_conv(left: NDArray[Any], right: NDArray[Any]) -> NDArray[Any]:
        (left_ints, left_exp), (right_ints, right_exp) = (
            _scaled_integers(left),
            _scaled_integers(right),
        )
        product = conv(left_ints, right_ints, method="einsum", **options)
        return _times_power_of_two(product, left_exp + right_exp)

    x_re, x_im = _parts(x_array)
    w_re, w_im = _parts(weight_array)
    real = real_conv(x_re, w_re)
    imag = None
    if x_im is not None or w_im is not None:
        imag = np.zeros_like(real)
        if x_im is not None and w_im is not None:
            real = real - real_conv(x_im, w_im)
        if w_im is not None:
            imag = imag + real_conv(x_re, w_im)
        if x_im is not None:
            imag = imag + real_conv(x_im, w_re)
    if bias_array is not None:
        b_re, b_im = _parts(bias_array)
        shape = (-1,) + (1,) * (weight_array.ndim - 2)
        b_ints, b_exp = _scaled_integers(b_re)
        real = real + _times_power_of_two(b_ints, b_exp).reshape(shape)
        if b_im is not None:
            b_ints, b_exp = _scaled_integers(b_im)
            imag = (np.zeros_like(real) if imag is None else imag) + _times_power_of_two(
                b_ints, b_exp
            ).reshape(shape)
    return np.asarray(real, dtype=object), None if imag is None else np.asarray(imag, dtype=object)


def _exact_value(value: Any) -> tuple[Fraction, Fraction] | None:
    """Return an element as exact ``(real, imag)``, or None if it is NaN or infinite."""
    if isinstance(value, complex | np.complexfloating):
        if not (math.isfinite(value.real) and math.isfinite(value.imag)):
            return None
        return to_fraction(value.real), to_fraction(value.imag)
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    return to_fraction(value), Fraction(0)


def _decimal(value: Fraction) -> Decimal:
    """Convert a fraction to a 20-digit decimal, with no underflow to zero."""
    with localcontext() as context:
        context.prec = 20
        return Decimal(value.numerator) / Decimal(value.denominator)


def _brief(value: Decimal) -> str:
    """Format an error with three digits, even below the float64 range."""
    if value.is_finite() and float(value) == 0 and value != 0:
        return f"{value:.2e}"
    return f"{float(value):.3g}"


def _show(value: Any) -> str:
    """Format a number briefly for the failure report."""
    if isinstance(value, Fraction):
        return f"{_decimal(value):.17g}"
    if isinstance(value, tuple):
        return f"({_decimal(value[0]):.17g}{_decimal(value[1]):+.17g}j)"
    if isinstance(value, complex | np.complexfloating):
        return f"{complex(value)!r}"
    if isinstance(value, float | np.floating):
        return f"{float(value)!r}"
    return repr(value)


def assert_conv_close(
    actual: Any,
    x: Any,
    weight: Any,
    bias: Any = None,
    *,
    check_dtype: bool = True,
    bound_factor: float = 1.0,
    **conv_kwargs: Any,
) -> None:
    """Assert that ``actual`` is ``conv(x, weight, bias, **conv_kwargs)`` up to rounding.

    The reference is exact (finite inputs are converted exactly), and ``actual`` may differ
    from it by at most :func:`mimo_conv.testing.error_bound` elementwise: zero for integer
    and exact object inputs, the rounding error of any summation order for floats.

    Parameters
    ----------
    actual : array_like
        The result to check, e.g. the output of your own convolution.
    x, weight, bias
        The inputs, as given to :func:`mimo_conv.conv`; their values must be finite.
    check_dtype : bool, optional
        Also require ``actual.dtype`` to be the dtype :func:`mimo_conv.conv` returns.
    bound_factor : float, optional
        Allow this multiple of the bound: for an algorithm that changes the arithmetic
        (Winograd, FFT), its derived factor over the direct dot-product bound.
    **conv_kwargs
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode``.

    Raises
    ------
    AssertionError
        With a report: shape, dtype, how many elements exceed the bound, and the worst
        one's index, value, exact reference, error and bound.
    ValueError
        If an input holds NaN or Inf: the exact reference needs finite values.

    Examples
    --------
    >>> x = np.array([[0.1, 0.2, 0.3]])
    >>> w = np.array([[[1.0, 1.0]]])
    >>> assert_conv_close(np.array([[0.30000000000000004, 0.5]]), x, w)
    >>> assert_conv_close(np.array([[0.3, 0.5001]]), x, w)
    Traceback (most recent call last):
    ...
    AssertionError: conv result is farther from the exact result than the rounding-error bound
      1 of 2 elements exceed it; shape (1, 2), dtype float64, n = 2 terms per output
      worst at index (0, 1): actual 0.5001, reference 0.5, error 0.0001,
      bound 1.11e-16
    """
    reference_for(x, weight, bias, **conv_kwargs).check(
        actual, check_dtype=check_dtype, bound_factor=bound_factor
    )


@dataclass(frozen=True, eq=False)
class Reference:
    """The exact result of one convolution, its error bound, and what a result must match.

    Attributes
    ----------
    out_shape : tuple of int
    dtype : numpy.dtype
        The dtype :func:`mimo_conv.conv` returns.
    terms : int
        Products per output element.
    real, imag : object ndarray of Fraction, or None
        The exact result (``imag`` None for real inputs).
    bound : ndarray of float
        :func:`mimo_conv.testing.error_bound` of the call.
    """

    out_shape: tuple[int, ...]
    dtype: np.dtype[Any]
    terms: int
    real: NDArray[Any]
    imag: NDArray[Any] | None
    bound: NDArray[Any]

    def _errors_squared(self, result: NDArray[Any]) -> list[Fraction | None]:
        """Exact squared error of each element (None where the result is not finite)."""
        squares: list[Fraction | None] = []
        for index in np.ndindex(result.shape):
            value = _exact_value(result[index])
            if value is None:
                squares.append(None)
                continue
            d_re = value[0] - self.real[index]
            d_im = value[1] - (0 if self.imag is None else self.imag[index])
            squares.append(d_re * d_re + d_im * d_im)
        return squares

    def error_ratios(self, actual: Any) -> NDArray[np.float64]:
        """Observed error divided by the bound, elementwise (inf where it is not finite).

        Examples
        --------
        >>> ref = reference_for(np.array([[0.1, 0.2]]), np.array([[[1.0, 1.0]]]))
        >>> float(ref.error_ratios(np.array([[0.1 + 0.2]]))[0, 0])
        0.41...
        """
        result = np.asarray(actual)
        ratios = np.empty(result.shape)
        for flat, squared in enumerate(self._errors_squared(result)):
            index = np.unravel_index(flat, result.shape)
            limit = to_fraction(self.bound[index])
            if squared is None:
                ratios[index] = math.inf
            elif squared == 0:
                ratios[index] = 0.0
            else:
                ratios[index] = (
                    math.inf if limit == 0 else float(_decimal(squared / limit**2).sqrt())
                )
        return ratios

    def check(self, actual: Any, *, check_dtype: bool = True, bound_factor: float = 1.0) -> None:
        """Raise ``AssertionError`` with a report unless ``actual`` matches within the bound.

        Examples
        --------
        >>> ref = reference_for([[1, 2, 3]], [[[1, 1]]])
        >>> ref.check(np.array([[3, 5]]))
        >>> ref.check(np.array([[3, 5.0]]))
        Traceback (most recent call last):
        ...
        AssertionError: conv result has the wrong dtype: expected int64, got float64
        """
        result = np.asarray(actual)
        if result.shape != self.out_shape:
            msg = f"conv result has the wrong shape: expected {self.out_shape}, got {result.shape}"
            raise AssertionError(msg)
        if check_dtype and result.dtype != self.dtype:
            msg = f"conv result has the wrong dtype: expected {self.dtype}, got {result.dtype}"
            raise AssertionError(msg)
        bound = self.bound * bound_factor
        exceeding = 0
        worst: tuple[float, tuple[int, ...], Decimal] | None = None
        for flat, squared in enumerate(self._errors_squared(result)):
            index = tuple(int(i) for i in np.unravel_index(flat, result.shape))
            limit = to_fraction(bound[index])
            if squared is not None and squared <= limit * limit:
                continue
            exceeding += 1
            error = Decimal("Infinity") if squared is None else _decimal(squared).sqrt()
            ratio = math.inf if limit == 0 else float(error / _decimal(limit))
            if worst is None or ratio > worst[0]:
                worst = (ratio, index, error)
        if worst is None:
            return
        _, index, error = worst
        exact: Any = self.real[index] if self.imag is None else (self.real[index], self.imag[index])
        msg = (
            "conv result is farther from the exact result than the rounding-error bound\n"
            f"  {exceeding} of {result.size} elements exceed it; shape {result.shape}, "
            f"dtype {result.dtype}, n = {self.terms} terms per output\n"
            f"  worst at index {index}: actual {_show(result[index])}, "
            f"reference {_show(exact)}, error {_brief(error)},\n"
            f"  bound {float(bound[index]):.3g}"
        )
        raise AssertionError(msg)


def reference_for(x: Any, weight: Any, bias: Any = None, **conv_kwargs: Any) -> Reference:
    """Compute the exact result and the error bound of a call, to check results against.

    Examples
    --------
    >>> ref = reference_for([[1.0, 2.0]], [[[0.5]]], stride=2)
    >>> ref.out_shape, ref.dtype, ref.real.tolist()
    ((1, 1), dtype('float64'), [[Fraction(1, 2)]])
    """
    unknown = set(conv_kwargs) - set(_CONV_OPTIONS)
    if unknown:
        msg = f"conv_kwargs must be among {_CONV_OPTIONS!r}, got {sorted(unknown)!r}"
        raise TypeError(msg)
    *_, geometry, plan = prepare_call(
        x,
        weight,
        bias,
        stride=conv_kwargs.get("stride", 1),
        padding=conv_kwargs.get("padding", 0),
        dilation=conv_kwargs.get("dilation", 1),
        groups=conv_kwargs.get("groups", 1),
        padding_mode=conv_kwargs.get("padding_mode", "zeros"),
    )
    real, imag = exact_conv(x, weight, bias, **conv_kwargs)
    return Reference(
        out_shape=geometry.out_shape,
        dtype=plan.output,
        terms=geometry.terms_per_output,
        real=real,
        imag=imag,
        bound=conv_error_bound(x, weight, bias, **conv_kwargs),
    )
