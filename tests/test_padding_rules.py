"""SAME at any stride (TF/JAX/ONNX SAME_UPPER), SAME_LOWER, and conv_transpose's output_size.

The rule is checked against its definition by brute force (the smallest total padding whose
``ceil(in / stride)`` windows all fit), against PyTorch's own rule at stride 1, and
``output_size`` against PyTorch's ``ConvTranspose{n}d`` when torch is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import mimo_conv as mc
from mimo_conv._core.padding_rules import same_padding, same_total

sizes = st.integers(0, 20)
taps = st.integers(1, 6)
steps = st.integers(1, 5)


@given(st.integers(1, 20), taps, steps, steps)
@example(1, 6, 2, 5)
def test_same_total_is_the_least_padding_giving_ceil_in_over_stride(
    size: int, k: int, dilation: int, stride: int
) -> None:
    wanted = -(-size // stride)
    extent = dilation * (k - 1) + 1

    # the output of a valid conv of length L is floor((L - extent) / stride) + 1 (0 if L < extent)
    def out(length: int) -> int:
        return (length - extent) // stride + 1 if length >= extent else 0

    least = next(t for t in range(extent + stride + size + 1) if out(size + t) >= wanted)
    assert same_total(size, k, dilation, stride) == least
    assert out(size + least) == wanted


@given(sizes, taps, steps)
def test_same_at_stride_one_is_pytorchs_rule(size: int, k: int, dilation: int) -> None:
    span = dilation * (k - 1)
    assert same_padding((size,), (k,), (dilation,), (1,)) == ((span // 2, span - span // 2),)
    assert same_padding((size,), (k,), (dilation,), (1,), lower=True) == (
        (span - span // 2, span // 2),
    )


@given(st.integers(1, 12), taps, steps, steps, st.booleans())
def test_same_strings_in_conv_give_ceil_shapes_and_the_padded_result(
    size: int, k: int, dilation: int, stride: int, lower: bool
) -> None:
    x = (np.arange(2 * size, dtype=np.int64).reshape(1, 2, size) * 3) % 11 - 5
    w = np.arange(2 * k, dtype=np.int64).reshape(1, 2, k) - k
    padding = "same_lower" if lower else "same"
    ((before, after),) = same_padding((size,), (k,), (dilation,), (stride,), lower=lower)
    expected = mc.conv1d(x, w, stride=stride, dilation=dilation, padding=[(before, after)])
    actual = mc.conv1d(x, w, stride=stride, dilation=dilation, padding=padding)
    np.testing.assert_array_equal(actual, expected)
    assert actual.shape[-1] == -(-size // stride)
    assert after - before in ((-1, 0) if lower else (0, 1))


def test_same_with_stride_two_matches_tensorflows_documented_example() -> None:
    # TF's guide: in 13, k 6, stride 5 -> out 3, total padding 3, 1 before and 2 after
    assert same_padding((13,), (6,), (1,), (5,)) == ((1, 2),)
    assert same_padding((13,), (6,), (1,), (5,), lower=True) == ((2, 1),)


def test_gradients_accept_same_with_stride() -> None:
    x = np.arange(2 * 7 * 7.0).reshape(1, 2, 7, 7)
    w = np.ones((3, 2, 3, 3))
    out = mc.conv2d(x, w, stride=2, padding="same")
    assert out.shape == (1, 3, 4, 4)
    grad_x, grad_w, _ = mc.conv_backward(np.ones(out.shape), x, w, stride=2, padding="same")
    explicit = mc.conv_backward(np.ones(out.shape), x, w, stride=2, padding=[(1, 1), (1, 1)])
    np.testing.assert_array_equal(grad_x, explicit[0])
    np.testing.assert_array_equal(grad_w, explicit[1])


def test_negative_padding_stays_an_error() -> None:
    with pytest.raises(ValueError, match=r"padding must be >= 0 along every axis, got -1"):
        mc.conv1d(np.ones((1, 5)), np.ones((1, 1, 2)), padding=-1)


# --- conv_transpose's output_size ----------------------------------------------------


@st.composite
def transposed_calls(draw: st.DrawFn) -> dict[str, Any]:
    rank = draw(st.integers(1, 3))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    padding = tuple(
        draw(st.integers(0, (k - 1) * d // 2)) for k, d in zip(kernel, dilation, strict=True)
    )
    size = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-4, 5, (1, 2, *size)).astype(np.float64)
    w = rng.integers(-4, 5, (2, 3, *kernel)).astype(np.float64)
    smallest = [
        (n - 1) * s - 2 * p + d * (k - 1) + 1
        for n, s, p, d, k in zip(size, stride, padding, dilation, kernel, strict=True)
    ]
    extra = tuple(draw(st.integers(0, s - 1)) for s in stride)  # PyTorch's range
    return {
        "x": x, "w": w, "stride": stride, "padding": padding, "dilation": dilation,
        "output_size": tuple(m + e for m, e in zip(smallest, extra, strict=True)), "extra": extra,
    }  # fmt: skip


@given(transposed_calls())
def test_output_size_picks_the_matching_output_padding(call: dict[str, Any]) -> None:
    options = {k: call[k] for k in ("stride", "padding", "dilation")}
    actual = mc.conv_transpose(call["x"], call["w"], output_size=call["output_size"], **options)
    expected = mc.conv_transpose(call["x"], call["w"], output_padding=call["extra"], **options)
    np.testing.assert_array_equal(actual, expected)
    assert actual.shape[2:] == call["output_size"]


@given(transposed_calls())
def test_output_size_agrees_with_pytorch(call: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    rank = call["w"].ndim - 2
    module = getattr(torch.nn, f"ConvTranspose{rank}d")(
        2, 3, call["w"].shape[2:], stride=call["stride"], padding=call["padding"],
        dilation=call["dilation"], bias=False, dtype=torch.float64,
    )  # fmt: skip
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(call["w"]))
        expected = module(torch.from_numpy(call["x"]), output_size=call["output_size"]).numpy()
    options = {k: call[k] for k in ("stride", "padding", "dilation")}
    actual = mc.conv_transpose(call["x"], call["w"], output_size=call["output_size"], **options)
    np.testing.assert_array_equal(actual, expected)  # integer data: exact


def test_output_size_outside_the_range_quotes_the_range() -> None:
    x, w = np.ones((1, 3, 4, 4)), np.ones((3, 2, 3, 3))
    with pytest.raises(
        ValueError, match=r"along spatial axis 0, 7 to 8 .* got output_size=\(9, 8\)"
    ):
        mc.conv_transpose2d(x, w, stride=2, padding=1, output_size=(9, 8))
    with pytest.raises(ValueError, match=r"output_padding must be 0 when output_size is given"):
        mc.conv_transpose2d(x, w, stride=2, padding=1, output_size=(8, 8), output_padding=1)
    with pytest.raises(ValueError, match=r"output_size must have 2 entries .* got \(8,\)"):
        mc.conv_transpose2d(x, w, stride=2, padding=1, output_size=(8,))
    with pytest.raises(TypeError, match=r"output_size must be a sequence of 2 ints"):
        mc.conv_transpose2d(x, w, stride=2, padding=1, output_size=8)


def test_output_size_beyond_stride_is_reachable_with_dilation() -> None:
    # output_padding < max(stride, dilation) is allowed (as PyTorch's functional form does);
    # PyTorch's module rejects these sizes: documented in docs/frameworks.md
    x, w = np.ones((1, 1, 3)), np.ones((1, 1, 2))
    out = mc.conv_transpose1d(x, w, stride=1, dilation=3, output_size=(8,))
    np.testing.assert_array_equal(out, mc.conv_transpose1d(x, w, dilation=3, output_padding=2))


def test_output_size_as_a_whole_shape_in_a_layout() -> None:
    x, w = np.ones((1, 4, 4, 3)), np.ones((3, 2, 3, 3))
    out = mc.conv_transpose2d(x, w, stride=2, padding=1, output_size=(1, 8, 7, 2), layout="NHWC")
    assert out.shape == (1, 8, 7, 2)


def test_output_size_with_a_padding_string_gets_conv_transposes_own_message() -> None:
    with pytest.raises(ValueError, match=r"no padding strings\), got 'same'"):
        mc.conv_transpose1d(np.ones((1, 1, 3)), np.ones((1, 1, 2)), stride=2, padding="same",
                            output_size=(6,))  # fmt: skip
