"""Property tests of the engine over generated problems (issue 2, "Tests").

Every computational path in ``mimo_conv._paths.registry.METHODS`` is checked, so a path added
later is covered without touching this file: bit for bit against ``"naive"`` on
integer-valued inputs, and within the derived rounding-error bound of the exact result on
random floats. The metamorphic properties use int64 inputs, where every identity is exact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import example, find, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

import mimo_conv as mc
from _reference import NUMPY_PAD_MODES
from mimo_conv._paths import registry as _methods
from mimo_conv.testing import ConvProblem, conv_problems, error_bound
from mimo_conv.testing.assertions import exact_conv, reference_for, to_fraction

RANKS = (1, 2, 3)
INTEGER_VALUED = ("int64", "object", "float64", "float32", "float16", "complex128", "int8")
FLOATS = ("float64", "float32", "float16", "complex128", "complex64")


# --- helpers, derived here from the definitions (TEXTBOOK.md), not from the library ---


def padding_pairs(problem: ConvProblem) -> list[tuple[int, int]]:
    """The ``(before, after)`` padding per axis, by PyTorch's rules for the strings."""
    dims = problem.spatial_dims
    kernel = problem.weight.shape[2:]
    dilation = per_axis(problem.dilation, dims)
    spans = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
    padding = problem.padding
    if padding == "valid":
        return [(0, 0)] * dims
    if padding == "same":
        return [(span // 2, span - span // 2) for span in spans]
    if padding == "full":
        return [(span, span) for span in spans]
    if isinstance(padding, int):
        return [(padding, padding)] * dims
    return [
        (item, item) if isinstance(item, int) else (int(item[0]), int(item[1])) for item in padding
    ]


def per_axis(value: int | tuple[int, ...], dims: int) -> tuple[int, ...]:
    return (value,) * dims if isinstance(value, int) else tuple(value)


def output_shape_law(problem: ConvProblem) -> tuple[int, ...]:
    """``out = floor((in + lo + hi - dilation * (k - 1) - 1) / stride) + 1`` per axis."""
    dims = problem.spatial_dims
    sizes = problem.x.shape[-dims:]
    kernel = problem.weight.shape[2:]
    spatial = tuple(
        (size + lo + hi - d * (k - 1) - 1) // s + 1
        for size, (lo, hi), k, d, s in zip(
            sizes,
            padding_pairs(problem),
            kernel,
            per_axis(problem.dilation, dims),
            per_axis(problem.stride, dims),
            strict=True,
        )
    )
    leading = problem.x.shape[:-dims][:-1]
    return (*leading, problem.weight.shape[0], *spatial)


def pad_explicitly(problem: ConvProblem, x: NDArray[Any] | None = None) -> NDArray[Any]:
    """``np.pad`` the spatial axes of ``x`` as the problem's padding and mode say."""
    array = problem.x if x is None else x
    widths = [(0, 0)] * (array.ndim - problem.spatial_dims) + padding_pairs(problem)
    mode = NUMPY_PAD_MODES[problem.padding_mode]
    padded: NDArray[Any] = np.pad(array, widths, mode=mode)
    return padded


def pinned(
    x: NDArray[Any],
    weight: NDArray[Any],
    bias: NDArray[Any] | None = None,
    *,
    stride: int | tuple[int, ...] = 1,
    padding: Any = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> ConvProblem:
    """A hand-written problem for ``@example``, its ``out_shape`` by the law above."""
    draft = ConvProblem(x, weight, bias, stride, padding, dilation, groups, padding_mode, ())
    return ConvProblem(
        x, weight, bias, stride, padding, dilation, groups, padding_mode, output_shape_law(draft)
    )


def methods_for(problem: ConvProblem) -> list[str]:
    """Every registered path that can compute the problem (matmul needs a 1 x 1 kernel)."""
    pointwise = all(taps == 1 for taps in problem.weight.shape[2:])
    # "winograd" is held to its own (normwise) bound in tests/test_winograd.py.
    return [
        name for name in _methods.METHODS if (name != "matmul" or pointwise) and name != "winograd"
    ]


def run(problem: ConvProblem, method: str = "auto", **changes: Any) -> NDArray[Any]:
    arguments: dict[str, Any] = {"x": problem.x, "weight": problem.weight, "bias": problem.bias}
    arguments.update(problem.conv_kwargs())
    arguments.update(changes)
    return mc.conv(method=method, **arguments)


def assert_same_values(actual: NDArray[Any], expected: NDArray[Any]) -> None:
    """Equal shape, dtype and values (a float's zero may differ in sign between orders)."""
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    assert np.array_equal(actual, expected), f"{actual!r} != {expected!r}"


# Pinned problems: each combines options whose interplay is easy to get wrong.
POSITIONS_1D = np.arange(2 * 3 * 4).reshape(2, 3, 4) * 10
PINNED = [
    # Reflect padding as wide as allowed, asymmetric, with stride and dilation.
    pinned(
        POSITIONS_1D,
        np.arange(2 * 3 * 2).reshape(2, 3, 2) - 5,
        np.array([1, -1]),
        stride=2,
        padding=((3, 1),),
        dilation=2,
        padding_mode="reflect",
    ),
    # "same" with an even kernel (the odd element after) and circular padding.
    pinned(
        np.arange(2 * 3 * 3).reshape(2, 3, 3),
        np.arange(2 * 2 * 2 * 2).reshape(2, 2, 2, 2) - 7,
        padding="same",
        groups=1,
        padding_mode="circular",
    ),
    # Depthwise 3-d with symmetric padding wider than the kernel.
    pinned(
        np.arange(2 * 2 * 2 * 3).reshape(2, 2, 2, 3) - 6,
        np.arange(2 * 1 * 1 * 2 * 2).reshape(2, 1, 1, 2, 2) + 1,
        padding=(1, 2, 2),
        groups=2,
        stride=(1, 2, 3),
        padding_mode="symmetric",
    ),
    # A 1 x 1 grouped kernel with stride and replicate padding: the matmul path.
    pinned(
        np.arange(1 * 4 * 3 * 3).reshape(1, 4, 3, 3),
        np.arange(4 * 2 * 1 * 1).reshape(4, 2, 1, 1) - 3,
        np.arange(4),
        stride=2,
        padding=1,
        groups=2,
        padding_mode="replicate",
    ),
]


@example(PINNED[0])
@example(PINNED[1])
@example(PINNED[2])
@example(PINNED[3])
@given(
    conv_problems(spatial_dims=RANKS, dtypes=INTEGER_VALUED, elements="integers", allow_empty=True)
)
def test_every_method_matches_naive_bit_for_bit_on_integer_values(problem: ConvProblem) -> None:
    reference = run(problem, "naive")
    assert reference.shape == problem.out_shape
    for method in methods_for(problem):
        assert_same_values(run(problem, method), reference)
    # The sums are exact in the dtype, so naive is the exact result itself.
    real, imag = exact_conv(problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
    for index in np.ndindex(reference.shape):
        value = reference[index]
        assert to_fraction(value.real) == real[index]
        assert to_fraction(value.imag) == (0 if imag is None else imag[index])


# Found by this test: a product below float64's subnormals once made the bound itself 0.
@example(pinned(np.array([[1.19333452e-153]]), np.array([[[5e-324]]])))
@given(
    st.sampled_from(("floats", "cancellation", "subnormal")).flatmap(
        lambda kind: conv_problems(spatial_dims=RANKS, dtypes=FLOATS, elements=kind)
    )
)
def test_every_method_is_within_the_error_bound_of_the_exact_result(problem: ConvProblem) -> None:
    reference = reference_for(problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
    # Every path sums each output's n products (and the bias) in some order, and the bound
    # gamma_n * |x|.|w| holds for every order: one bound for all paths, no per-path factor.
    for method in methods_for(problem):
        reference.check(run(problem, method))


def pointwise_problems(elements: str) -> st.SearchStrategy[ConvProblem]:
    return conv_problems(
        spatial_dims=RANKS, dtypes=("float32", "float64"), elements=elements, max_kernel=1
    )


@example(PINNED[3])
@given(pointwise_problems("integers"))
def test_matmul_path_matches_einsum_bit_for_bit_on_integer_values(problem: ConvProblem) -> None:
    assert_same_values(run(problem, "matmul"), run(problem, "einsum"))


@given(pointwise_problems("floats"))
def test_matmul_path_agrees_with_einsum_within_the_bound(problem: ConvProblem) -> None:
    by_matmul = run(problem, "matmul")
    by_einsum = run(problem, "einsum")
    # Each is within the bound of the exact result, so they are within twice it of each other.
    assert by_matmul.dtype == by_einsum.dtype
    assert by_matmul.shape == by_einsum.shape
    assert np.all(np.abs(by_matmul - by_einsum) <= 2 * error_bound(problem))


def integer_problems(**options: Any) -> st.SearchStrategy[ConvProblem]:
    return conv_problems(spatial_dims=RANKS, dtypes=("int64",), elements="integers", **options)


def same_shape_ints(shape: tuple[int, ...]) -> st.SearchStrategy[NDArray[Any]]:
    return hnp.arrays(np.int64, shape, elements=st.integers(-100, 100))


@given(integer_problems(bias=False), st.data())
def test_linear_in_x(problem: ConvProblem, data: st.DataObject) -> None:
    other = data.draw(same_shape_ints(problem.x.shape))
    a, b = data.draw(st.integers(-3, 3)), data.draw(st.integers(-3, 3))
    combined = run(problem, x=a * problem.x + b * other)
    assert_same_values(combined, a * run(problem) + b * run(problem, x=other))


@given(integer_problems(bias=False), st.data())
def test_linear_in_weight(problem: ConvProblem, data: st.DataObject) -> None:
    other = data.draw(same_shape_ints(problem.weight.shape))
    a, b = data.draw(st.integers(-3, 3)), data.draw(st.integers(-3, 3))
    combined = run(problem, weight=a * problem.weight + b * other)
    assert_same_values(combined, a * run(problem) + b * run(problem, weight=other))


@example(PINNED[2])
@given(integer_problems())
def test_groups_equal_concatenated_per_group_convolutions(problem: ConvProblem) -> None:
    groups = problem.groups
    channel_axis = problem.x.ndim - problem.spatial_dims - 1
    in_per_group = problem.weight.shape[1]
    out_per_group = problem.weight.shape[0] // groups
    parts = []
    for group in range(groups):
        inputs = np.take(
            problem.x,
            np.arange(group * in_per_group, (group + 1) * in_per_group),
            axis=channel_axis,
        )
        outputs = slice(group * out_per_group, (group + 1) * out_per_group)
        bias = None if problem.bias is None else problem.bias[outputs]
        parts.append(run(problem, x=inputs, weight=problem.weight[outputs], bias=bias, groups=1))
    assert_same_values(run(problem), np.concatenate(parts, axis=channel_axis))


@example(PINNED[0])
@given(integer_problems())
def test_explicit_np_pad_then_valid_equals_the_padded_conv(problem: ConvProblem) -> None:
    explicit = run(problem, x=pad_explicitly(problem), padding="valid", padding_mode="zeros")
    assert_same_values(run(problem), explicit)


@example(PINNED[2])
@given(integer_problems())
def test_stride_equals_the_stride_one_result_subsampled(problem: ConvProblem) -> None:
    dims = problem.spatial_dims
    dense = run(problem, stride=1, padding=padding_pairs(problem))
    steps = per_axis(problem.stride, dims)
    subsample: tuple[Any, ...] = (Ellipsis, *(slice(None, None, step) for step in steps))
    assert_same_values(run(problem), dense[subsample])


@example(PINNED[0])
@given(integer_problems())
def test_dilation_equals_a_zero_inserted_kernel(problem: ConvProblem) -> None:
    dims = problem.spatial_dims
    dilation = per_axis(problem.dilation, dims)
    kernel = problem.weight.shape[2:]
    spread_shape = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True))
    spread = np.zeros(problem.weight.shape[:2] + spread_shape, dtype=problem.weight.dtype)
    taps: tuple[Any, ...] = (Ellipsis, *(slice(None, None, d) for d in dilation))
    spread[taps] = problem.weight
    dense = run(problem, weight=spread, dilation=1, padding=padding_pairs(problem))
    assert_same_values(run(problem), dense)


@given(integer_problems(groups=False), st.data())
def test_a_delta_kernel_returns_the_input(problem: ConvProblem, data: st.DataObject) -> None:
    dims = problem.spatial_dims
    channels = problem.weight.shape[1]
    kernel = problem.weight.shape[2:]
    tap = tuple(data.draw(st.integers(0, k - 1)) for k in kernel)
    delta = np.zeros((channels, channels, *kernel), dtype=np.int64)
    for channel in range(channels):
        delta[(channel, channel, *tap)] = 1
    out = run(problem, weight=delta, bias=None)
    # Output position p sees padded input p * stride + tap * dilation.
    padded = pad_explicitly(problem)
    start = [t * d for t, d in zip(tap, per_axis(problem.dilation, dims), strict=True)]
    window: tuple[Any, ...] = (
        Ellipsis,
        *(
            slice(first, first + step * (count - 1) + 1, step)
            for first, step, count in zip(
                start, per_axis(problem.stride, dims), out.shape[-dims:], strict=True
            )
        ),
    )
    picked = padded[window]
    assert_same_values(out, picked)


def test_a_one_tap_identity_kernel_returns_the_input_itself() -> None:
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    identity = np.eye(3, dtype=np.int64).reshape(3, 3, 1, 1)
    for method in _methods.METHODS:
        if method == "winograd":  # a 3 x 3 path, refused here
            continue
        assert_same_values(mc.conv(x, identity, method=method), x)


@example(PINNED[1])
@given(conv_problems(spatial_dims=RANKS, dtypes=("int64",), elements="integers", allow_empty=True))
def test_output_shape_law(problem: ConvProblem) -> None:
    law = output_shape_law(problem)
    assert problem.out_shape == law
    assert run(problem).shape == law
    dims = problem.spatial_dims
    for axis in range(dims):
        size = problem.x.shape[-dims + axis]
        assert law[-dims + axis] == mc.output_length(
            size,
            problem.weight.shape[2 + axis],
            stride=per_axis(problem.stride, dims)[axis],
            padding=padding_pairs(problem)[axis],
            dilation=per_axis(problem.dilation, dims)[axis],
        )


@pytest.mark.parametrize("rank", RANKS)
def test_generated_problems_cover_every_option(rank: int) -> None:
    """The generator reaches each option the properties above claim to cover."""
    seen: dict[str, set[Any]] = {"mode": set(), "form": set(), "stride": set(), "groups": set()}

    @settings(max_examples=100)
    @given(conv_problems(spatial_dims=rank, dtypes=("int64",), elements="integers"))
    def collect(problem: ConvProblem) -> None:
        seen["mode"].add(problem.padding_mode)
        padding = problem.padding
        seen["form"].add(padding if isinstance(padding, str) else type(padding).__name__)
        seen["stride"].add(max(per_axis(problem.stride, rank)))
        seen["groups"].add(problem.groups > 1)

    collect()
    assert seen["mode"] == set(mc.PADDING_MODES)
    assert seen["form"] == {"valid", "same", "full", "int", "tuple"}
    assert seen["stride"] == {1, 2}
    assert False in seen["groups"]
    # About one problem in eleven has groups > 1 (the channels must divide by the count);
    # a derandomized run of 100 examples, which starts from the simplest ones, can miss it,
    # so search for one: find() raises NoSuchExample if the generator never draws it.
    grouped = find(
        conv_problems(spatial_dims=rank, dtypes=("int64",), elements="integers"),
        lambda problem: problem.groups > 1,
        settings=settings(max_examples=2000, database=None),
    )
    assert grouped.x.shape[-rank - 1] % grouped.groups == 0


def test_pinned_problems_are_valid() -> None:
    for problem in PINNED:
        assert run(problem).shape == problem.out_shape
        assert math.prod(problem.out_shape) > 0
