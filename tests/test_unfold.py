"""unfold / fold (im2col / col2im) and the "im2col" method of mc.conv.

References are independent of the library: a plain-loop unfold written from PyTorch's
documented layout, a window-count map counted by looping over windows, and PyTorch's own
F.unfold / F.fold when installed.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

import mimo_conv as mc
from mimo_conv import grad
from mimo_conv._core.dtypes import plan_dtypes
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._engine.cost_model import workspace_bytes
from mimo_conv.testing import ELEMENT_KINDS, ConvProblem, assert_conv_close, conv_problems


def unfold_reference(
    x: NDArray[Any],
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: tuple[int, ...],
    stride: tuple[int, ...],
) -> NDArray[Any]:
    """PyTorch's documented layout in loops: row c * prod(k) + t, column = window index."""
    batch, channels, *size = x.shape
    padded = np.zeros(
        (batch, channels, *(n + 2 * p for n, p in zip(size, padding, strict=True))), x.dtype
    )
    padded[
        (slice(None), slice(None), *(slice(p, p + n) for n, p in zip(size, padding, strict=True)))
    ] = x
    blocks = [
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, p, d, k, s in zip(size, padding, dilation, kernel, stride, strict=True)
    ]
    taps = list(itertools.product(*(range(k) for k in kernel)))
    windows = list(itertools.product(*(range(b) for b in blocks)))
    out = np.zeros((batch, channels * len(taps), len(windows)), x.dtype)
    for n, c in itertools.product(range(batch), range(channels)):
        for row, tap in enumerate(taps):
            for column, window in enumerate(windows):
                where = tuple(
                    w * s + t * d for w, s, t, d in zip(window, stride, tap, dilation, strict=True)
                )
                out[n, c * len(taps) + row, column] = padded[(n, c, *where)]
    return out


@st.composite
def unfold_problems(
    draw: st.DrawFn, spatial_dims: tuple[int, ...] = (1, 2, 3)
) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """A position-encoded input (10**axis digits) and options whose windows fit."""
    dims = draw(st.sampled_from(spatial_dims))
    kernel, dilation, padding, stride, size = [], [], [], [], []
    for _ in range(dims):
        k, d, p, s = (
            draw(st.integers(1, 3)),
            draw(st.integers(1, 2)),
            draw(st.integers(0, 2)),
            draw(st.integers(1, 3)),
        )
        size.append(draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 5)))
        kernel.append(k)
        dilation.append(d)
        padding.append(p)
        stride.append(s)
    batch, channels = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    # Element [n, c, i, j, ...] = n * 10**5 + c * 10**4 + i * 100 + j * 10 + ... + 1: distinct
    # and nonzero, so a wrong window or a zero from padding shows at once.
    x = np.zeros((batch, channels, *size), np.int64)
    for index in np.ndindex(x.shape):
        x[index] = (
            index[0] * 10**5
            + index[1] * 10**4
            + sum(i * 10 ** (2 - a) for a, i in enumerate(index[2:]))
            + 1
        )
    options = {
        "kernel_size": tuple(kernel),
        "dilation": tuple(dilation),
        "padding": tuple(padding),
        "stride": tuple(stride),
    }
    return x, options


@given(unfold_problems())
def test_unfold_matches_the_documented_layout(
    case: tuple[NDArray[np.int64], dict[str, Any]],
) -> None:
    x, options = case
    expected = unfold_reference(
        x, options["kernel_size"], options["dilation"], options["padding"], options["stride"]
    )
    np.testing.assert_array_equal(mc.unfold(x, **options), expected)
    np.testing.assert_array_equal(mc.unfold(x[0], **options), expected[0])


