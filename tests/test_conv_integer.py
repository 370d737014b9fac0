"""mc.conv_integer: exact int32 results of 8-bit operands with zero points, and its bound.

The expected values come from a plain loop over output positions in Python ints (never
wrapping), independent of the library's paths.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mimo_conv as mc
from mimo_conv._ops.quantized import INT32_MAX


def loop_reference(
    x: np.ndarray[Any, Any], w: np.ndarray[Any, Any], x_zero: int, w_zero: np.ndarray[Any, Any],
    stride: int, padding: int,
) -> np.ndarray[Any, Any]:  # fmt: skip
    """1-d, batched, groups 1: sum (x_pad - zx) (w - zw[o]) with the padding holding zx."""
    n, c, length = x.shape
    out_channels, _, k = w.shape
    padded = [[x_zero] * padding + [int(v) for v in x[i, j]] + [x_zero] * padding
              for i in range(n) for j in range(c)]  # fmt: skip
    size = (length + 2 * padding - k) // stride + 1
    out = np.zeros((n, out_channels, size), dtype=object)
    for i, o, p in itertools.product(range(n), range(out_channels), range(size)):
        out[i, o, p] = sum(
            (padded[i * c + j][p * stride + t] - x_zero) * (int(w[o, j, t]) - int(w_zero[o]))
            for j in range(c)
            for t in range(k)
        )
    return out


@st.composite
def problems(draw: st.DrawFn) -> dict[str, Any]:
    x_type = draw(st.sampled_from([np.int8, np.uint8]))
    w_type = draw(st.sampled_from([np.int8, np.uint8]))
    info_x, info_w = np.iinfo(x_type), np.iinfo(w_type)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c, out_channels = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    length = draw(st.integers(1, 8))
    k = draw(st.integers(1, length + 2))
    padding = draw(st.integers(max(0, (k - length + 1) // 2), 2))
    x = rng.integers(info_x.min, info_x.max + 1, (2, c, length)).astype(x_type)
    w = rng.integers(info_w.min, info_w.max + 1, (out_channels, c, k)).astype(w_type)
    per_channel = draw(st.booleans())
    w_zero = rng.integers(info_w.min, info_w.max + 1, out_channels if per_channel else 1)
    return {
        "x": x, "w": w, "x_zero": int(rng.integers(info_x.min, info_x.max + 1)),
        "w_zero": w_zero.astype(w_type), "per_channel": per_channel,
        "stride": draw(st.integers(1, 2)), "padding": padding,
    }  # fmt: skip


@given(problems())
def test_conv_integer_is_exact(p: dict[str, Any]) -> None:
    w_zero = p["w_zero"] if p["per_channel"] else p["w_zero"][0]
    x_before, w_before = p["x"].copy(), p["w"].copy()
    actual = mc.conv_integer(p["x"], p["w"], p["x_zero"], w_zero, stride=p["stride"],
                             padding=p["padding"])  # fmt: skip
    zeros = np.broadcast_to(p["w_zero"].astype(np.int64), (p["w"].shape[0],))
    expected = loop_reference(p["x"], p["w"], p["x_zero"], zeros, p["stride"], p["padding"])
    assert actual.dtype == np.int32
    np.testing.assert_array_equal(actual, expected.astype(np.int64))
    np.testing.assert_array_equal(p["x"], x_before)
    np.testing.assert_array_equal(p["w"], w_before)


def test_the_overflow_bound_is_exact_at_its_edge() -> None:
    # A = 255 (uint8 255 with zero point 0); one output channel with S = 255 * n.
    # n = 33025 is the largest n with 255 * 255 * n <= 2**31 - 1: it runs, and its one output
    # is exactly that bound; n = 33026 raises before any work.
    n = (INT32_MAX) // 255**2
    assert 255 * 255 * n <= INT32_MAX < 255 * 255 * (n + 1)
    x = np.full((1, n, 1), 255, np.uint8)
    w = np.full((1, n, 1), 255, np.uint8)
    out = mc.conv_integer(x, w)
    assert int(out[0, 0, 0]) == 255 * 255 * n
    with pytest.raises(OverflowError, match=r"int32 accumulation could overflow: .* 255 times"):
        mc.conv_integer(
            np.full((1, n + 1, 1), 255, np.uint8), np.full((1, n + 1, 1), 255, np.uint8)
        )


def test_the_bound_reads_the_values_not_only_the_dtypes() -> None:
    # the same n + 1 terms with small values are far from overflow: no error
    n = INT32_MAX // 255**2 + 1
    out = mc.conv_integer(np.ones((1, n, 1), np.uint8), np.ones((1, n, 1), np.int8))
    assert int(out[0, 0, 0]) == n


def test_zero_points_shift_and_the_padding_holds_the_zero_point() -> None:
    x = np.array([[[10, 20, 30]]], np.uint8)
    w = np.array([[[1, 1, 1]]], np.int8)
    # padding 1: the padded values are x_zero_point, contributing 0 after the shift
    out = mc.conv_integer(x, w, x_zero_point=10, padding=1)
    np.testing.assert_array_equal(out, [[[10, 30, 30]]])


def test_layouts_are_accepted() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (2, 3, 5, 5)).astype(np.uint8)
    w = rng.integers(-128, 128, (4, 3, 3, 3)).astype(np.int8)
    expected = mc.conv_integer(x, w, 7, 3, stride=2, padding="same")
    actual = mc.conv_integer(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), 7, 3, stride=2,
                             padding="same", layout="NHWC", weight_layout="HWIO")  # fmt: skip
    np.testing.assert_array_equal(actual, expected.transpose(0, 2, 3, 1))


BAD = [
    ("float-x", {"x": np.ones((1, 1, 3))}, TypeError,
     r"x must have dtype int8 or uint8, got x of dtype float64"),
    ("int16-w", {"w": np.ones((1, 1, 2), np.int16)}, TypeError,
     r"weight must have dtype int8 or uint8"),
    ("zero-point-range", {"x_zero_point": 300}, ValueError,
     r"x_zero_point must be in the range of the uint8 values it shifts \(0 to 255\), got 300"),
    ("zero-point-float", {"x_zero_point": 1.5}, TypeError, r"x_zero_point must be an integer"),
    ("per-channel-shape", {"weight_zero_point": [1, 2, 3]}, ValueError,
     (r"weight_zero_point must be a scalar or one per output channel \(2,\), "
      r"got weight_zero_point of shape \(3,\)")),
    ("x-per-channel", {"x_zero_point": [1, 2]}, ValueError,
     r"x_zero_point must be a scalar, got x_zero_point of shape \(2,\)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "error", "match"), [pytest.param(c, e, m, id=i) for i, c, e, m in BAD]
)
def test_bad_arguments_are_named(
    change: dict[str, Any], error: type[Exception], match: str
) -> None:
    arguments: dict[str, Any] = {
        "x": np.ones((1, 1, 3), np.uint8), "w": np.ones((2, 1, 2), np.int8),
        "x_zero_point": 0, "weight_zero_point": 0,
    }  # fmt: skip
    arguments.update(change)
    with pytest.raises(error, match=match):
        mc.conv_integer(arguments["x"], arguments["w"], arguments["x_zero_point"],
                        arguments["weight_zero_point"])  # fmt: skip
