"""Differential tests against PyTorch and SciPy (optional: skipped when not installed).

* Integer-valued float data: every product and partial sum is an exactly representable
  integer, so any summation order gives the same bits; results must be EQUAL.
* Random floats: each library's result lies within the forward error bound of the exact
  result (:func:`mimo_conv.testing.error_bound`, a dot product in any order), so the two
  differ by at most twice that bound.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import mimo_conv as mc
from mimo_conv._paths.registry import METHOD_NAMES
from mimo_conv.testing import error_bound

# "winograd" (by name only) has its own bound and refusals: tests/test_winograd.py.
METHOD_NAMES = tuple(m for m in METHOD_NAMES if m != "winograd")


def methods_for(kernel_shape: tuple[int, ...]) -> list[str]:
    """Every method that applies: ``"matmul"`` only takes 1 x 1 kernels."""
    pointwise = all(k == 1 for k in kernel_shape)
    return [m for m in METHOD_NAMES if pointwise or m != "matmul"]


def integer_valued(shape: tuple[int, ...], seed: int, low: int = -9) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    return rng.integers(low, 10, size=shape).astype(np.float64)


# --- PyTorch ---------------------------------------------------------------------------------

# (id, spatial dims, x shape, C_out, kernel, options for both libraries)
TORCH_CASES: list[tuple[str, tuple[int, ...], int, tuple[int, ...], dict[str, Any]]] = [
    ("1d-plain", (2, 3, 11), 4, (3,), {}),
    ("1d-stride-padding-dilation", (2, 4, 13), 6, (3,), {"stride": 2, "padding": 3, "dilation": 2}),
    ("1d-groups-bias", (1, 6, 9), 4, (2,), {"groups": 2, "bias": True}),
    ("1d-depthwise", (2, 3, 8), 3, (3,), {"groups": 3, "padding": 1}),
    ("1d-same-even-kernel", (1, 2, 9), 2, (4,), {"padding": "same"}),
    ("1d-same-dilated", (1, 2, 9), 3, (3,), {"padding": "same", "dilation": 3}),
    ("1d-1x1-stride", (2, 5, 10), 3, (1,), {"stride": 3, "bias": True}),
    ("2d-plain", (2, 3, 7, 8), 4, (3, 3), {}),
    ("2d-all-options", (2, 4, 9, 10), 6, (3, 2),
     {"stride": (2, 3), "padding": (2, 1), "dilation": (2, 1), "groups": 2, "bias": True}),
    ("2d-same", (1, 3, 6, 7), 2, (4, 3), {"padding": "same", "dilation": (1, 2)}),
    ("2d-valid-string", (1, 3, 6, 7), 2, (2, 5), {"padding": "valid", "bias": True}),
    ("2d-1x1", (3, 4, 5, 5), 8, (1, 1), {"bias": True}),
    ("2d-depthwise-multiplier", (1, 3, 8, 8), 6, (3, 3), {"groups": 3, "stride": 2}),
    ("3d-plain", (1, 2, 5, 6, 4), 3, (2, 3, 2), {}),
    ("3d-all-options", (2, 4, 6, 7, 5), 4, (3, 2, 2),
     {"stride": (1, 2, 1), "padding": (1, 0, 2), "dilation": (2, 1, 1), "groups": 2,
      "bias": True}),
    ("3d-same", (1, 2, 4, 5, 6), 2, (2, 3, 4), {"padding": "same"}),
]  # fmt: skip


def torch_problem(
    x_shape: tuple[int, ...],
    out_channels: int,
    kernel: tuple[int, ...],
    options: dict[str, Any],
    make: Any,
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None, dict[str, Any]]:
    groups = options.get("groups", 1)
    x = make(x_shape, 1)
    weight = make((out_channels, x_shape[1] // groups, *kernel), 2)
    bias = make((out_channels,), 3) if options.get("bias") else None
    conv_options = {k: v for k, v in options.items() if k != "bias"}
    return x, weight, bias, conv_options


def torch_conv(x: Any, weight: Any, bias: Any, dims: int, **options: Any) -> NDArray[Any]:
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    function = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}[dims]
    with warnings.catch_warnings():
        # PyTorch's own performance note about "same" with an even kernel; not our concern.
        warnings.filterwarnings("ignore", "Using padding='same' with even kernel", UserWarning)
        out = function(
            torch.from_numpy(np.ascontiguousarray(x)),
            torch.from_numpy(np.ascontiguousarray(weight)),
            None if bias is None else torch.from_numpy(np.ascontiguousarray(bias)),
            **options,
        )
    result: NDArray[Any] = out.numpy()
    return result


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("x_shape", "out_channels", "kernel", "options"),
    [pytest.param(*case[1:], id=case[0]) for case in TORCH_CASES],
)
def test_matches_torch_exactly_on_integer_valued_data(
    x_shape: tuple[int, ...],
    out_channels: int,
    kernel: tuple[int, ...],
    options: dict[str, Any],
    dtype: type,
) -> None:
    pytest.importorskip("torch")

    def make(shape: tuple[int, ...], seed: int) -> NDArray[Any]:
        return integer_valued(shape, seed).astype(dtype)

    x, weight, bias, conv_options = torch_problem(x_shape, out_channels, kernel, options, make)
    expected = torch_conv(x, weight, bias, len(kernel), **conv_options)
    assert expected.dtype == np.dtype(dtype)
    for method in methods_for(kernel):
        out = mc.conv(x, weight, bias, method=method, **conv_options)
        assert out.dtype == np.dtype(dtype), method
        assert out.shape == expected.shape, method
        assert np.array_equal(out, expected), method  # all sums exact: bit for bit
    # Unbatched, as torch also accepts it.
    unbatched = torch_conv(x[0], weight, bias, len(kernel), **conv_options)
    assert np.array_equal(mc.conv(x[0], weight, bias, **conv_options), unbatched)


@pytest.mark.parametrize(
    ("x_shape", "out_channels", "kernel", "options"),
    [pytest.param(*case[1:], id=case[0]) for case in TORCH_CASES],
)
def test_matches_torch_within_the_error_bound_on_random_floats(
    x_shape: tuple[int, ...], out_channels: int, kernel: tuple[int, ...], options: dict[str, Any]
) -> None:
    pytest.importorskip("torch")

    def make(shape: tuple[int, ...], seed: int) -> NDArray[Any]:
        return np.random.default_rng(seed).standard_normal(shape)

    x, weight, bias, conv_options = torch_problem(x_shape, out_channels, kernel, options, make)
    expected = torch_conv(x, weight, bias, len(kernel), **conv_options)
    # Each result is within `bound` of the exact one, so within 2 * bound of each other.
    bound = error_bound(x, weight, bias, **conv_options)
    assert bound.shape == expected.shape
    assert np.all(bound < 1e-12)  # the bound itself is tight: float64 with few terms
    for method in methods_for(kernel):
        out = mc.conv(x, weight, bias, method=method, **conv_options)
        assert np.all(np.abs(out - expected) <= 2 * bound), method


# padding_mode as PyTorch's nn.ConvNd applies it: F.pad with the mode, then a "valid" conv.
TORCH_MODES = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


@pytest.mark.parametrize("mode", list(TORCH_MODES))
@pytest.mark.parametrize(
    ("x_shape", "kernel", "pairs", "stride", "dilation"),
    [
        pytest.param((2, 2, 9), (3,), ((2, 1),), (2,), (1,), id="1d-asymmetric"),
        pytest.param((1, 2, 6, 7), (3, 2), ((1, 2), (3, 0)), (1, 2), (2, 1), id="2d-asymmetric"),
        pytest.param((1, 2, 6, 7), (3, 3), ((2, 2), (2, 2)), (1, 1), (1, 1), id="2d-symmetric"),
        pytest.param((1, 1, 4, 5, 6), (2, 2, 3), ((1, 1), (0, 2), (2, 1)), (1, 1, 2), (1, 2, 1),
                     id="3d-asymmetric"),
    ],
)  # fmt: skip
def test_padding_modes_match_torch_pad(
    x_shape: tuple[int, ...],
    kernel: tuple[int, ...],
    pairs: tuple[tuple[int, int], ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    mode: str,
) -> None:
    torch = pytest.importorskip("torch")
    x = integer_valued(x_shape, 4)
    weight = integer_valued((3, x_shape[1], *kernel), 5)
    bias = integer_valued((3,), 6)
    # F.pad takes (before, after) pairs from the LAST axis backwards.
    flat = tuple(side for pair in reversed(pairs) for side in pair)
    padded = torch.nn.functional.pad(torch.from_numpy(x), flat, mode=TORCH_MODES[mode]).numpy()
    expected = torch_conv(padded, weight, bias, len(kernel), stride=stride, dilation=dilation)
    for method in methods_for(kernel):
        out = mc.conv(x, weight, bias, stride, pairs, dilation, padding_mode=mode, method=method)
        assert np.array_equal(out, expected), method


@pytest.mark.parametrize("mode", ["zeros", *TORCH_MODES])
def test_padding_mode_matches_torch_conv_module(mode: str) -> None:
    torch = pytest.importorskip("torch")
    options: dict[str, Any] = {"stride": (2, 1), "padding": (2, 1), "dilation": (1, 2)}
    layer = torch.nn.Conv2d(
        2, 4, (3, 2), groups=2, bias=True, padding_mode=mode, dtype=torch.float64, **options
    )
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(integer_valued((4, 1, 3, 2), 7)))
        layer.bias.copy_(torch.from_numpy(integer_valued((4,), 8)))
    x = integer_valued((2, 2, 6, 5), 9)
    with torch.no_grad():
        expected = layer(torch.from_numpy(x)).numpy()
    weight, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    out = mc.conv2d(x, weight, bias, groups=2, padding_mode=mode, **options)
    assert np.array_equal(out, expected)


def test_torch_channel_message_has_the_same_facts() -> None:
    torch = pytest.importorskip("torch")
    x = np.zeros((1, 2, 5, 5))
    weight = np.zeros((4, 3, 3, 3))
    with pytest.raises(RuntimeError, match=r"weight of size \[4, 3, 3, 3\], expected input"):
        torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight))
    with pytest.raises(
        ValueError,
        match=r"Given groups=1, weight of shape \(4, 3, 3, 3\), expected x of shape "
        r"\(1, 2, 5, 5\) to have 3 channels, but got 2 channels instead",
    ):
        mc.conv2d(x, weight)


# --- SciPy ----------------------------------------------------------------------------------


def scipy_correlate(x: NDArray[Any], kernel: NDArray[Any], mode: str) -> NDArray[Any]:
    signal = pytest.importorskip("scipy.signal")
    result: NDArray[Any] = signal.correlate(x, kernel, mode=mode, method="direct")
    return result


def ours_single_channel(x: NDArray[Any], kernel: NDArray[Any], **options: Any) -> NDArray[Any]:
    out = mc.conv(x[np.newaxis], kernel[np.newaxis, np.newaxis], **options)
    result: NDArray[Any] = out[0]
    return result


SCIPY_SHAPES = [
    pytest.param((11,), (3,), id="1d-odd"),
    pytest.param((11,), (4,), id="1d-even"),
    pytest.param((6, 7), (3, 3), id="2d-odd"),
    pytest.param((6, 7), (2, 4), id="2d-even"),
    pytest.param((6, 7), (1, 5), id="2d-mixed"),
    pytest.param((4, 5, 6), (3, 2, 3), id="3d"),
]


@pytest.mark.parametrize(("x_shape", "k_shape"), SCIPY_SHAPES)
def test_valid_and_full_match_scipy_exactly(
    x_shape: tuple[int, ...], k_shape: tuple[int, ...]
) -> None:
    x = integer_valued(x_shape, 10)
    kernel = integer_valued(k_shape, 11)
    assert np.array_equal(ours_single_channel(x, kernel), scipy_correlate(x, kernel, "valid"))
    full = scipy_correlate(x, kernel, "full")
    for method in methods_for(k_shape):
        assert np.array_equal(ours_single_channel(x, kernel, padding="full", method=method), full)


@pytest.mark.parametrize(("x_shape", "k_shape"), SCIPY_SHAPES)
def test_same_matches_scipy_with_its_own_centring(
    x_shape: tuple[int, ...], k_shape: tuple[int, ...]
) -> None:
    # SciPy's "same" is the centre of "full": same[i] = full[i + (k - 1) // 2], and
    # full[j] = sum_t x[j - (k - 1) + t] * w[t]. So same pads k // 2 before and
    # (k - 1) // 2 after. PyTorch's (and our) "same" pads (k - 1) // 2 before and k // 2
    # after: the same for odd k, one element apart for even k.
    x = integer_valued(x_shape, 12)
    kernel = integer_valued(k_shape, 13)
    theirs = scipy_correlate(x, kernel, "same")
    scipy_pairs = tuple((k // 2, (k - 1) // 2) for k in k_shape)
    assert np.array_equal(ours_single_channel(x, kernel, padding=scipy_pairs), theirs)
    ours_same = ours_single_channel(x, kernel, padding="same")
    assert ours_same.shape == theirs.shape == x.shape
    if all(k % 2 for k in k_shape):
        assert np.array_equal(ours_same, theirs)
    else:
        assert not np.array_equal(ours_same, theirs)  # the centring differs: documented


@pytest.mark.parametrize(("x_shape", "k_shape"), SCIPY_SHAPES)
@pytest.mark.parametrize("mode", ["valid", "full"])
def test_matches_scipy_within_the_error_bound_on_random_floats(
    x_shape: tuple[int, ...], k_shape: tuple[int, ...], mode: str
) -> None:
    rng = np.random.default_rng(14)
    x = rng.standard_normal(x_shape)
    kernel = rng.standard_normal(k_shape)
    theirs = scipy_correlate(x, kernel, mode)
    padding = "full" if mode == "full" else 0
    bound = error_bound(x[np.newaxis], kernel[np.newaxis, np.newaxis], padding=padding)[0]
    assert np.all(bound < 1e-12)
    ours = ours_single_channel(x, kernel, padding=padding)
    assert np.all(np.abs(ours - theirs) <= 2 * bound)


def test_float32_matches_scipy_exactly_on_integer_valued_data() -> None:
    x = integer_valued((7, 8), 15).astype(np.float32)
    kernel = integer_valued((3, 3), 16).astype(np.float32)
    ours = ours_single_channel(x, kernel)
    theirs = scipy_correlate(x, kernel, "valid")
    assert ours.dtype == theirs.dtype == np.float32
    assert np.array_equal(ours, theirs)
