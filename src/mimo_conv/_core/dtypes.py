"""The dtype plan: which dtype a convolution accumulates in and which it returns.

The rules, in order:

* every operand an integer (signed or unsigned): accumulate and return ``int64``, as
  ``np.sum`` does, after checking that no sum can overflow (:func:`check_integer_range`);
* otherwise the operands promote by ``np.result_type``;
* ``float16`` accumulates in ``float32`` and is rounded back to ``float16`` once, at the end;
* ``object`` (Python ints, :class:`fractions.Fraction`, ...) is computed with Python's own
  arithmetic: exact for ints and fractions. NumPy integers found in an object array are
  computed as Python ints (:func:`python_integers`), so they cannot wrap around either.

Scans of the values (the element check of object arrays, the integer range check) read each
stored element once: an ``np.broadcast_to`` view of 2**40 elements storing one costs one.

``bool``, strings, bytes, datetimes, timedeltas and structured dtypes are refused with a
``TypeError`` by :func:`check_numeric_dtype`.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Dtype kinds a convolution accepts: signed and unsigned ints, floats, complex, object.
NUMERIC_KINDS = "iufcO"
_INT64_MAX = int(np.iinfo(np.int64).max)


@dataclass(frozen=True)
class DtypePlan:
    """The dtype a call accumulates in and the dtype it returns.

    Attributes
    ----------
    compute : numpy.dtype
        Dtype of the operands while products are summed.
    output : numpy.dtype
        Dtype of the returned array.
    """

    compute: np.dtype[Any]
    output: np.dtype[Any]


def check_numeric_dtype(array: NDArray[Any], name: str) -> None:
    """Raise ``TypeError`` unless ``array`` holds numbers a convolution can sum.

    The dtype check (:func:`check_numeric_kind`) and, for ``dtype=object``, the check of
    every element (:func:`check_object_elements`).

    Parameters
    ----------
    array : ndarray
        The argument, already converted with ``np.asarray``.
    name : str
        The argument's name, quoted in the message.

    Examples
    --------
    >>> check_numeric_dtype(np.ones(2), "x")
    >>> check_numeric_dtype(np.ones(2, dtype=bool), "x")
    Traceback (most recent call last):
    ...
    TypeError: x must hold numbers (an integer, floating, complex or object dtype), got dtype bool
    >>> check_numeric_dtype(np.array([1, "a"], dtype=object), "x")
    Traceback (most recent call last):
    ...
    TypeError: x must hold numbers, but its object array contains 'a' of type str
    """
    check_numeric_kind(array, name)
    check_object_elements(array, name)


def check_numeric_kind(array: NDArray[Any], name: str) -> None:
    """Raise ``TypeError`` unless the dtype of ``array`` is numeric or object (O(1)).

    Examples
    --------
    >>> check_numeric_kind(np.zeros(2, dtype="datetime64[s]"), "bias")
    Traceback (most recent call last):
    ...
    TypeError: bias must hold numbers (... or object dtype), got dtype datetime64[s]
    """
    if array.dtype.kind not in NUMERIC_KINDS or array.dtype.fields is not None:
        msg = (
            f"{name} must hold numbers (an integer, floating, complex or object dtype), "
            f"got dtype {array.dtype}"
        )
        raise TypeError(msg)


def check_object_elements(array: NDArray[Any], name: str) -> None:
    """Raise ``TypeError`` if an object array holds anything but numbers (bools excluded).

    Costs one pass over the distinct elements (:func:`distinct_elements`); nothing for
    other dtypes.

    Examples
    --------
    >>> check_object_elements(np.array([1, None], dtype=object), "weight")
    Traceback (most recent call last):
    ...
    TypeError: weight must hold numbers, but its object array contains None of type NoneType
    >>> check_object_elements(np.array([np.timedelta64(1, "s")], dtype=object), "x")
    Traceback (most recent call last):
    ...
    TypeError: x must hold numbers, but its object array contains np.timedelta64(1,'s') of ...
    """
    if array.dtype.kind != "O":
        return
    for value in distinct_elements(array).flat:
        if isinstance(value, (bool, np.bool_)) or not _is_number(value):
            msg = (
                f"{name} must hold numbers, but its object array contains "
                f"{value!r} of type {type(value).__name__}"
            )
            raise TypeError(msg)


def distinct_elements(array: NDArray[Any]) -> NDArray[Any]:
    """View ``array`` without its zero-stride (broadcast) axes: each element once.

    An ``np.broadcast_to`` view may describe far more elements than it stores; scans of
    its values (element checks, ``min``/``max``) only need the stored ones.

    Examples
    --------
    >>> distinct_elements(np.broadcast_to(np.arange(3), (10**6, 3))).shape
    (1, 3)
    """
    collapsed = tuple(
        slice(0, 1) if stride == 0 and size > 1 else slice(None)
        for stride, size in zip(array.strides, array.shape, strict=True)
    )
    return array[(*collapsed, Ellipsis)]  # the Ellipsis keeps a 0-d array an array


def python_integers(array: NDArray[Any]) -> NDArray[Any]:
    """Return an object array whose NumPy integer elements are Python ints.

    ``np.int64`` elements of an object array multiply with int64 wrap-around; Python ints
    never overflow. Arrays of other dtypes, and object arrays without NumPy integers, are
    returned unchanged (no copy); otherwise a new array is returned, the caller's is
    never written to.

    Examples
    --------
    >>> big = python_integers(np.array([np.int64(2**62), 1], dtype=object))
    >>> big * 4
    array([18446744073709551616, 4], dtype=object)
    """
    if array.dtype.kind != "O":
        return array
    stored = distinct_elements(array)
    if not any(isinstance(value, np.integer) for value in stored.flat):
        return array
    converted = np.empty(stored.shape, dtype=object)
    for index, value in np.ndenumerate(stored):
        converted[index] = int(value) if isinstance(value, np.integer) else value
    if converted.shape == array.shape:
        return converted
    return np.broadcast_to(converted, array.shape)


def _is_number(value: object) -> bool:
    """Whether ``value`` supports the arithmetic of a convolution.

    ``np.timedelta64`` is a NumPy integer by its class (a subclass of ``np.signedinteger``)
    but a duration, not a number: refused, as a timedelta64 array is.
    """
    import numbers  # noqa: PLC0415 - only object arrays need it

    if isinstance(value, (np.timedelta64, np.datetime64)):
        return False
    return isinstance(value, (numbers.Number, np.number))


def nonfinite(array: NDArray[Any]) -> NDArray[np.bool_]:
    """Where ``array`` holds a NaN or an infinity (never, for integers).

    Object arrays are read element by element: Python and NumPy floats and complex numbers
    can be non-finite, ints and fractions cannot.

    Examples
    --------
    >>> nonfinite(np.array([1.0, np.inf, np.nan])).tolist()
    [False, True, True]
    >>> from fractions import Fraction
    >>> nonfinite(np.array([Fraction(1, 3), float("-inf"), 2], dtype=object)).tolist()
    [False, True, False]
    """
    result: NDArray[np.bool_]
    if array.dtype.kind in "fc":
        result = ~np.isfinite(array)
    elif array.dtype.kind == "O":
        result = np.frompyfunc(_is_nonfinite, 1, 1)(array).astype(bool)
    else:
        result = np.zeros(array.shape, dtype=bool)
    return result


def _is_nonfinite(value: object) -> bool:
    """Whether one element of an object array is a NaN or an infinity."""
    if isinstance(value, (complex, np.complexfloating)):
        return not cmath.isfinite(value)
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(value)
    return False  # Python ints and Fractions are finite


@lru_cache(maxsize=128)
def plan_dtypes(*dtypes: np.dtype[Any]) -> DtypePlan:
    """Choose the accumulation and result dtypes for operands of these dtypes.

    Parameters
    ----------
    *dtypes : numpy.dtype
        Dtypes of ``x``, ``weight`` and (if given) ``bias``; already checked numeric.

    Returns
    -------
    DtypePlan

    Examples
    --------
    >>> plan_dtypes(np.dtype(np.float16), np.dtype(np.float16))
    DtypePlan(compute=dtype('float32'), output=dtype('float16'))
    >>> plan_dtypes(np.dtype(np.uint8), np.dtype(np.int16)).compute
    dtype('int64')
    >>> plan_dtypes(np.dtype(np.int64), np.dtype(np.float32)).output
    dtype('float64')
    """
    if all(dtype.kind in "iu" for dtype in dtypes):
        int64 = np.dtype(np.int64)
        return DtypePlan(compute=int64, output=int64)
    result = np.result_type(*dtypes)
    if result == np.float16:
        return DtypePlan(compute=np.dtype(np.float32), output=result)
    return DtypePlan(compute=result, output=result)


def _largest_magnitude(array: NDArray[Any]) -> int:
    """``max |array|`` as a Python int (0 for an empty array), without int64 wrap-around."""
    if array.size == 0:
        return 0
    stored = distinct_elements(array)
    return max(abs(int(stored.min())), abs(int(stored.max())))


def check_integer_range(
    x: NDArray[Any],
    weight: NDArray[Any],
    bias: NDArray[Any] | None,
    terms_per_output: int,
) -> None:
    """Raise ``OverflowError`` if an integer convolution could leave the int64 range.

    The bound ``max|x| * max|weight| * terms_per_output + max|bias|`` is computed with
    Python ints, so the check itself never overflows. Padding copies values of ``x`` (or
    adds zeros), so it does not change ``max|x|``.

    Parameters
    ----------
    x, weight : ndarray of integer dtype
        The operands.
    bias : ndarray of integer dtype or None
        The bias, added once to each output.
    terms_per_output : int
        Products summed into one output element.

    Examples
    --------
    >>> check_integer_range(np.array([2**31]), np.array([2**31]), None, 2)
    Traceback (most recent call last):
    ...
    OverflowError: an int64 convolution could overflow: ... = 2147483648 * 2147483648 * 2 + 0
    = 9223372036854775808 > 9223372036854775807; pass arrays of dtype=object ...
    """
    x_max = _largest_magnitude(x)
    weight_max = _largest_magnitude(weight)
    bias_max = 0 if bias is None else _largest_magnitude(bias)
    bound = x_max * weight_max * terms_per_output + bias_max
    if max(bound, x_max, weight_max, bias_max) > _INT64_MAX:
        msg = (
            "an int64 convolution could overflow: max|x| * max|weight| * terms + max|bias| = "
            f"{x_max} * {weight_max} * {terms_per_output} + {bias_max} = {bound} > {_INT64_MAX}; "
            "pass arrays of dtype=object holding Python ints for exact arbitrary-precision results"
        )
        raise OverflowError(msg)
