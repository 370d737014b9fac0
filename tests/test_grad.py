"""The backward pass: mimo_conv.grad, mc.conv_backward, and the adjoint of every padding.

* Exact: on integer (and Fraction, and complex-integer) data the adjoint identity
  ``<conv(x, w), g> == <x, conv_input(g)> == <w, conv_weight(x, g)>`` must hold bit for
  bit, for every padding form and mode, stride, dilation and groups (hypothesis).
* Float64: every gradient agrees with a central finite difference, within a bound derived
  below from the rounding error of the evaluations (the loss is linear in each argument, so
  the central difference has no truncation error at all).
* PyTorch autograd, when installed, gives the same gradients exactly on integer data.
"""

from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

import mimo_conv as mc
from _reference import NUMPY_PAD_MODES
from memory_probe import peak_temporary
from mimo_conv import PADDING_MODES, grad
from mimo_conv._core.geometry_cache import build_geometry
from mimo_conv.testing import PADDING_FORMS, ConvProblem, conv_problems
from mimo_conv.testing.bounds import gamma

U64 = 2.0**-53  # unit roundoff of float64
#: mimo_conv's padding modes and the names torch.nn.functional.pad gives them.
TORCH_PAD_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
}


def inner(a: Any, b: Any) -> Any:
    """``sum(a * b)`` in exact Python arithmetic (ints, Fractions, complex ints)."""
    left = np.asarray(a).astype(object).ravel().tolist()
    right = np.asarray(b).astype(object).ravel().tolist()
    return sum((p * q for p, q in zip(left, right, strict=True)), start=0)


@st.composite
def problems_with_gradient(
    draw: st.DrawFn,
    dtype: str = "int64",
    *,
    torch_expressible: bool = False,
    nonempty: bool = False,
) -> tuple[ConvProblem, NDArray[Any]]:
    """A valid problem of every option, and an integer-valued gradient of its output.

    ``torch_expressible``: only what ``F.pad`` + ``F.conv{n}d`` can express (explicit
    padding, no ``"symmetric"`` mode, no empty weight). ``nonempty``: no batch of 0 and no
    0 output channels either.
    """
    problem = draw(
        conv_problems(
            spatial_dims=(1, 2, 3),
            dtypes=(dtype,),
            elements="integers",
            max_side=4,
            max_channels=4,
            bias=True,
            allow_empty=not (torch_expressible or nonempty),
            padding_forms=("int", "per_axis", "pairs") if torch_expressible else PADDING_FORMS,
            padding_modes=tuple(TORCH_PAD_MODES) if torch_expressible else PADDING_MODES,
        )
    )
    gradient = draw(
        arrays(np.int64, problem.out_shape, elements=st.integers(-9, 9)).map(
            lambda g: g.astype(dtype)
        )
    )
    return problem, gradient


@given(problems_with_gradient())
def test_adjoint_identity_is_exact_on_integers(case: tuple[ConvProblem, NDArray[Any]]) -> None:
    problem, g = case
    x, w, b, options = problem.x, problem.weight, problem.bias, problem.conv_kwargs()
    y = mc.conv(x, w, **options)
    grad_x = grad.conv_input(x.shape, w, g, **options)
    grad_w = grad.conv_weight(x, w.shape, g, **options)
    grad_b = grad.conv_bias(g, batched=x.ndim == w.ndim)
    assert grad_x.shape == x.shape
    assert grad_w.shape == w.shape
    assert inner(y, g) == inner(x, grad_x) == inner(w, grad_w)
    # The bias enters y linearly too: <conv(x, w, b) - conv(x, w), g> == <b, conv_bias(g)>.
    assert b is not None
    assert inner(mc.conv(x, w, b, **options) - y, g) == inner(b, grad_b)
    # conv_backward is the three of them at once.
    together = mc.conv_backward(g, x, w, **options)
    for one, other in zip(together, (grad_x, grad_w, grad_b), strict=True):
        assert one.dtype == other.dtype == np.int64
        np.testing.assert_array_equal(one, other)


@given(problems_with_gradient(dtype="object"))
def test_adjoint_identity_is_exact_on_object_arrays(
    case: tuple[ConvProblem, NDArray[Any]],
) -> None:
    problem, g = case
    x, w, options = problem.x, problem.weight, problem.conv_kwargs()
    grad_x, grad_w, _ = mc.conv_backward(g, x, w, **options)
    assert grad_x.dtype == grad_w.dtype == object
    y = mc.conv(x, w, **options)
    assert inner(y, g) == inner(x, grad_x) == inner(w, grad_w)


def test_reflect_padding_gradient_by_hand_in_fractions() -> None:
    a, b, c, d = Fraction(1, 3), Fraction(2, 7), Fraction(-5, 11), Fraction(1, 2)
    w0, w1 = Fraction(1, 5), Fraction(-3, 4)
    g0, g1, g2, g3 = Fraction(2, 3), Fraction(1, 9), Fraction(-1, 6), Fraction(7, 8)
    x = np.array([[a, b, c, d]], dtype=object)
    w = np.array([[[w0, w1]]], dtype=object)
    g = np.array([[g0, g1, g2, g3]], dtype=object)
    grad_x, grad_w, grad_b = mc.conv_backward(g, x, w, padding=[(0, 1)], padding_mode="reflect")
    # The padded input is a b c d c; output p sees padded[p], padded[p + 1].
    padded_grad = [g0 * w0, g1 * w0 + g0 * w1, g2 * w0 + g1 * w1, g3 * w0 + g2 * w1, g3 * w1]
    # The reflected fifth element is a copy of c: its gradient goes to c.
    expected_x = [padded_grad[0], padded_grad[1], padded_grad[2] + padded_grad[4], padded_grad[3]]
    assert grad_x.tolist() == [expected_x]
    assert grad_w.tolist() == [
        [[g0 * a + g1 * b + g2 * c + g3 * d, g0 * b + g1 * c + g2 * d + g3 * c]]
    ]
    assert grad_b.tolist() == [g0 + g1 + g2 + g3]
    assert all(type(value) is Fraction for value in grad_x.ravel())


def test_complex_gradients_are_transposes_without_conjugation() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-5, 6, (2, 3, 5)) + 1j * rng.integers(-5, 6, (2, 3, 5))
    w = rng.integers(-5, 6, (4, 3, 2)) + 1j * rng.integers(-5, 6, (4, 3, 2))
    y = mc.conv(x, w, stride=2, padding=1)
    g = rng.integers(-5, 6, y.shape) + 1j * rng.integers(-5, 6, y.shape)
    grad_x, grad_w, _ = mc.conv_backward(g, x, w, stride=2, padding=1)
    # Integer-valued complex128 with these magnitudes is exact, and so is the bilinear form.
    lhs = inner(y.astype(complex), g)
    assert lhs == inner(x, grad_x) == inner(w, grad_w)


