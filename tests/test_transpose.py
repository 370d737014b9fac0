"""Transposed convolution: a plain-loop reference, conv_input, the adjoint, and PyTorch.

Every comparison is exact: the data are small integers, so every sum is exact in int64
and in float64 whatever the order.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

import mimo_conv as mc
from memory_probe import peak_temporary
from mimo_conv import grad
from mimo_conv._core.dtypes import plan_dtypes
from mimo_conv._gradients.phases import phase_input_gradient, plan_phases
from mimo_conv._ops.transpose import transpose_geometry
from mimo_conv._paths.registry import METHODS as ALL_PATHS
from mimo_conv.testing import assert_close

# Transposed convolutions refuse "winograd" (forward only; tests/test_winograd.py).
METHODS = {name: path for name, path in ALL_PATHS.items() if name != "winograd"}


@dataclass(frozen=True)
class Transposed:
    """One transposed-convolution problem with explicit (before, after) padding."""

    x: NDArray[Any]
    weight: NDArray[Any]
    bias: NDArray[Any] | None
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    output_padding: tuple[int, ...]
    groups: int
    dilation: tuple[int, ...]

    @property
    def symmetric_padding(self) -> tuple[int, ...]:
        return tuple(before for before, _ in self.padding)

    def kwargs(self, *, symmetric: bool = False) -> dict[str, Any]:
        return {
            "stride": self.stride,
            "padding": self.symmetric_padding if symmetric else self.padding,
            "output_padding": self.output_padding,
            "groups": self.groups,
            "dilation": self.dilation,
        }


@st.composite
def transposed_problems(
    draw: st.DrawFn,
    *,
    symmetric: bool = False,
    output_padding_below_stride: bool = False,
    dtype: Any = np.int64,
) -> Transposed:
    """Small valid problems: each bound derived from earlier draws, nothing filtered."""
    dims = draw(st.integers(1, 3))
    batched = draw(st.booleans())
    groups = draw(st.integers(1, 2))
    in_channels = groups * draw(st.integers(1, 2))
    out_per_group = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    in_shape = tuple(draw(st.integers(1, 4)) for _ in range(dims))
    extra, pairs = [], []
    for k, s, d, n in zip(kernel, stride, dilation, in_shape, strict=True):
        limit = s - 1 if output_padding_below_stride else max(s, d) - 1
        extra.append(draw(st.integers(0, limit)))
        room = (n - 1) * s + d * (k - 1) + extra[-1]  # before + after may take this much
        if symmetric:
            amount = draw(st.integers(0, min(2, room // 2)))
            pairs.append((amount, amount))
        else:
            before = draw(st.integers(0, min(2, room)))
            pairs.append((before, draw(st.integers(0, min(2, room - before)))))
    elements = st.integers(-9, 9)
    batch = (draw(st.integers(1, 2)),) if batched else ()
    x = draw(arrays(np.int64, (*batch, in_channels, *in_shape), elements=elements))
    weight = draw(arrays(np.int64, (in_channels, out_per_group, *kernel), elements=elements))
    bias = draw(st.none() | arrays(np.int64, (out_per_group * groups,), elements=elements))
    return Transposed(
        x.astype(dtype),
        weight.astype(dtype),
        None if bias is None else bias.astype(dtype),
        stride,
        tuple(pairs),
        tuple(extra),
        groups,
        dilation,
    )


def scatter_reference(problem: Transposed) -> NDArray[Any]:
    """The definition in plain loops: every input element adds a scaled kernel copy."""
    x = problem.x if problem.x.ndim == problem.weight.ndim else problem.x[np.newaxis]
    weight = problem.weight
    in_channels, out_per_group, *kernel = weight.shape
    in_per_group = in_channels // problem.groups
    out_shape = [
        (n - 1) * s - before - after + d * (k - 1) + extra + 1
        for n, s, (before, after), d, k, extra in zip(
            x.shape[2:],
            problem.stride,
            problem.padding,
            problem.dilation,
            kernel,
            problem.output_padding,
            strict=True,
        )
    ]
    out = np.zeros((x.shape[0], out_per_group * problem.groups, *out_shape), dtype=object)
    for n, i in itertools.product(range(x.shape[0]), range(in_channels)):
        group = i // in_per_group
        for q in itertools.product(*(range(size) for size in x.shape[2:])):
            for c, t in itertools.product(
                range(out_per_group), itertools.product(*(range(k) for k in kernel))
            ):
                position = [
                    qa * s + ta * d - before
                    for qa, s, ta, d, (before, _) in zip(
                        q, problem.stride, t, problem.dilation, problem.padding, strict=True
                    )
                ]
                if all(0 <= p < size for p, size in zip(position, out_shape, strict=True)):
                    out[(n, group * out_per_group + c, *position)] += (
                        x[(n, i, *q)] * weight[(i, c, *t)]
                    )
    if problem.bias is not None:
        out += problem.bias.astype(object).reshape((-1,) + (1,) * len(kernel))
    return out if problem.x.ndim == problem.weight.ndim else out[0]


@given(transposed_problems())
def test_matches_the_plain_loop_definition(problem: Transposed) -> None:
    out = mc.conv_transpose(problem.x, problem.weight, problem.bias, **problem.kwargs())
    assert out.dtype == np.int64
    assert out.tolist() == scatter_reference(problem).tolist()


@given(transposed_problems(output_padding_below_stride=True))
def test_equals_conv_input_for_matching_shapes(problem: Transposed) -> None:
    out = mc.conv_transpose(problem.x, problem.weight, **problem.kwargs())
    options = problem.kwargs()
    del options["output_padding"]
    gradient = grad.conv_input(out.shape, problem.weight, problem.x, **options)
    np.testing.assert_array_equal(out, gradient)
    # ... so conv_transpose is the adjoint of conv: <conv_transpose(x), y> == <x, conv(y)>.
    y = np.arange(out.size, dtype=np.int64).reshape(out.shape) % 7 - 3
    assert int(np.sum(out * y)) == int(np.sum(problem.x * mc.conv(y, problem.weight, **options)))


@given(transposed_problems(symmetric=True, dtype=np.float64))
def test_equals_torch_conv_transpose_exactly(problem: Transposed) -> None:
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    dims = problem.weight.ndim - 2
    function = (
        functional.conv_transpose1d,
        functional.conv_transpose2d,
        functional.conv_transpose3d,
    )[dims - 1]
    batched = problem.x.ndim == problem.weight.ndim
    expected = function(
        torch.tensor(problem.x if batched else problem.x[np.newaxis]),
        torch.tensor(problem.weight),
        None if problem.bias is None else torch.tensor(problem.bias),
        **problem.kwargs(symmetric=True),
    ).numpy()
    out = mc.conv_transpose(
        problem.x, problem.weight, problem.bias, **problem.kwargs(symmetric=True)
    )
    np.testing.assert_array_equal(out, expected if batched else expected[0])


def test_by_hand() -> None:
    # x0 = 1 places [1, 10, 100] at 0; x1 = 2 places [2, 20, 200] at 2 (stride 2).
    out = mc.conv_transpose1d([[[1, 2]]], [[[1, 10, 100]]], stride=2)
    assert out.tolist() == [[[1, 10, 102, 20, 200]]]
    # Dilation 2 spreads the taps; output_padding 1 (< dilation) appends one element.
    out = mc.conv_transpose1d([[[1, 2]]], [[[1, 10]]], dilation=2, output_padding=1)
    assert out.tolist() == [[[1, 2, 10, 20, 0]]]


def test_output_size_law() -> None:
    x = np.ones((1, 2, 5, 7, 3))
    w = np.ones((2, 3, 3, 2, 4))
    out = mc.conv_transpose3d(
        x, w, stride=(2, 3, 1), padding=(1, 0, 2), output_padding=(1, 2, 0), dilation=(1, 1, 2)
    )
    expected = tuple(
        (n - 1) * s - 2 * p + d * (k - 1) + e + 1
        for n, s, p, d, k, e in zip(
            (5, 7, 3), (2, 3, 1), (1, 0, 2), (1, 1, 2), (3, 2, 4), (1, 2, 0), strict=True
        )
    )
    assert out.shape == (1, 3, *expected) == (1, 3, 10, 22, 5)


def test_dtypes_follow_the_forward_policy() -> None:
    x8 = np.full((1, 2, 3), 100, dtype=np.int8)
    w8 = np.full((2, 1, 2), -100, dtype=np.int8)
    out = mc.conv_transpose(x8, w8)
    assert out.dtype == np.int64
    assert out[0, 0, 1] == 2 * 2 * 100 * -100
    half = mc.conv_transpose(np.ones((1, 1, 2), np.float16), np.ones((1, 1, 2), np.float16))
    assert half.dtype == np.float16
    assert half.tolist() == [[[1.0, 2.0, 1.0]]]
    thirds = np.array([[Fraction(1, 3), Fraction(2, 3)]], dtype=object)
    exact = mc.conv_transpose(thirds, np.array([[[Fraction(3, 2), 1]]], dtype=object), [1])
    assert exact.tolist() == [[Fraction(3, 2), Fraction(7, 3), Fraction(5, 3)]]
    big = np.array([[[2**40]]], dtype=np.int64)
    with pytest.raises(OverflowError, match=r"could overflow.*dtype=object"):
        mc.conv_transpose(big, big)
    assert mc.conv_transpose(big.astype(object), big.astype(object)).tolist() == [[[2**80]]]


def test_inputs_untouched_and_result_fresh() -> None:
    x = np.broadcast_to(np.arange(3.0), (2, 3))
    w = np.ones((2, 1, 2))[:, :, ::-1]
    before = (x.copy(), w.copy())
    out = mc.conv_transpose(x, w, stride=2)
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(w, before[1])
    assert out.flags.writeable
    assert out.flags.c_contiguous
    assert not np.shares_memory(out, x)
    assert not np.shares_memory(out, w)


def test_zero_batch() -> None:
    out = mc.conv_transpose(np.zeros((0, 2, 3)), np.ones((2, 4, 2)), bias=np.ones(4))
    assert out.shape == (0, 4, 4)


X = np.zeros((1, 2, 5))
W = np.ones((2, 3, 3))


def row(
    id_: str, error: type[Exception], match: str, *args: Any, function: Any = None, **kwargs: Any
) -> Any:
    return pytest.param(function or mc.conv_transpose, args, kwargs, error, match, id=id_)


BAD_CALLS = [
    row(
        "output-padding-too-large",
        ValueError,
        r"output_padding must be smaller than either stride or dilation, got "
        r"output_padding=\(2,\), stride=\(2,\), dilation=\(1,\)",
        X,
        W,
        stride=2,
        output_padding=2,
    ),
    row(
        "output-padding-equal-to-both",
        ValueError,
        r"smaller than either stride or dilation",
        X,
        W,
        output_padding=1,
    ),
    row(
        "output-padding-negative",
        ValueError,
        r"output_padding must be >= 0",
        X,
        W,
        output_padding=-1,
    ),
    row(
        "output-padding-float",
        TypeError,
        r"output_padding must be an int, got 0.5",
        X,
        W,
        output_padding=0.5,
    ),
    row(
        "padding-string",
        ValueError,
        r"padding must be an int, one int per axis or one \(before, after\) pair per axis for "
        r"a transposed convolution .* got 'same'",
        X,
        W,
        padding="same",
    ),
    row("padding-negative", ValueError, r"padding must be >= 0", X, W, padding=-1),
    row(
        "channels",
        ValueError,
        r"Given transposed=1, weight of shape \(3, 3, 3\), expected x of shape \(1, 2, 5\) to "
        r"have 3 channels, but got 2 channels instead",
        X,
        np.ones((3, 3, 3)),
    ),
    row("groups-zero", ValueError, r"groups must be >= 1, got 0", X, W, groups=0),
    row(
        "groups-not-dividing",
        ValueError,
        r"groups must divide the input channels: weight of shape \(2, 3, 3\) has 2 input "
        r"channels, which groups=3 does not divide",
        X,
        W,
        groups=3,
    ),
    row("groups-float", TypeError, r"groups must be an int, got 1.0", X, W, groups=1.0),
    row(
        "bias-shape",
        ValueError,
        r"bias must have shape \(3,\) to match weight of shape \(2, 3, 3\) and groups=1, got "
        r"bias of shape \(2,\)",
        X,
        W,
        np.ones(2),
    ),
    row(
        "stride-float", TypeError, r"stride must be an int, got 2.0 of type float", X, W, stride=2.0
    ),
    row(
        "stride-length",
        ValueError,
        r"stride must be an int or a sequence of 1 ints",
        X,
        W,
        stride=(1, 1),
    ),
    row("dilation-zero", ValueError, r"dilation must be >= 1", X, W, dilation=0),
    row(
        "x-rank",
        ValueError,
        r"x must have 2 \(unbatched\) or 3 \(batched\) dimensions for a weight of shape "
        r"\(2, 3, 3\), got x of shape \(5,\)",
        np.zeros(5),
        W,
    ),
    row(
        "weight-rank-2d",
        ValueError,
        r"weight must have 4 dimensions \(C_in, C_out/groups, 2 kernel dims\) for a 2-d "
        r"transposed convolution, got weight of shape \(2, 3, 3\)",
        X,
        W,
        function=mc.conv_transpose2d,
    ),
    row(
        "weight-rank-low", ValueError, r"weight must have at least 3 dimensions", X, np.ones((2, 3))
    ),
    row("weight-no-taps", ValueError, r"at least one kernel tap", X, np.ones((2, 3, 0))),
    row(
        "output-too-small",
        ValueError,
        r"must have at least one element per axis: .* = \(0,\) for x of shape \(1, 2, 1\)",
        np.zeros((1, 2, 1)),
        np.ones((2, 1, 2)),
        padding=1,
    ),
    row("bool-x", TypeError, r"x must hold numbers .* got dtype bool", X.astype(bool), W),
    row(
        "too-large-to-allocate",
        MemoryError,
        r"the output of shape",
        np.broadcast_to(np.zeros(()), (1, 1, 2**20, 2**20)),
        np.ones((1, 1, 1, 1)),
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


def test_rank_checked_variants() -> None:
    for dims, function in enumerate(
        (mc.conv_transpose1d, mc.conv_transpose2d, mc.conv_transpose3d), start=1
    ):
        x = np.arange(2 * 3**dims).reshape((1, 2, *(3,) * dims)) % 5
        w = np.arange(2 * 2 * 2**dims).reshape((2, 2, *(2,) * dims)) % 3
        out = function(x, w, stride=2)
        assert out.shape == (1, 2, *(6,) * dims)
        np.testing.assert_array_equal(out, mc.conv_transpose(x, w, stride=2))


def test_numpy_integers_inside_object_arrays_do_not_wrap_around() -> None:
    # np.int64(2**62) * 4 wraps to 0 in int64 arithmetic; the forward pass lifts NumPy
    # integers in object arrays to Python ints, and conv_transpose must as well.
    x = np.array([[[np.int64(2**62), 1]]], dtype=object)
    weight = np.array([[[4]]], dtype=object)
    out = mc.conv_transpose(x, weight)
    assert out.tolist() == [[[2**64, 4]]]


@pytest.mark.parametrize("method", [m for m in METHODS if m != "matmul"])
@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "groups"),
    [(1, 0, 1, 1), (2, 1, 1, 2), (3, (0, 2), 2, 1), ((2, 1), ((1, 0), (0, 1)), (1, 2), 2)],
    ids=["plain", "stride-padding-groups", "stride3-dilation", "per-axis"],
)
def test_every_method_gives_the_same_exact_result(
    method: str,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
) -> None:
    # Integer data: every path sums exact products, so all must agree bit for bit with
    # the plain-loop definition of the scatter.
    rng = np.random.default_rng(7)
    x = rng.integers(-9, 10, size=(2, 4, 3, 4))
    weight = rng.integers(-9, 10, size=(4, 3, 2, 3))
    bias = rng.integers(-9, 10, size=3 * groups)
    options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    expected = mc.conv_transpose(x, weight, bias, **options, method="auto")
    actual = mc.conv_transpose(x, weight, bias, **options, method=method)
    assert actual.dtype == np.int64
    assert np.array_equal(actual, expected)


def test_matmul_method_needs_a_1x1_kernel_as_in_the_forward_pass() -> None:
    with pytest.raises(ValueError, match="method='matmul' needs a 1 x 1 kernel"):
        mc.conv_transpose(np.ones((1, 2, 3)), np.ones((2, 1, 2)), method="matmul")
    one_by_one = mc.conv_transpose(np.ones((1, 2, 3)), np.ones((2, 1, 1)), method="matmul")
    assert np.array_equal(one_by_one, np.full((1, 1, 3), 2.0))


def test_float16_with_bias_is_rounded_once_on_every_method() -> None:
    # out[1] = 2048 * 1 + 1 * 1 + bias 1 = 2050, representable in float16 (its spacing is
    # 2 above 2048). Rounding the gradient (2049) to float16 first gives 2048 (ties to
    # even), and 2048 + 1 rounds to 2048 again: only one final rounding gives 2050.
    x = np.array([[[2048.0, 1.0]]], dtype=np.float16)
    weight = np.ones((1, 1, 2), dtype=np.float16)
    bias = np.array([1.0], dtype=np.float16)
    for method in ("auto", "gemm", "einsum", "shift"):
        out = mc.conv_transpose(x, weight, bias, method=method)
        assert out.dtype == np.float16
        assert float(out[0, 0, 1]) == 2050.0, method


# --- the stride-phase route ---------------------------------------------------------------
#
# One forward correlation per group of output phases, no zero-inserted copy: forced here
# through the route's own functions, so that every geometry exercises it whatever the cost
# model would choose; "auto" picks it by the cost model.


def by_phases(problem: Transposed, budget: int = 2**30) -> NDArray[Any]:
    """``conv_transpose`` (bias left out) computed by the phase route alone."""
    batched = problem.x.ndim == problem.weight.ndim
    x = problem.x if batched else problem.x[np.newaxis]
    geometry = transpose_geometry(x.shape, problem.weight.shape, None, **problem.kwargs())
    dtypes = plan_dtypes(x.dtype, problem.weight.dtype)
    route = plan_phases(geometry, dtypes, "auto", budget, x.shape[2:], True, x.dtype)
    if route is None:  # no phase has a tap that reaches x: all zero
        out = np.zeros((x.shape[0], geometry.in_channels, *geometry.input_shape), x.dtype)
    else:
        out = phase_input_gradient(x, problem.weight, geometry, dtypes, route)
    return out if batched else out[0]


@given(transposed_problems())
def test_phase_route_matches_the_plain_loop_definition(problem: Transposed) -> None:
    problem = dataclasses.replace(problem, bias=None)
    out = by_phases(problem)
    assert out.dtype == np.int64
    assert out.tolist() == scatter_reference(problem).tolist()


@given(transposed_problems(dtype=object))
def test_phase_route_is_exact_on_fractions(problem: Transposed) -> None:
    thirds = np.vectorize(lambda value: Fraction(int(value), 3), otypes=[object])
    problem = dataclasses.replace(
        problem, x=thirds(problem.x), weight=thirds(problem.weight), bias=None
    )
    assert by_phases(problem).tolist() == scatter_reference(problem).tolist()


def test_phase_route_converts_small_dtypes_and_rounds_float16_once() -> None:
    # int8 operands accumulate in int64: 4 products of 100 * -100 per output, far outside
    # int8. float16: out[2] = 2048 + 1 + 1 = 2050 in float32, rounded once to float16
    # (representable: its spacing is 2 above 2048); summed in float16, 2048 + 1 rounds back
    # to 2048 each time. out[1] = 2049 rounds to 2048 (ties to even).
    x8 = np.full((1, 2, 3, 3), 100, np.int8)
    w8 = np.full((2, 1, 4, 4), -100, np.int8)
    problem = Transposed(x8, w8, None, (2, 2), ((1, 1), (1, 1)), (0, 0), 1, (1, 1))
    out = by_phases(problem)
    assert out.dtype == np.int64
    wide = dataclasses.replace(problem, x=x8.astype(np.int64), weight=w8.astype(np.int64))
    assert out.tolist() == scatter_reference(wide).tolist()
    assert out[0, 0, 2, 2] == 8 * 100 * -100  # 2 x 2 taps of each of the 2 channels
    x16 = np.array([[[2048.0, 1.0, 1.0]]], np.float16)
    half = Transposed(x16, np.ones((1, 1, 3), np.float16), None, (1,), ((0, 0),), (0,), 1, (1,))
    rounded = by_phases(half)
    assert rounded.dtype == np.float16
    assert rounded.tolist() == [[[2048.0, 2048.0, 2050.0, 2.0, 1.0]]]


def _one_axis(x: list[int], w: list[int], stride: int, padding: int, dilation: int,
              output_padding: int = 0) -> Transposed:  # fmt: skip
    return Transposed(
        np.array([[x]]), np.array([[w]]), None, (stride,), ((padding, padding),),
        (output_padding,), 1, (dilation,),
    )  # fmt: skip


def test_phase_route_by_hand() -> None:
    # Stride 2, 3 taps, padding 1: the even outputs meet tap 1 alone (2 = 1*2, 20 = 10*2),
    # the odd ones taps 0 and 2 (13 = 1*3 + 10*1; output_padding 1 keeps 30 = 10*3 and a
    # zero of the correlation's padding): two correlations.
    assert by_phases(_one_axis([1, 10], [1, 2, 3], 2, 1, 1)).tolist() == [[[2, 13, 20]]]
    out = by_phases(_one_axis([1, 10], [1, 2, 3], 2, 1, 1, output_padding=1))
    assert out.tolist() == [[[2, 13, 20, 30]]]
    # Stride 2, dilation 2: the odd outputs are never reached (zero); the even ones are
    # one correlation of both taps, one element of x apart; output_padding adds a zero.
    out = by_phases(_one_axis([1, 10], [1, 2], 2, 0, 2, output_padding=1))
    assert out.tolist() == [[[1, 0, 12, 0, 20, 0]]]


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "output_padding"),
    [(2, 1, 1, 0), (3, 2, 2, 1), (1, 2, 2, 0), ((2, 1), (0, 1), (1, 3), (1, 0))],
)
def test_phase_route_float_results_are_within_the_derived_bound(
    stride: Any, padding: Any, dilation: Any, output_padding: Any
) -> None:
    rng = np.random.default_rng(23)
    x, w = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 3, 4, 3))
    options = {
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "output_padding": output_padding,
        "groups": 2,
    }

    def per_axis(value: Any) -> tuple[int, ...]:
        return (value, value) if isinstance(value, int) else tuple(value)

    problem = Transposed(
        x, w, None, per_axis(stride), tuple((p, p) for p in per_axis(padding)),
        per_axis(output_padding), 2, per_axis(dilation),
    )  # fmt: skip
    assert_close(by_phases(problem), "conv_transpose", x, w, **options)
    assert_close(mc.conv_transpose(x, w, **options), "conv_transpose", x, w, **options)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auto_plans_the_phases_for_the_benchmark_layers(dtype: Any) -> None:
    # The cost model's choice (no timing): the dilated layer is one correlation that
    # writes the result itself; the 2 x upsampling layer one correlation of 4 phases.
    dilated = mc.explain_conv_transpose(
        np.ones((2, 16, 64, 64), dtype), np.ones((16, 16, 3, 3), dtype), padding=2, dilation=2
    )
    assert dilated.name == "phases"
    assert dilated.phases is not None
    assert dilated.phases.layout.direct
    up2 = mc.explain_conv_transpose(
        np.ones((8, 64, 28, 28), dtype), np.ones((64, 32, 4, 4), dtype), stride=2, padding=1
    )
    assert up2.name == "phases"
    assert up2.phases is not None
    assert [len(group.phases) for group in up2.phases.layout.groups] == [4]
    assert up2.phases.layout.groups[0].geometry.kernel_shape == (2, 2)
    text = str(up2)
    assert "* phases" in text
    assert "  scatter" in text
    assert "  zero-inserted" in text
    assert "method='auto' for x (8, 64, 28, 28) * weight (128, 64, 2, 2)" in text


def test_explain_validates_as_the_call_does() -> None:
    bad: dict[str, Any] = {"padding": "same"}
    with pytest.raises(ValueError, match="no padding strings") as called:
        mc.conv_transpose(np.ones((1, 2, 3)), np.ones((2, 1, 2)), **bad)
    with pytest.raises(ValueError, match="no padding strings") as explained:
        mc.explain_conv_transpose(np.ones((1, 2, 3)), np.ones((2, 1, 2)), **bad)
    assert str(called.value) == str(explained.value)
    with pytest.raises(ValueError, match="needs a 1 x 1 kernel"):
        mc.explain_conv_transpose(np.ones((1, 2, 3)), np.ones((2, 1, 2)), method="matmul")
    named = mc.explain_conv_transpose(np.ones((1, 2, 3)), np.ones((2, 1, 2)), method="gemm")
    assert named.name == "zero-inserted"
    assert named.inner is not None
    assert named.inner.chosen == "gemm"


def _upsampling(dtype: Any = np.float64) -> tuple[NDArray[Any], NDArray[Any]]:
    """A small 2 x upsampling layer in small integers (exact float sums in any order)."""
    rng = np.random.default_rng(29)
    x = rng.integers(-8, 9, (4, 8, 10, 10)).astype(dtype)
    return x, rng.integers(-8, 9, (8, 6, 4, 4)).astype(dtype)


def test_phase_route_memory_error_comes_before_any_work_and_names_the_least_budget() -> None:
    x, w = _upsampling()
    options: dict[str, Any] = {"stride": 2, "padding": 1}
    message = r"one correlation per stride phase, whose own buffers and paths need (\d+) bytes"
    with pytest.raises(MemoryError, match=message) as caught:
        mc.conv_transpose(x, w, **options, memory_budget=10_000)
    found = re.search(message, str(caught.value))
    assert found is not None
    least = int(found.group(1))
    expected = mc.conv_transpose(x, w, **options)
    route = mc.explain_conv_transpose(x, w, **options, memory_budget=least)
    assert route.name == "phases"
    peak, result = peak_temporary(lambda: mc.conv_transpose(x, w, **options, memory_budget=least))
    assert np.array_equal(result, expected)
    assert peak <= least + w.nbytes + 3 * np.getbufsize() * 8 + 32 * 1024, (peak, least)
    with pytest.raises(MemoryError):
        mc.explain_conv_transpose(x, w, **options, memory_budget=least - 1)
    with pytest.raises(MemoryError):
        mc.conv_transpose(x, w, **options, memory_budget=least - 1)


@pytest.mark.parametrize(
    ("options", "budget", "route"),
    [
        ({"stride": 2, "padding": 1}, 30_000, None),
        ({"stride": 2, "padding": 1}, 60_000, "phases"),  # one image per chunk
        ({"stride": 2, "padding": 1}, 250_000, "phases"),
        ({"stride": 2, "padding": 1}, 2**22, "phases"),
        ({"padding": 1, "dilation": 2}, 16_384, None),
        ({"padding": 1, "dilation": 2}, 65_536, "phases"),  # the scatter does not fit
        ({"padding": 1, "dilation": 2}, 2**20, "scatter"),
    ],
)
def test_plan_feasible_exactly_when_the_call_runs_within_its_budget(
    options: dict[str, Any], budget: int, route: str | None
) -> None:
    # The route "auto" plans under the budget (None: none fits) is the one the call runs,
    # within the budget (plus fixed slack: a copy of the kernels, NumPy's buffers), with
    # the exact sums; when nothing fits, both raise MemoryError before any work.
    x, w = _upsampling()
    if route is None:
        with pytest.raises(MemoryError):
            mc.explain_conv_transpose(x, w, **options, memory_budget=budget)
        peak, _ = peak_temporary(lambda: _memory_error(x, w, options, budget))
        assert peak <= budget, peak
        return
    assert mc.explain_conv_transpose(x, w, **options, memory_budget=budget).name == route
    mc.conv_transpose(x, w, **options, memory_budget=budget)  # warm the cached plans
    peak, result = peak_temporary(lambda: mc.conv_transpose(x, w, **options, memory_budget=budget))
    assert np.array_equal(result, mc.conv_transpose(x, w, **options, method="gemm"))
    assert peak <= budget + w.nbytes + 3 * np.getbufsize() * 8 + 32 * 1024, peak


def _memory_error(
    x: NDArray[Any], w: NDArray[Any], options: dict[str, Any], budget: int
) -> NDArray[Any]:
    with pytest.raises(MemoryError):
        mc.conv_transpose(x, w, **options, memory_budget=budget)
    return np.empty(0)


def test_nan_reaches_only_the_outputs_of_its_kernel_copy_on_the_phase_route() -> None:
    x, _ = _upsampling()
    x[1, 3, 4, 7] = np.nan
    w = np.ones((8, 6, 4, 4))
    assert mc.explain_conv_transpose(x, w, stride=2, padding=1).name == "phases"
    out = mc.conv_transpose(x, w, stride=2, padding=1)
    indicator = np.zeros_like(x)
    indicator[1, 3, 4, 7] = 1.0
    reached = mc.conv_transpose(indicator, w, stride=2, padding=1) > 0
    assert reached.sum() == 6 * 4 * 4  # one whole kernel copy, inside the output
    np.testing.assert_array_equal(np.isnan(out), reached)


def test_phase_route_on_a_channels_last_view_and_unbatched_input() -> None:
    x, w = _upsampling()
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # x read through a strided view
    out = mc.conv_transpose(nhwc, w, stride=2, padding=1, layout="NHWC")
    expected = mc.conv_transpose(x, w, stride=2, padding=1, method="gemm")
    np.testing.assert_array_equal(out, expected.transpose(0, 2, 3, 1))
    single = mc.conv_transpose(x[2], w, stride=2, padding=1)
    np.testing.assert_array_equal(single, expected[2])
    assert not np.shares_memory(single, x)


@given(problem=transposed_problems(), holes=st.lists(st.integers(0, 10**6), min_size=1, max_size=3))
def test_nonfinite_kernels_reach_only_the_outputs_their_products_reach(
    problem: Transposed, holes: list[int]
) -> None:
    # A transposed convolution forms only the products x[q] * w[t] that land in the output;
    # the correlation routes multiply every kernel element by inserted and padded zeros
    # too, and inf * 0 is NaN. With a NaN or an infinity in the kernels every method must
    # give the definition's result (integer values: the finite sums are exact in any order).
    weight = problem.weight.astype(np.float64)
    for hole, value in zip(holes, (np.inf, -np.inf, np.nan), strict=False):
        weight.flat[hole % weight.size] = value
    floats = dataclasses.replace(problem, x=problem.x.astype(np.float64), weight=weight)
    with np.errstate(all="ignore"):  # the definition's own inf * 0 and inf - inf
        expected = scatter_reference(floats).astype(np.float64)
    for method in ("auto", *METHODS):
        try:
            out = mc.conv_transpose(floats.x, weight, floats.bias, **floats.kwargs(), method=method)
        except ValueError:  # the path does not apply (matmul for a larger kernel)
            continue
        np.testing.assert_array_equal(out, expected, err_msg=method)  # NaN where NaN