@given(unfold_problems())
def test_fold_of_unfold_is_x_times_the_window_count(
    case: tuple[NDArray[np.int64], dict[str, Any]],
) -> None:
    x, options = case
    size = x.shape[2:]
    kernel, dilation = options["kernel_size"], options["dilation"]
    padding, stride = options["padding"], options["stride"]
    # Count, for each input element, the (window, tap) pairs that read it.
    count = np.zeros(size, np.int64)
    blocks = [
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, p, d, k, s in zip(size, padding, dilation, kernel, stride, strict=True)
    ]
    for window in itertools.product(*(range(b) for b in blocks)):
        for tap in itertools.product(*(range(k) for k in kernel)):
            where = [
                w * s + t * d - p
                for w, s, t, d, p in zip(window, stride, tap, dilation, padding, strict=True)
            ]
            if all(0 <= i < n for i, n in zip(where, size, strict=True)):
                count[tuple(where)] += 1
    folded = mc.fold(mc.unfold(x, **options), size, **options)
    np.testing.assert_array_equal(folded, x * count)


@given(unfold_problems(), st.integers(0, 2**32 - 1))
def test_fold_is_the_adjoint_of_unfold(
    case: tuple[NDArray[np.int64], dict[str, Any]], seed: int
) -> None:
    x, options = case
    cols = mc.unfold(x, **options)
    y = np.random.default_rng(seed).integers(-9, 10, cols.shape)
    assert int(np.sum(cols * y)) == int(np.sum(x * mc.fold(y, x.shape[2:], **options)))


@given(unfold_problems())
def test_unfold_and_one_matmul_is_conv(
    case: tuple[NDArray[np.int64], dict[str, Any]],
) -> None:
    x, options = case
    channels = x.shape[1]
    kernel = options["kernel_size"]
    weight = (np.arange(3 * channels * math.prod(kernel)) % 7 - 3).reshape(3, channels, *kernel)
    cols = mc.unfold(x, **options)
    product = weight.reshape(3, -1) @ cols
    expected = mc.conv(
        x,
        weight,
        stride=options["stride"],
        padding=options["padding"],
        dilation=options["dilation"],
        method="naive",
    )
    np.testing.assert_array_equal(product.reshape(expected.shape), expected)


def test_unfold_by_hand() -> None:
    x = np.arange(1, 7).reshape(1, 1, 2, 3)
    # 2 x 2 windows of [[1, 2, 3], [4, 5, 6]]: [[1, 2], [4, 5]] and [[2, 3], [5, 6]].
    assert mc.unfold(x, 2).tolist() == [[[1, 2], [2, 3], [4, 5], [5, 6]]]
    assert mc.fold([[1, 1], [1, 1], [1, 1], [1, 1]], (2, 3), 2).tolist() == [[[1, 2, 1], [1, 2, 1]]]


def test_unfold_accepts_every_padding_form_and_mode() -> None:
    x = np.array([[[1, 2, 3]]])
    assert mc.unfold(x, (2,), padding=[(1, 0)], padding_mode="reflect").tolist() == [
        [[2, 1, 2], [1, 2, 3]]
    ]
    assert mc.unfold(x, (3,), padding="same", padding_mode="circular").tolist() == [
        [[3, 1, 2], [1, 2, 3], [2, 3, 1]]
    ]
    assert mc.unfold(x, (2,), padding="full").tolist() == [[[0, 1, 2, 3], [1, 2, 3, 0]]]


def test_dtypes() -> None:
    half = np.ones((1, 1, 3, 3), np.float16)
    assert mc.unfold(half, 2).dtype == np.float16
    thirds = np.array([[[Fraction(1, 3)] * 3]], dtype=object)
    cols = mc.unfold(thirds, (2,))
    assert cols.dtype == object
    assert mc.fold(cols, (3,), (2,)).tolist() == [
        [[Fraction(1, 3), Fraction(2, 3), Fraction(1, 3)]]
    ]
    # One element padded by 1: four 2 x 2 windows, each with one tap on the element.
    small = np.full((1, 4, 4), 100, np.int8)
    summed = mc.fold(small, (1, 1), 2, padding=1)
    assert summed.dtype == np.int64
    assert summed.tolist() == [[[[400]]]]
    with pytest.raises(OverflowError, match="could overflow"):
        mc.fold(np.full((1, 4, 4), 2**62, np.int64), (1, 1), 2, padding=1)