# --- finite differences in float64 ------------------------------------------------------
#
# The loss L(x, w, b) = <conv(x, w, b), g> is linear in each argument, so the central
# difference (L(v + h e_i) - L(v - h e_i)) / (2 h) equals dL/dv_i exactly in real
# arithmetic: its truncation error (h**2 / 6) * d3L/dv_i3 is zero. Only rounding is left, so
# h = 1 is the best step (the rounding error of the difference is divided by 2 h), and the
# evaluation points are exact: the perturbed argument holds multiples of 2**-30 below 1 in
# magnitude, so v_i +- 1 fits in 32 bits.
#
# Rounding (Higham, section 3.1, for any summation order, gamma_k = k u / (1 - k u)):
# * each y_j of conv(z, w, b) is a sum of n products (+ the bias): error <= gamma_{n+1}
#   (|w| * |z| + |b|)_j; the dot product with g adds gamma_M for M outputs; together
#   |fl(L(z)) - L(z)| <= E(z) = gamma_{n+1+M} <|g|, conv(|z|, |w|) + |b|>;
# * the subtraction rounds once (u |difference|); halving is exact;
# * the gradient under test sums m products: error <= gamma_m times the same gradient of
#   the magnitudes (m = C_out/groups * prod(k) * copies for dL/dx, N * L for dL/dw and
#   dL/db).
# So |fd_i - grad_i| <= (E(v + e_i) + E(v - e_i)) / 2 + u |difference| / 2 + gamma_m |.|_i.
# The magnitudes are themselves computed in float64 (relative error <= gamma_{n+1+M+m},
# below 1e-12 here); the factor 1 + 1e-9 covers that.

FD_CASES = [
    pytest.param(
        (2, 4, 5, 6),
        (6, 2, 3, 2),
        {"stride": (2, 1), "padding": 1, "dilation": (1, 2), "groups": 2},
        id="2d-stride-dilation-groups",
    ),
    pytest.param(
        (3, 7),
        (2, 3, 3),
        {"padding": "same", "padding_mode": "reflect"},
        id="1d-unbatched-same-reflect",
    ),
    pytest.param(
        (1, 2, 4, 5),
        (3, 2, 2, 3),
        {"padding": ((1, 2), (0, 3)), "padding_mode": "replicate", "stride": 2},
        id="2d-pairs-replicate",
    ),
    pytest.param(
        (2, 2, 4, 4),
        (2, 1, 3, 3),
        {"padding": 2, "padding_mode": "circular", "groups": 2},
        id="2d-depthwise-circular",
    ),
    pytest.param(
        (1, 3, 5),
        (2, 3, 2),
        {"padding": "full", "padding_mode": "symmetric"},
        id="1d-full-symmetric",
    ),
    pytest.param(
        (1, 2, 3, 3, 4), (2, 2, 2, 1, 2), {"padding": (1, 0, 1), "stride": (1, 2, 1)}, id="3d"
    ),
]

RNG_SEED = 20240601


def _dyadic(rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.float64]:
    """Values k * 2**-30 with |k| < 2**30: v +- 1 is exact in float64."""
    return rng.integers(-(2**30) + 1, 2**30, shape).astype(np.float64) * 2.0**-30


def _check_central_differences(
    loss: Any,
    point: NDArray[np.float64],
    gradient: NDArray[Any],
    evaluation_bound: Any,
    gradient_bound: NDArray[np.float64],
) -> None:
    """Compare ``gradient`` with the central difference of ``loss`` at every element."""
    assert gradient.shape == point.shape
    assert gradient.dtype == np.float64
    for index in np.ndindex(point.shape):
        plus, minus = point.copy(), point.copy()
        plus[index] += 1.0
        minus[index] -= 1.0
        high, low = loss(plus), loss(minus)
        difference = (high - low) / 2
        tolerance = (
            (evaluation_bound(plus) + evaluation_bound(minus)) / 2
            + U64 * abs(high - low) / 2
            + gradient_bound[index]
        ) * (1 + 1e-9)
        assert abs(difference - gradient[index]) <= tolerance, (index, difference, gradient[index])


