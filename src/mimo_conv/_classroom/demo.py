"""The demo: the section's three worked examples, computed by the library and printed."""

from __future__ import annotations

from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from mimo_conv._classroom.textbook import (
    BOOK_K,
    BOOK_X,
    corr2d_multi_in,
    corr2d_multi_in_out,
    corr2d_multi_in_out_1x1,
)

#: The sum of absolute differences the book asserts for the 1 x 1 check (float32).
BOOK_1X1_THRESHOLD = 1e-6


def _show(name: str, array: NDArray[Any], out: TextIO) -> None:
    """Print an array under a heading with its shape."""
    print(f"{name}, shape {array.shape}:", file=out)
    print(np.array2string(array, separator=", ", prefix=""), file=out)


def run_demo(out: TextIO, *, seed: int = 0) -> bool:
    """Print the section's examples; return whether every result matches the book.

    Parameters
    ----------
    out : text stream
        Where to print.
    seed : int, optional
        Seed of the random 1 x 1 example.

    Returns
    -------
    bool
        True when the first two examples equal the book's numbers and the 1 x 1 check
        passes the book's threshold.

    Examples
    --------
    >>> import io
    >>> run_demo(io.StringIO())
    True
    """
    print('"Dive into Deep Learning", section 6.4: multiple input and output channels', file=out)
    print("computed with mimo_conv (NumPy only)\n", file=out)

    print("1. Multiple input channels: correlate each channel, then add.", file=out)
    _show("X", BOOK_X, out)
    _show("K", BOOK_K, out)
    Y = corr2d_multi_in(BOOK_X, BOOK_K)
    _show("corr2d_multi_in(X, K)", Y, out)
    first_ok = Y.tolist() == [[56, 72], [104, 120]]
    print(file=out)

    print("2. Multiple output channels: one multi-input kernel per output channel.", file=out)
    K3 = np.stack((BOOK_K, BOOK_K + 1, BOOK_K + 2), 0)
    print("K3 = stack((K, K + 1, K + 2)), shape", K3.shape, file=out)
    Y3 = corr2d_multi_in_out(BOOK_X, K3)
    _show("corr2d_multi_in_out(X, K3)", Y3, out)
    second_ok = Y3.tolist() == [
        [[56, 72], [104, 120]],
        [[76, 100], [148, 172]],
        [[96, 128], [192, 224]],
    ]
    print(file=out)

    print("3. A 1 x 1 kernel is a fully connected layer at every pixel: one matmul.", file=out)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3, 3, 3), dtype=np.float32)
    K = rng.standard_normal((2, 3, 1, 1), dtype=np.float32)
    Y1 = corr2d_multi_in_out_1x1(X, K)
    Y2 = corr2d_multi_in_out(X, K)
    difference = float(np.abs(Y1 - Y2).sum())
    print(f"X ~ N(0, 1) of shape {X.shape}, K of shape {K.shape}, float32, seed {seed}", file=out)
    print("Y1 = corr2d_multi_in_out_1x1(X, K)   # K.reshape(2, 3) @ X.reshape(3, 9)", file=out)
    print("Y2 = corr2d_multi_in_out(X, K)       # the general engine", file=out)
    third_ok = difference < BOOK_1X1_THRESHOLD
    verdict = "below" if third_ok else "NOT below"
    print(
        f"sum |Y1 - Y2| = {difference:.3g}, {verdict} the book's {BOOK_1X1_THRESHOLD:g}",
        f"(bit-for-bit equal: {bool(np.array_equal(Y1, Y2))})",
        file=out,
    )
    all_ok = first_ok and second_ok and third_ok
    print("\nAll three match the book." if all_ok else "\nMISMATCH with the book.", file=out)
    return all_ok
