"""The dtype policy of issue 2: never silently wrong.

float32 and float64 keep their dtype; float16 accumulates in float32 and returns float16;
complex is not conjugated; every integer width (signed or unsigned) accumulates and returns
int64 exactly; mixed dtypes promote by ``np.result_type``; ``dtype=object`` with Python big
ints and fractions is exact on every method. Expected values come from explicit Python
loops over Python numbers (exact for ints and fractions), never from our output.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import mimo_conv as mc
from _reference import reference_conv
from mimo_conv._paths.registry import METHOD_NAMES

# "winograd" (by name only) has its own bound and refusals: tests/test_winograd.py.
METHOD_NAMES = tuple(m for m in METHOD_NAMES if m != "winograd")

INT64_MAX = 2**63 - 1


def methods_for(kernel_shape: tuple[int, ...]) -> list[str]:
    """Every method that applies: ``"matmul"`` only takes 1 x 1 kernels."""
    pointwise = all(k == 1 for k in kernel_shape)
    return [m for m in METHOD_NAMES if pointwise or m != "matmul"]


# --- floats keep their dtype ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_float_and_complex_keep_their_dtype(dtype: type, method: str) -> None:
    # Integer-valued data: every summation order is exact, so the values are exact too.
    x: NDArray[Any] = (np.arange(2 * 3 * 4) % 7 - 3).reshape(2, 3, 4).astype(dtype)
    weight: NDArray[Any] = (np.arange(5 * 3) % 5 - 2).reshape(5, 3, 1).astype(dtype)
    bias: NDArray[Any] = np.array([1, -1, 2, -2, 3], dtype=dtype)
    out = mc.conv1d(x, weight, bias, method=method)
    assert out.dtype == np.dtype(dtype)
    assert out.tolist() == reference_conv(x, weight, bias).tolist()


# --- float16 accumulates in float32 ---------------------------------------------------------


def float16_running_sum(values: NDArray[np.float16]) -> np.float16:
    """What a float16 accumulator computes: round to float16 after every addition."""
    total = np.float16(0)
    for value in values:
        total = np.float16(total + value)
    return total


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_float16_accumulates_in_float32(method: str) -> None:
    # 2048 and eight 1s over nine channels. float16 has spacing 2 at 2048, so a float16
    # accumulator rounds 2048 + 1 back to 2048 (ties to even) eight times: 2048. In float32
    # the sum is exactly 2056, which float16 represents: the right answer.
    values = np.array([2048] + [1] * 8, dtype=np.float16)
    assert float16_running_sum(values) == 2048  # the float16 accumulator is visibly wrong
    x = values.reshape(9, 1)  # 9 channels of length 1 (unbatched)
    weight = np.ones((1, 9, 1), dtype=np.float16)  # a 1 x 1 kernel: every method applies
    out = mc.conv1d(x, weight, method=method)
    assert out.dtype == np.float16
    assert out.tolist() == [[2056.0]]


@pytest.mark.parametrize("method", methods_for((9,)))
def test_float16_accumulates_in_float32_over_kernel_taps(method: str) -> None:
    values = np.array([2048] + [1] * 8, dtype=np.float16)
    out = mc.conv1d(values.reshape(1, 9), np.ones((1, 1, 9), dtype=np.float16), method=method)
    assert out.dtype == np.float16
    assert out.tolist() == [[2056.0]]


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_float16_rounds_once_at_the_end(method: str) -> None:
    # 1 + 2**-11 + 2**-11: each 2**-11 is half a float16 ulp at 1, so a float16 accumulator
    # loses both (ties to even: 1); the float32 sum 1 + 2**-10 is one float16 ulp above 1.
    values = np.array([1, 2.0**-11, 2.0**-11], dtype=np.float16)
    assert float16_running_sum(values) == 1
    out = mc.conv1d(values.reshape(3, 1), np.ones((1, 3, 1), dtype=np.float16), method=method)
    assert out.dtype == np.float16
    assert out.tolist() == [[1 + 2.0**-10]]


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_float16_bias_is_added_before_the_one_rounding(method: str) -> None:
    # 2048 + 1 (the sum) + 1 (the bias) = 2050 exactly; rounding the sum first would give
    # 2048 + 1 = 2048 (ties to even).
    x = np.array([[2048.0], [1.0]], dtype=np.float16)
    weight = np.ones((1, 2, 1), dtype=np.float16)
    bias = np.array([1.0], dtype=np.float16)
    assert np.float16(np.float16(2049) + np.float16(1)) == 2048  # the wrong order
    out = mc.conv1d(x, weight, bias, method=method)
    assert out.dtype == np.float16
    assert out.tolist() == [[2050.0]]


# --- complex: no conjugation -----------------------------------------------------------------


def gaussian_integers(shape: tuple[int, ...], seed: int) -> NDArray[np.complex128]:
    rng = np.random.default_rng(seed)
    real = rng.integers(-9, 10, size=shape)
    imag = rng.integers(-9, 10, size=shape)
    return (real + 1j * imag).astype(np.complex128)


@pytest.mark.parametrize("method", methods_for((3,)))
def test_complex_kernel_is_not_conjugated(method: str) -> None:
    x = gaussian_integers((2, 7), seed=1)
    weight = gaussian_integers((2, 2, 3), seed=2)
    assert np.any(weight.imag != 0)
    # The explicit sum: out[o, p] = sum_{c, t} x[c, p + t] * weight[o, c, t], no conj.
    expected = [
        [sum(x[c, p + t] * weight[o, c, t] for c in range(2) for t in range(3)) for p in range(5)]
        for o in range(2)
    ]
    out = mc.conv1d(x, weight, method=method)
    assert out.dtype == np.complex128
    assert out.tolist() == expected  # Gaussian integers: every sum is exact
    conjugated = [
        [
            sum(x[c, p + t] * np.conj(weight[o, c, t]) for c in range(2) for t in range(3))
            for p in range(5)
        ]
        for o in range(2)
    ]
    assert out.tolist() != conjugated  # the test can tell the two conventions apart


def test_complex_agrees_with_scipy_correlate_of_the_conjugated_kernel() -> None:
    signal = pytest.importorskip("scipy.signal")
    # SciPy documents z[k] = sum_l in1[l] * conj(in2[l - k + N - 1]); in "valid" mode,
    # re-indexed from the first full overlap, that is z[k] = sum_t in1[k + t] * conj(in2[t]).
    # Deep learning's correlation is sum_t x[k + t] * w[t], so ours(x, w) equals SciPy's
    # correlate(x, conj(w)), and differs from correlate(x, w) unless w is real.
    x = gaussian_integers((6, 7), seed=3)
    kernel = gaussian_integers((3, 2), seed=4)
    ours = mc.conv2d(x[np.newaxis], kernel[np.newaxis, np.newaxis], method="naive")[0]
    theirs = signal.correlate(x, np.conj(kernel), mode="valid", method="direct")
    assert np.array_equal(ours, theirs)
    plain = signal.correlate(x, kernel, mode="valid", method="direct")
    assert not np.array_equal(ours, plain)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_complex64_stays_complex64(method: str) -> None:
    x = gaussian_integers((3, 4), seed=5).astype(np.complex64)
    weight = gaussian_integers((2, 3, 1), seed=6).astype(np.complex64)
    out = mc.conv1d(x, weight, method=method)
    assert out.dtype == np.complex64
    assert out.tolist() == reference_conv(x[np.newaxis], weight)[0].tolist()


# --- integers: int64, exact, or an OverflowError --------------------------------------------

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_integer_width_returns_exact_int64(dtype: type, method: str) -> None:
    info = np.iinfo(dtype)
    # The extremes of the dtype: any product of two of them overflows the dtype itself.
    values = [info.min, info.max, info.max - 1, info.min + 1 if info.min else 1, 0, 1]
    x: NDArray[Any] = np.array(values, dtype=dtype).reshape(1, 3, 2)
    weight: NDArray[Any] = np.array(
        [[[info.max], [info.min], [1]], [[1], [info.max], [info.max]]], dtype=dtype
    )
    # The documented bound, in Python ints: max|x| * max|w| * terms (3 channels, 1 tap).
    largest = max(abs(int(info.min)), int(info.max))
    if largest * largest * 3 > INT64_MAX:
        # (int32, uint32, int64, uint64) Some sum could leave int64: an OverflowError ...
        with pytest.raises(OverflowError, match=r"pass arrays of dtype=object"):
            mc.conv1d(x, weight, method=method)
        # ... and dtype=object, as the message says, is exact.
        out = mc.conv1d(x.astype(object), weight.astype(object), method=method)
    else:
        out = mc.conv1d(x, weight, method=method)
        assert out.dtype == np.int64
    # Python ints from .tolist(): exact arithmetic, whatever the size.
    expected = reference_conv(np.array(x.tolist(), dtype=object), weight.tolist())
    assert out.tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("x_dtype", "w_dtype"),
    [(np.int8, np.uint64), (np.uint8, np.int8), (np.uint32, np.int16), (np.int32, np.uint32)],
    ids=lambda d: np.dtype(d).name,
)
def test_mixed_integer_widths_return_int64(x_dtype: type, w_dtype: type) -> None:
    x: NDArray[Any] = np.array([[100, 7, 3]], dtype=x_dtype)
    weight: NDArray[Any] = np.array([[[100, 3]]], dtype=w_dtype)
    out = mc.conv1d(x, weight)
    assert out.dtype == np.int64
    assert out.tolist() == [[100 * 100 + 7 * 3, 7 * 100 + 3 * 3]]


ROOT = 3037000499  # floor(sqrt(int64 max)): ROOT**2 fits, (ROOT + 1)**2 does not


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_near_the_int64_bound_passes_and_is_exact(method: str) -> None:
    assert ROOT**2 <= INT64_MAX < (ROOT + 1) ** 2
    out = mc.conv1d(np.array([[ROOT, -ROOT]]), np.array([[[ROOT]]]), method=method)
    assert out.dtype == np.int64
    assert out.tolist() == [[ROOT * ROOT, -ROOT * ROOT]]
    with pytest.raises(OverflowError, match=rf"{ROOT + 1} \* {ROOT + 1} \* 1 \+ 0"):
        mc.conv1d(np.array([[ROOT + 1]]), np.array([[[ROOT + 1]]]), method=method)


@pytest.mark.parametrize("dtype", [np.int32, np.uint32], ids=["int32", "uint32"])
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_32_bit_extremes_that_fit_are_exact(dtype: type, method: str) -> None:
    top = int(np.iinfo(dtype).max)
    # Two channels of the dtype's maximum and the largest int64 weight w with
    # top * w * 2 <= int64 max: allowed and exact. One more and the bound is exceeded.
    fit = INT64_MAX // (2 * top)
    x: NDArray[Any] = np.full((2, 3), top, dtype=dtype)
    out = mc.conv1d(x, np.full((1, 2, 1), fit), method=method)
    assert out.dtype == np.int64
    assert out.tolist() == [[2 * top * fit] * 3]
    with pytest.raises(OverflowError, match=rf"= {top} \* {fit + 1} \* 2 \+ 0 = "):
        mc.conv1d(x, np.full((1, 2, 1), fit + 1), method=method)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_uint64_values_up_to_int64_max_are_exact(method: str) -> None:
    x = np.array([[INT64_MAX, 0, 1]], dtype=np.uint64)
    out = mc.conv1d(x, np.array([[[1]]], dtype=np.uint64), method=method)
    assert out.dtype == np.int64
    assert out.tolist() == [[INT64_MAX, 0, 1]]


# --- mixed dtypes promote by np.result_type ----------------------------------------------------


@pytest.mark.parametrize(
    ("dtypes", "expected"),
    [
        ((np.float32, np.float64), np.float64),
        ((np.float64, np.float32), np.float64),
        ((np.float32, np.int64), np.float64),
        ((np.float32, np.int8), np.float32),
        ((np.int8, np.float16), np.float16),
        ((np.float16, np.float32), np.float32),
        ((np.float32, np.complex64), np.complex64),
        ((np.float64, np.complex64), np.complex128),
        ((np.int32, np.complex64), np.complex128),
        ((np.float32, np.float32, np.float64), np.float64),
        ((np.int16, np.int16, np.float32), np.float32),
        ((np.float64, object), object),
        ((np.int64, np.int64, object), object),
    ],
    ids=lambda value: (
        "-".join(np.dtype(d).name for d in value) if isinstance(value, tuple) else None
    ),
)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_mixed_dtypes_promote_by_result_type(
    dtypes: tuple[type, ...], expected: type, method: str
) -> None:
    assert np.result_type(*dtypes) == np.dtype(expected)  # the rule, as NumPy states it
    x: NDArray[Any] = np.array([[1, 2, 3], [4, 5, 6]], dtype=dtypes[0])
    weight: NDArray[Any] = np.array([[[1], [-1]]], dtype=dtypes[1])
    bias: NDArray[Any] | None = None if len(dtypes) < 3 else np.array([10], dtype=dtypes[2])
    out = mc.conv1d(x, weight, bias, method=method)
    assert out.dtype == np.dtype(expected)
    offset = 0 if bias is None else 10
    assert out.tolist() == [[1 - 4 + offset, 2 - 5 + offset, 3 - 6 + offset]]


# --- dtype=object: exact big ints and fractions on every method -------------------------------


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_object_big_ints_beyond_int64_are_exact(method: str) -> None:
    big = 10**30
    x = np.array([[[big + 10 * i + j for j in range(3)] for i in range(2)]], dtype=object)
    weight = np.array([[[big], [-(big - 1)]], [[2**100], [3]]], dtype=object)
    bias = np.array([-(10**40), 1], dtype=object)
    out = mc.conv1d(x, weight, bias, method=method)
    assert out.dtype == object
    assert all(type(value) is int for value in out.flat)
    assert out.tolist() == reference_conv(x, weight, bias).tolist()


@pytest.mark.parametrize("method", methods_for((2, 2)))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"stride": 2},
        {"padding": 1},
        {"dilation": 2},
        {"groups": 2},
        {"padding": 1, "stride": 2, "dilation": 2},
    ],
    ids=["plain", "stride", "padding", "dilation", "groups", "all"],
)
def test_object_fractions_are_exact(method: str, options: dict[str, Any]) -> None:
    x = np.array(
        [
            [[[Fraction(10 * i + j, 3 + c) for j in range(5)] for i in range(5)] for c in range(2)]
            for _ in range(1)
        ],
        dtype=object,
    )
    per_group = 2 // options.get("groups", 1)
    weight = np.array(
        [
            [[[Fraction(1 + o, 1 + c + 2 * a + b) for b in range(2)] for a in range(2)]
             for c in range(per_group)]
            for o in range(2)
        ],
        dtype=object,
    )  # fmt: skip
    bias = np.array([Fraction(1, 7), Fraction(-2, 9)], dtype=object)
    out = mc.conv2d(x, weight, bias, method=method, **options)
    expected = reference_conv(x, weight, bias, **options)
    assert out.shape == expected.shape
    assert out.tolist() == expected.tolist()
    assert all(isinstance(value, Fraction) for value in out.flat)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_object_fractions_with_a_1x1_kernel(method: str) -> None:
    x = np.array([[Fraction(1, 3), Fraction(1, 6)], [Fraction(2, 5), 7]], dtype=object)
    weight = np.array([[[Fraction(3, 1)], [Fraction(-5, 2)]]], dtype=object)
    out = mc.conv1d(x, weight, method=method)
    # 3 * 1/3 - 5/2 * 2/5 = 0; 3 * 1/6 - 5/2 * 7 = -17.
    assert out.tolist() == [[Fraction(0), Fraction(-17)]]


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_object_array_of_numpy_ints_does_not_wrap(method: str) -> None:
    # NumPy int64 scalars inside an object array would wrap at 2**63; they are computed as
    # Python ints instead.
    x = np.array([[np.int64(2**62), np.int64(-(2**62))]], dtype=object)
    weight = np.array([[[np.int64(4)]]], dtype=object)
    out = mc.conv1d(x, weight, np.array([np.int64(1)], dtype=object), method=method)
    assert out.tolist() == [[2**64 + 1, -(2**64) + 1]]
    assert type(x[0, 0]) is np.int64  # the caller's array is untouched


@pytest.mark.parametrize("method", methods_for((2,)))
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "symmetric"])
def test_object_big_ints_with_every_padding_mode(method: str, mode: str) -> None:
    big = 2**80
    row = [big + 1, big + 2, big + 3]
    padded = {
        # Written out by hand for padding 2 on each side of [a, b, c].
        "reflect": [row[2], row[1], *row, row[1], row[0]],
        "replicate": [row[0], row[0], *row, row[2], row[2]],
        "circular": [row[1], row[2], *row, row[0], row[1]],
        "symmetric": [row[1], row[0], *row, row[2], row[1]],
    }[mode]
    weight = [[[1, -(2**70)]]]
    out = mc.conv1d(np.array([row], dtype=object), weight, padding=2, padding_mode=mode,
                    method=method)  # fmt: skip
    expected = [padded[p] - 2**70 * padded[p + 1] for p in range(len(padded) - 1)]
    assert out.tolist() == [expected]


# --- object arrays: what python_integers must leave alone, and broadcast views -------------


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_object_array_mixing_numpy_ints_with_fractions_and_floats_is_exact(method: str) -> None:
    # Only the NumPy ints become Python ints: a Fraction or a float next to them keeps its
    # value (int() of either would truncate 1/2 and 0.25 to 0 without a word).
    x = np.array([[np.int64(2**62), Fraction(1, 2), 0.25]], dtype=object)
    out = mc.conv1d(x, np.array([[[np.int64(4)]]], dtype=object), method=method)
    assert out.tolist() == [[2**64, Fraction(2), 1.0]]  # 4 * each, by hand
    assert type(out[0, 1]) is Fraction


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_broadcast_object_array_of_numpy_ints_is_exact(method: str) -> None:
    # A broadcast view stores one element; it is converted once and broadcast back to the
    # full shape (6 positions), so every output is 2**62 * 4 exactly.
    x = np.broadcast_to(np.array([np.int64(2**62)], dtype=object), (1, 1, 6))
    out = mc.conv(x, np.array([[[4]]], dtype=object), method=method)
    assert out.tolist() == [[[2**64] * 6]]


@pytest.mark.parametrize("method", methods_for((2,)))
def test_empty_integer_input_has_no_overflow_to_check(method: str) -> None:
    # No image, so no products: the range bound is 0 * max|weight| * terms, not an overflow,
    # although 1 * 2**62 * 2 terms would leave int64.
    out = mc.conv(np.zeros((0, 1, 3), np.int64), np.full((1, 1, 2), 2**62), method=method)
    assert (out.shape, out.dtype) == ((0, 1, 2), np.dtype(np.int64))


def test_timedelta_inside_an_object_array_is_refused_naming_the_argument() -> None:
    # np.timedelta64 subclasses np.signedinteger, but it is a duration, not a number.
    x = np.array([[[np.timedelta64(1, "s"), np.timedelta64(2, "s")]]], dtype=object)
    with pytest.raises(TypeError, match=r"x must hold numbers, but its object array contains"):
        mc.conv(x, np.ones((1, 1, 1)))
    weight = np.array([[[np.timedelta64(1, "s")]]], dtype=object)
    with pytest.raises(TypeError, match=r"weight must hold numbers, .* timedelta64"):
        mc.conv(np.ones((1, 1, 2)), weight)


def test_conv_backward_scans_the_integer_range_once_per_gradient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three gradients, each with one range check of its two operands: six scans of an
    # array's largest magnitude, not twelve (each gradient checked again inside).
    from mimo_conv._core import dtypes  # noqa: PLC0415 - the module whose helper is spied on

    scanned: list[tuple[int, ...]] = []
    largest = dtypes._largest_magnitude

    def spy(array: NDArray[Any]) -> int:
        scanned.append(array.shape)
        return largest(array)

    monkeypatch.setattr(dtypes, "_largest_magnitude", spy)
    x = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    weight = np.ones((4, 3, 2), np.int64)
    grads = np.ones((2, 4, 4), np.int64)
    grad_x, grad_w, grad_b = mc.conv_backward(grads, x, weight)
    assert len(scanned) == 6
    # The gradients are still right: dL/db sums 2 * 4 ones per channel, dL/dx[n, c, i]
    # sums the (o, t) pairs that read x[n, c, i] (4 channels times 1 or 2 taps).
    assert grad_b.tolist() == [8] * 4
    assert grad_x.tolist() == [[[4, 8, 8, 8, 4]] * 3] * 2
    # dL/dw[o, c, t] = sum over n and the 4 positions p of x[n, c, p + t] (dL/dy is ones).
    expected_w = [
        [sum(int(x[n, c, p + t]) for n in range(2) for p in range(4)) for t in range(2)]
        for c in range(3)
    ]
    assert grad_w.tolist() == [expected_w] * 4
