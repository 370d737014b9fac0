"""The section's six exercises, each answered by computing with the library.

``python -m mimo_conv exercises`` prints them all. Each ``exercise_<n>`` function prints
one answer to a stream and returns whether every check it made came out as the text
claims, so the test suite can hold the printed answers to the computation.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from mimo_conv._classroom.compose import compose, decompose
from mimo_conv._classroom.conv_matrix import conv_matrix
from mimo_conv._classroom.counts import cost
from mimo_conv._classroom.textbook import (
    BOOK_K,
    BOOK_K3,
    BOOK_X,
    corr2d_multi_in,
    corr2d_multi_in_out,
    corr2d_multi_in_out_1x1,
)
from mimo_conv._ops.conv import conv
from mimo_conv._ops.unfold import unfold


def _say(out: TextIO, *lines: str) -> None:
    """Write lines to the stream."""
    for line in lines:
        out.write(line + "\n")


def _show(out: TextIO, name: str, array: NDArray[Any], indent: str = "   ") -> None:
    """Write an array under a name, indented."""
    text = np.array2string(np.asarray(array), separator=", ")
    _say(out, f"{indent}{name} =")
    _say(out, *(indent + "  " + line for line in text.splitlines()))


def exercise_1(out: TextIO) -> bool:
    """Two convolutions in a row are one; when does one split into two? (1 a, b, c).

    Examples
    --------
    >>> import io
    >>> exercise_1(io.StringIO())
    True
    """
    _say(out, "1. Two convolutions in a row, no nonlinearity between them.")
    x = np.arange(2 * 7 * 7).reshape(2, 7, 7)
    w1 = BOOK_K3  # (3, 2, 2, 2): the book's three output channels
    w2 = np.array([[[[1, 0, -1]] * 3] * 3])  # (1, 3, 3, 3)
    b1, b2 = np.array([1, 2, 3]), np.array([10])
    weight, bias, stride = compose(w1, w2, b1, b2)
    stacked = conv(conv(x, w1, b1), w2, b2)
    single = conv(x, weight, bias, stride)
    same = bool(np.array_equal(stacked, single))
    _say(
        out,
        "   (a) They are one convolution: mc.compose(w1, w2, b1, b2) returns its kernel, bias",
        "       and stride. With w1 = the book's K3 (3, 2, 2, 2) and w2 of shape (1, 3, 3, 3)",
        f"       it is a kernel of shape {weight.shape}, bias {bias}, stride {stride};",
        "       on a (2, 7, 7) integer input,",
        f"       conv(conv(x, w1, b1), w2, b2) == conv(x, kernel, bias, stride): {same}.",
    )
    sizes = []
    rows = ((3, 3, 1), (5, 3, 1), (3, 3, 2), (2, 2, 3))
    for k1, k2, s1 in rows:
        size = compose(np.ones((1, 1, k1), int), np.ones((1, 1, k2), int), None, None, s1)[0]
        sizes.append(size.shape[-1])
    _say(out, "   (b) Kernel size k1 + (k2 - 1) * stride1 (k1 + k2 - 1 at stride 1), stride s1*s2:")
    sizes_ok = True
    for (k1, k2, s1), size in zip(rows, sizes, strict=True):
        sizes_ok &= size == k1 + (k2 - 1) * s1
        _say(out, f"       k1={k1}, k2={k2}, stride1={s1}: compose gives a kernel of {size}")
    sobel = np.array([[[[1, 0, -1], [2, 0, -2], [1, 0, -1]]]])
    first, second = decompose(sobel)
    rng = np.random.default_rng(0)
    generic = rng.integers(-3, 4, size=(1, 1, 3, 3))
    g1, _ = decompose(generic)
    _say(
        out,
        "   (c) Trivially yes: any convolution is itself followed by a 1 x 1 identity. Usefully,",
        "       mc.decompose splits a kh x kw kernel into kh x 1 then 1 x kw with r middle",
        "       channels, r = the rank of the kernel as a matrix (exact, with fractions):",
        f"       Sobel has rank {first.shape[0]}: {first[0, 0, :, 0].tolist()} then "
        f"{second[0, 0, 0, :].tolist()},",
        "       3 + 3 = 6 products per output instead of 9;",
        f"       a random 3 x 3 integer kernel has rank {g1.shape[0]}: the split needs "
        f"{g1.shape[0]} middle channels",
        f"       ({g1.shape[0] * 6} products instead of 9), so it saves nothing. A generic "
        "kernel does not",
        "       split into two smaller ones with one channel: it would have to be an outer",
        "       product (2-d) or, in 1-d, its polynomial would have to factor (over the reals",
        "       a length-3 kernel splits into two of length 2 only if its roots are real).",
    )
    split_ok = bool(np.array_equal(compose(first, second)[0], sobel)) and first.shape[0] == 1
    return same and sizes_ok and split_ok


def exercise_2(out: TextIO) -> bool:
    """Forward and backward cost and memory (2 a-d), from :func:`mimo_conv.cost`.

    Examples
    --------
    >>> import io
    >>> exercise_2(io.StringIO())
    True
    """
    c_i, h, w, c_o, kh, kw, ph, pw, sh, sw = 3, 224, 224, 64, 7, 7, 3, 3, 2, 2
    report = cost((c_i, h, w), (c_o, c_i, kh, kw), stride=(sh, sw), padding=(ph, pw))
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    n = c_i * kh * kw
    _say(
        out,
        "2. Input c_i x h x w, kernel c_o x c_i x kh x kw, padding (ph, pw), stride (sh, sw).",
        "   mc.cost(input_shape, weight_shape, stride, padding) counts it; for example",
        f"   c_i={c_i}, h=w={h}, c_o={c_o}, kh=kw={kh}, padding {ph}, stride {sh} (a ResNet stem):",
        "",
        *("   " + line for line in str(report).splitlines()),
        "",
        f"   (a) forward: each of the c_o*oh*ow = {c_o}*{oh}*{ow} outputs sums n = c_i*kh*kw = {n}",
        f"       products: c_o*oh*ow*n = {c_o * oh * ow * n:,} multiplications and",
        f"       c_o*oh*ow*(n-1) = {c_o * oh * ow * (n - 1):,} additions,",
        "       with oh = floor((h + 2 ph - kh) / sh) + 1.",
        "   (b) memory: input c_i*h*w, weight c_o*c_i*kh*kw and output c_o*oh*ow elements,",
        "       times the item size, plus each method's temporary buffer.",
        "   (c) backward memory: the input and the weight must be kept from the forward pass,",
        "       and the gradients are as large as the input and the weight.",
        "   (d) backward compute: dL/dx and dL/dweight each need as many multiplications as",
        "       the forward pass (one per product of the forward sums); mc.cost counts their",
        "       additions exactly.",
    )
    return (
        report.forward_multiplications == c_o * oh * ow * n
        and report.forward_additions == c_o * oh * ow * (n - 1)
        and report.backward_input_multiplications == c_o * oh * ow * n
        and report.backward_weight_multiplications == c_o * oh * ow * n
    )


def exercise_3(out: TextIO) -> bool:
    """How the compute grows with doubled channels or doubled padding (3).

    Examples
    --------
    >>> import io
    >>> exercise_3(io.StringIO())
    True
    """
    base = cost((8, 32, 32), (16, 8, 3, 3), padding=1)
    channels = cost((16, 32, 32), (32, 16, 3, 3), padding=1)
    padded = cost((8, 32, 32), (16, 8, 3, 3), padding=2)
    real = cost((8, 32, 32), (16, 8, 3, 3), padding=1, exclude_padding=True)
    padded_real = cost((8, 32, 32), (16, 8, 3, 3), padding=2, exclude_padding=True)
    channel_ratio = channels.forward_multiplications / base.forward_multiplications
    padding_ratio = padded.forward_multiplications / base.forward_multiplications
    real_ratio = padded_real.forward_multiplications / real.forward_multiplications
    _say(
        out,
        "3. Growth of the compute, for 8 x 32 x 32 inputs and 16 kernels of 3 x 3, padding 1:",
        f"   doubling c_i and c_o: x {channel_ratio:g} (the cost is proportional to c_i * c_o)",
        f"   doubling the padding to 2: x {padding_ratio:.4g} = (34 / 32)^2, the growth of the "
        "output;",
        f"   the products with real input elements only grow x {real_ratio:g}: the new outputs",
        "   see mostly padded zeros (mc.cost(..., exclude_padding=True)).",
    )
    return channel_ratio == 4 and math.isclose(padding_ratio, (34 / 32) ** 2)


def exercise_4(out: TextIO) -> bool:
    """Count the forward cost of a 1 x 1 kernel (4).

    Examples
    --------
    >>> import io
    >>> exercise_4(io.StringIO())
    True
    """
    c_i, h, w, c_o = 3, 3, 3, 2
    report = cost((c_i, h, w), (c_o, c_i, 1, 1))
    _say(
        out,
        "4. kh = kw = 1: each output sums c_i products, so the forward pass is one matrix",
        "   product (c_o, c_i) @ (c_i, h*w): c_o*c_i*h*w multiplications and",
        "   c_o*(c_i-1)*h*w additions.",
        f"   For the book's 1 x 1 example (c_i={c_i}, h=w={h}, c_o={c_o}): "
        f"mc.cost gives {report.forward_multiplications} and {report.forward_additions}.",
    )
    return (
        report.forward_multiplications == c_o * c_i * h * w
        and report.forward_additions == c_o * (c_i - 1) * h * w
    )


def exercise_5(out: TextIO, *, seed: int = 0) -> bool:
    """Are ``Y1`` and ``Y2`` of the 1 x 1 example exactly equal? (5).

    Examples
    --------
    >>> import io
    >>> exercise_5(io.StringIO())
    True
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3, 3, 3), dtype=np.float32)
    K = rng.standard_normal((2, 3, 1, 1), dtype=np.float32)
    Y1 = corr2d_multi_in_out_1x1(X, K)
    Y2 = corr2d_multi_in_out(X, K)
    einsum = conv(X, K, method="einsum")
    naive = conv(X, K, method="naive")
    exact = conv(
        np.vectorize(Fraction, otypes=[object])(X.astype(np.float64)),
        np.vectorize(Fraction, otypes=[object])(K.astype(np.float64)),
    )
    u = float(np.finfo(np.float32).eps) / 2
    gamma = 3 * u / (1 - 3 * u)  # n = c_i = 3 products per output (Higham, section 3.1)
    bound = gamma * conv(np.abs(X).astype(np.float64), np.abs(K).astype(np.float64))
    within = True
    lines = []
    for name, Y in (("Y1 (matmul)", Y1), ("Y2 (conv)", Y2), ("einsum", einsum), ("naive", naive)):
        error = np.abs(Y.astype(np.float64) - exact.astype(np.float64))
        within &= bool(np.all(error <= bound))
        lines.append(
            f"   {name:<12} max |Y - exact| = {error.max():.3g}"
            f"   bit-for-bit equal to Y1: {bool(np.array_equal(Y, Y1))}"
        )
    big = np.array([[[1e8]], [[-1e8]], [[1.0]]], dtype=np.float32)
    ones = np.ones((1, 3, 1, 1), dtype=np.float32)
    forward = conv(big, ones, method="naive")[0, 0, 0]
    backward = conv(big[::-1], ones, method="naive")[0, 0, 0]
    integers = rng.integers(-100, 100, size=(3, 3, 3))
    integer_kernel = rng.integers(-100, 100, size=(2, 3, 1, 1))
    results = [corr2d_multi_in_out_1x1(integers, integer_kernel)]
    results += [conv(integers, integer_kernel, method=m) for m in ("einsum", "naive", "matmul")]
    all_equal = all(np.array_equal(results[0], r) for r in results[1:])
    _say(
        out,
        f"5. Y1 (the matmul) and Y2 (the general engine) in float32, seed {seed},",
        "   against the exact sums (computed with fractions):",
        *lines,
        f"   sum |Y1 - Y2| = {float(np.abs(Y1 - Y2).sum()):.3g}. Not guaranteed equal: "
        "each output is a sum of",
        "   c_i = 3 rounded products, and a matmul (BLAS: blocking, SIMD, fused multiply-add)",
        "   and a window sum may add them in different orders; float addition is not",
        "   associative. Every path is within gamma_3 * sum |x||w| of the exact value",
        f"   (gamma_3 = {gamma:.3g}, Higham section 3.1): {within}.",
        "   The naive loop on channels (1e8, -1e8, 1), a ones kernel, gives "
        f"{format(float(forward), 'g')}; on them reversed",
        f"   (1, -1e8, 1e8) it gives {format(float(backward), 'g')}: 1 - 1e8 rounds to -1e8 "
        "in float32.",
        f"   On integer data every path is exact, so all agree bit for bit: {all_equal}.",
    )
    return within and all_equal and float(forward) == 1.0 and float(backward) == 0.0