def test_unfold_result_never_shares_memory() -> None:
    x = np.arange(6.0).reshape(1, 2, 3)
    cols = mc.unfold(x, (1,))
    assert cols.flags.writeable
    assert not np.shares_memory(cols, x)
    cols[...] = -1
    assert x.min() == 0


# --- the "im2col" method --------------------------------------------------------------


@given(
    conv_problems(
        spatial_dims=(1, 2, 3),
        dtypes=("int64", "object", "int8"),
        elements="integers",
        allow_empty=True,
    )
)
def test_im2col_method_equals_naive_exactly(problem: ConvProblem) -> None:
    options = problem.conv_kwargs()
    expected = mc.conv(problem.x, problem.weight, problem.bias, **options, method="naive")
    out = mc.conv(problem.x, problem.weight, problem.bias, **options, method="im2col")
    assert out.dtype == expected.dtype
    assert out.shape == expected.shape
    assert out.tolist() == expected.tolist()


@given(data=st.data())
def test_im2col_method_is_within_the_rounding_bound(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(["float64", "float32", "float16", "complex128"]))
    elements = data.draw(st.sampled_from(ELEMENT_KINDS))
    problem = data.draw(conv_problems(spatial_dims=(1, 2, 3), dtypes=(dtype,), elements=elements))
    out = mc.conv(problem.x, problem.weight, problem.bias, **problem.conv_kwargs(), method="im2col")
    assert_conv_close(out, problem.x, problem.weight, problem.bias, **problem.conv_kwargs())


def test_im2col_workspace_is_its_column_buffer() -> None:
    geometry = ConvGeometry(
        batch_size=2, in_channels=3, out_channels=4, groups=1, input_shape=(5, 6),
        kernel_shape=(3, 2), stride=(1, 2), dilation=(1, 1), padding=((1, 1), (0, 0)),
    )  # fmt: skip
    plan = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
    padded = 2 * 3 * 7 * 6
    # Both small images fit in one chunk: their column matrices (3 channels * 3 * 2 taps
    # rows) and the product's result (4 output channels), over the output positions.
    columns = 2 * (3 * 3 * 2 + 4) * math.prod(geometry.output_shape)
    assert workspace_bytes("im2col", geometry, plan) == (padded + columns) * 8


# --- PyTorch's F.unfold / F.fold ------------------------------------------------------


@given(unfold_problems(spatial_dims=(2,)))
def test_unfold_and_fold_equal_torch(
    case: tuple[NDArray[np.int64], dict[str, Any]],
) -> None:
    torch = pytest.importorskip("torch")
    x, options = case
    xt = torch.tensor(x.astype(np.float64))
    cols = torch.nn.functional.unfold(xt, **options)
    np.testing.assert_array_equal(mc.unfold(x.astype(np.float64), **options), cols.numpy())
    folded = torch.nn.functional.fold(cols, x.shape[2:], **options)
    np.testing.assert_array_equal(mc.fold(cols.numpy(), x.shape[2:], **options), folded.numpy())


# --- bad arguments --------------------------------------------------------------------


def row(
    id_: str, error: type[Exception], match: str, function: Any, *args: Any, **kwargs: Any
) -> Any:
    return pytest.param(function, args, kwargs, error, match, id=id_)


X = np.zeros((1, 2, 4, 4))
COLS = np.zeros((1, 8, 9))

