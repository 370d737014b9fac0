"""The textbook's functions, by the book's names ("Dive into Deep Learning", section 6.4).

Students read these next to the book, so they keep its names (``X`` the input, ``K`` the
kernel, ``c_i`` and ``c_o`` the channel counts) and its shapes: no batch axis, no options.
Each checks its own arguments, naming ``X`` and ``K`` in errors, and then calls the
general engine, :func:`mimo_conv.conv`; only :func:`corr2d_multi_in_out_1x1` writes out
the matrix product the book describes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mimo_conv._core.dtypes import check_integer_range, plan_dtypes, python_integers
from mimo_conv._core.operands import as_numeric_array
from mimo_conv._ops.conv import conv

#: The book's two-channel input ``X`` (section 6.4.1), shape (2, 3, 3). Read-only.
BOOK_X = np.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
#: The book's two-channel kernel ``K``, shape (2, 2, 2). Read-only.
BOOK_K = np.array([[[0, 1], [2, 3]], [[1, 2], [3, 4]]])
#: The book's three-output-channel kernel ``K, K + 1, K + 2`` (section 6.4.2), (3, 2, 2, 2).
BOOK_K3 = np.stack((BOOK_K, BOOK_K + 1, BOOK_K + 2), 0)
for _constant in (BOOK_X, BOOK_K, BOOK_K3):
    _constant.setflags(write=False)  # shared by the demo, the walkthrough and the exercises


def _book_array(value: ArrayLike, name: str, ndim: int, layout: str) -> NDArray[Any]:
    """Convert a textbook argument and check its number of dimensions."""
    array = as_numeric_array(value, name)
    if array.ndim != ndim:
        msg = f"{name} must be {ndim}-d {layout}, got {name} of shape {array.shape}"
        raise ValueError(msg)
    return array


def _check_channels(X: NDArray[Any], K: NDArray[Any], kernel_axis: int) -> None:
    """Check that ``K`` has one kernel slice per input channel of ``X``."""
    if K.shape[kernel_axis] != X.shape[0]:
        msg = (
            f"K must have one kernel per input channel of X: X of shape {X.shape} has "
            f"c_i={X.shape[0]} channels, but K of shape {K.shape} has {K.shape[kernel_axis]}"
        )
        raise ValueError(msg)


def _check_fits(X: NDArray[Any], K: NDArray[Any]) -> None:
    """Check that the kernel window is not empty and fits inside the input."""
    if min(K.shape[-2:]) < 1:
        msg = f"K's window must have at least 1 x 1 elements, got K of shape {K.shape}"
        raise ValueError(msg)
    if any(k > size for k, size in zip(K.shape[-2:], X.shape[-2:], strict=True)):
        msg = (
            f"K's window must fit inside X: K of shape {K.shape} has a "
            f"{K.shape[-2]} x {K.shape[-1]} window, X of shape {X.shape} is only "
            f"{X.shape[-2]} x {X.shape[-1]}"
        )
        raise ValueError(msg)


def corr2d(X: ArrayLike, K: ArrayLike) -> NDArray[Any]:
    """Compute the 2-D cross-correlation of one channel (book section 6.2).

    Parameters
    ----------
    X : array_like of shape (h, w)
        The input.
    K : array_like of shape (kh, kw)
        The kernel.

    Returns
    -------
    Y : ndarray of shape (h - kh + 1, w - kw + 1)
        ``Y[i, j] = sum_{a, b} X[i + a, j + b] * K[a, b]``.

    Examples
    --------
    >>> corr2d([[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[0, 1], [2, 3]])
    array([[19, 25],
           [37, 43]])
    """
    X_array = _book_array(X, "X", 2, "(h, w)")
    K_array = _book_array(K, "K", 2, "(kh, kw)")
    _check_fits(X_array, K_array)
    Y: NDArray[Any] = conv(X_array[np.newaxis], K_array[np.newaxis, np.newaxis])[0]
    return Y


def corr2d_multi_in(X: ArrayLike, K: ArrayLike) -> NDArray[Any]:
    """Cross-correlate several input channels and add the results into one channel.

    Parameters
    ----------
    X : array_like of shape (c_i, h, w)
        The input channels.
    K : array_like of shape (c_i, kh, kw)
        One kernel slice per input channel.

    Returns
    -------
    ndarray of shape (h - kh + 1, w - kw + 1)
        ``sum over c of corr2d(X[c], K[c])``.

    Examples
    --------
    The book's example:

    >>> X = [[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]]
    >>> K = [[[0, 1], [2, 3]], [[1, 2], [3, 4]]]
    >>> corr2d_multi_in(X, K)
    array([[ 56,  72],
           [104, 120]])
    """
    X_array = _book_array(X, "X", 3, "(c_i, h, w)")
    K_array = _book_array(K, "K", 3, "(c_i, kh, kw)")
    _check_channels(X_array, K_array, 0)
    _check_fits(X_array, K_array)
    Y: NDArray[Any] = conv(X_array, K_array[np.newaxis])[0]
    return Y


def corr2d_multi_in_out(X: ArrayLike, K: ArrayLike) -> NDArray[Any]:
    """Cross-correlate with several output channels: one :func:`corr2d_multi_in` each.

    Parameters
    ----------
    X : array_like of shape (c_i, h, w)
        The input channels.
    K : array_like of shape (c_o, c_i, kh, kw)
        One multi-input kernel per output channel.

    Returns
    -------
    ndarray of shape (c_o, h - kh + 1, w - kw + 1)
        ``stack([corr2d_multi_in(X, k) for k in K])``.

    Examples
    --------
    The book stacks ``K``, ``K + 1`` and ``K + 2`` into three output channels:

    >>> X = np.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
    >>> K = np.array([[[0, 1], [2, 3]], [[1, 2], [3, 4]]])
    >>> corr2d_multi_in_out(X, np.stack((K, K + 1, K + 2), 0))
    array([[[ 56,  72],
            [104, 120]],
    <BLANKLINE>
           [[ 76, 100],
            [148, 172]],
    <BLANKLINE>
           [[ 96, 128],
            [192, 224]]])
    """
    X_array = _book_array(X, "X", 3, "(c_i, h, w)")
    K_array = _book_array(K, "K", 4, "(c_o, c_i, kh, kw)")
    _check_channels(X_array, K_array, 1)
    _check_fits(X_array, K_array)
    return conv(X_array, K_array)


def corr2d_multi_in_out_1x1(X: ArrayLike, K: ArrayLike) -> NDArray[Any]:
    """Compute a 1 x 1 convolution as the book writes it: one matrix product.

    With a 1 x 1 kernel each output pixel is the ``(c_o, c_i)`` kernel matrix times the
    pixel's channel vector, so all pixels at once are ``K (c_o, c_i) @ X (c_i, h * w)``.

    Parameters
    ----------
    X : array_like of shape (c_i, h, w)
        The input channels.
    K : array_like of shape (c_o, c_i, 1, 1)
        The 1 x 1 kernels.

    Returns
    -------
    ndarray of shape (c_o, h, w)

    Examples
    --------
    >>> X = np.arange(8).reshape(2, 2, 2)
    >>> K = np.array([[[[1]], [[10]]], [[[-1]], [[0]]]])
    >>> corr2d_multi_in_out_1x1(X, K)
    array([[[40, 51],
            [62, 73]],
    <BLANKLINE>
           [[ 0, -1],
            [-2, -3]]])
    """
    X_array = _book_array(X, "X", 3, "(c_i, h, w)")
    K_array = _book_array(K, "K", 4, "(c_o, c_i, 1, 1)")
    _check_channels(X_array, K_array, 1)
    if K_array.shape[2:] != (1, 1):
        msg = f"K must hold 1 x 1 kernels, got K of shape {K_array.shape}"
        raise ValueError(msg)
    plan = plan_dtypes(X_array.dtype, K_array.dtype)
    c_i, h, w = X_array.shape
    c_o = K_array.shape[0]
    if plan.compute.kind == "i":
        check_integer_range(X_array, K_array, None, c_i)
    X_matrix = python_integers(X_array).astype(plan.compute).reshape((c_i, h * w))
    K_matrix = python_integers(K_array).astype(plan.compute).reshape((c_o, c_i))
    # IEEE results, not warnings: inf * 0 is nan, a float16 result beyond 65504 is inf.
    with np.errstate(all="ignore"):
        Y = K_matrix @ X_matrix
        return Y.reshape((c_o, h, w)).astype(plan.output, copy=False)