def exercise_6(out: TextIO) -> bool:
    """Write a non-1 x 1 convolution as a matrix product: im2col, conv matrix (6).

    Examples
    --------
    >>> import io
    >>> exercise_6(io.StringIO())
    True
    """
    columns = unfold(BOOK_X, (2, 2))
    kernel = BOOK_K[np.newaxis]  # (1, 2, 2, 2)
    product = (kernel.reshape(1, -1) @ columns).reshape(1, 2, 2)
    matrix = conv_matrix(kernel, BOOK_X.shape)
    expected = corr2d_multi_in(BOOK_X, BOOK_K)
    _say(
        out,
        "6. As one matrix product, two ways, on the book's X (2, 3, 3) and K (2, 2, 2):",
        "   im2col: copy each window into a column (c_i*kh*kw rows, oh*ow columns),",
        "   then weight.reshape(c_o, -1) @ columns. mc.unfold(X, (2, 2)) is",
    )
    _show(out, "columns", columns, indent="     ")
    _show(out, "K.reshape(1, -1) @ columns", product.reshape(1, -1), indent="     ")
    _say(out, "   the conv matrix: mc.conv_matrix(K, X.shape) is the (oh*ow, c_i*h*w) matrix A")
    _say(out, "   with conv(X).ravel() == A @ X.ravel() (A.T is the backward pass for x):")
    _show(out, "A", matrix, indent="     ")
    _show(out, "A @ X.ravel()", matrix @ BOOK_X.ravel(), indent="     ")
    return bool(
        np.array_equal(product[0], expected)
        and np.array_equal(matrix @ BOOK_X.ravel(), expected.ravel())
    )


def answer_exercises(out: TextIO, *, seed: int = 0) -> bool:
    """Print every exercise with its computed answer; return whether all checks hold.

    Examples
    --------
    >>> import io
    >>> answer_exercises(io.StringIO())
    True
    """
    _say(out, '"Dive into Deep Learning", section 6.4: the exercises, answered by mimo_conv\n')
    results = []
    for exercise in (exercise_1, exercise_2, exercise_3, exercise_4):
        results.append(exercise(out))
        _say(out)
    results.append(exercise_5(out, seed=seed))
    _say(out)
    results.append(exercise_6(out))
    return all(results)
