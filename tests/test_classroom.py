"""The classroom functions: output_shape, cost, compose, decompose, conv_matrix, exercises.

Operation counts are checked against counts made by running loops: the forward pass runs
the library's own ``naive`` method on numbers that count their multiplications and
additions; the backward pass runs the chain rule written out as loops, instrumented the
same way. Nothing here re-derives the formulas of ``mimo_conv._classroom.counts``.
"""

from __future__ import annotations

import io
import itertools
import math
import numbers
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import mimo_conv as mc
from mimo_conv._classroom import counts as counts_module
from mimo_conv._classroom.exercises import (
    answer_exercises,
    exercise_1,
    exercise_2,
    exercise_3,
    exercise_4,
    exercise_5,
    exercise_6,
)
from mimo_conv._paths.registry import METHOD_NAMES

# --------------------------------------------------------------------------------------
# Counting numbers


@dataclass
class Tally:
    """Operations seen, all of them and those between real (not padded) numbers only."""

    multiplications: int = 0
    additions: int = 0
    real_multiplications: int = 0
    real_additions: int = 0


class Counted(numbers.Number):
    """An int that counts the multiplications and additions it takes part in.

    Anything that is not ``Counted`` (the plain zeros the engine pads with) is "not
    real": a product with it, or a sum with it, is counted only in the totals, not in
    the counts of real operations.
    """

    __slots__ = ("real", "tally", "value")

    def __init__(self, value: int, tally: Tally, *, real: bool = True) -> None:
        self.value = value
        self.tally = tally
        self.real = real

    @staticmethod
    def _parts(other: object) -> tuple[Any, bool]:
        if isinstance(other, Counted):
            return other.value, other.real
        return other, False

    def __mul__(self, other: object) -> Counted:
        value, real = self._parts(other)
        self.tally.multiplications += 1
        both = self.real and real
        self.tally.real_multiplications += both
        return Counted(self.value * value, self.tally, real=both)

    __rmul__ = __mul__

    def __add__(self, other: object) -> Counted:
        value, real = self._parts(other)
        self.tally.additions += 1
        self.tally.real_additions += self.real and real
        return Counted(self.value + value, self.tally, real=self.real or real)

    __radd__ = __add__

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        return bool(self.value == self._parts(other)[0])


def counted(array: NDArray[Any], tally: Tally) -> NDArray[Any]:
    out = np.empty(array.shape, dtype=object)
    for index in np.ndindex(*array.shape):
        out[index] = Counted(int(array[index]), tally)
    return out


@dataclass(frozen=True)
class Problem:
    input_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    bias: bool

    @property
    def options(self) -> dict[str, Any]:
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }


@st.composite
def problems(
    draw: st.DrawFn, *, max_rank: int = 2, max_size: int = 5, batch: bool = True
) -> Problem:
    rank = draw(st.integers(1, max_rank))
    groups = draw(st.integers(1, 2))
    in_channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(rank))
    sizes = []
    for k, d, (before, after) in zip(kernel, dilation, padding, strict=True):
        extent = d * (k - 1) + 1
        smallest = max(1, extent - before - after)
        sizes.append(draw(st.integers(smallest, max(smallest, max_size))))
    leading = (draw(st.integers(1, 2)),) if batch and draw(st.booleans()) else ()
    return Problem(
        input_shape=(*leading, in_channels, *sizes),
        weight_shape=(out_channels, in_channels // groups, *kernel),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
    )


def forward_tally(problem: Problem) -> Tally:
    """Run the library's naive loops on counting numbers."""
    tally = Tally()
    rng = np.random.default_rng(0)
    x = counted(rng.integers(-5, 5, problem.input_shape), tally)
    weight = counted(rng.integers(-5, 5, problem.weight_shape), tally)
    bias = counted(rng.integers(-5, 5, problem.weight_shape[:1]), tally) if problem.bias else None
    mc.conv(x, weight, bias, **problem.options, method="naive")
    return tally


def backward_tally(problem: Problem) -> tuple[Tally, Tally, NDArray[Any], NDArray[Any]]:
    """The chain rule as loops, counting its multiplications and additions.

    For every output element and every kernel tap of the forward pass, dL/dx at the tap's
    input position gains ``dy * w`` and dL/dw at the tap gains ``dy * x``. A sum's first
    term costs no addition; each further one costs one. "Real" counts leave out every
    product whose input position is padding. The bias gradient is counted in the weight
    tally. Returns the two tallies and the two gradients (for checking them).
    """
    input_shape, weight_shape = problem.input_shape, problem.weight_shape
    rank = len(weight_shape) - 2
    batched = len(input_shape) == rank + 2
    shape = input_shape if batched else (1, *input_shape)
    out_shape = mc.output_shape(input_shape, weight_shape, **problem.options)
    out_batched = out_shape if batched else (1, *out_shape)
    rng = np.random.default_rng(1)
    x = rng.integers(-5, 5, shape)
    weight = rng.integers(-5, 5, weight_shape)
    grad_out = rng.integers(-5, 5, out_batched)
    padded_shape = tuple(
        size + before + after
        for size, (before, after) in zip(shape[2:], problem.padding, strict=True)
    )
    grad_x: dict[tuple[int, ...], int] = {}
    grad_w: dict[tuple[int, ...], int] = {}
    grad_b: dict[int, int] = {}
    real_seen: set[tuple[int, ...]] = set()  # weight taps that have summed a real term
    input_tally, weight_tally = Tally(), Tally()
    per_group_in = weight_shape[1]
    per_group_out = weight_shape[0] // problem.groups
    for n, o in itertools.product(range(shape[0]), range(weight_shape[0])):
        group = o // per_group_out
        for position in np.ndindex(*out_batched[2:]):
            dy = int(grad_out[(n, o, *position)])
            if o in grad_b:
                weight_tally.additions += 1
                weight_tally.real_additions += 1
                grad_b[o] += dy
            elif problem.bias:
                grad_b[o] = dy
            for c_local in range(per_group_in):
                c = group * per_group_in + c_local
                for tap in np.ndindex(*weight_shape[2:]):
                    where = tuple(
                        p * s + t * d
                        for p, s, t, d in zip(
                            position, problem.stride, tap, problem.dilation, strict=True
                        )
                    )
                    assert all(0 <= w < size for w, size in zip(where, padded_shape, strict=True))
                    inside = tuple(
                        w - before for w, (before, _) in zip(where, problem.padding, strict=True)
                    )
                    real = all(0 <= i < size for i, size in zip(inside, shape[2:], strict=True))
                    # dL/dx
                    key_x = (n, c, *where)
                    input_tally.multiplications += 1
                    input_tally.real_multiplications += real
                    product = dy * int(weight[(o, c_local, *tap)])
                    if key_x in grad_x:
                        input_tally.additions += 1
                        input_tally.real_additions += real
                        grad_x[key_x] += product
                    else:
                        grad_x[key_x] = product
                    # dL/dw: a padded input element is a zero, its product is not real.
                    x_value = int(x[(n, c, *inside)]) if real else 0
                    key_w = (o, c_local, *tap)
                    weight_tally.multiplications += 1
                    weight_tally.real_multiplications += real
                    product = dy * x_value
                    if key_w in grad_w:
                        weight_tally.additions += 1
                        grad_w[key_w] += product
                    else:
                        grad_w[key_w] = product
                    if real:
                        if key_w in real_seen:
                            weight_tally.real_additions += 1
                        real_seen.add(key_w)
    dx = np.zeros(shape[:2] + padded_shape, dtype=np.int64)
    for key, value in grad_x.items():
        dx[key] = value
    inner = tuple(
        slice(before, before + size)
        for (before, _), size in zip(problem.padding, shape[2:], strict=True)
    )
    dx = dx[(slice(None), slice(None), *inner)]
    dw = np.zeros(weight_shape, dtype=np.int64)
    for key_w, value in grad_w.items():
        dw[key_w] = value
    del x, grad_out
    return input_tally, weight_tally, dx, dw


SMALL_CASES = [
    # The book's example, multi-in multi-out.
    Problem((2, 3, 3), (3, 2, 2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, False),
    # Padding, stride and a bias.
    Problem((2, 4, 5), (3, 2, 3, 3), (2, 1), ((1, 1), (2, 0)), (1, 1), 1, True),
    # Dilation and groups, batched.
    Problem((2, 4, 6, 5), (4, 2, 2, 2), (1, 2), ((0, 1), (1, 1)), (2, 1), 2, True),
    # 1-d and 3-d.
    Problem((1, 7), (2, 1, 3), (2,), ((2, 2),), (1,), 1, False),
    Problem((1, 3, 3, 3), (1, 1, 2, 2, 2), (1, 1, 1), ((1, 0), (0, 1), (0, 0)), (1, 1, 1), 1, True),
    # A 1 x 1 kernel (exercise 4) and a window entirely in the padding.
    Problem((3, 3, 3), (2, 3, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, False),
    Problem((1, 2, 2), (1, 1, 1, 1), (1, 1), ((2, 2), (0, 0)), (1, 1), 1, True),
]


def _check_forward(problem: Problem) -> None:
    tally = forward_tally(problem)
    for exclude in (False, True):
        report = mc.cost(
            problem.input_shape,
            problem.weight_shape,
            **problem.options,
            bias=problem.bias,
            exclude_padding=exclude,
        )
        if exclude:
            assert report.forward_multiplications == tally.real_multiplications
            assert report.forward_additions == tally.real_additions
        else:
            assert report.forward_multiplications == tally.multiplications
            assert report.forward_additions == tally.additions


def _check_backward(problem: Problem) -> None:
    input_tally, weight_tally, _, _ = backward_tally(problem)
    for exclude in (False, True):
        report = mc.cost(
            problem.input_shape,
            problem.weight_shape,
            **problem.options,
            bias=problem.bias,
            exclude_padding=exclude,
        )
        if exclude:
            counts = (
                input_tally.real_multiplications,
                input_tally.real_additions,
                weight_tally.real_multiplications,
                weight_tally.real_additions,
            )
        else:
            counts = (
                input_tally.multiplications,
                input_tally.additions,
                weight_tally.multiplications,
                weight_tally.additions,
            )
        assert (
            report.backward_input_multiplications,
            report.backward_input_additions,
            report.backward_weight_multiplications,
            report.backward_weight_additions,
        ) == counts


@pytest.mark.parametrize("problem", SMALL_CASES, ids=lambda p: f"{p.input_shape}*{p.weight_shape}")
def test_forward_counts_match_the_instrumented_naive_method(problem: Problem) -> None:
    _check_forward(problem)


@pytest.mark.parametrize("problem", SMALL_CASES, ids=lambda p: f"{p.input_shape}*{p.weight_shape}")
def test_backward_counts_match_the_instrumented_chain_rule(problem: Problem) -> None:
    _check_backward(problem)


@settings(max_examples=25)
@given(problems(max_rank=2, max_size=5))
def test_counts_match_instrumented_loops_on_generated_problems(problem: Problem) -> None:
    _check_forward(problem)
    _check_backward(problem)


def test_counting_numbers_count_every_product_of_the_book_example() -> None:
    # The book's corr2d_multi_in: 4 outputs, each 2 channels x 4 taps = 8 products and
    # 7 additions, counted one by one (a sanity check of the instrument itself).
    tally = forward_tally(SMALL_CASES[0])
    assert (tally.multiplications, tally.additions) == (3 * 4 * 8, 3 * 4 * 7)


# The per-axis loops of the first version of counts.py, which walked every output
# position: the closed-form sums that replaced them must count exactly the same.


def _loop_axis_counts(
    size: int, taps: int, stride: int, dilation: int, before: int, after: int, *, exclude: bool
) -> tuple[list[int], list[int], list[int]]:
    """Terms of each forward sum, of each input-gradient sum and of each weight-gradient sum."""
    out = (size + before + after - dilation * (taps - 1) - 1) // stride + 1
    forward = []
    for position in range(out):
        start = position * stride - before
        inside = sum(1 for t in range(taps) if 0 <= start + t * dilation < size)
        forward.append(inside if exclude else taps)
    hits = [0] * (before + size + after)
    for position in range(out):
        for t in range(taps):
            hits[position * stride + t * dilation] += 1
    per_element = hits[before : before + size] if exclude else hits
    per_tap = [
        sum(1 for p in range(out) if not exclude or 0 <= p * stride - before + t * dilation < size)
        for t in range(taps)
    ]
    return forward, per_element, per_tap


@settings(max_examples=300)
@given(
    size=st.integers(0, 12),
    taps=st.integers(1, 5),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 4),
    before=st.integers(0, 6),
    after=st.integers(0, 6),
    exclude=st.booleans(),
)
def test_closed_form_axis_counts_equal_the_old_per_position_loops(
    size: int, taps: int, stride: int, dilation: int, before: int, after: int, exclude: bool
) -> None:
    extent = dilation * (taps - 1) + 1
    size = max(size, extent - before - after)  # the kernel must fit, as conv checks
    out = (size + before + after - extent) // stride + 1
    axis = counts_module._Axis(size, taps, stride, dilation, before, after, out)
    low, high = (before, before + size) if exclude else (0, before + size + after)
    forward, per_element, per_tap = _loop_axis_counts(
        size, taps, stride, dilation, before, after, exclude=exclude
    )
    assert axis.pairs_reading(low, high) == sum(forward) == sum(per_element) == sum(per_tap)
    assert axis.positions_reading(low, high) == sum(1 for n in forward if n)
    assert axis.elements_read(low, high) == sum(1 for n in per_element if n)
    assert axis.taps_reading(low, high) == sum(1 for n in per_tap if n)


def test_counts_of_a_long_signal_by_hand() -> None:
    # 10**7 samples, 3 taps: n = 10**7 - 2 outputs of 3 products and 2 additions each.
    # dL/dx: every sample is read (by 1, 2 or 3 pairs): 3n products, 3n - 10**7 additions.
    # dL/dw: each of the 3 taps sums n products: 3n products, 3 (n - 1) additions.
    # (The first version looped over the 10**7 positions and took about 23 s.)
    n = 10**7 - 2
    report = mc.cost((1, 10**7), (1, 1, 3))
    assert (report.forward_multiplications, report.forward_additions) == (3 * n, 2 * n)
    assert report.backward_input_multiplications == 3 * n
    assert report.backward_input_additions == 3 * n - 10**7
    assert report.backward_weight_multiplications == 3 * n
    assert report.backward_weight_additions == 3 * (n - 1)


@pytest.mark.parametrize("problem", SMALL_CASES[:4], ids=lambda p: f"{p.input_shape}")
def test_the_instrumented_backward_loop_computes_the_gradients(problem: Problem) -> None:
    """The instrument must be the real chain rule: check its gradients independently."""
    _, _, dx, dw = backward_tally(problem)
    rank = len(problem.weight_shape) - 2
    batched = len(problem.input_shape) == rank + 2
    shape = problem.input_shape if batched else (1, *problem.input_shape)
    rng = np.random.default_rng(1)
    x = rng.integers(-5, 5, shape)
    weight = rng.integers(-5, 5, problem.weight_shape)
    out_shape = mc.output_shape(shape, problem.weight_shape, **problem.options)
    grad_out = rng.integers(-5, 5, out_shape)
    # dL/dx = A.T @ dL/dy, with A the convolution's matrix.
    matrix = mc.conv_matrix(weight, shape, **problem.options)
    assert np.array_equal(dx.ravel(), matrix.T @ grad_out.ravel())
    # dL/dw[t] = sum(dL/dy * conv(x, unit kernel at t)), the derivative of a linear map.
    for index in np.ndindex(*problem.weight_shape):
        unit = np.zeros(problem.weight_shape, dtype=np.int64)
        unit[index] = 1
        assert dw[index] == np.sum(grad_out * mc.conv(x, unit, **problem.options))


# --------------------------------------------------------------------------------------
# output_shape and the rest of ConvCost


@settings(max_examples=40)
@given(problems(max_rank=3, max_size=6))
def test_output_shape_is_the_shape_conv_returns(problem: Problem) -> None:
    x = np.zeros(problem.input_shape)
    weight = np.zeros(problem.weight_shape)
    expected = mc.conv(x, weight, **problem.options).shape
    assert mc.output_shape(problem.input_shape, problem.weight_shape, **problem.options) == (
        expected
    )
    assert mc.cost(problem.input_shape, problem.weight_shape, **problem.options).out_shape == (
        expected
    )


@pytest.mark.parametrize(
    ("input_shape", "weight_shape", "options", "error", "match"),
    [
        ((3, 5, 5), (2, 4, 3, 3), {}, ValueError, "expected x of shape .* to have 4 channels"),
        ((3, 5, 5), (2, 3, 7, 7), {}, ValueError, "kernel must fit"),
        ((3, 5, 5), (2, 3, 3, 3), {"stride": 0}, ValueError, "stride must be >= 1"),
        ((3, 5, 5), (2, 3, 3, 3), {"padding": "bogus"}, ValueError, "'valid', 'same', 'full'"),
        ((3, 5, 5), (2, 3, 3, 3), {"groups": 2}, ValueError, "groups must divide"),
        ((3, 5, 5), (2, 3, 3, 3, 3), {}, ValueError, "x must have 4 .* or 5 .* dimensions"),
        ((3, 5.0, 5), (2, 3, 3, 3), {}, TypeError, "input_shape must be an int, got 5.0"),
        ("3x5x5", (2, 3, 3, 3), {}, TypeError, "input_shape must be a sequence of ints"),
        ((3, -5, 5), (2, 3, 3, 3), {}, ValueError, "input_shape must have non-negative sizes"),
    ],
    ids=[
        "channels",
        "too-large",
        "stride",
        "padding-name",
        "groups",
        "rank",
        "float-size",
        "string",
        "negative",
    ],
)
def test_output_shape_and_cost_reject_what_conv_rejects(
    input_shape: Any, weight_shape: Any, options: dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        mc.output_shape(input_shape, weight_shape, **options)
    with pytest.raises(error, match=match):
        mc.cost(input_shape, weight_shape, **options)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64])
def test_memory_counts_are_the_bytes_of_the_actual_arrays(dtype: Any) -> None:
    input_shape, weight_shape = (2, 3, 9, 8), (4, 3, 3, 2)
    report = mc.cost(input_shape, weight_shape, stride=2, padding=1, bias=True, dtype=dtype)
    x = np.ones(input_shape, dtype=dtype)
    weight = np.ones(weight_shape, dtype=dtype)
    bias = np.ones(weight_shape[0], dtype=dtype)
    y = mc.conv(x, weight, bias, stride=2, padding=1)
    assert report.input_bytes == x.nbytes
    assert report.weight_bytes == weight.nbytes
    assert report.bias_bytes == bias.nbytes
    assert report.output_bytes == y.nbytes
    assert report.saved_for_backward_bytes == x.nbytes + weight.nbytes
    assert report.gradient_bytes == x.nbytes + weight.nbytes + bias.nbytes
    assert report.dtype == np.dtype(dtype)


@pytest.mark.parametrize(
    ("weight_shape", "stride"),
    [((4, 3, 3, 3), 1), ((4, 3, 1, 1), 1), ((4, 3, 1, 1), 2)],
    ids=["3x3", "1x1", "1x1-strided"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_workspace_lists_the_methods_that_run_with_explain_methods_numbers(
    weight_shape: tuple[int, ...], stride: int, dtype: Any
) -> None:
    # cost() works from shapes and a dtype; explain_method and conv from real arrays. The
    # methods cost() lists must be exactly those conv runs, each with the workspace
    # explain_method gives the same call (for those it weighs: not im2col, the teaching path).
    input_shape = (2, 3, 6, 6)
    report = mc.cost(input_shape, weight_shape, stride=stride, padding=1, dtype=dtype)
    x, weight = np.ones(input_shape, dtype), np.ones(weight_shape, dtype)
    runs = []
    for method in (name for name in METHOD_NAMES if name != "auto"):
        try:
            mc.conv(x, weight, stride=stride, padding=1, method=method)
        except ValueError:
            continue
        runs.append(method)
    listed = [method for method, _ in report.workspace]
    assert sorted(listed) == sorted(runs)
    assert "naive" in runs
    assert ("matmul" in runs) == (weight_shape[2:] == (1, 1))
    choice = mc.explain_method(x, weight, stride=stride, padding=1)
    predicted = {candidate.method: candidate.workspace for candidate in choice.candidates}
    weighed = [method for method in runs if method in predicted]
    assert len(weighed) >= len(runs) - 1
    assert {m: size for m, size in report.workspace if m in predicted} == {
        method: predicted[method] for method in weighed
    }


def test_cost_table_shows_every_count() -> None:
    report = mc.cost((8, 3, 32, 32), (16, 3, 3, 3), padding=1, bias=True)
    text = str(report)
    for number in (
        report.forward_multiplications,
        report.forward_additions,
        report.backward_input_additions,
        report.backward_weight_additions,
        report.input_bytes,
        report.output_bytes,
        *dict(report.workspace).values(),
    ):
        assert f"{number:,}" in text
    assert "output shape (8, 16, 32, 32)" in text
    assert "temporary of method 'naive'" in text
    assert "'matmul'" not in text  # a 3 x 3 kernel cannot take the matmul path
    assert report.forward_operations == (report.forward_multiplications + report.forward_additions)


def test_exercise_3_doubling_channels_quadruples_every_count() -> None:
    small = mc.cost((2, 3, 10, 10), (4, 3, 3, 3), padding=1, bias=True)
    large = mc.cost((2, 6, 10, 10), (8, 6, 3, 3), padding=1, bias=True)
    assert large.forward_multiplications == 4 * small.forward_multiplications
    assert large.backward_input_multiplications == 4 * small.backward_input_multiplications
    assert large.backward_weight_multiplications == 4 * small.backward_weight_multiplications


# --------------------------------------------------------------------------------------
# compose


@st.composite
def stacks(draw: st.DrawFn) -> dict[str, Any]:
    rank = draw(st.integers(1, 3))
    c0, c1, c2 = (draw(st.integers(1, 3)) for _ in range(3))
    k1 = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    k2 = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    s1 = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    s2 = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    needed = tuple(a + (b - 1) * s for a, b, s in zip(k1, k2, s1, strict=True))
    size = tuple(n + draw(st.integers(0, 3)) for n in needed)
    values = st.integers(-20, 20)
    batch = (draw(st.integers(1, 2)),) if draw(st.booleans()) else ()

    def array(shape: tuple[int, ...]) -> NDArray[Any]:
        count = math.prod(shape)
        return np.array(draw(st.lists(values, min_size=count, max_size=count))).reshape(shape)

    return {
        "x": array((*batch, c0, *size)),
        "w1": array((c1, c0, *k1)),
        "w2": array((c2, c1, *k2)),
        "b1": array((c1,)) if draw(st.booleans()) else None,
        "b2": array((c2,)) if draw(st.booleans()) else None,
        "stride1": s1,
        "stride2": s2,
    }


@settings(max_examples=60)
@given(stacks())
@example(
    {
        "x": np.arange(2 * 7 * 7).reshape(2, 7, 7),
        "w1": np.arange(24).reshape(3, 2, 2, 2),
        "w2": np.ones((1, 3, 3, 3), dtype=int),
        "b1": np.array([1, 2, 3]),
        "b2": np.array([10]),
        "stride1": (1, 1),
        "stride2": (1, 1),
    }
)
def test_compose_equals_two_stacked_convolutions_exactly(case: dict[str, Any]) -> None:
    x, w1, w2, b1, b2 = case["x"], case["w1"], case["w2"], case["b1"], case["b2"]
    s1, s2 = case["stride1"], case["stride2"]
    weight, bias, stride = mc.compose(w1, w2, b1, b2, s1, s2)
    stacked = mc.conv(mc.conv(x, w1, b1, s1), w2, b2, s2)
    assert np.array_equal(mc.conv(x, weight, bias, stride), stacked)
    assert weight.shape[:2] == (w2.shape[0], w1.shape[1])
    assert weight.shape[2:] == tuple(
        a + (b - 1) * s for a, b, s in zip(w1.shape[2:], w2.shape[2:], s1, strict=True)
    )
    assert stride == tuple(a * b for a, b in zip(s1, s2, strict=True))
    assert (bias is None) == (b1 is None and b2 is None)


@pytest.mark.parametrize("mode", mc.PADDING_MODES)
def test_compose_holds_with_padding_in_the_first_layer(mode: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-9, 9, (2, 5, 6))
    w1, b1 = rng.integers(-3, 3, (3, 2, 2, 3)), rng.integers(-3, 3, 3)
    w2, b2 = rng.integers(-3, 3, (2, 3, 3, 2)), rng.integers(-3, 3, 2)
    padding = ((1, 2), (2, 1))
    weight, bias, stride = mc.compose(w1, w2, b1, b2, (1, 2), (2, 1))
    stacked = mc.conv(mc.conv(x, w1, b1, (1, 2), padding, padding_mode=mode), w2, b2, (2, 1))
    assert np.array_equal(mc.conv(x, weight, bias, stride, padding, padding_mode=mode), stacked)


def test_compose_does_not_hold_with_padding_in_the_second_layer() -> None:
    # The documented limit: the second layer's padded zeros sit where the single
    # convolution sees b1 (here 1) propagated.
    x = np.array([[1, 2, 3]])
    w1, b1, w2 = np.array([[[1]]]), np.array([1]), np.array([[[1, 1]]])
    weight, bias, stride = mc.compose(w1, w2, b1)
    stacked = mc.conv(mc.conv(x, w1, b1), w2, padding=1)
    assert stacked.tolist() == [[2, 5, 7, 4]]
    single = mc.conv(x, weight, bias, stride, padding=1)
    assert single.tolist() == [[3, 5, 7, 5]]


def test_compose_is_exact_on_fractions() -> None:
    w1 = np.array([[[Fraction(1, 3), Fraction(-2, 7)]]], dtype=object)
    w2 = np.array([[[Fraction(3, 2)], [Fraction(5, 1)]]], dtype=object).reshape(1, 1, 2)
    weight, bias, stride = mc.compose(w1, w2, np.array([Fraction(1, 2)], dtype=object), None, 2)
    assert weight.tolist() == [
        [[Fraction(1, 2), Fraction(-3, 7), Fraction(5, 3), Fraction(-10, 7)]]
    ]
    assert bias is not None
    assert bias.tolist() == [Fraction(13, 4)]
    assert stride == (2,)


@pytest.mark.parametrize(
    ("w1", "w2", "match"),
    [
        (np.ones((2, 1, 3)), np.ones((1, 3, 3)), "w2 must read the channels w1 writes"),
        (np.ones((2, 1, 3)), np.ones((1, 2, 3, 3)), "same number of spatial dimensions"),
        (np.ones((2, 3)), np.ones((1, 2)), "same number of spatial dimensions"),
    ],
    ids=["channels", "ranks", "not-kernels"],
)
def test_compose_rejects_kernels_that_do_not_chain(
    w1: NDArray[Any], w2: NDArray[Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        mc.compose(w1, w2)


def test_compose_checks_biases_and_strides() -> None:
    with pytest.raises(ValueError, match=r"b1 must have shape \(2,\)"):
        mc.compose(np.ones((2, 1, 3)), np.ones((1, 2, 3)), b1=[1, 2, 3])
    with pytest.raises(ValueError, match="stride2 must be >= 1"):
        mc.compose(np.ones((2, 1, 3)), np.ones((1, 2, 3)), stride2=0)
    with pytest.raises(OverflowError, match="could overflow"):
        mc.compose(np.full((1, 1, 2), 2**40), np.full((1, 1, 2), 2**40))


# --------------------------------------------------------------------------------------
# decompose


@settings(max_examples=40)
@given(
    st.lists(st.integers(-9, 9), min_size=1, max_size=4).filter(any),
    st.lists(st.integers(-9, 9), min_size=1, max_size=4).filter(any),
)
def test_an_outer_product_kernel_splits_with_one_middle_channel(
    column: list[int], row: list[int]
) -> None:
    kernel = np.outer(column, row)[np.newaxis, np.newaxis]
    w1, w2 = mc.decompose(kernel)
    assert w1.shape == (1, 1, len(column), 1)
    assert w2.shape == (1, 1, 1, len(row))
    assert np.array_equal(mc.compose(w1, w2)[0], kernel)


@settings(max_examples=40)
@given(
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)).flatmap(
        lambda shape: st.lists(
            st.integers(-4, 4), min_size=math.prod(shape), max_size=math.prod(shape)
        ).map(lambda flat: np.array(flat).reshape(shape))
    )
)
def test_every_kernel_splits_with_rank_middle_channels(kernel: NDArray[Any]) -> None:
    w1, w2 = mc.decompose(kernel)
    out_channels, in_channels, kh, kw = kernel.shape
    # The rank of the matrix M[(o, b), (c, a)] = kernel[o, c, a, b], computed by LAPACK:
    # exact for these small integer matrices.
    matrix = kernel.transpose(0, 3, 1, 2).reshape(out_channels * kw, in_channels * kh)
    rank = int(np.linalg.matrix_rank(matrix.astype(np.float64)))
    assert w1.shape == (rank, in_channels, kh, 1)
    assert w2.shape == (out_channels, rank, 1, kw)
    assert np.array_equal(mc.compose(w1, w2)[0], kernel)


def test_decompose_splits_a_3d_kernel_and_the_convolutions_agree() -> None:
    rng = np.random.default_rng(5)
    kernel = rng.integers(-3, 4, (2, 2, 2, 3, 2))
    w1, w2 = mc.decompose(kernel)
    assert w1.shape[2:] == (2, 3, 1)
    assert w2.shape[2:] == (1, 1, 2)
    x = rng.integers(-9, 9, (2, 4, 5, 4))
    assert np.array_equal(mc.conv(mc.conv(x.astype(object), w1), w2), mc.conv(x, kernel))


def test_decompose_rejects_a_1d_kernel() -> None:
    with pytest.raises(ValueError, match="at least 2 kernel axes"):
        mc.decompose(np.ones((1, 1, 3)))


# --------------------------------------------------------------------------------------
# conv_matrix


@st.composite
def matrix_cases(draw: st.DrawFn) -> tuple[Problem, str]:
    problem = draw(problems(max_rank=3, max_size=4))
    mode = draw(st.sampled_from(mc.PADDING_MODES))
    if mode in ("reflect", "circular", "symmetric"):
        # These modes need padding no larger than the input; keep it simple.
        sizes = problem.input_shape[-len(problem.padding) :]
        limit = 1 if mode == "reflect" else 0
        padding = tuple(
            (min(a, size - limit), min(b, size - limit))
            for (a, b), size in zip(problem.padding, sizes, strict=True)
        )
        problem = Problem(
            problem.input_shape,
            problem.weight_shape,
            problem.stride,
            padding,
            problem.dilation,
            problem.groups,
            problem.bias,
        )
    return problem, mode


@settings(max_examples=60)
@given(matrix_cases(), st.randoms(use_true_random=False))
def test_conv_matrix_times_x_is_conv_of_x(case: tuple[Problem, str], random: Any) -> None:
    problem, mode = case
    try:
        expected_shape = mc.output_shape(
            problem.input_shape, problem.weight_shape, **problem.options
        )
    except ValueError:
        return  # the kernel no longer fits after the padding was clipped
    rng = np.random.default_rng(random.getrandbits(32))
    x = rng.integers(-9, 9, problem.input_shape)
    weight = rng.integers(-9, 9, problem.weight_shape)
    matrix = mc.conv_matrix(weight, problem.input_shape, **problem.options, padding_mode=mode)
    assert matrix.shape == (math.prod(expected_shape), x.size)
    expected = mc.conv(x, weight, **problem.options, padding_mode=mode)
    assert np.array_equal(matrix @ x.ravel(), expected.ravel())


def test_conv_matrix_of_a_1d_kernel_is_toeplitz() -> None:
    matrix = mc.conv_matrix([[[2, -1, 5]]], (1, 8))
    rows, columns = matrix.shape
    assert (rows, columns) == (6, 8)
    for i in range(rows - 1):
        for j in range(columns - 1):
            assert matrix[i, j] == matrix[i + 1, j + 1]
    assert matrix[0].tolist() == [2, -1, 5, 0, 0, 0, 0, 0]


def test_conv_matrix_keeps_fractions_exact() -> None:
    weight = np.array([[[Fraction(1, 3), Fraction(1, 2)]]], dtype=object)
    matrix = mc.conv_matrix(weight, (1, 3))
    assert matrix.tolist() == [
        [Fraction(1, 3), Fraction(1, 2), 0],
        [0, Fraction(1, 3), Fraction(1, 2)],
    ]


def test_conv_matrix_rejects_what_conv_rejects() -> None:
    with pytest.raises(ValueError, match="to have 2 channels"):
        mc.conv_matrix(np.ones((1, 2, 2, 2)), (3, 4, 4))


# --------------------------------------------------------------------------------------
# The exercises


@pytest.mark.parametrize(
    "exercise",
    [exercise_1, exercise_2, exercise_3, exercise_4, exercise_5, exercise_6],
    ids=lambda f: f.__name__,
)
def test_every_exercise_checks_out(exercise: Any) -> None:
    out = io.StringIO()
    assert exercise(out) is True
    text = out.getvalue()
    number = exercise.__name__[-1]
    assert text.startswith(f"{number}. ")


def test_answer_exercises_prints_all_six_in_order() -> None:
    out = io.StringIO()
    assert answer_exercises(out, seed=3)
    text = out.getvalue()
    starts = [text.index(f"\n{n}. ") for n in range(1, 7)]
    assert starts == sorted(starts)
