"""The section's six exercises, each answered by computing with the library.

``python -m mimo_conv exercises`` prints them all, laid out for a projector: each part
states its question, then ``Given:`` (the inputs used, every value named), ``Computed:``
(what the library returned) and ``Answer:``. Each ``exercise_<n>`` function prints one
exercise to a stream and returns whether every check it made came out as the text
claims, so the test suite can hold the printed answers to the computation.
"""

from __future__ import annotations

import math
import textwrap
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

#: Characters per line of an answer (after its 17-character label column).
ANSWER_WIDTH = 68


def _say(out: TextIO, *lines: str) -> None:
    """Write lines to the stream."""
    for line in lines:
        out.write(line + "\n")


def _part(out: TextIO, question: str, **blocks: list[str]) -> None:
    """Write one part: its question, then labelled blocks (``Given:``, ``Computed:``, ...).

    The answer is prose, wrapped to fit a projected terminal; the other blocks are kept
    line by line.
    """
    if question:
        _say(out, f"   {question}")
    for label, block in blocks.items():
        lines = textwrap.wrap(" ".join(block), width=ANSWER_WIDTH) if label == "answer" else block
        for number, line in enumerate(lines):
            head = f"{label.capitalize()}:" if number == 0 else ""
            _say(out, f"       {head:<10}{line}".rstrip())


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
    _say(out, "1. Two convolutions in a row, with no nonlinearity between them.")
    x = np.arange(2 * 7 * 7).reshape(2, 7, 7)
    w1 = BOOK_K3  # (3, 2, 2, 2): the book's three output channels
    w2 = np.array([[[[1, 0, 1]] * 3] * 3])  # (1, 3, 3, 3)
    b1, b2 = np.array([1, 2, 3]), np.array([10])
    weight, bias, stride = compose(w1, w2, b1, b2)
    bias_values = [] if bias is None else bias.tolist()
    stacked = conv(conv(x, w1, b1), w2, b2)
    single = conv(x, weight, bias, stride)
    same = bool(np.array_equal(stacked, single))
    # The composed bias, by hand: b1 passes through w2, so b2 + sum_c sum(w2[0, c]) * b1[c].
    sums = [int(w2[0, c].sum()) for c in range(3)]
    by_hand = int(b2[0]) + sum(s * int(b) for s, b in zip(sums, b1.tolist(), strict=True))
    terms = " + ".join(f"{s}*{b}" for s, b in zip(sums, b1.tolist(), strict=True))
    _part(
        out,
        "(a) Are they a single convolution?",
        given=[
            "x = arange(98).reshape(2, 7, 7)",
            "w1 = the book's K3 = stack(K, K + 1, K + 2), shape (3, 2, 2, 2)",
            "b1 = [1, 2, 3], one bias per output channel of w1",
            "w2 of shape (1, 3, 3, 3), every kernel row [1, 0, 1]; b2 = [10]",
        ],
        computed=[
            f"mc.compose(w1, w2, b1, b2): a kernel of shape {weight.shape},",
            f"bias {bias_values} and stride {stride}",
            f"bias = b2 + sum_c sum(w2[0, c]) * b1[c] = 10 + {terms} = {by_hand}",
            f"conv(conv(x, w1, b1), w2, b2) == conv(x, kernel, bias, stride): {same}",
        ],
        answer=[
            "yes: correlation is linear, so the two layers are one layer",
            "whose kernel is w2 applied to w1 (mc.compose) and whose bias",
            "is b1 passed through w2, plus b2.",
        ],
    )
    sizes = []
    rows = ((3, 3, 1), (5, 3, 1), (3, 3, 2), (2, 2, 3))
    for k1, k2, s1 in rows:
        size = compose(np.ones((1, 1, k1), int), np.ones((1, 1, k2), int), None, None, s1)[0]
        sizes.append(size.shape[-1])
    sizes_ok = all(
        size == k1 + (k2 - 1) * s1 for (k1, k2, s1), size in zip(rows, sizes, strict=True)
    )
    _part(
        out,
        "(b) How large is the single kernel?",
        given=["1-d kernels of sizes k1 then k2, the first with stride s1"],
        computed=[
            f"k1={k1}, k2={k2}, s1={s1}: mc.compose gives a kernel of {size}"
            for (k1, k2, s1), size in zip(rows, sizes, strict=True)
        ],
        answer=[
            "k1 + (k2 - 1) * s1, which is k1 + k2 - 1 at stride 1;",
            "the stride is s1 * s2.",
        ],
    )
    sobel = np.array([[[[1, 0, -1], [2, 0, -2], [1, 0, -1]]]])
    first, second = decompose(sobel)
    rng = np.random.default_rng(0)
    generic = rng.integers(-3, 4, size=(1, 1, 3, 3))
    g1, _ = decompose(generic)
    _part(
        out,
        "(c) Can every convolution be split into two?",
        given=[
            "Sobel = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]",
            "a random 3 x 3 integer kernel (seed 0):",
            f"{generic[0, 0].tolist()}",
        ],
        computed=[
            f"mc.decompose(Sobel): rank {first.shape[0]},",
            f"{first[0, 0, :, 0].tolist()} (3 x 1) then {second[0, 0, 0, :].tolist()} (1 x 3):",
            "3 + 3 = 6 products per output instead of 9",
            f"mc.decompose(random): rank {g1.shape[0]}, so {g1.shape[0]} middle channels,",
            f"{g1.shape[0] * 6} products instead of 9",
        ],
        answer=[
            "trivially yes (any convolution, then a 1 x 1 identity), but usefully only",
            "sometimes: a kh x kw kernel splits into kh x 1 then 1 x kw with r middle",
            "channels, r = its rank as a matrix. A generic kernel has full rank, so it",
            "does not split into two smaller ones with one channel (in 1-d its polynomial",
            "would have to factor: a length-3 kernel splits into two of length 2 only",
            "if its roots are real).",
        ],
    )
    split_ok = bool(np.array_equal(compose(first, second)[0], sobel)) and first.shape[0] == 1
    return same and sizes_ok and split_ok and bias_values == [by_hand]


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
        "2. The cost of a convolution: input c_i x h x w, kernel c_o x c_i x kh x kw,",
        "   padding (ph, pw), stride (sh, sw).",
    )
    _part(
        out,
        "For example:",
        given=[
            f"c_i={c_i}, h=w={h}, c_o={c_o}, kh=kw={kh}, padding {ph}, stride {sh},",
            "float32 (a ResNet stem)",
        ],
        computed=[
            f"mc.cost(({c_i}, {h}, {w}), ({c_o}, {c_i}, {kh}, {kw}), stride={sh}, padding={ph}):",
            "",
            *str(report).splitlines(),
            "",
        ],
    )
    _part(
        out,
        "(a) Forward compute?",
        answer=[
            f"each of the c_o*oh*ow = {c_o}*{oh}*{ow} outputs sums",
            f"n = c_i*kh*kw = {n} products, so c_o*oh*ow*n =",
            f"{c_o * oh * ow * n:,} multiplications and",
            f"c_o*oh*ow*(n-1) = {c_o * oh * ow * (n - 1):,} additions,",
            "with oh = floor((h + 2 ph - kh) / sh) + 1 (padded zeros counted).",
        ],
    )
    _part(
        out,
        "(b) Memory footprint?",
        answer=[
            "input c_i*h*w, weight c_o*c_i*kh*kw and output c_o*oh*ow elements, times",
            "the item size, plus each method's temporary buffer (the table above).",
        ],
    )
    _part(
        out,
        "(c) Memory of the backward pass?",
        answer=[
            "the input and the weight are kept from the forward pass, and the gradients",
            "are as large as the input and the weight.",
        ],
    )
    _part(
        out,
        "(d) Compute of the backward pass?",
        answer=[
            "dL/dx and dL/dweight each need as many multiplications as the forward pass",
            "(one per product of the forward sums); mc.cost counts their additions",
            "exactly. With padding, the dL/dx row also counts the gradient of the padded",
            "cells (computed, then dropped); exclude_padding=True leaves them out.",
        ],
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
    _say(out, "3. How does the compute grow?")
    _part(
        out,
        "When c_i and c_o double, or when the padding doubles?",
        given=["input 8 x 32 x 32, 16 kernels of 8 x 3 x 3, padding 1"],
        computed=[
            f"forward multiplications: {base.forward_multiplications:,}",
            f"c_i = 16, c_o = 32: {channels.forward_multiplications:,}, x {channel_ratio:g}",
            f"padding 2: {padded.forward_multiplications:,}, x {padding_ratio:.4g}",
            f"padding 2, products with padded zeros left out: x {real_ratio:g}",
        ],
        answer=[
            "doubling both channel counts multiplies the compute by 4 (it is",
            "proportional to c_i * c_o); doubling the padding grows it as the output",
            "grows, (34 / 32)^2, and the new outputs see mostly padded zeros.",
        ],
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
    _say(out, "4. The forward cost when kh = kw = 1.")
    _part(
        out,
        "How much does a 1 x 1 convolution cost?",
        given=[f"the book's 1 x 1 example: c_i={c_i}, h=w={h}, c_o={c_o}"],
        computed=[
            f"mc.cost(({c_i}, {h}, {w}), ({c_o}, {c_i}, 1, 1)):",
            (
                f"{report.forward_multiplications} multiplications, "
                f"{report.forward_additions} additions"
            ),
        ],
        answer=[
            "each output sums c_i products: one matrix product",
            "(c_o, c_i) @ (c_i, h*w), so",
            f"c_o*c_i*h*w = {c_o * c_i * h * w} multiplications and",
            f"c_o*(c_i-1)*h*w = {c_o * (c_i - 1) * h * w} additions.",
        ],
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
            f"{name:<12} max |Y - exact| = {error.max():.3g},"
            f" bit for bit Y1: {bool(np.array_equal(Y, Y1))}"
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
    _say(out, "5. The 1 x 1 example: are Y1 and Y2 exactly equal?")
    _part(
        out,
        "Does the matmul give exactly the general engine's result?",
        given=[
            f"X (3, 3, 3) and K (2, 3, 1, 1), standard normal float32, seed {seed}",
            "Y1 = corr2d_multi_in_out_1x1(X, K), the matmul",
            "Y2 = corr2d_multi_in_out(X, K), the general engine",
        ],
        computed=[
            "each against the exact sums (computed with fractions):",
            *lines,
            f"sum |Y1 - Y2| = {float(np.abs(Y1 - Y2).sum()):.3g}",
            f"every path within gamma_3 * sum |x||w| (gamma_3 = {gamma:.3g}): {within}",
            f"naive loop on channels (1e8, -1e8, 1), ones kernel: {float(forward):g}",
            f"the same channels reversed (1, -1e8, 1e8): {float(backward):g}",
            f"on integer data, every path bit for bit equal: {all_equal}",
        ],
        answer=[
            "not guaranteed: each output is a sum of c_i = 3 rounded products, and a",
            "matmul (BLAS: blocking, SIMD, fused multiply-add) and a window sum may add",
            "them in different orders; float addition is not associative (1 - 1e8 rounds",
            "to -1e8 in float32). All are within the rounding bound (Higham, section",
            "3.1), and on integers, where every sum is exact, all agree.",
        ],
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
    _say(out, "6. A convolution with a larger window as one matrix product.")
    _part(
        out,
        "How, for a kernel that is not 1 x 1?",
        given=["the book's X (2, 3, 3) and K (2, 2, 2), one output channel"],
        computed=[
            "im2col: mc.unfold(X, (2, 2)) copies each window into a column",
            "(c_i*kh*kw = 8 rows, oh*ow = 4 columns):",
        ],
    )
    _show(out, "columns", columns, indent="                 ")
    _show(out, "K.reshape(1, -1) @ columns", product.reshape(1, -1), indent="                 ")
    _say(
        out,
        "                 the conv matrix: mc.conv_matrix(K, X.shape) is the",
        "                 (oh*ow, c_i*h*w) matrix A with conv(X).ravel() == A @ X.ravel():",
    )
    _show(out, "A", matrix, indent="                 ")
    _show(out, "A @ X.ravel()", matrix @ BOOK_X.ravel(), indent="                 ")
    _part(
        out,
        "",
        answer=[
            "copy the windows into columns (im2col), then one product",
            "weight.reshape(c_o, -1) @ columns; or build the sparse matrix A once",
            "(A.T is the backward pass for x). Both give the book's",
            "[[56, 72], [104, 120]].",
        ],
    )
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