BAD_CALLS = [
    row(
        "unfold-kernel-zero",
        ValueError,
        r"kernel_size must be >= 1 along every axis, got 0",
        mc.unfold,
        X,
        0,
    ),
    row(
        "unfold-kernel-float", TypeError, r"kernel_size must be an int, got 2.0", mc.unfold, X, 2.0
    ),
    row(
        "unfold-rank",
        ValueError,
        r"x must have 3 \(unbatched\) or 4 \(batched\) dimensions for a kernel_size of 2 "
        r"spatial dimensions, got x of shape \(4,\)",
        mc.unfold,
        np.zeros(4),
        2,
    ),
    row(
        "unfold-kernel-too-large",
        ValueError,
        r"the \(dilated\) kernel must fit in the padded",
        mc.unfold,
        X,
        5,
    ),
    row(
        "unfold-stride-length",
        ValueError,
        r"stride must be an int or a sequence of 2 ints",
        mc.unfold,
        X,
        2,
        stride=(1, 1, 1),
    ),
    row(
        "unfold-padding-mode",
        ValueError,
        r"padding_mode must be one of",
        mc.unfold,
        X,
        2,
        padding=1,
        padding_mode="wrap",
    ),
    row(
        "unfold-bool",
        TypeError,
        r"x must hold numbers .* got dtype bool",
        mc.unfold,
        X.astype(bool),
        2,
    ),
    row(
        "fold-rank",
        ValueError,
        r"cols must have 2 \(unbatched\) or 3 \(batched\) dimensions .* got cols of shape "
        r"\(8,\)",
        mc.fold,
        np.zeros(8),
        (4, 4),
        2,
    ),
    row(
        "fold-rows",
        ValueError,
        r"cols must have a multiple of prod\(kernel_size\) = 4 rows \(kernel_size=\(2, 2\)\), "
        r"got cols of shape \(1, 6, 9\)",
        mc.fold,
        np.zeros((1, 6, 9)),
        (4, 4),
        2,
    ),
    row(
        "fold-columns",
        ValueError,
        r"cols must have one column per window: output_size=\(4, 4\), kernel_size=\(2, 2\), "
        r".* give \(3, 3\) windows \(9 in all\), got cols of shape \(1, 8, 10\)",
        mc.fold,
        np.zeros((1, 8, 10)),
        (4, 4),
        2,
    ),
    row("fold-kernel-too-large", ValueError, r"give \(0, 0\) windows", mc.fold, COLS, (1, 1), 2),
    row(
        "fold-output-size-float",
        TypeError,
        r"output_size must be an int, got 4.0",
        mc.fold,
        COLS,
        (4.0, 4),
        2,
    ),
    row(
        "fold-output-size-length",
        ValueError,
        r"kernel_size must be an int or a sequence of 2 ints",
        mc.fold,
        COLS,
        (4, 4),
        (2, 2, 2),
    ),
    row(
        "fold-dilation-zero",
        ValueError,
        r"dilation must be >= 1",
        mc.fold,
        COLS,
        (4, 4),
        2,
        dilation=0,
    ),
    row(
        "fold-complex-string",
        TypeError,
        r"cols must hold numbers",
        mc.fold,
        np.full((1, 8, 9), "a"),
        (4, 4),
        2,
    ),
]


@pytest.mark.parametrize(("function", "args", "kwargs", "error", "match"), BAD_CALLS)
def test_bad_arguments_raise_clear_errors(
    function: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        function(*args, **kwargs)


def same_by_hand(
    size: tuple[int, ...],
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    stride: tuple[int, ...],
    lower: bool,
) -> tuple[tuple[int, int], ...]:
    """TensorFlow's documented SAME: ceil(n / s) windows, just enough padding, split in two."""
    pairs = []
    for n, k, d, s in zip(size, kernel, dilation, stride, strict=True):
        windows = math.ceil(n / s)
        total = max((windows - 1) * s + d * (k - 1) + 1 - n, 0)
        half, rest = total // 2, total - total // 2
        pairs.append((rest, half) if lower else (half, rest))
    return tuple(pairs)


@st.composite
def same_problems(draw: st.DrawFn) -> tuple[NDArray[np.int64], dict[str, Any], str]:
    """An input, a kernel and strides up to 3 for ``padding="same"`` or ``"same_lower"``."""
    dims = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, 7)) for _ in range(dims))
    options = {
        "kernel_size": tuple(draw(st.integers(1, 4)) for _ in range(dims)),
        "dilation": tuple(draw(st.integers(1, 2)) for _ in range(dims)),
        "stride": tuple(draw(st.integers(1, 3)) for _ in range(dims)),
    }
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size)
    x = np.arange(1, math.prod(shape) + 1, dtype=np.int64).reshape(shape)  # distinct, nonzero
    return x, options, draw(st.sampled_from(["same", "same_lower"]))


