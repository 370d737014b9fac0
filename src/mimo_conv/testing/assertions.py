"""The assertions: :func:`assert_close` for every operation, :func:`assert_conv_close` for conv.

Both read the call once, compute the exact result of the original inputs and the bound of
the precision model (:mod:`mimo_conv.testing.oracle`), and raise ``AssertionError`` with a
diagnosis (:mod:`mimo_conv.testing.report`) when a result is farther from the exact result
than the bound allows. Their frames are hidden from pytest's tracebacks.

Examples
--------
>>> import numpy as np
>>> from mimo_conv import grad
>>> g = np.ones((1, 1, 3), dtype=np.float32)
>>> w = np.array([[[0.1, 0.2]]], dtype=np.float32)
>>> assert_close(grad.conv_input((1, 1, 4), w, g), "conv_input", (1, 1, 4), w, g)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv.testing.operations import parse_call
from mimo_conv.testing.oracle import Oracle, expected_dtype, oracle_for
from mimo_conv.testing.precision import Precision
from mimo_conv.testing.reference import fraction_exact, to_fraction

__all__ = ["assert_close", "assert_conv_close", "exact_conv", "reference_for", "to_fraction"]

_CONV_OPTIONS = ("stride", "padding", "dilation", "groups", "padding_mode")


def assert_close(
    actual: Any,
    op: str,
    *args: Any,
    precision: str | Precision | None = None,
    check_dtype: bool | None = None,
    bound_factor: float = 1.0,
    probabilistic: float | None = None,
    **options: Any,
) -> None:
    """Assert that ``actual`` is ``op(*args, **options)`` up to the rounding of a precision model.

    Parameters
    ----------
    actual : array_like
        The result to check (an ``ml_dtypes`` array too).
    op : {"conv", "conv_transpose", "conv_input", "conv_weight", "conv_bias", "unfold", "fold"}
        The operation; ``*args`` and ``**options`` are exactly those of
        :func:`mimo_conv.conv`, :func:`mimo_conv.conv_transpose`,
        :func:`mimo_conv.grad.conv_input` (``input_size, weight, grad_output, ...``),
        :func:`mimo_conv.grad.conv_weight` (``x, weight_size, grad_output, ...``),
        :func:`mimo_conv.grad.conv_bias`, :func:`mimo_conv.unfold`, :func:`mimo_conv.fold`.
    precision : str or Precision, optional
        The arithmetic of the kernel under test: a preset (``"float32"``, ``"tf32"``,
        ``"bfloat16"``, ``"float16"``, ...) or a :class:`Precision`. Default: the inputs' own
        precision as mimo_conv computes it. The comparison is always with the exact result
        of the inputs as given.
    check_dtype : bool, optional
        Also require the result's dtype (the model's output format, or mimo_conv's dtype);
        default True when ``precision`` is not given.
    bound_factor : float, optional
        Allow this multiple of the bound (for an algorithm that changes the arithmetic,
        Winograd or FFT, its derived factor over the direct bound).
    probabilistic : float, optional
        **Not rigorous**: check against Higham and Mary's probabilistic bound with this
        failure probability instead (see :func:`bound`); tighter, so it catches smaller
        precision bugs, but a correct kernel may fail it (with about that probability
        when rounding errors behave like independent random variables of mean zero).

    Raises
    ------
    AssertionError
        With the diagnosis: op, shape, dtype, model, n, how many elements exceed, the worst
        one, the dominant term and the presets the errors fit.
    ValueError
        If an operand is not finite, or the model has no bound for this many terms.

    Examples
    --------
    >>> x = np.array([[0.1, 0.2, 0.3]])
    >>> w = np.array([[[1.0, 1.0]]])
    >>> assert_close(np.array([[0.30000000000000004, 0.5]]), "conv", x, w)
    >>> assert_close(np.array([[0.3, 0.5001]]), "conv", x, w)
    Traceback (most recent call last):
    ...
    AssertionError: conv result is farther from the exact result than the rounding-error bound
      1 of 2 elements exceed it; shape (1, 2), dtype float64, precision float64, n = 2 ...
      worst at index (0, 1): actual 0.5001, exact 0.5, error 0.0001, bound 1.11e-16 (9.01e+11x), ...
      the errors fit ... they exceed the float64 model 9.01e+11x
    """
    __tracebackhide__ = True
    oracle = oracle_for(op, args, options, precision, probabilistic=probabilistic)
    _check(oracle, actual, precision, check_dtype, bound_factor)


def _check(
    oracle: Oracle,
    actual: Any,
    precision: str | Precision | None,
    check_dtype: bool | None,
    bound_factor: float,
) -> None:
    __tracebackhide__ = True
    wanted = precision is None if check_dtype is None else check_dtype
    model = oracle.terms.precision if precision is not None else None
    dtype = expected_dtype(oracle.call, model) if wanted else None
    oracle.check(actual, check_dtype=wanted, bound_factor=bound_factor, expected_dtype=dtype)


def assert_conv_close(
    actual: Any,
    x: Any,
    weight: Any,
    bias: Any = None,
    *,
    precision: str | Precision | None = None,
    check_dtype: bool | None = None,
    bound_factor: float = 1.0,
    probabilistic: float | None = None,
    **conv_kwargs: Any,
) -> None:
    """Assert that ``actual`` is ``conv(x, weight, bias, **conv_kwargs)`` up to rounding.

    The forward shorthand of :func:`assert_close` (``op="conv"``); the same parameters.

    Examples
    --------
    >>> x = np.array([[0.1, 0.2, 0.3]])
    >>> assert_conv_close(np.array([[0.30000000000000004, 0.5]]), x, np.ones((1, 1, 2)))
    """
    __tracebackhide__ = True
    _conv_options(conv_kwargs)
    oracle = oracle_for(
        "conv", (x, weight, bias), conv_kwargs, precision, probabilistic=probabilistic
    )
    _check(oracle, actual, precision, check_dtype, bound_factor)


def _conv_options(conv_kwargs: dict[str, Any]) -> None:
    unknown = set(conv_kwargs) - set(_CONV_OPTIONS)
    if unknown:
        msg = f"conv_kwargs must be among {_CONV_OPTIONS!r}, got {sorted(unknown)!r}"
        raise TypeError(msg)


class ConvReference:
    """An :class:`~mimo_conv.testing.oracle.Oracle` of a conv call with its dtype check.

    Examples
    --------
    >>> ref = reference_for([[1, 2, 3]], [[[1, 1]]])
    >>> ref.check(np.array([[3, 5]]))
    >>> ref.check(np.array([[3, 5.0]]))
    Traceback (most recent call last):
    ...
    AssertionError: conv result has the wrong dtype: expected int64, got float64
    """

    def __init__(self, oracle: Oracle) -> None:
        self.oracle = oracle
        self.dtype = expected_dtype(oracle.call, None)
        self.out_shape = oracle.out_shape
        self.terms = oracle.n
        self.bound = oracle.bound

    def check(self, actual: Any, *, check_dtype: bool = True, bound_factor: float = 1.0) -> None:
        """Raise ``AssertionError`` unless ``actual`` matches within the bound."""
        __tracebackhide__ = True
        self.oracle.check(
            actual, check_dtype=check_dtype, bound_factor=bound_factor, expected_dtype=self.dtype
        )

    def error_ratios(self, actual: Any) -> NDArray[np.float64]:
        """Observed error divided by the bound, elementwise."""
        return self.oracle.error_ratios(actual)

    def exact(self) -> NDArray[np.float64]:
        """Return the exact result rounded to float64 (``hi + lo`` rounded)."""
        if self.oracle.expected is not None:
            return np.asarray(self.oracle.expected, dtype=np.float64)
        assert self.oracle.exact is not None
        return self.oracle.exact.hi


def reference_for(x: Any, weight: Any, bias: Any = None, **conv_kwargs: Any) -> ConvReference:
    """Compute the exact result and the error bound of a conv call, to check results against.

    Examples
    --------
    >>> ref = reference_for([[1.0, 2.0]], [[[0.5]]], stride=2)
    >>> ref.out_shape, ref.dtype, ref.exact().tolist()
    ((1, 1), dtype('float64'), [[0.5]])
    """
    _conv_options(conv_kwargs)
    return ConvReference(oracle_for("conv", (x, weight, bias), conv_kwargs))


def exact_conv(
    x: Any, weight: Any, bias: Any = None, **conv_kwargs: Any
) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Compute the exact convolution of finite inputs with fractions: real and imaginary parts.

    Examples
    --------
    >>> from fractions import Fraction
    >>> real, imag = exact_conv(np.array([[0.1, 0.2]]), np.array([[[3.0]]]))
    >>> real[0, 0] == 3 * Fraction(0.1), imag is None
    (True, True)
    """
    _conv_options(conv_kwargs)
    return fraction_exact(parse_call("conv", (x, weight, bias), conv_kwargs))
