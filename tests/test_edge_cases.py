"""Edge cases of issue 2, on every method.

Array-likes of every layout give identical results; inputs are never modified; the output
is fresh, writeable and C-contiguous; zero-size batches and channels give correctly shaped
results; NaN and Inf reach exactly the outputs whose window holds them; no warning escapes;
unbatched calls equal the batched ones; and position-encoded fixtures (``10 * i + j``)
pin down which input element every output reads under stride, dilation and padding.

Expected values come from the explicit loops of this file (Python arithmetic, index maps
written out per padding mode), never from the library's output.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import mimo_conv as mc
from _reference import reference_conv, source_index
from mimo_conv._core.geometry import output_length
from mimo_conv._paths.registry import METHOD_NAMES

# "winograd" (by name only) has its own bound and refusals: tests/test_winograd.py.
METHOD_NAMES = tuple(m for m in METHOD_NAMES if m != "winograd")


def methods_for(kernel_shape: tuple[int, ...]) -> list[str]:
    """Every method that applies: ``"matmul"`` only takes 1 x 1 kernels."""
    pointwise = all(k == 1 for k in kernel_shape)
    return [m for m in METHOD_NAMES if pointwise or m != "matmul"]


_REFERENCES: dict[str, NDArray[Any]] = {}


def cached_reference(key: str, compute: Callable[[], NDArray[Any]]) -> NDArray[Any]:
    """The reference is slow (Python loops): compute it once per distinct problem."""
    if key not in _REFERENCES:
        _REFERENCES[key] = compute()
    return _REFERENCES[key]


def same_values(actual: NDArray[Any], expected: NDArray[Any]) -> bool:
    """Equal element by element, NaN equal to NaN, and the same shape."""
    if actual.shape != expected.shape:
        return False
    return all(
        (isinstance(a, float) and math.isnan(a) and isinstance(e, float) and math.isnan(e))
        or a == e
        for a, e in zip(actual.ravel().tolist(), expected.ravel().tolist(), strict=True)
    )


def position_image(height: int, width: int) -> NDArray[np.float64]:
    """``X[i, j] = 10 * (i + 1) + (j + 1)``: the value names its own (1-based) position."""
    i, j = np.indices((height, width))
    return (10 * (i + 1) + (j + 1)).astype(np.float64)


def delta_kernel(shape: tuple[int, ...], tap: tuple[int, ...]) -> NDArray[np.float64]:
    """A kernel that reads exactly one tap: its output is the input element under that tap."""
    kernel = np.zeros(shape)
    kernel[tap] = 1
    return kernel


# --- position-encoded fixtures: which element does each output read? ------------------------


@pytest.mark.parametrize("method", methods_for((3, 3)))
def test_stride_reads_every_strided_window(method: str) -> None:
    X = position_image(7, 8)
    K = delta_kernel((3, 3), (1, 2))
    out = mc.conv2d(X[np.newaxis], K[np.newaxis, np.newaxis], stride=(2, 3), method=method)[0]
    # Window (p, q) starts at (2p, 3q); tap (1, 2) reads X[2p + 1, 3q + 2], whose value is
    # 10 * (2p + 2) + (3q + 3). Output size: floor((7 - 3) / 2) + 1 = 3, floor((8 - 3) / 3) + 1 = 2.
    expected = [[10 * (2 * p + 2) + (3 * q + 3) for q in range(2)] for p in range(3)]
    assert out.tolist() == expected


@pytest.mark.parametrize("method", methods_for((3, 3)))
def test_dilation_spaces_the_taps(method: str) -> None:
    X = position_image(7, 7)
    K = delta_kernel((3, 3), (2, 1))
    out = mc.conv2d(X[np.newaxis], K[np.newaxis, np.newaxis], dilation=(2, 3), method=method)[0]
    # Tap (2, 1) with dilation (2, 3) sits at offset (4, 3): out[p, q] = X[p + 4, q + 3].
    # Output size: 7 - 2 * 2 = 3 rows, 7 - 3 * 2 = 1 column.
    expected = [[10 * (p + 5) + (q + 4) for q in range(1)] for p in range(3)]
    assert out.tolist() == expected


@pytest.mark.parametrize("method", methods_for((2, 2)))
def test_every_tap_reads_its_own_element(method: str) -> None:
    # A kernel of distinct powers of 1000 keeps every tap's contribution in its own digits.
    X = position_image(4, 5)
    K = np.array([[1.0, 1e3], [1e6, 1e9]])
    out = mc.conv2d(X[np.newaxis], K[np.newaxis, np.newaxis], method=method)[0]
    expected = [
        [X[i, j] + 1e3 * X[i, j + 1] + 1e6 * X[i + 1, j] + 1e9 * X[i + 1, j + 1] for j in range(4)]
        for i in range(3)
    ]
    assert out.tolist() == expected


@pytest.mark.parametrize("method", methods_for((3, 3)))
def test_asymmetric_zero_padding_positions(method: str) -> None:
    X = position_image(3, 4)
    K = delta_kernel((3, 3), (0, 0))
    padding = ((1, 2), (2, 0))
    out = mc.conv2d(X[np.newaxis], K[np.newaxis, np.newaxis], padding=padding, method=method)[0]
    # Tap (0, 0) reads padded position (p, q), i.e. X[p - 1, q - 2] or a zero.
    # Output: (3 + 3 - 2, 4 + 2 - 2) = (4, 4).
    expected = [
        [X[p - 1, q - 2] if 0 <= p - 1 < 3 and 0 <= q - 2 < 4 else 0.0 for q in range(4)]
        for p in range(4)
    ]
    assert out.tolist() == expected


@pytest.mark.parametrize("method", methods_for((3,)))
@pytest.mark.parametrize(
    ("mode", "padded"),
    [
        # [11, 12, 13, 14] padded by 2 on both sides, written out by hand.
        ("zeros", [0, 0, 11, 12, 13, 14, 0, 0]),
        ("reflect", [13, 12, 11, 12, 13, 14, 13, 12]),
        ("replicate", [11, 11, 11, 12, 13, 14, 14, 14]),
        ("circular", [13, 14, 11, 12, 13, 14, 11, 12]),
        ("symmetric", [12, 11, 11, 12, 13, 14, 14, 13]),
    ],
)
def test_padding_modes_read_the_right_elements(method: str, mode: str, padded: list[int]) -> None:
    x = np.array([[11.0, 12.0, 13.0, 14.0]])
    for tap in range(3):
        kernel = delta_kernel((3,), (tap,))[np.newaxis, np.newaxis]
        out = mc.conv1d(x, kernel, padding=2, padding_mode=mode, method=method)
        assert out.tolist() == [padded[tap : tap + 6]], (mode, tap)
    # And the index maps of the reference agree with the hand-written rows.
    assert [
        0 if (k := source_index(i - 2, 4, mode)) is None else 11 + k for i in range(8)
    ] == padded


@pytest.mark.parametrize("method", methods_for((3, 2)))
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular", "symmetric"])
def test_padding_modes_2d_match_the_reference(method: str, mode: str) -> None:
    X = position_image(4, 5)[np.newaxis, np.newaxis]
    K = np.array([[[[1.0, 100.0], [1e4, 1e6], [1e8, 1e10]]]])
    padding = ((2, 1), (1, 3))
    out = mc.conv2d(X, K, padding=padding, padding_mode=mode, method=method)
    expected = reference_conv(X, K, padding=padding, padding_mode=mode)
    assert out.tolist() == expected.tolist()


@pytest.mark.parametrize("method", methods_for((1,)))
@pytest.mark.parametrize(
    ("mode", "amount", "padded"),
    [
        # The largest padding each mode allows on [11, 12, 13], written out by hand.
        ("reflect", 2, [13, 12, 11, 12, 13, 12, 11]),  # < size
        ("circular", 3, [11, 12, 13, 11, 12, 13, 11, 12, 13]),  # <= size
        ("symmetric", 3, [13, 12, 11, 11, 12, 13, 13, 12, 11]),  # <= size
        ("replicate", 5, [11] * 5 + [11, 12, 13] + [13] * 5),  # any amount
        ("zeros", 5, [0] * 5 + [11, 12, 13] + [0] * 5),  # any amount
    ],
)
def test_padding_up_to_the_limit_of_each_mode(
    mode: str, amount: int, padded: list[int], method: str
) -> None:
    x = np.array([[11, 12, 13]])
    out = mc.conv1d(x, [[[1]]], padding=amount, padding_mode=mode, method=method)
    assert out.tolist() == [padded]


@pytest.mark.parametrize("method", methods_for((2, 1)))
def test_options_given_as_numpy_arrays(method: str) -> None:
    X = position_image(5, 4)[np.newaxis]
    K = delta_kernel((2, 1), (1, 0))[np.newaxis, np.newaxis]
    expected = mc.conv2d(X, K, stride=(2, 1), padding=((1, 0), (0, 1)), method=method)
    options: dict[str, Any] = {
        "stride": np.array([2, 1]),
        "padding": np.array([[1, 0], [0, 1]]),
        "dilation": np.array(1),
    }
    as_arrays = mc.conv2d(X, K, method=method, **options)
    assert as_arrays.tolist() == expected.tolist()
    # Tap (1, 0) reads padded (2p + 1, q): X[2p, q] (padding 1 before the rows), or a zero
    # in the padded last column. Output: (5 + 1 - 2) // 2 + 1 = 3 rows, 4 + 1 = 5 columns.
    rows = [[X[0, 2 * p, q] if q < 4 else 0.0 for q in range(5)] for p in range(3)]
    assert expected.tolist() == [rows]


@pytest.mark.parametrize("method", methods_for((4,)))
def test_same_padding_puts_the_odd_element_at_the_end(method: str) -> None:
    x = np.array([[11.0, 12.0, 13.0, 14.0, 15.0]])
    # Kernel of 4 taps: total padding 3, 1 before and 2 after (PyTorch's rule).
    first = mc.conv1d(x, delta_kernel((4,), (0,))[np.newaxis, np.newaxis], padding="same",
                      method=method)  # fmt: skip
    last = mc.conv1d(x, delta_kernel((4,), (3,))[np.newaxis, np.newaxis], padding="same",
                     method=method)  # fmt: skip
    assert first.tolist() == [[0.0, 11.0, 12.0, 13.0, 14.0]]
    assert last.tolist() == [[13.0, 14.0, 15.0, 0.0, 0.0]]


@pytest.mark.parametrize("method", methods_for((3,)))
def test_full_padding_covers_every_partial_overlap(method: str) -> None:
    x = np.array([[11.0, 12.0, 13.0]])
    weight = np.array([[[1.0, 10.0, 100.0]]])
    out = mc.conv1d(x, weight, padding="full", dilation=2, method=method)
    # dilation 2: taps at offsets 0, 2, 4; padding 4 on both sides; 3 + 8 - 4 = 7 outputs.
    padded = [0, 0, 0, 0, 11, 12, 13, 0, 0, 0, 0]
    expected = [padded[p] + 10 * padded[p + 2] + 100 * padded[p + 4] for p in range(7)]
    assert out.tolist() == [expected]


@pytest.mark.parametrize("method", methods_for((1, 1)))
def test_depthwise_groups_keep_channels_apart(method: str) -> None:
    # X[c, i, j] = 100 * c + 10 * i + j: the hundreds digit names the channel.
    c, i, j = np.indices((3, 2, 3))
    X = (100 * c + 10 * i + j).astype(np.float64)
    weight = np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1, 1)
    out = mc.conv2d(X, weight, groups=3, method=method)
    assert out.tolist() == [((o + 1) * X[o]).tolist() for o in range(3)]


@pytest.mark.parametrize("method", methods_for((2, 2, 2)))
def test_conv3d_position_encoded(method: str) -> None:
    d, i, j = np.indices((3, 4, 5))
    X = (100 * d + 10 * i + j).astype(np.float64)
    K = delta_kernel((2, 2, 2), (1, 0, 1))
    out = mc.conv3d(X[np.newaxis], K[np.newaxis, np.newaxis], stride=(1, 2, 2), method=method)
    expected = [
        [[100 * (a + 1) + 10 * (2 * b) + (2 * e + 1) for e in range(2)] for b in range(2)]
        for a in range(2)
    ]
    assert out.tolist() == [expected]


# --- array-likes of every layout give identical results -----------------------------------

X_BASE = (np.arange(2 * 3 * 6 * 7) % 11 - 5).astype(np.float64).reshape(2, 3, 6, 7)
W_BASE = (np.arange(4 * 3 * 3 * 2) % 7 - 3).astype(np.float64).reshape(4, 3, 3, 2)
B_BASE = np.array([1.0, -2.0, 3.0, -4.0])


def read_only(a: NDArray[Any]) -> NDArray[Any]:
    copy = a.copy()
    copy.flags.writeable = False
    return copy


def every_other(a: NDArray[Any]) -> NDArray[Any]:
    return np.repeat(a, 2, axis=-1)[..., ::2]  # a non-contiguous view equal to a


def reversed_view(a: NDArray[Any]) -> NDArray[Any]:
    return a[..., ::-1].copy()[..., ::-1]  # a negative-stride view equal to a


def broadcast_view(a: NDArray[Any]) -> NDArray[Any]:
    # Equal values, stored once along the first axis: a zero-stride np.broadcast_to view.
    first = a[:1]
    assert np.all(a == first) or a.shape[0] == 1
    return np.broadcast_to(first, a.shape)


def swapped_view(a: NDArray[Any]) -> NDArray[Any]:
    if a.ndim < 2:
        return a.copy()
    return np.swapaxes(np.ascontiguousarray(np.swapaxes(a, -1, -2)), -1, -2)


LAYOUTS: dict[str, Callable[[NDArray[Any]], Any]] = {
    "nested-list": lambda a: a.tolist(),
    "tuple-of-lists": lambda a: tuple(a.tolist()),
    "read-only": read_only,
    "non-contiguous": every_other,
    "negative-stride": reversed_view,
    "fortran-order": np.asfortranarray,
    "swapped-axes-view": swapped_view,
}


@pytest.mark.parametrize("method", methods_for((3, 2)))
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_any_array_like_gives_identical_results(layout: str, method: str) -> None:
    make = LAYOUTS[layout]
    options: dict[str, Any] = {"stride": (2, 1), "padding": 1, "dilation": (1, 2)}
    expected = cached_reference(
        "array-like", lambda: reference_conv(X_BASE, W_BASE, B_BASE, **options)
    )
    out = mc.conv2d(make(X_BASE), make(W_BASE), make(B_BASE), method=method, **options)
    assert out.dtype == np.float64
    assert out.tolist() == expected.tolist()  # integer-valued: exact on every path


@pytest.mark.parametrize("method", methods_for((3, 2)))
def test_broadcast_inputs_give_identical_results(method: str) -> None:
    x = np.broadcast_to(X_BASE[:1], (3, *X_BASE.shape[1:]))
    weight = np.broadcast_to(W_BASE[:, :1], W_BASE.shape)
    bias = np.broadcast_to(np.float64(2.5), (4,))
    assert x.strides[0] == weight.strides[1] == bias.strides[0] == 0
    out = mc.conv2d(x, weight, bias, padding=(1, 0), method=method)
    expected = reference_conv(x.copy(), weight.copy(), bias.copy(), padding=((1, 1), (0, 0)))
    assert out.tolist() == expected.tolist()


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_scalars_of_numpy_int_types_are_accepted(method: str) -> None:
    x = np.arange(10.0).reshape(1, 10)
    options: dict[str, Any] = {
        "stride": np.int8(3),
        "padding": np.uint16(1),
        "dilation": np.int64(1),
        "groups": np.int32(1),
    }
    out = mc.conv1d(x, np.ones((1, 1, 1)), method=method, **options)
    assert out.tolist() == [[0.0, 2.0, 5.0, 8.0]]  # padded [0, 0..9, 0] at 0, 3, 6, 9


# --- inputs are never modified; the output is fresh --------------------------------------

OPTION_SETS: list[tuple[str, dict[str, Any]]] = [
    ("plain", {}),
    ("bias", {"bias": True}),
    ("padding-zeros", {"padding": 1}),
    ("padding-reflect", {"padding": 1, "padding_mode": "reflect"}),
    ("padding-circular", {"padding": ((0, 1),), "padding_mode": "circular"}),
    ("stride", {"stride": 2}),
    ("dilation", {"dilation": 2}),
    ("groups", {"groups": 2}),
]


@pytest.mark.parametrize("kernel", [1, 3], ids=["1x1", "k3"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64, object])
@pytest.mark.parametrize(("name", "options"), OPTION_SETS, ids=[n for n, _ in OPTION_SETS])
def test_inputs_unchanged_and_output_fresh(
    name: str, options: dict[str, Any], dtype: type, batched: bool, kernel: int
) -> None:
    del name
    x: NDArray[Any] = (np.arange(2 * 4 * 6) % 5).reshape(2, 4, 6).astype(dtype)
    if not batched:
        x = x[0]
    groups = options.get("groups", 1)
    weight = (np.arange(4 * (4 // groups) * kernel) % 3).reshape(4, 4 // groups, kernel)
    weight = weight.astype(dtype)
    bias: NDArray[Any] | None = np.arange(4).astype(dtype) if options.get("bias") else None
    call_options = {k: v for k, v in options.items() if k != "bias"}
    for array in (x, weight, bias):
        if array is not None:
            array.flags.writeable = False  # any write would raise
    before = [None if a is None else a.copy() for a in (x, weight, bias)]
    for method in methods_for((kernel,)):
        out = mc.conv1d(x, weight, bias, method=method, **call_options)
        assert out.flags.writeable, method
        assert out.flags.c_contiguous, method
        for array in (x, weight, bias):
            if array is not None:
                assert not np.shares_memory(out, array), method
        out[...] = 0  # writeable indeed, and the inputs do not see it
        for old, new in zip(before, (x, weight, bias), strict=True):
            if old is not None:
                assert new is not None
                assert np.array_equal(old, new), method


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_output_is_fresh_when_the_result_could_be_a_view(method: str) -> None:
    # An identity 1 x 1 kernel on one channel: the result equals the input, yet must be a
    # new array (no shortcut may hand back the input or a view of it).
    x = np.arange(12.0).reshape(1, 1, 12)
    out = mc.conv1d(x, np.ones((1, 1, 1)), method=method)
    assert np.array_equal(out, x)
    assert not np.shares_memory(out, x)
    out[0, 0, 0] = -1
    assert x[0, 0, 0] == 0


def test_textbook_1x1_output_is_fresh() -> None:
    X = np.arange(6.0).reshape(1, 2, 3)
    K = np.ones((1, 1, 1, 1))
    Y = mc.corr2d_multi_in_out_1x1(X, K)
    assert np.array_equal(Y, X)
    assert not np.shares_memory(Y, X)
    assert Y.flags.writeable
    assert Y.flags.c_contiguous


# --- zero-size batch and channels --------------------------------------------------------

ZERO_SIZE_CASES = [
    # (id, x shape, weight shape, groups, bias?, expected shape)
    ("empty-batch", (0, 2, 5), (3, 2, None), 1, False, (0, 3, None)),
    ("empty-batch-bias", (0, 2, 5), (3, 2, None), 1, True, (0, 3, None)),
    ("no-output-channels", (2, 2, 5), (0, 2, None), 1, False, (2, 0, None)),
    ("no-output-channels-bias", (2, 2, 5), (0, 2, None), 1, True, (2, 0, None)),
    ("no-input-channels", (2, 0, 5), (3, 0, None), 1, False, (2, 3, None)),
    ("no-input-channels-bias", (2, 0, 5), (3, 0, None), 1, True, (2, 3, None)),
    ("no-input-channels-groups", (1, 0, 5), (4, 0, None), 2, True, (1, 4, None)),
    ("unbatched-no-input-channels", (0, 5), (3, 0, None), 1, True, (3, None)),
    ("unbatched-no-output-channels", (2, 5), (0, 2, None), 1, False, (0, None)),
    ("all-empty", (0, 0, 5), (0, 0, None), 1, True, (0, 0, None)),
]


def zero_size_params() -> list[Any]:
    return [
        pytest.param(*case[1:], kernel, method, id=f"{case[0]}-k{kernel}-{method}")
        for case in ZERO_SIZE_CASES
        for kernel in (1, 2)
        for method in methods_for((kernel,))
    ]


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "groups", "with_bias", "out_shape", "kernel", "method"),
    zero_size_params(),
)
def test_zero_size_gives_empty_or_bias_results(
    x_shape: tuple[int, ...],
    w_shape: tuple[int | None, ...],
    groups: int,
    with_bias: bool,
    out_shape: tuple[int | None, ...],
    kernel: int,
    method: str,
) -> None:
    length = 5 - kernel + 1
    expected_shape = tuple(length if s is None else s for s in out_shape)
    channel_axis = 0 if len(expected_shape) == 2 else 1
    for dtype in (np.float64, np.float16, np.int64, np.complex128, object):
        x = np.ones(x_shape, dtype=dtype)
        weight = np.ones(tuple(kernel if s is None else s for s in w_shape), dtype=dtype)
        bias = (np.arange(weight.shape[0]) + 1).astype(dtype) if with_bias else None
        out = mc.conv1d(x, weight, bias, groups=groups, method=method)
        assert out.shape == expected_shape, dtype
        assert out.dtype == np.dtype(dtype)
        # An empty sum is 0: every element is its channel's bias, or 0 without one.
        for index in np.ndindex(*expected_shape):
            value = 0 if bias is None else index[channel_axis] + 1
            assert out[index] == value, (dtype, index)


# --- NaN and Inf reach exactly the windows that hold them --------------------------------

NONFINITE_CASES = [
    ("nan", [((2, 3), math.nan)], False),
    ("inf-positive-kernel", [((2, 3), math.inf)], False),
    ("inf-meets-zero-taps", [((2, 3), math.inf)], True),
    ("inf-and-minus-inf", [((2, 3), math.inf), ((3, 4), -math.inf)], False),
    ("nan-and-inf", [((0, 1), math.nan), ((4, 5), math.inf)], True),
]
NONFINITE_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("valid", {}),
    ("stride-dilation-padding", {"stride": 2, "dilation": 2, "padding": ((2, 2), (1, 1))}),
    # Rows read are 2p + 2a - 1 (odd) and columns 2q + 2b - 1 (odd): the holes at even rows or
    # columns, (2, 3), (3, 4), (0, 0) and (5, 6), fall between the taps: all outputs finite.
    ("strided-past-the-holes", {"stride": 2, "dilation": 2, "padding": 1}),
    ("reflect", {"padding": ((2, 0), (1, 1)), "padding_mode": "reflect"}),
    ("circular-stride", {"padding": 2, "padding_mode": "circular", "stride": (1, 3)}),
]


def nonfinite_problem(
    holes: list[tuple[tuple[int, int], float]], zero_taps: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = (np.arange(2 * 6 * 7) % 9 - 4).astype(np.float64).reshape(1, 2, 6, 7)
    for (i, j), value in holes:
        x[0, 1, i, j] = value
    weight = (np.arange(3 * 2 * 3 * 3) % 4 + 1).astype(np.float64).reshape(3, 2, 3, 3)
    if zero_taps:
        weight[:, :, 1, :] = 0  # the middle row of every kernel is zero: inf * 0 = nan there
    return x, weight


def windows_holding(
    position: tuple[int, int], shape: tuple[int, int], options: dict[str, Any]
) -> set[tuple[int, int]]:
    """Output positions whose window reads input ``position`` of channel 1 (by enumeration)."""
    stride = options.get("stride", 1)
    strides = (stride, stride) if isinstance(stride, int) else stride
    dilation = options.get("dilation", 1)
    padding = options.get("padding", 0)
    pads = ((padding, padding),) * 2 if isinstance(padding, int) else padding
    mode = options.get("padding_mode", "zeros")
    out_shape = [
        (size + lo + hi - dilation * 2 - 1) // s + 1
        for size, (lo, hi), s in zip(shape, pads, strides, strict=True)
    ]
    hits = set()
    for p, q in itertools.product(range(out_shape[0]), range(out_shape[1])):
        for a, b in itertools.product(range(3), range(3)):
            row = source_index(p * strides[0] + a * dilation - pads[0][0], shape[0], mode)
            col = source_index(q * strides[1] + b * dilation - pads[1][0], shape[1], mode)
            if (row, col) == position:
                hits.add((p, q))
    return hits


@pytest.mark.parametrize("method", methods_for((3, 3)))
@pytest.mark.parametrize(
    ("option_id", "options"), NONFINITE_OPTIONS, ids=[n for n, _ in NONFINITE_OPTIONS]
)
@pytest.mark.parametrize(
    ("holes", "zero_taps"), [pytest.param(*c[1:], id=c[0]) for c in NONFINITE_CASES]
)  # fmt: skip
def test_nan_and_inf_propagate_only_to_their_windows(
    holes: list[tuple[tuple[int, int], float]],
    zero_taps: bool,
    option_id: str,
    options: dict[str, Any],
    method: str,
) -> None:
    x, weight = nonfinite_problem(holes, zero_taps)
    bias = np.array([0.5, -1.0, 2.0])
    out = mc.conv2d(x, weight, bias, method=method, **options)  # and no warning (-W error)
    expected = cached_reference(  # Python floats: IEEE arithmetic, silently
        repr((holes, zero_taps, options)), lambda: reference_conv(x, weight, bias, **options)
    )
    assert same_values(out.astype(object), expected)
    # And the non-finite outputs are exactly the windows holding a NaN or Inf.
    touched = set().union(*(windows_holding(pos, (6, 7), options) for pos, _ in holes))
    for o in range(3):
        nonfinite = {
            (p, q) for p, q in np.ndindex(*out.shape[2:]) if not np.isfinite(out[0, o, p, q])
        }
        assert nonfinite == touched, (o, nonfinite ^ touched)
    # The fixtures do reach some window, except where stride and dilation skip the holes.
    assert bool(touched) == (option_id != "strided-past-the-holes")


# --- no warning escapes, on any path -------------------------------------------------------

BIG16 = np.float16(60000)


WARNING_CASES: list[tuple[str, dict[str, Any], list[Any]]] = [
    # (id, call, expected output as a list)
    ("inf-times-zero", {"x": [[math.inf, 1.0]], "weight": [[[0.0]]]}, [[math.nan, 0.0]]),
    ("inf-minus-inf-in-the-sum", {"x": [[math.inf], [-math.inf]], "weight": [[[1.0], [1.0]]]},
     [[math.nan]]),
    ("inf-minus-inf-with-the-bias", {"x": [[math.inf, 1.0]], "weight": [[[1.0]]],
                                     "bias": [-math.inf]}, [[math.nan, -math.inf]]),
    ("product-overflows", {"x": [[1e300, 1.0]], "weight": [[[1e300]]]}, [[math.inf, 1e300]]),
    ("sum-overflows", {"x": [[1.7e308], [1.7e308]], "weight": [[[1.0], [1.0]]]}, [[math.inf]]),
    ("float32-product-overflows", {"x": np.array([[3e38]], np.float32),
                                   "weight": np.array([[[10.0]]], np.float32)}, [[math.inf]]),
    ("float16-result-overflows", {"x": np.array([[BIG16], [BIG16]]),
                                  "weight": np.ones((1, 2, 1), np.float16)}, [[math.inf]]),
    ("float16-bias-overflows", {"x": np.array([[BIG16]]), "weight": np.ones((1, 1, 1), np.float16),
                                "bias": np.array([BIG16])}, [[math.inf]]),
    ("underflow", {"x": [[1e-200]], "weight": [[[1e-200]]]}, [[0.0]]),
    ("nan-times-zero", {"x": [[math.nan, 2.0]], "weight": [[[0.0]]]}, [[math.nan, 0.0]]),
]  # fmt: skip


def warning_params() -> list[Any]:
    return [
        pytest.param(call, expected, method, id=f"{name}-{method}")
        for name, call, expected in WARNING_CASES
        for method in METHOD_NAMES
    ]


@pytest.mark.parametrize(("call", "expected", "method"), warning_params())
def test_no_warning_on_any_path(call: dict[str, Any], expected: list[Any], method: str) -> None:
    # pytest runs with filterwarnings=error: a RuntimeWarning would fail this test.
    out = mc.conv1d(call["x"], call["weight"], call.get("bias"), method=method)
    assert same_values(out.astype(object), np.array(expected, dtype=object))


def test_no_warning_in_the_textbook_1x1_path() -> None:
    X = np.array([[[math.inf, 1.0]], [[1.0, -math.inf]]])
    K = np.array([[[[0.0]], [[1.0]]], [[[1.0]], [[1.0]]]])
    Y = mc.corr2d_multi_in_out_1x1(X, K)
    # Channel 0: 0 * X[0] + X[1] = [nan, -inf]; channel 1: X[0] + X[1] = [inf, -inf].
    assert same_values(
        Y.astype(object), np.array([[[math.nan, -math.inf]], [[math.inf, -math.inf]]], dtype=object)
    )
    # float16: accumulated in float32 (120000), rounded once to float16: beyond 65504, inf.
    half = mc.corr2d_multi_in_out_1x1(np.full((2, 1, 1), BIG16), np.ones((1, 2, 1, 1), np.float16))
    assert half.dtype == np.float16
    assert half.tolist() == [[[math.inf]]]


# --- unbatched equals batched[0] ---------------------------------------------------------


@pytest.mark.parametrize("method", methods_for((2, 3)))
@pytest.mark.parametrize(("name", "options"), OPTION_SETS, ids=[n for n, _ in OPTION_SETS])
def test_unbatched_equals_batched(name: str, options: dict[str, Any], method: str) -> None:
    del name
    groups = options.get("groups", 1)
    x = (np.arange(4 * 5 * 6) % 7 - 3).astype(np.float64).reshape(4, 5, 6)
    weight = (np.arange(2 * (4 // groups) * 2 * 3) % 5 - 2).astype(np.float64)
    weight = weight.reshape(2, 4 // groups, 2, 3)
    bias = np.array([3.0, -3.0]) if options.get("bias") else None
    call = {k: v for k, v in options.items() if k != "bias"}
    if "padding" in call and isinstance(call["padding"], tuple):
        call["padding"] = ((0, 1), (1, 0))
    unbatched = mc.conv2d(x, weight, bias, method=method, **call)
    batched = mc.conv2d(x[np.newaxis], weight, bias, method=method, **call)
    assert batched.shape == (1, *unbatched.shape)
    assert np.array_equal(unbatched, batched[0])
    expected = cached_reference(
        f"unbatched-{options}", lambda: reference_conv(x[np.newaxis], weight, bias, **call)
    )
    assert batched.tolist() == expected.tolist()


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_conv_dispatches_on_weight_rank(method: str) -> None:
    x1 = np.arange(6.0).reshape(1, 6)
    w1 = np.ones((1, 1, 1))
    x3 = np.arange(8.0).reshape(1, 2, 2, 2)
    w3 = np.full((1, 1, 1, 1, 1), 2.0)
    assert np.array_equal(mc.conv(x1, w1, method=method), mc.conv1d(x1, w1, method=method))
    assert np.array_equal(mc.conv(x3, w3, method=method), 2 * x3)
    assert np.array_equal(mc.conv3d(x3, w3, method=method), 2 * x3)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_fraction_bias_on_an_empty_sum_is_exact(method: str) -> None:
    x = np.zeros((0, 4), dtype=object)
    weight = np.zeros((2, 0, 1), dtype=object)
    bias = np.array([Fraction(1, 3), Fraction(-2, 7)], dtype=object)
    out = mc.conv1d(x, weight, bias, method=method)
    assert out.tolist() == [[Fraction(1, 3)] * 4, [Fraction(-2, 7)] * 4]


# --- ConvGeometry is built with keywords ---------------------------------------------------


def test_conv_geometry_is_keyword_only() -> None:
    fields: tuple[Any, ...] = (1, 1, 1, 1, (3,), (2,), (1,), (1,), ((0, 0),))
    with pytest.raises(TypeError, match="positional"):
        mc.ConvGeometry(*fields)  # type: ignore[call-arg]
    geometry = mc.ConvGeometry(
        batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
        kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    )  # fmt: skip
    # output_shape is the spatial shape, out_shape the full one (3 - 2 + 1 = 2 positions).
    assert (geometry.output_shape, geometry.out_shape) == ((2,), (1, 1, 2))


def test_output_length_defaults_are_stride_1_no_padding_dense() -> None:
    # 7 elements, 3 taps: windows start at 0..4, so 5 of them; stride 2 would give 3,
    # padding (1, 1) 7, dilation 2 (span 5) 3: each default changes the answer.
    assert output_length(7, 3) == 5
    assert output_length(7, 3, stride=2) == 3
    assert output_length(7, 3, padding=(1, 1)) == 7
    assert output_length(7, 3, dilation=2) == 3


# --- PyTorch's one-element tuples, and every kind of int for every int option ------------

ONE_ELEMENT_OPTIONS = [
    ("stride", (2,), 2),
    ("padding", (1,), 1),
    ("dilation", (2,), 2),
    ("padding-list", [1], 1),
    ("stride-array", np.array([2]), 2),
    ("padding-pair", [(0, 1)], "pair"),
]


@pytest.mark.parametrize(
    ("name", "given", "meant"), ONE_ELEMENT_OPTIONS, ids=[row[0] for row in ONE_ELEMENT_OPTIONS]
)
def test_one_element_tuple_stands_for_every_axis(name: str, given: Any, meant: Any) -> None:
    # F.conv2d(x, w, stride=(2,)) is F.conv2d(x, w, stride=2) in PyTorch; so here.
    option = name.split("-", maxsplit=1)[0]

    def spelled_out(dims: int) -> Any:
        return ((0, 1),) * dims if meant == "pair" else meant

    x = position_image(6, 7)[np.newaxis, np.newaxis]
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    expected = mc.conv2d(x, w, **{option: spelled_out(2)})
    assert mc.conv2d(x, w, **{option: given}).tolist() == expected.tolist()
    x3 = np.arange(2.0 * 5 * 6 * 7).reshape(1, 2, 5, 6, 7)
    w3 = np.ones((1, 2, 2, 2, 2))
    expected = mc.conv3d(x3, w3, **{option: spelled_out(3)})
    assert mc.conv3d(x3, w3, **{option: given}).tolist() == expected.tolist()


def test_one_element_tuples_in_transpose_and_gradients() -> None:
    x = position_image(4, 5)[np.newaxis, np.newaxis]
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    given: dict[str, Any] = {"stride": (2,), "padding": (1,), "dilation": (1,)}
    meant: dict[str, Any] = {"stride": 2, "padding": 1, "dilation": 1}
    transposed = mc.conv_transpose2d(x, w, output_padding=(1,), **given)
    assert transposed.tolist() == mc.conv_transpose2d(x, w, output_padding=1, **meant).tolist()
    assert transposed.shape == (1, 1, 8, 10)  # (in - 1) * 2 - 2 + 2 + 1 + 1 per axis
    y = mc.conv2d(transposed, w, **meant)
    grads = np.ones_like(y)
    for given_result, meant_result in zip(
        mc.conv_backward(grads, transposed, w, **given),
        mc.conv_backward(grads, transposed, w, **meant),
        strict=True,
    ):
        assert given_result.tolist() == meant_result.tolist()
    assert np.array_equal(
        mc.grad.conv2d_input(transposed.shape, w, grads, **given),
        mc.grad.conv2d_input(transposed.shape, w, grads, **meant),
    )
    assert np.array_equal(
        mc.grad.conv2d_weight(transposed, w.shape, grads, **given),
        mc.grad.conv2d_weight(transposed, w.shape, grads, **meant),
    )


def test_one_element_tuples_match_pytorch() -> None:
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x = np.arange(2.0 * 3 * 7 * 8).reshape(2, 3, 7, 8)
    w = np.arange(4.0 * 3 * 3 * 3).reshape(4, 3, 3, 3) % 5
    options: dict[str, Any] = {"stride": (2,), "padding": (1,), "dilation": (2,)}
    ours = mc.conv2d(x, w, **options)
    theirs = functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), **options)
    assert ours.tolist() == theirs.numpy().tolist()  # small integers: exact in float64
    w_t = np.arange(3.0 * 4 * 3 * 3).reshape(3, 4, 3, 3) % 7
    ours_t = mc.conv_transpose2d(x, w_t, stride=(2,), padding=(1,), output_padding=(1,))
    theirs_t = functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w_t), stride=(2,), padding=(1,), output_padding=(1,)
    )
    assert ours_t.tolist() == theirs_t.numpy().tolist()


INT_KINDS: list[tuple[str, Any]] = [
    ("int", 2),
    ("numpy-int", np.int16(2)),
    ("numpy-uint", np.uint8(2)),
    ("0-d-array", np.array(2)),
    ("0-d-uint-array", np.array(2, dtype=np.uint32)),
]


@pytest.mark.parametrize("option", ["stride", "padding", "dilation", "groups"])
@pytest.mark.parametrize(("kind", "two"), INT_KINDS, ids=[row[0] for row in INT_KINDS])
def test_every_int_option_takes_every_kind_of_int(option: str, kind: str, two: Any) -> None:
    del kind  # the id says it
    x = np.arange(2.0 * 9).reshape(1, 2, 9)
    w = np.ones((2, 1 if option == "groups" else 2, 2))
    given: dict[str, Any] = {option: two}
    meant: dict[str, Any] = {option: 2}
    assert mc.conv1d(x, w, **given).tolist() == mc.conv1d(x, w, **meant).tolist()


@pytest.mark.parametrize("option", ["stride", "padding", "dilation", "groups"])
def test_bools_are_refused_for_every_int_option(option: str) -> None:
    x, w = np.ones((1, 2, 9)), np.ones((2, 2, 2))
    for true in (True, np.True_, np.array(True)):
        given: dict[str, Any] = {option: true}
        with pytest.raises(TypeError, match=rf"{option} must be an int, got .*True"):
            mc.conv1d(x, w, **given)