@given(same_problems())
def test_same_padding_at_any_stride_unfolds_the_tensorflow_windows(
    case: tuple[NDArray[np.int64], dict[str, Any], str],
) -> None:
    x, options, padding = case
    kernel, dilation, stride = options["kernel_size"], options["dilation"], options["stride"]
    pairs = same_by_hand(x.shape[2:], kernel, dilation, stride, padding == "same_lower")
    padded = np.pad(x, ((0, 0), (0, 0), *pairs))  # the reference pads by hand, then unfolds
    expected = unfold_reference(padded, kernel, dilation, (0,) * len(kernel), stride)
    cols = mc.unfold(x, padding=padding, **options)
    np.testing.assert_array_equal(cols, expected)
    assert cols.shape[-1] == math.prod(
        math.ceil(n / s) for n, s in zip(x.shape[2:], stride, strict=True)
    )
    # ... and one product of them is conv's SAME (TensorFlow's and JAX's rule).
    weight = (np.arange(2 * x.shape[1] * math.prod(kernel)) % 5 - 2).reshape(2, x.shape[1], *kernel)
    product = (weight.reshape(2, -1) @ cols).reshape(x.shape[0], 2, -1)
    conv = mc.conv(x, weight, stride=stride, dilation=dilation, padding=padding)
    np.testing.assert_array_equal(product, conv.reshape(product.shape))


@given(same_problems(), st.integers(0, 2**32 - 1))
def test_fold_with_same_padding_is_the_adjoint_of_unfold_at_any_stride(
    case: tuple[NDArray[np.int64], dict[str, Any], str], seed: int
) -> None:
    x, options, padding = case
    size = x.shape[2:]
    cols = mc.unfold(x, padding=padding, **options)
    y = np.random.default_rng(seed).integers(-9, 10, cols.shape)
    folded = mc.fold(y, size, padding=padding, **options)
    assert folded.shape == x.shape
    assert int(np.sum(cols * y)) == int(np.sum(x * folded))  # <unfold x, y> = <x, fold y>
    # The same as folding with the pairs written out: the amounts follow output_size.
    kernel, dilation, stride = options["kernel_size"], options["dilation"], options["stride"]
    pairs = same_by_hand(size, kernel, dilation, stride, padding == "same_lower")
    np.testing.assert_array_equal(folded, mc.fold(y, size, padding=pairs, **options))


def test_the_input_gradient_is_fold_of_the_kernels_times_the_output_gradient() -> None:
    # conv's input gradient with SAME at stride 2 is fold(W^T g) with the same padding: the
    # transpose of "conv = W @ unfold(x)". Integers: exact.
    rng = np.random.default_rng(7)
    x_shape, weight = (2, 3, 7, 6), rng.integers(-3, 4, (4, 3, 3, 2))
    for padding in ("same", "same_lower"):
        out_shape = mc.output_shape(x_shape, weight.shape, stride=2, padding=padding)
        g = rng.integers(-3, 4, out_shape)
        expected = mc.fold(
            weight.reshape(4, -1).T @ g.reshape(2, 4, -1), x_shape[2:], (3, 2),
            padding=padding, stride=2,
        )  # fmt: skip
        actual = grad.conv2d_input(x_shape, weight, g, stride=2, padding=padding)
        np.testing.assert_array_equal(actual, expected)


def test_fold_refuses_columns_that_do_not_match_the_same_windows() -> None:
    # 7 x 6 at stride 2 has 4 x 3 SAME windows: 12 columns, not 42. Padding: 3 * 2 + 2 - 7
    # = 1 (after) along the first axis, 2 * 2 + 2 - 6 = 0 along the second.
    with pytest.raises(ValueError, match=r"padding=\(\(0, 1\), \(0, 0\)\).*give \(4, 3\) windows"):
        mc.fold(np.ones((1, 4, 42)), (7, 6), 2, padding="same", stride=2)