@pytest.mark.parametrize(("x_shape", "w_shape", "options"), FD_CASES)
def test_gradients_match_central_differences(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], options: dict[str, Any]
) -> None:
    rng = np.random.default_rng(RNG_SEED)
    x, w, b = _dyadic(rng, x_shape), _dyadic(rng, w_shape), _dyadic(rng, w_shape[:1])
    g = rng.standard_normal(mc.conv(x, w, **options).shape)
    grad_x, grad_w, grad_b = mc.conv_backward(g, x, w, **options)

    batched = len(x_shape) == len(w_shape)
    n = w_shape[1] * math.prod(w_shape[2:])
    outputs = g.size
    evaluation_gamma = gamma(n + 1 + outputs, U64)

    def loss(xv: NDArray[Any], wv: NDArray[Any], bv: NDArray[Any]) -> float:
        return float(np.sum(mc.conv(xv, wv, bv, **options) * g))

    def bound(xv: NDArray[Any], wv: NDArray[Any], bv: NDArray[Any]) -> float:
        magnitude = mc.conv(np.abs(xv), np.abs(wv), np.abs(bv), **options)
        return evaluation_gamma * float(np.sum(np.abs(g) * magnitude))

    per_input = (w_shape[0] // options.get("groups", 1)) * math.prod(w_shape[2:])
    # No case pads more than 3 on a side: an element is copied at most 1 + 3 + 3 times per axis.
    copies = 7 ** len(w_shape[2:])
    abs_g, abs_w, abs_x = np.abs(g), np.abs(w), np.abs(x)
    input_bound = gamma(per_input * copies, U64) * grad.conv_input(x.shape, abs_w, abs_g, **options)
    terms = outputs // w_shape[0]
    weight_bound = gamma(terms, U64) * grad.conv_weight(abs_x, w.shape, abs_g, **options)
    bias_bound = gamma(terms, U64) * grad.conv_bias(abs_g, batched=batched)

    _check_central_differences(
        lambda v: loss(v, w, b), x, grad_x, lambda v: bound(v, w, b), input_bound
    )
    _check_central_differences(
        lambda v: loss(x, v, b), w, grad_w, lambda v: bound(x, v, b), weight_bound
    )
    _check_central_differences(
        lambda v: loss(x, w, v), b, grad_b, lambda v: bound(x, w, v), bias_bound
    )


# --- dtypes -----------------------------------------------------------------------------


def test_small_integer_dtypes_accumulate_in_int64() -> None:
    x = np.full((1, 2, 6), 127, dtype=np.int8)
    w = np.full((3, 2, 3), -128, dtype=np.int8)
    g = np.full((1, 3, 4), 127, dtype=np.int8)
    grad_x, grad_w, grad_b = mc.conv_backward(g, x, w)
    assert grad_x.dtype == grad_w.dtype == grad_b.dtype == np.int64
    # Middle input elements are seen by all 3 taps of all 3 output channels.
    assert grad_x[0, 0, 2] == 3 * 3 * 127 * -128
    assert grad_w[0, 0, 0] == 4 * 127 * 127
    assert grad_b.tolist() == [4 * 127] * 3


def test_float16_accumulates_in_float32_and_returns_float16() -> None:
    x = np.array([[2048.0, 1.0, 1.0, 1.0]], dtype=np.float16)
    g = np.ones((1, 4), dtype=np.float16)
    grad_x, grad_w, grad_b = mc.conv_backward(g, x, np.ones((1, 1, 1), dtype=np.float16))
    assert grad_x.dtype == grad_w.dtype == grad_b.dtype == np.float16
    # float16 is spaced 2 apart above 2048. Summed in float16, 2048 + 1 rounds back to 2048
    # (ties to even) three times: 2048. Summed in float32: 2051, rounded once to float16
    # (a tie between 2050 and 2052, to even): 2052.
    assert grad_w.tolist() == [[[2052.0]]]
    assert grad_b.tolist() == [4.0]
    assert grad_x.tolist() == [[1.0, 1.0, 1.0, 1.0]]


def test_integer_overflow_is_refused_before_any_work() -> None:
    big = np.array([[[2**40]]], dtype=np.int64)
    with pytest.raises(OverflowError, match=r"could overflow.*dtype=object"):
        grad.conv_input((1, 1, 1), big, big)
    with pytest.raises(OverflowError, match=r"could overflow.*dtype=object"):
        grad.conv_weight(big, (1, 1, 1), big)
    # The same call in Python ints is exact.
    exact = grad.conv_input((1, 1, 1), big.astype(object), big.astype(object))
    assert exact.tolist() == [[[2**80]]]


def test_inputs_are_untouched_and_results_fresh() -> None:
    x = np.broadcast_to(np.arange(5.0), (1, 2, 5))
    w = np.ones((2, 2, 2))
    w.setflags(write=False)
    g = np.ones((1, 2, 6))[:, :, ::-1]
    before = (x.copy(), w.copy(), g.copy())
    results = mc.conv_backward(g, x, w, padding=(1,), padding_mode="reflect")
    for original, kept in zip((x, w, g), before, strict=True):
        np.testing.assert_array_equal(original, kept)
    for result in results:
        assert result.flags.writeable
        assert result.flags.c_contiguous
        assert not any(np.shares_memory(result, array) for array in (x, w, g))


def test_zero_batch_gives_empty_and_zero_gradients() -> None:
    x = np.zeros((0, 2, 5))
    w = np.ones((3, 2, 2))
    grad_x, grad_w, grad_b = mc.conv_backward(np.zeros((0, 3, 4)), x, w)
    assert grad_x.shape == (0, 2, 5)
    assert grad_w.tolist() == np.zeros((3, 2, 2)).tolist()
    assert grad_b.tolist() == [0.0, 0.0, 0.0]


def test_rank_checked_variants_agree_with_the_general_functions() -> None:
    rng = np.random.default_rng(5)
    for dims, (input_fn, weight_fn) in enumerate(
        [
            (grad.conv1d_input, grad.conv1d_weight),
            (grad.conv2d_input, grad.conv2d_weight),
            (grad.conv3d_input, grad.conv3d_weight),
        ],
        start=1,
    ):
        x = rng.integers(-9, 10, (2, 2, *(4,) * dims))
        w = rng.integers(-9, 10, (3, 2, *(2,) * dims))
        g = rng.integers(-9, 10, mc.conv(x, w, stride=2, padding=1).shape)
        np.testing.assert_array_equal(
            input_fn(x.shape, w, g, 2, 1), grad.conv_input(x.shape, w, g, 2, 1)
        )
        np.testing.assert_array_equal(
            weight_fn(x, w.shape, g, 2, 1), grad.conv_weight(x, w.shape, g, 2, 1)
        )


# --- bad arguments ----------------------------------------------------------------------

X = np.zeros((1, 2, 5, 5))
W = np.ones((4, 2, 3, 3))
G = np.ones((1, 4, 3, 3))


def row(
    id_: str, error: type[Exception], match: str, function: Any, *args: Any, **kwargs: Any
) -> Any:
    return pytest.param(function, args, kwargs, error, match, id=id_)


BAD_CALLS = [
    row(
        "grad-output-shape",
        ValueError,
        r"grad_output must have the shape of the convolution's output, \(1, 4, 3, 3\) for x "
        r"of shape \(1, 2, 5, 5\) and weight of shape \(4, 2, 3, 3\).* got grad_output of "
        r"shape \(1, 4, 5, 5\)",
        grad.conv_input,
        X.shape,
        W,
        np.ones((1, 4, 5, 5)),
    ),
    row(
        "grad-output-shape-backward",
        ValueError,
        r"got grad_output of shape \(4, 3, 3\)",
        mc.conv_backward,
        np.ones((4, 3, 3)),
        X,
        W,
    ),
    row(
        "input-shape-not-a-sequence",
        TypeError,
        r"input_shape must be a sequence of ints \(a shape\), got 5 of type int",
        grad.conv_input,
        5,
        W,
        G,
    ),
    row(
        "input-shape-float",
        TypeError,
        r"input_shape must be an int, got 5.0 of type float",
        grad.conv_input,
        (1, 2, 5.0, 5),
        W,
        G,
    ),
    row(
        "input-shape-negative",
        ValueError,
        r"input_shape must have non-negative sizes, got \(1, 2, -5, 5\)",
        grad.conv_input,
        (1, 2, -5, 5),
        W,
        G,
    ),
    row(
        "weight-shape-not-a-sequence",
        TypeError,
        r"weight_shape must be a sequence of ints \(a shape\), got 'abc' of type str",
        grad.conv_weight,
        X,
        "abc",
        G,
    ),
    row(
        "conv2d-input-rank",
        ValueError,
        r"weight must have 4 dimensions .* got weight of shape \(4, 2, 3\)",
        grad.conv2d_input,
        (1, 2, 5),
        np.ones((4, 2, 3)),
        np.ones((1, 4, 3)),
    ),
    row(
        "conv1d-weight-rank",
        ValueError,
        r"weight must have 3 dimensions .* got weight of shape \(4, 2, 3, 3\)",
        grad.conv1d_weight,
        X,
        W.shape,
        G,
    ),
    row(
        "channels",
        ValueError,
        r"Given groups=1, weight of shape \(4, 3, 3, 3\), expected x of shape \(1, 2, 5, 5\) "
        r"to have 3 channels, but got 2 channels instead",
        grad.conv_weight,
        X,
        (4, 3, 3, 3),
        G,
    ),
    row(
        "stride-zero", ValueError, r"stride must be >= 1", grad.conv_input, X.shape, W, G, stride=0
    ),
    row(
        "padding-mode",
        ValueError,
        r"padding_mode must be one of \('zeros', 'reflect', 'replicate', 'circular', "
        r"'symmetric'\), got 'mirror'",
        grad.conv_weight,
        X,
        W.shape,
        G,
        padding_mode="mirror",
    ),
    row(
        "bool-grad-output",
        TypeError,
        r"grad_output must hold numbers .* got dtype bool",
        grad.conv_input,
        X.shape,
        W,
        G.astype(bool),
    ),
    row(
        "string-weight",
        TypeError,
        r"weight must hold numbers .* got dtype <U1",
        grad.conv_input,
        X.shape,
        np.full((4, 2, 3, 3), "a"),
        G,
    ),
    row(
        "bias-grad-no-channels",
        ValueError,
        r"grad_output must have a channel axis \(2 dimensions or more\), got grad_output of "
        r"shape \(3,\)",
        grad.conv_bias,
        np.ones(3),
    ),
    row(
        "bias-grad-overflow",
        OverflowError,
        r"could overflow",
        grad.conv_bias,
        np.full((2, 1, 2), 2**62, dtype=np.int64),
    ),
    row(
        "too-large-to-allocate",
        MemoryError,
        r"the output of shape \(1, 1, 1048576, 1048576\)",
        grad.conv_input,
        (1, 1, 2**20, 2**20),
        np.ones((1, 1, 1, 1)),
        np.broadcast_to(np.zeros(()), (1, 1, 2**20, 2**20)),
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


# --- PyTorch autograd, when installed ---------------------------------------------------


def _explicit_pairs(problem: ConvProblem) -> list[tuple[int, int]]:
    """``(before, after)`` per axis, from the problem's int / per-axis / pairs padding."""
    dims = problem.spatial_dims
    padding = problem.padding
    if isinstance(padding, int):
        return [(padding, padding)] * dims
    assert not isinstance(padding, str)
    return [item if isinstance(item, tuple) else (item, item) for item in padding]


@given(problems_with_gradient(dtype="float64", torch_expressible=True))
def test_gradients_equal_torch_autograd_exactly(case: tuple[ConvProblem, NDArray[Any]]) -> None:
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    problem, g = case
    x, w, b, options = problem.x, problem.weight, problem.bias, problem.conv_kwargs()
    dims = problem.spatial_dims
    batched = x.ndim == w.ndim
    xt = torch.tensor(x if batched else x[np.newaxis], requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    pads = [side for pair in reversed(_explicit_pairs(problem)) for side in pair]
    padded = functional.pad(xt, pads, mode=TORCH_PAD_MODES[problem.padding_mode])
    conv = (functional.conv1d, functional.conv2d, functional.conv3d)[dims - 1]
    yt = conv(
        padded, wt, bt, stride=problem.stride, dilation=problem.dilation, groups=problem.groups
    )
    yt.backward(torch.tensor(g if batched else g[np.newaxis]))
    assert xt.grad is not None
    assert wt.grad is not None
    assert bt.grad is not None
    grad_x, grad_w, grad_b = mc.conv_backward(g, x, w, **options)
    expected_x = xt.grad.numpy() if batched else xt.grad.numpy()[0]
    np.testing.assert_array_equal(grad_x, expected_x)
    np.testing.assert_array_equal(grad_w, wt.grad.numpy())
    np.testing.assert_array_equal(grad_b, bt.grad.numpy())


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_nan_reaches_only_the_gradients_of_its_window_without_warnings(padding_mode: str) -> None:
    x = np.arange(12.0).reshape(1, 2, 6)
    w = np.ones((2, 2, 3))
    g = np.ones((1, 2, 6))
    g[0, 1, 0] = np.nan  # output position 0 reads padded 0..2: x[1], x[0], x[1] / x[5] ...
    grad_x, grad_w, grad_b = mc.conv_backward(g, x, w, padding=1, padding_mode=padding_mode)
    # The positions reached: a gradient of 1 at the NaN's place only, through all-ones
    # kernels, lands exactly where the NaN must go.
    indicator = np.zeros_like(g)
    indicator[0, 1, 0] = 1.0
    reached = grad.conv_input(x.shape, w, indicator, padding=1, padding_mode=padding_mode) > 0
    np.testing.assert_array_equal(np.isnan(grad_x), reached)
    assert reached.any()
    assert not reached.all()
    # Every weight of output channel 1 sees output position 0; channel 0 never does.
    assert np.isnan(grad_w[1]).all()
    assert not np.isnan(grad_w[0]).any()
    assert np.isnan(grad_b).tolist() == [False, True]


def test_float16_overflow_gives_inf_without_warnings() -> None:
    big = np.full((1, 1, 2), 60000, np.float16)
    x = np.full((1, 1, 3), 60000, np.float16)
    grad_x, grad_w, grad_b = mc.conv_backward(big, x, np.ones((1, 1, 2), np.float16))
    assert grad_x.tolist() == [[[60000.0, np.inf, 60000.0]]]
    assert np.isinf(grad_w).all()
    assert np.isinf(grad_b).all()


# --- method= and the memory budget -------------------------------------------------------
#
# The weight gradient runs on the forward engine's paths; every path must give the exact
# result on integers and Fractions, which an independent reference below computes from
# the definition (np.pad for the padding, one strided slice per kernel tap).


def reference_weight_gradient(problem: ConvProblem, g: NDArray[Any]) -> NDArray[Any]:
    """``grad_w[o, c, t] = sum_{n, p} g[n, o, p] * x_pad[n, c, p * stride + t * dilation]``.

    In exact object arithmetic; only the resolution of string paddings ("same", "full")
    into pairs comes from the library (the forward pass's own validation).
    """
    x, w = problem.x, problem.weight
    geometry = build_geometry(x.shape, w.shape, None, **problem.conv_kwargs())
    batched = x.ndim == w.ndim
    xb = (x if batched else x[np.newaxis]).astype(object)
    gb = (g if batched else g[np.newaxis]).astype(object)
    pads = [(0, 0), (0, 0), *geometry.padding]
    mode: Any = NUMPY_PAD_MODES[geometry.padding_mode]
    x_pad = np.pad(xb, pads, mode=mode) if mode != "constant" else np.pad(xb, pads)
    groups = geometry.groups
    in_per, out_per = w.shape[1], w.shape[0] // groups
    out_shape = gb.shape[2:]
    result = np.zeros(w.shape, dtype=object)
    for o in range(w.shape[0]):
        group = o // out_per
        for c in range(in_per):
            for taps in np.ndindex(*w.shape[2:]):
                window = tuple(
                    slice(t * d, t * d + s * (p - 1) + 1, s)
                    for t, d, s, p in zip(
                        taps, geometry.dilation, geometry.stride, out_shape, strict=True
                    )
                )
                values = x_pad[(slice(None), group * in_per + c, *window)]
                result[(o, c, *taps)] = sum(
                    (a * b for a, b in zip(gb[:, o].ravel(), values.ravel(), strict=True)),
                    start=0,
                )
    return result


def _as_fractions(array: NDArray[Any], denominator: int) -> NDArray[Any]:
    out = np.empty(array.shape, dtype=object)
    for index, value in np.ndenumerate(array):
        out[index] = Fraction(int(value), denominator)
    return out


def _forward_method_error(method: Any, kernel: tuple[int, ...]) -> str:
    """The ValueError mimo_conv.conv raises for ``method`` with this kernel shape."""
    x = np.ones((1, 1, *(3,) * len(kernel)))
    with pytest.raises(ValueError, match="method") as forward:
        mc.conv(x, np.ones((1, 1, *kernel)), method=method)
    return str(forward.value)


# Gradients refuse "winograd" (forward only; tests/test_winograd.py).
ALL_METHODS = tuple(name for name in mc.METHOD_NAMES if name not in {"auto", "winograd"})


@settings(max_examples=40)
@given(
    problems_with_gradient(),
    st.sampled_from(("auto", *ALL_METHODS)),
    st.sampled_from(("int64", "fractions")),
)
def test_every_method_gives_the_exact_weight_gradient(
    case: tuple[ConvProblem, NDArray[Any]], method: str, kind: str
) -> None:
    problem, g = case
    x, w, options = problem.x, problem.weight, problem.conv_kwargs()
    if kind == "fractions":
        x, g = _as_fractions(x, 3), _as_fractions(g, 7)
        problem = dataclasses.replace(problem, x=x)
    if method == "matmul" and any(k != 1 for k in w.shape[2:]):
        with pytest.raises(ValueError, match=re.escape(_forward_method_error(method, w.shape[2:]))):
            grad.conv_weight(x, w.shape, g, method=method, **options)
        return
    expected = reference_weight_gradient(problem, g)
    actual = grad.conv_weight(x, w.shape, g, method=method, **options)
    assert actual.dtype == (np.int64 if kind == "int64" else object)
    assert actual.shape == w.shape
    assert actual.tolist() == expected.tolist()
    # And through conv_backward, with the adjoint identity against the forward pass.
    grad_x, grad_w, _ = mc.conv_backward(g, x, w, method=method, **options)
    assert grad_w.tolist() == expected.tolist()
    y = mc.conv(x, w, **options)
    assert inner(y, g) == inner(x, grad_x) == inner(w, grad_w)


@pytest.mark.parametrize("method", ["auto", *ALL_METHODS])
def test_float_weight_gradient_is_within_the_rounding_bound(method: str) -> None:
    # |computed - exact| <= gamma_n * sum |g| |x_pad| with n = N * L products per element
    # (Higham's dot-product bound, any summation order), checked in exact Fractions.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4, 7, 6))
    kernel = (1, 1) if method == "matmul" else (3, 2)
    options: dict[str, Any] = {
        "stride": (2, 1),
        "dilation": (1, 2),
        "padding": ((1, 0), (2, 1)),
        "groups": 2,
        "padding_mode": "reflect",
    }
    w_shape = (4, 2, *kernel)
    g = rng.standard_normal(mc.conv(x, np.zeros(w_shape), **options).shape)
    actual = grad.conv_weight(x, w_shape, g, method=method, **options)
    assert actual.dtype == np.float64
    problem = ConvProblem(
        x=_as_fractions_exact(x),
        weight=np.zeros(w_shape),
        bias=None,
        stride=options["stride"],
        padding=options["padding"],
        dilation=options["dilation"],
        groups=2,
        padding_mode="reflect",
        out_shape=g.shape,
    )
    exact = reference_weight_gradient(problem, _as_fractions_exact(g))
    magnitude = reference_weight_gradient(
        dataclasses.replace(problem, x=np.abs(problem.x)), np.abs(_as_fractions_exact(g))
    )
    n = g.shape[0] * math.prod(g.shape[2:])
    bound = Fraction(gamma(n, U64))
    for index in np.ndindex(w_shape):
        assert abs(Fraction(float(actual[index])) - exact[index]) <= bound * magnitude[index], index


def reference_input_gradient(
    problem: ConvProblem, weight: NDArray[Any], g: NDArray[Any]
) -> NDArray[Any]:
    """``P^T`` of ``grad_xpad[n, c, p * stride + t * dilation] += g[n, o, p] * w[o, c, t]``.

    In exact object arithmetic, straight from the definition: one strided slice of the
    padded input per output channel, input channel and kernel tap, then every padded
    position's gradient added to the input element ``np.pad`` copied into it (read off
    ``np.pad`` of the index ranges, one axis at a time as ``np.pad`` pads). Only the
    resolution of string paddings into pairs comes from the library.
    """
    x = problem.x
    geometry = build_geometry(x.shape, weight.shape, None, **problem.conv_kwargs())
    batched = x.ndim == weight.ndim
    gb = (g if batched else g[np.newaxis]).astype(object)
    spatial = x.shape[-geometry.spatial_dims :]
    padded_shape = tuple(
        size + before + after
        for size, (before, after) in zip(spatial, geometry.padding, strict=True)
    )
    grad_pad = np.zeros((gb.shape[0], x.shape[-geometry.spatial_dims - 1], *padded_shape), object)
    in_per, out_per = weight.shape[1], weight.shape[0] // geometry.groups
    out_shape = gb.shape[2:]
    for o in range(weight.shape[0]):
        group = o // out_per
        for c in range(in_per):
            for taps in np.ndindex(*weight.shape[2:]):
                window = tuple(
                    slice(t * d, t * d + s * (p - 1) + 1, s)
                    for t, d, s, p in zip(
                        taps, geometry.dilation, geometry.stride, out_shape, strict=True
                    )
                )
                grad_pad[(slice(None), group * in_per + c, *window)] += (
                    gb[:, o] * weight[(o, c, *taps)]
                )
    mode: Any = NUMPY_PAD_MODES[geometry.padding_mode]
    sources = [
        np.pad(np.arange(size), pair, mode="constant", constant_values=-1)
        if mode == "constant"
        else np.pad(np.arange(size), pair, mode=mode)
        for size, pair in zip(spatial, geometry.padding, strict=True)
    ]
    result = np.zeros((grad_pad.shape[0], grad_pad.shape[1], *spatial), object)
    for index in np.ndindex(*padded_shape):
        source = tuple(int(axis[i]) for axis, i in zip(sources, index, strict=True))
        if min(source, default=0) >= 0:
            target: tuple[Any, ...] = (slice(None), slice(None), *source)
            result[target] += grad_pad[(slice(None), slice(None), *index)]
    return result if batched else result[0]


@given(problems_with_gradient(nonempty=True), st.sampled_from(("int64", "fractions")))
def test_every_method_gives_the_exact_input_gradient(
    case: tuple[ConvProblem, NDArray[Any]], kind: str
) -> None:
    problem, g = case
    x, w, options = problem.x, problem.weight, problem.conv_kwargs()
    if kind == "fractions":
        w, g = _as_fractions(w, 3), _as_fractions(g, 7)
    expected = reference_input_gradient(problem, w, g).tolist()
    dtype = np.int64 if kind == "int64" else object
    pointwise = all(k == 1 for k in w.shape[2:])
    # "naive" loops in Python over every output position: only on the smaller cases.
    tiny = math.prod(x.shape) * w.shape[0] <= 2000
    methods = [
        m for m in ("auto", *ALL_METHODS) if (m != "matmul" or pointwise) and (m != "naive" or tiny)
    ]
    for method in methods:
        actual = grad.conv_input(x.shape, w, g, method=method, **options)
        assert actual.dtype == dtype, method
        assert actual.shape == x.shape, method
        assert actual.tolist() == expected, method
    if not pointwise:
        with pytest.raises(
            ValueError, match=re.escape(_forward_method_error("matmul", w.shape[2:]))
        ):
            grad.conv_input(x.shape, w, g, method="matmul", **options)
    # The adjoint identity against the forward pass, on one engine path.
    y = mc.conv(x, w, **options)
    assert inner(y, g) == inner(x, grad.conv_input(x.shape, w, g, method="gemm", **options))


@pytest.mark.parametrize("method", ["auto", *ALL_METHODS])
def test_float_input_gradient_is_within_the_rounding_bound(method: str) -> None:
    # |computed - exact| <= gamma_m * P^T(|g| scattered through |w|) elementwise (Higham's
    # dot-product bound, any summation order): an element of dL/dx sums at most
    # m = C_out/groups * prod(k) * copies products, where the engine route's zero-inserted
    # terms are among the C_out/groups * prod(k) terms of each padded position and copies
    # <= prod(1 + before + after) (each border position copies one element). Checked in
    # exact Fractions against the reference.
    rng = np.random.default_rng(17)
    kernel = (1, 1) if method == "matmul" else (3, 2)
    options: dict[str, Any] = {
        "stride": (2, 1),
        "dilation": (1, 2),
        "padding": ((1, 0), (2, 1)),
        "groups": 2,
        "padding_mode": "reflect",
    }
    x_shape, w = (2, 4, 7, 6), rng.standard_normal((6, 2, *kernel))
    g = rng.standard_normal(mc.conv(np.zeros(x_shape), w, **options).shape)
    actual = grad.conv_input(x_shape, w, g, method=method, **options)
    assert actual.dtype == np.float64
    problem = ConvProblem(
        x=np.zeros(x_shape),
        weight=w,
        bias=None,
        stride=options["stride"],
        padding=options["padding"],
        dilation=options["dilation"],
        groups=2,
        padding_mode="reflect",
        out_shape=g.shape,
    )
    exact = reference_input_gradient(problem, _as_fractions_exact(w), _as_fractions_exact(g))
    magnitude = reference_input_gradient(
        problem, np.abs(_as_fractions_exact(w)), np.abs(_as_fractions_exact(g))
    )
    copies = math.prod(1 + before + after for before, after in options["padding"])
    m = (w.shape[0] // 2) * math.prod(kernel) * copies
    bound = Fraction(gamma(m, U64))
    for index in np.ndindex(x_shape):
        assert abs(Fraction(float(actual[index])) - exact[index]) <= bound * magnitude[index], index


@pytest.mark.parametrize("method", ["auto", *ALL_METHODS])
def test_float16_input_gradient_accumulates_in_float32_on_every_path(method: str) -> None:
    # Four output channels feed one input element through 1 x 1 kernels of ones: their
    # gradients 2048, 1, 1, 1 sum to 2051 in float32, rounded once to float16 (a tie
    # between 2050 and 2052, to even): 2052. Summed in float16, 2048 + 1 rounds back to
    # 2048 (ties to even) every time: 2048.
    g = np.array([[[2048.0], [1.0], [1.0], [1.0]]], dtype=np.float16)
    w = np.ones((4, 1, 1), dtype=np.float16)
    actual = grad.conv_input((1, 1, 1), w, g, method=method)
    assert actual.dtype == np.float16
    assert actual.tolist() == [[[2052.0]]]


def test_auto_input_gradient_takes_the_engine_route_when_the_scatter_does_not_fit() -> None:
    # One image's scatter needs 8 * (8 * 576 + 16 * (676 + 9 * 576)) B = 813 KiB: above the
    # budget, so "auto" runs the engine route (half the budget for its own buffers, 253.5
    # KiB per image) on the cost model's path instead of raising; exact on integers.
    x, w, g = _budget_problem(integers=True)
    expected = grad.conv2d_input(x.shape, w, g, padding=1)
    assert np.array_equal(
        grad.conv2d_input(x.shape, w, g, padding=1, memory_budget=2**19), expected
    )


def _as_fractions_exact(array: NDArray[np.float64]) -> NDArray[Any]:
    out = np.empty(array.shape, dtype=object)
    for index, value in np.ndenumerate(array):
        out[index] = Fraction(float(value))
    return out


@pytest.mark.parametrize(
    "function",
    [
        lambda method: grad.conv_input(
            (1, 1, 4, 4), np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), method=method
        ),
        lambda method: grad.conv2d_input(
            (1, 1, 4, 4), np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), method=method
        ),
        lambda method: grad.conv_weight(
            np.ones((1, 1, 4, 4)), (1, 1, 3, 3), np.ones((1, 1, 2, 2)), method=method
        ),
        lambda method: grad.conv2d_weight(
            np.ones((1, 1, 4, 4)), (1, 1, 3, 3), np.ones((1, 1, 2, 2)), method=method
        ),
        lambda method: mc.conv_backward(
            np.ones((1, 1, 2, 2)), np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), method=method
        ),
    ],
    ids=["conv_input", "conv2d_input", "conv_weight", "conv2d_weight", "conv_backward"],
)
@pytest.mark.parametrize("method", ["bogus", "matmul", None, "AUTO"])
def test_bad_methods_raise_the_forward_passes_errors(function: Any, method: object) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(_forward_method_error(method, (3, 3)))}$"):
        function(method)


def test_every_rank_checked_variant_accepts_method_and_budget() -> None:
    rng = np.random.default_rng(12)
    for dims, (input_fn, weight_fn) in enumerate(
        [
            (grad.conv1d_input, grad.conv1d_weight),
            (grad.conv2d_input, grad.conv2d_weight),
            (grad.conv3d_input, grad.conv3d_weight),
        ],
        start=1,
    ):
        x = rng.integers(-9, 10, (2, 2, *(4,) * dims))
        w = rng.integers(-9, 10, (2, 2, *(2,) * dims))
        g = rng.integers(-9, 10, (2, 2, *(3,) * dims))
        expected_x = grad.conv_input(x.shape, w, g)
        expected_w = grad.conv_weight(x, w.shape, g, method="naive")
        for method in ("shift", "gemm"):
            # 16 KiB: one image of the 3-d case per chunk, the whole batch otherwise.
            got_x = input_fn(x.shape, w, g, method=method, memory_budget=2**14)
            got_w = weight_fn(x, w.shape, g, method=method, memory_budget=2**14)
            np.testing.assert_array_equal(got_x, expected_x)
            np.testing.assert_array_equal(got_w, expected_w)


def _budget_problem(*, integers: bool = False) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """im2col of the whole batch: 8 images * 16 channels * 9 taps * 24 * 24 * 8 B = 5.3 MiB.

    ``integers``: small integer values, whose float64 sums are exact in any order.
    """
    rng = np.random.default_rng(13)
    shapes = ((8, 16, 24, 24), (8, 16, 3, 3), (8, 8, 24, 24))
    if integers:
        x, w, g = (rng.integers(-8, 9, shape).astype(np.float64) for shape in shapes)
    else:
        x, w, g = (rng.standard_normal(shape) for shape in shapes)
    return x, w, g


def _slack(*arrays: NDArray[Any]) -> int:
    """Fixed-size extras on top of the budget, as in test_paths: converted or reshaped
    copies of the arrays that play the kernel (the weight for conv_input, grad_output for
    conv_weight), NumPy's ufunc iterator buffers (np.getbufsize() elements for each of up
    to 3 operands) and Python objects."""
    return sum(a.nbytes for a in arrays) + 3 * np.getbufsize() * 8 + 32 * 1024


@pytest.mark.parametrize("budget", [2**20, 3 * 2**19])
def test_input_gradient_temporaries_stay_within_the_budget(budget: int) -> None:
    # Budgets below the unbudgeted call's ~1.9 MB (the stride-phase route) so that both bind.
    # One image needs 8 * (8 * 576 + 16 * (676 + 9 * 576)) B = 813 KiB: 1 or 2 per chunk.
    # Integer values: the cost model may take another path under the budget (row_gemm
    # unbudgeted, gemm in chunks), and only exact sums are equal in every order.
    x, w, g = _budget_problem(integers=True)
    whole, expected = peak_temporary(lambda: grad.conv2d_input(x.shape, w, g, padding=1))
    peak, result = peak_temporary(
        lambda: grad.conv2d_input(x.shape, w, g, padding=1, memory_budget=budget)
    )
    assert peak <= budget + _slack(w), (peak, budget)
    assert whole > budget + _slack(w), whole  # without the budget it takes more: not vacuous
    assert np.array_equal(result, expected)  # chunks split the batch, never a sum


# The engine route of the input gradient on _budget_problem: per image, its own buffers are
# the grad_output (8 * 24 * 24, stride 1: nothing inserted) and the padded gradient
# (16 * 26 * 26), then the padded gradient with two interior copies of unpad_adjoint:
# 8 * (16 * 676 + max(8 * 576, 2 * 16 * 676)) B = 259584 B (253.5 KiB), allowed half the
# budget; the path runs under the rest.
ENGINE_INPUT_BYTES_PER_IMAGE = 8 * (16 * 676 + max(8 * 576, 2 * 16 * 676))


@pytest.mark.parametrize(
    ("method", "budget"),
    [
        ("gemm", 2**19),
        ("row_gemm", 2**19),
        ("shift", 2**19),
        ("im2col", 2**21),  # its columns of one whole image (465 KiB) need the larger budget
        ("einsum", 2**19),
        ("auto", 2**19),  # the scatter (813 KiB per image) does not fit: the engine route
        ("auto", 2**20),  # neither does it here: the engine route with room for its path
    ],
)
def test_engine_input_gradient_temporaries_stay_within_the_budget(method: str, budget: int) -> None:
    # Integer values: every path and chunking gives the exact sums, so equal results; the
    # reference is the scatter without a budget.
    x, w, g = _budget_problem(integers=True)

    def gradient(limit: int | None) -> NDArray[Any]:
        return grad.conv2d_input(x.shape, w, g, padding=1, method=method, memory_budget=limit)

    # Warm up: the paths cache a plan per geometry and budget, lasting memory rather than a
    # temporary of the call.
    gradient(None), gradient(budget)
    whole, _ = peak_temporary(lambda: gradient(None))
    peak, result = peak_temporary(lambda: gradient(budget))
    assert peak <= budget + _slack(w), (peak, budget)
    assert whole > budget + _slack(w), whole  # without the budget it takes more: not vacuous
    assert np.array_equal(result, grad.conv2d_input(x.shape, w, g, padding=1))


@pytest.mark.parametrize("method", ["gemm", "row_gemm", "shift", "einsum", "auto"])
def test_engine_input_gradient_gives_its_path_only_the_rest_of_the_budget(method: str) -> None:
    # Larger images, so that the budget dwarfs the fixed slack: one image's own buffers
    # are 8 * (32 * 50 * 50 + max(32 * 48 * 48, 2 * 32 * 50 * 50)) B = 1.8 MiB, within half
    # of 4 MiB; a path allowed the whole budget on top of them would exceed it.
    rng = np.random.default_rng(19)
    x_shape, w = (3, 32, 48, 48), rng.integers(-8, 9, (32, 32, 3, 3)).astype(np.float64)
    g = rng.integers(-8, 9, (3, 32, 48, 48)).astype(np.float64)
    budget = 2**22

    def gradient(limit: int | None) -> NDArray[Any]:
        return grad.conv2d_input(x_shape, w, g, padding=1, method=method, memory_budget=limit)

    gradient(budget)  # warm up the paths' cached plans
    whole, _ = peak_temporary(lambda: gradient(None))
    peak, result = peak_temporary(lambda: gradient(budget))
    assert peak <= budget + _slack(w), (peak, budget)
    assert whole > budget + _slack(w), whole
    assert np.array_equal(result, grad.conv2d_input(x_shape, w, g, padding=1))


@pytest.mark.parametrize("method", ["gemm", "shift"])
def test_engine_input_gradient_memory_error_comes_before_the_buffers(method: str) -> None:
    x, w, g = _budget_problem()
    # Too small for one image's own buffers beside the path: the error names the least
    # budget that runs (one image's buffers, ENGINE_INPUT_BYTES_PER_IMAGE, and the path's
    # smallest working set), and comes before any buffer is allocated.
    budget = ENGINE_INPUT_BYTES_PER_IMAGE
    message = (
        r"the zero-inserted grad_output and padded gradient of one image \(253\.5 KiB\) and "
        r"the path's smallest working set need (\d+) bytes"
    )
    needed: list[int] = []

    def failing() -> NDArray[Any]:
        with pytest.raises(MemoryError, match=message) as caught:
            grad.conv2d_input(x.shape, w, g, padding=1, method=method, memory_budget=budget)
        found = re.search(message, str(caught.value))
        assert found is not None
        needed.append(int(found.group(1)))
        return np.empty(0)

    peak, _ = peak_temporary(failing)
    assert peak <= budget, peak  # raised before any buffer of one image was allocated
    # The named budget runs, one byte less does not.
    grad.conv2d_input(x.shape, w, g, padding=1, method=method, memory_budget=needed[0])
    with pytest.raises(MemoryError):
        grad.conv2d_input(x.shape, w, g, padding=1, method=method, memory_budget=needed[0] - 1)


@pytest.mark.parametrize(
    ("method", "budget"),
    [
        ("gemm", 2**18),
        # row_gemm and shift re-lay out their kernels (here grad_output, 288 KiB): counted.
        ("row_gemm", 2**19),
        ("shift", 360_000),
        ("einsum", 2**19),
        ("auto", 2**18),  # too small for one image's windows: the cost model's path
        ("auto", 2**20),  # one image's windows (850 KiB) fit: the direct product per image
    ],
)
def test_weight_gradient_temporaries_stay_within_the_budget(method: str, budget: int) -> None:
    # The weight gradient is a forward convolution of 16 "images" (input channels) of 8
    # channels (the batch) by a 24 x 24 kernel (grad_output): its im2col buffer is the
    # same 5.3 MiB. (einsum's buffer of one output row, 216 KiB, needs the larger budget.)
    # Integer values: every path and chunking gives the exact sums, so equal results.
    x, w, g = _budget_problem(integers=True)

    def gradient(limit: int | None) -> NDArray[Any]:
        return grad.conv2d_weight(x, w.shape, g, padding=1, method=method, memory_budget=limit)

    # Warm up: the paths cache a plan per geometry and budget (one tap slice per kernel
    # tap, here 576 of them), lasting memory rather than a temporary of the call.
    gradient(None), gradient(budget)
    whole, expected = peak_temporary(lambda: gradient(None))
    peak, result = peak_temporary(lambda: gradient(budget))
    assert peak <= budget + _slack(g), (peak, budget)
    assert whole > budget + _slack(g), whole  # without the budget it takes more: not vacuous
    assert np.array_equal(result, expected)


def test_float_weight_gradient_stays_within_the_bound_whatever_the_chunking() -> None:
    # On the forward paths, chunks split input channels and rows, never a sum; BLAS may
    # still sum in another order for another matrix size. Each result is within
    # gamma_n * (|x| correlated with |g|) of the exact gradient (n terms per element), so
    # two results are within twice that of each other.
    x, w, g = _budget_problem()
    terms = g.shape[0] * math.prod(g.shape[2:])
    bound = 2 * gamma(terms, float(np.finfo(np.float64).eps) / 2)
    magnitude = grad.conv2d_weight(np.abs(x), w.shape, np.abs(g), padding=1)
    for method in ("gemm", "shift"):
        whole = grad.conv2d_weight(x, w.shape, g, padding=1, method=method)
        chunked = grad.conv2d_weight(x, w.shape, g, padding=1, method=method, memory_budget=2**19)
        assert np.all(np.abs(chunked - whole) <= bound * magnitude)
        assert not np.array_equal(magnitude, 0 * magnitude)  # the bound is not vacuous


def test_pointwise_matmul_weight_gradient_stays_within_the_budget() -> None:
    # "matmul" (1 x 1 kernels) chunks images: one image's converted, padded and strided
    # copies, products and grad_output are 8 * (16 * (576 + 2 * 676) + 8 * (16 + 676)) B
    # = 284 KiB.
    x, _, _ = _budget_problem()
    x = np.concatenate([x, -x])  # 16 images: their padded copies alone take 1.4 MiB
    g = np.random.default_rng(14).standard_normal((16, 8, 26, 26))

    def gradient(limit: int | None) -> NDArray[Any]:
        return grad.conv2d_weight(
            x, (8, 16, 1, 1), g, padding=1, method="matmul", memory_budget=limit
        )

    budget = 2**19
    whole, expected = peak_temporary(lambda: gradient(None))
    peak, result = peak_temporary(lambda: gradient(budget))
    assert peak <= budget + _slack(), (peak, budget)
    assert whole > budget + _slack(), whole
    # Chunking the images splits the sum over n, so float results may differ from one
    # chunk's in the last bits; on integer data they must be equal.
    xi, gi = np.round(x * 4).astype(np.int64), np.round(g * 4).astype(np.int64)
    np.testing.assert_array_equal(
        grad.conv2d_weight(xi, (8, 16, 1, 1), gi, padding=1, method="matmul", memory_budget=budget),
        grad.conv2d_weight(xi, (8, 16, 1, 1), gi, padding=1, method="naive"),
    )
    assert result.shape == expected.shape == (8, 16, 1, 1)


def test_weight_gradient_memory_error_names_the_buffer() -> None:
    x, w, g = _budget_problem()
    with pytest.raises(
        MemoryError,
        match=r"weight gradient runs as a forward convolution whose 'images' are the input "
        r"channels \(each holding the whole batch\): the smallest working set of the 'gemm' "
        # One 'image' is one input channel of the whole batch, padded: 8 * 26 * 26 * 8 B.
        r"path \(the padded copy of one input image 42\.2 KiB",
    ):
        grad.conv2d_weight(x, w.shape, g, padding=1, method="gemm", memory_budget=2**16)


# --- the stride-phase route of the input gradient ----------------------------------------
#
# "auto" compares the scatter, the stride phases (one correlation per group of output
# phases, no zeros inserted) and, for floats, the zero-inserted correlation. The phase
# route is forced here through its own functions, so every geometry and padding mode
# (the padded gradient, then the padding's adjoint) exercises it.


def _input_gradient_by_phases(
    problem: ConvProblem, weight: NDArray[Any], g: NDArray[Any]
) -> NDArray[Any]:
    """``grad.conv_input`` computed by the phase route alone."""
    from mimo_conv._core.dtypes import plan_dtypes  # noqa: PLC0415 - internals of one test
    from mimo_conv._gradients.phases import phase_input_gradient, plan_phases  # noqa: PLC0415

    options = problem.conv_kwargs()
    geometry = build_geometry(
        problem.x.shape,
        weight.shape,
        None,
        stride=options["stride"],
        padding=options["padding"],
        dilation=options["dilation"],
        groups=options["groups"],
        padding_mode=options["padding_mode"],
    )
    grads = g if geometry.batched else g[np.newaxis]
    dtypes = plan_dtypes(grads.dtype, weight.dtype)
    route = plan_phases(geometry, dtypes, "auto", 2**30, grads.shape[2:])
    shape = (geometry.batch_size, geometry.in_channels, *geometry.input_shape)
    if route is None:  # no work (an empty batch), or no phase reaches grad_output
        out = np.zeros(shape, dtypes.output)
    else:
        out = phase_input_gradient(grads, weight, geometry, dtypes, route)
    return out if geometry.batched else out[0]


@given(problems_with_gradient(nonempty=True), st.sampled_from(("int64", "fractions")))
def test_phase_route_gives_the_exact_input_gradient_for_every_padding_mode(
    case: tuple[ConvProblem, NDArray[Any]], kind: str
) -> None:
    problem, g = case
    w = problem.weight
    if kind == "fractions":
        w, g = _as_fractions(w, 3), _as_fractions(g, 7)
    actual = _input_gradient_by_phases(problem, w, g)
    assert actual.shape == problem.x.shape
    assert actual.tolist() == reference_input_gradient(problem, w, g).tolist()


def test_auto_input_gradient_memory_error_names_the_least_budget_of_both_correlations() -> None:
    # Neither the scatter (813 KiB per image) nor the zero-inserted correlation fits; the
    # message names what each correlation needs, and the phases' figure is exact: that
    # budget runs, one byte less does not (the zero-inserted route needs more).
    x, w, g = _budget_problem(integers=True)
    message = (
        r"the zero-inserted grad_output and padded gradient of one image \(253\.5 KiB\) and "
        r"the path's smallest working set need (\d+) bytes .*, or as one correlation per "
        r"stride phase, whose own buffers and paths need (\d+) bytes"
    )

    def failing() -> NDArray[Any]:
        with pytest.raises(MemoryError, match=message) as caught:
            grad.conv2d_input(x.shape, w, g, padding=1, memory_budget=20_000)
        found = re.search(message, str(caught.value))
        assert found is not None
        needs.extend(int(found.group(i)) for i in (1, 2))
        return np.empty(0)

    needs: list[int] = []
    failing()  # warm up the cached plans: lasting memory, not a temporary of the call
    peak, _ = peak_temporary(failing)
    assert peak <= 20_000, peak  # raised before any buffer was allocated
    engine_needs, phase_needs = needs[:2]
    assert phase_needs < engine_needs
    expected = grad.conv2d_input(x.shape, w, g, padding=1)
    np.testing.assert_array_equal(
        grad.conv2d_input(x.shape, w, g, padding=1, memory_budget=phase_needs), expected
    )
    with pytest.raises(MemoryError):
        grad.conv2d_input(x.shape, w, g, padding=1, memory_budget=phase_needs - 1)


@pytest.mark.parametrize(
    ("padding_mode", "budget"),
    [("zeros", 2**19), ("zeros", 2**20), ("reflect", 2**20), ("reflect", 2**21),
     ("circular", 2**20)],
)  # fmt: skip
def test_phase_route_temporaries_stay_within_the_budget(padding_mode: str, budget: int) -> None:
    # A strided layer of four phase groups (2 x 2, 2 x 1, 1 x 2 and 1 x 1 taps) whose
    # route holds its own buffers (a group's output and, for a padding mode other than
    # zeros, the padded gradient in chunks of images) beside its paths' under the budget:
    # integer values, so every chunking gives the same sums.
    from mimo_conv._core.dtypes import plan_dtypes  # noqa: PLC0415 - internals of one test
    from mimo_conv._gradients.phases import phase_input_gradient, plan_phases  # noqa: PLC0415

    rng = np.random.default_rng(31)
    x_shape, w = (8, 16, 32, 32), rng.integers(-8, 9, (16, 16, 3, 3)).astype(np.float64)
    options: dict[str, Any] = {"stride": 2, "padding": 1, "padding_mode": padding_mode}
    g = rng.integers(-8, 9, mc.conv(np.zeros(x_shape), w, **options).shape).astype(np.float64)
    geometry = build_geometry(x_shape, w.shape, None, stride=2, padding=1, dilation=1,
                              groups=1, padding_mode=padding_mode)  # fmt: skip
    dtypes = plan_dtypes(np.dtype(np.float64))
    route = plan_phases(geometry, dtypes, "auto", budget, g.shape[2:])
    assert route is not None
    assert len(route.layout.groups) == 4
    whole = plan_phases(geometry, dtypes, "auto", 2**28, g.shape[2:])
    assert whole is not None

    def run(planned: Any) -> NDArray[Any]:
        return phase_input_gradient(g, w, geometry, dtypes, planned)

    run(route), run(whole)  # warm the cached plans: lasting memory, not temporaries
    unlimited, _ = peak_temporary(lambda: run(whole))
    peak, result = peak_temporary(lambda: run(route))
    np.testing.assert_array_equal(result, grad.conv_input(x_shape, w, g, **options))
    assert peak <= budget + _slack(w), (peak, budget)
    assert unlimited > budget + _slack(w), unlimited  # not vacuous: unchunked takes more
