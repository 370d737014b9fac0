"""The "depthwise" path: stacked per-tap multiply-adds, checked against the reference loops.

The registry-wide property tests (test_properties, test_paths, test_grad) already run this
path on every generated problem; these tests aim at what is its own: groups == C_in with a
channel multiplier, its four layouts (flat views for stride 1, strided views, channels-last
stacks for small maps, per-channel matrices for maps no larger than the kernel), an input
that is not C-contiguous, the split into tasks and stacks (the result must not depend on
either), the order of its sums, and the memory it holds.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mimo_conv as mc
from memory_probe import peak_temporary
from mimo_conv._core.dtypes import plan_dtypes
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._engine.cost_model import workspace_bytes
from mimo_conv._paths import depthwise
from mimo_conv._paths.depthwise import depthwise_layout, plan_depthwise, uses_flat_views
from mimo_conv.testing import assert_conv_close


def integer_problem(
    rng: np.random.Generator, shape: tuple[int, ...], multiplier: int, kernel: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    channels = shape[1]
    x = rng.integers(-9, 10, size=shape)
    w = rng.integers(-9, 10, size=(channels * multiplier, 1, *kernel))
    return x, w


@given(
    spatial_dims=st.integers(1, 3),
    channels=st.integers(1, 5),
    multiplier=st.integers(1, 3),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    padding=st.integers(0, 2),
    mode=st.sampled_from(mc.PADDING_MODES),
    seed=st.integers(0, 2**16),
)
def test_depthwise_matches_the_reference_bit_for_bit(
    spatial_dims: int,
    channels: int,
    multiplier: int,
    kernel: int,
    stride: int,
    dilation: int,
    padding: int,
    mode: str,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    side = 4 + dilation * (kernel - 1)
    x, w = integer_problem(
        rng, (2, channels, *(side,) * spatial_dims), multiplier, (kernel,) * spatial_dims
    )

    def run(method: str) -> np.ndarray:
        return mc.conv(
            x,
            w,
            stride=stride,
            dilation=dilation,
            padding=padding,
            groups=channels,
            padding_mode=mode,
            method=method,
        )

    expected = run("naive")
    actual = run("depthwise")
    assert actual.dtype == expected.dtype
    assert np.array_equal(actual, expected)


@given(
    spatial_dims=st.integers(1, 3),
    groups=st.integers(1, 3),
    per_group=st.integers(2, 3),
    multiplier=st.integers(1, 2),
    data=st.data(),
)
def test_stride_phases_match_the_reference_bit_for_bit(
    spatial_dims: int, groups: int, per_group: int, multiplier: int, data: st.DataObject
) -> None:
    # Every axis its own stride (at least one > 1), dilation, kernel, padding and side, so
    # that phases differ in length along every axis and taps land in every phase. Several
    # channels per group keep small maps in the phases layout (one per group would take
    # the channels-last or matrix layouts there; the test below covers one).
    axes = st.tuples(*(st.integers(1, 3),) * spatial_dims)
    stride = data.draw(axes.filter(lambda steps: max(steps) > 1), label="stride")
    dilation = data.draw(st.tuples(*(st.integers(1, 2),) * spatial_dims), label="dilation")
    kernel = data.draw(axes, label="kernel")
    padding = data.draw(st.tuples(*(st.integers(0, 2),) * spatial_dims), label="padding")
    side = tuple(
        data.draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 9), label="side")
        for d, k, p in zip(dilation, kernel, padding, strict=True)
    )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    x = rng.integers(-9, 10, size=(2, groups * per_group, *side))
    w = rng.integers(-9, 10, size=(groups * multiplier, per_group, *kernel))
    options: dict[str, Any] = {
        "stride": stride,
        "dilation": dilation,
        "padding": padding,
        "groups": groups,
    }
    geometry = mc.explain_method(x, w, **options).geometry
    assert depthwise_layout(geometry) == "phases"
    expected = mc.conv(x, w, method="naive", **options)
    assert np.array_equal(mc.conv(x, w, method="depthwise", **options), expected)


@pytest.mark.parametrize(
    ("x_shape", "kernel", "stride", "dilation", "padding"),
    [
        ((2, 3, 29, 26), (3, 3), (2, 2), (1, 1), (1, 1)),  # odd padded rows: a short phase
        ((1, 2, 31, 34), (4, 2), (3, 1), (2, 2), (0, 1)),  # taps in phases 0, 2, 1, 0
        ((1, 2, 9, 10, 40), (2, 3, 2), (2, 3, 2), (1, 1, 2), (1, 0, 1)),
    ],
)
def test_stride_phases_of_one_channel_per_group_match_the_reference(
    x_shape: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: tuple[int, ...],
) -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-9, 10, size=x_shape)
    w = rng.integers(-9, 10, size=(2 * x_shape[1], 1, *kernel))
    options: dict[str, Any] = {
        "stride": stride,
        "dilation": dilation,
        "padding": padding,
        "groups": x_shape[1],
    }
    assert depthwise_layout(mc.explain_method(x, w, **options).geometry) == "phases"
    expected = mc.conv(x, w, method="naive", **options)
    assert np.array_equal(mc.conv(x, w, method="depthwise", **options), expected)
    floats = x.astype(np.float32) / 7, w.astype(np.float32) / 3
    assert_conv_close(mc.conv(*floats, method="depthwise", **options), *floats, **options)


def test_flat_and_strided_views_agree_and_a_non_contiguous_input_is_not_copied() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 9, 7)).astype(np.float32)
    w = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    flat = mc.conv2d(x, w, groups=4, method="depthwise")
    # The same values in a Fortran-ordered array: no padding, so the path gets it as it is
    # and must use the strided views; the arithmetic (and its order) is the same.
    fortran = mc.conv2d(np.asfortranarray(x), w, groups=4, method="depthwise")
    assert np.array_equal(flat, fortran)
    assert flat.flags.c_contiguous


def test_the_channel_multiplier_maps_output_channels_to_their_input() -> None:
    # Position-encoded input: output channel o must read input channel o // multiplier.
    x = (10 * np.arange(3)[:, None] + np.arange(5)[None, :]).reshape(1, 3, 5)
    w = np.zeros((6, 1, 1), dtype=np.int64)
    w[:, 0, 0] = [1, 2, 1, 2, 1, 2]
    out = mc.conv1d(x, w, groups=3, method="depthwise")
    expected = np.repeat(x[0], 2, axis=0) * np.array([1, 2, 1, 2, 1, 2])[:, None]
    assert np.array_equal(out[0], expected)


def test_dense_and_grouped_kernels_run_one_pass_per_channel_of_a_group() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(-5, 6, size=(2, 6, 5, 5))
    for groups, w_shape in ((1, (4, 6, 3, 3)), (2, (4, 3, 2, 2)), (3, (3, 2, 3, 1))):
        w = rng.integers(-5, 6, size=w_shape)
        expected = mc.conv2d(x, w, groups=groups, padding=1, method="naive")
        assert np.array_equal(
            mc.conv2d(x, w, groups=groups, padding=1, method="depthwise"), expected
        )


def depthwise_geometry(
    x_shape: tuple[int, ...], kernel: int, multiplier: int = 1, stride: int = 1, padding: int = 1
) -> ConvGeometry:
    channels, spatial = x_shape[1], len(x_shape) - 2
    return ConvGeometry(
        batch_size=x_shape[0],
        in_channels=channels,
        out_channels=channels * multiplier,
        groups=channels,
        input_shape=x_shape[2:],
        kernel_shape=(kernel,) * spatial,
        stride=(stride,) * spatial,
        dilation=(1,) * spatial,
        padding=((padding, padding),) * spatial,
    )


#: One call shape per layout: (x shape, kernel, stride, padding, layout).
LAYOUT_CASES = (
    ((4, 96, 20, 20), 3, 1, 1, "flat"),
    ((4, 48, 32, 32), 3, 2, 1, "phases"),
    ((2, 96, 6, 6), 5, 1, 2, "channels_last"),
    ((2, 96, 4, 4), 5, 1, 2, "matrix"),
)


@pytest.mark.parametrize(("x_shape", "kernel", "stride", "padding", "layout"), LAYOUT_CASES)
def test_each_layout_is_chosen_for_its_shape(
    x_shape: tuple[int, ...], kernel: int, stride: int, padding: int, layout: str
) -> None:
    geometry = depthwise_geometry(x_shape, kernel, stride=stride, padding=padding)
    assert depthwise_layout(geometry) == layout
    # The layout depends on the image, never on the batch (the engine's chunks of images).
    single = depthwise_geometry((1, *x_shape[1:]), kernel, stride=stride, padding=padding)
    assert depthwise_layout(single) == layout


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize(("x_shape", "kernel", "stride", "padding", "layout"), LAYOUT_CASES)
def test_float_results_do_not_depend_on_the_thread_count(
    threads: int, x_shape: tuple[int, ...], kernel: int, stride: int, padding: int, layout: str
) -> None:
    rng = np.random.default_rng(3)
    channels = x_shape[1]
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((2 * channels, 1, kernel, kernel)).astype(np.float32)
    options: dict[str, Any] = {
        "padding": padding,
        "stride": stride,
        "groups": channels,
        "method": "depthwise",
    }
    previous = mc.set_threads(1)
    try:
        single = mc.conv2d(x, w, **options)
        mc.set_threads(threads)
        geometry = depthwise_geometry(x_shape, kernel, 2, stride, padding)
        plan = plan_depthwise(geometry, 4)
        assert plan.layout == layout
        assert len(plan.tasks) > 1  # the work is really split
        several = mc.conv2d(x, w, **options)
    finally:
        mc.set_threads(previous)
    assert np.array_equal(single, several)  # same order of operations: bit for bit


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize(("x_shape", "kernel", "stride", "padding", "layout"), LAYOUT_CASES)
def test_floats_stay_within_the_derived_bound_in_every_layout(
    dtype: str, x_shape: tuple[int, ...], kernel: int, stride: int, padding: int, layout: str
) -> None:
    rng = np.random.default_rng(4)
    channels = x_shape[1]
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((3 * channels, 1, kernel, kernel))
    if dtype.startswith("complex"):
        x = x + 1j * rng.standard_normal(x_shape)
        w = w - 1j * rng.standard_normal(w.shape)
    x, w = x.astype(dtype), w.astype(dtype)
    options: dict[str, Any] = {"padding": padding, "stride": stride, "groups": channels}
    assert depthwise_layout(depthwise_geometry(x_shape, kernel, 3, stride, padding)) == layout
    out = mc.conv2d(x, w, method="depthwise", **options)
    assert out.dtype == np.dtype(dtype)
    assert_conv_close(out, x, w, **options)


@pytest.mark.parametrize(("x_shape", "kernel", "stride", "padding", "layout"), LAYOUT_CASES)
@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_integers_are_exact_in_every_layout(
    x_shape: tuple[int, ...], kernel: int, stride: int, padding: int, layout: str, mode: str
) -> None:
    # The hypothesis test above draws small maps (mostly channels-last); these shapes reach
    # each layout, with a multiplier of 2 and a dilation of 2 where the map allows it.
    rng = np.random.default_rng(5)
    x, w = integer_problem(rng, x_shape, 2, (kernel, kernel))
    dilation = 2 if x_shape[-1] > 8 else 1
    options: dict[str, Any] = {
        "padding": padding * dilation,
        "stride": stride,
        "dilation": dilation,
        "groups": x_shape[1],
        "padding_mode": mode,
    }
    expected = mc.conv2d(x, w, method="einsum", **options)
    assert np.array_equal(mc.conv2d(x, w, method="depthwise", **options), expected)


@pytest.mark.parametrize(
    ("x_shape", "stride", "layout"),
    [
        ((1, 2, 12, 12), 1, "flat"),
        ((1, 2, 24, 24), 2, "phases"),
        ((2, 3, 4, 4), 1, "channels_last"),
        ((2, 3, 3, 3), 1, "matrix"),
    ],
)
def test_exact_python_numbers_in_every_layout(
    x_shape: tuple[int, ...], stride: int, layout: str
) -> None:
    # Object arrays of Fractions: exact arithmetic, so the result must equal the reference.
    rng = np.random.default_rng(8)
    numbers = rng.integers(-9, 10, size=x_shape)
    x = np.array([Fraction(int(v), 3) for v in numbers.ravel()], dtype=object).reshape(x_shape)
    w = np.array(
        [Fraction(int(v), 7) for v in rng.integers(-9, 10, size=2 * x_shape[1] * 9)],
        dtype=object,
    ).reshape(2 * x_shape[1], 1, 3, 3)
    options: dict[str, Any] = {"padding": 1, "stride": stride, "groups": x_shape[1]}
    assert depthwise_layout(depthwise_geometry(x_shape, 3, 2, stride)) == layout
    out = mc.conv2d(x, w, method="depthwise", **options)
    assert out.dtype == object
    assert np.array_equal(out, mc.conv2d(x, w, method="naive", **options))


def test_products_are_summed_tap_by_tap_in_c_order() -> None:
    # The documented order, ((p_0 + p_1) + p_2) + ..., recomputed one float32 addition at a
    # time; values spread over many binades so that another order would round differently.
    rng = np.random.default_rng(6)
    for x_shape, kernel in (
        ((1, 3, 5, 5), 5),  # matrix
        ((1, 1, 5, 5), 5),  # matrix, one channel: the sum is not left to a reduce
        ((2, 4, 2, 2), 3),  # matrix
        ((1, 2, 20, 20), 3),  # flat
        ((2, 3, 7, 7), 3),  # channels-last: a small map
        ((1, 128, 12, 12), 3),  # channels-last: many channels
    ):
        x = (rng.standard_normal(x_shape) * 10.0 ** rng.integers(-4, 5, x_shape)).astype(np.float32)
        w = rng.standard_normal((x_shape[1], 1, kernel, kernel)).astype(np.float32)
        padding = kernel // 2 if x_shape[-1] < 5 else 0
        out = mc.conv2d(x, w, padding=padding, groups=x_shape[1], method="depthwise")
        padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        expected = np.empty_like(out)
        for n, c, r, q in np.ndindex(out.shape):
            total = None
            for i, j in np.ndindex(kernel, kernel):
                product = padded[n, c, r + i, q + j] * w[c, 0, i, j]  # float32 * float32
                total = product if total is None else np.float32(total + product)
            expected[n, c, r, q] = total
        assert np.array_equal(out, expected), x_shape


def test_many_channels_go_channels_last_at_stride_1_only() -> None:
    # From CHANNELS_LAST_FROM channels the einsum's inner loop over them beats two passes
    # per tap on any map at stride 1; strided maps take their stride phases.
    assert depthwise_layout(depthwise_geometry((2, 384, 14, 14), 3)) == "channels_last"
    assert depthwise_layout(depthwise_geometry((2, 96, 28, 28), 3)) == "flat"
    assert depthwise_layout(depthwise_geometry((2, 384, 28, 28), 3, stride=2)) == "phases"


@pytest.mark.parametrize("threads", [1, 2])
def test_channels_last_temporaries_stay_within_the_budget(threads: int) -> None:
    x = np.arange(4 * 96 * 6 * 6, dtype=np.float64).reshape(4, 96, 6, 6) % 7 - 3
    w = np.arange(96 * 25, dtype=np.float64).reshape(96, 1, 5, 5) % 5 - 2
    expected = mc.conv2d(x, w, padding=2, groups=96, method="einsum")
    # One output row per chunk on two threads: its sum (96 x 6) and a slab of 5 x 10 x 96.
    budget = 300_000
    previous = mc.set_threads(threads)
    try:
        assert plan_depthwise(depthwise_geometry(x.shape, 5, padding=2), 8).layout == (
            "channels_last"
        )
        peak, result = peak_temporary(
            lambda: mc.conv2d(x, w, padding=2, groups=96, method="depthwise", memory_budget=budget)
        )
    finally:
        mc.set_threads(previous)
    assert np.array_equal(result, expected)
    slack = threads * 3 * np.getbufsize() * 8 + 32 * 1024  # as in the test below
    assert peak <= budget + slack, (peak, budget)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("budget", [500_000, 2**20, 2**22])
def test_temporaries_stay_within_the_budget_on_any_thread_count(threads: int, budget: int) -> None:
    # Small integers in float64: exact in any order, so the result must equal the reference.
    x = np.arange(8 * 16 * 32 * 32, dtype=np.float64).reshape(8, 16, 32, 32) % 7 - 3
    w = np.arange(32 * 3 * 3, dtype=np.float64).reshape(32, 1, 3, 3) % 5 - 2
    expected = mc.conv2d(x, w, padding=1, groups=16, method="einsum")
    previous = mc.set_threads(threads)
    try:
        geometry = ConvGeometry(
            batch_size=8,
            in_channels=16,
            out_channels=32,
            groups=16,
            input_shape=(32, 32),
            kernel_shape=(3, 3),
            stride=(1, 1),
            dilation=(1, 1),
            padding=((1, 1),) * 2,
        )
        f64 = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
        with mc.memory_budget(budget):
            planned = workspace_bytes("depthwise", geometry, f64)
        peak, result = peak_temporary(
            lambda: mc.conv2d(x, w, padding=1, groups=16, method="depthwise", memory_budget=budget)
        )
    finally:
        mc.set_threads(previous)
    assert np.array_equal(result, expected)
    assert planned <= budget
    # As in test_paths and test_grad: on top of the budget, each ufunc running at once may
    # hold NumPy's iterator buffers (np.getbufsize() elements for up to 3 operands), and
    # Python objects take a few KiB.
    slack = threads * 3 * np.getbufsize() * 8 + 32 * 1024
    assert peak <= budget + slack, (peak, budget)


def test_a_row_that_does_not_fit_raises_before_any_work() -> None:
    x = np.ones((1, 4, 8, 8))
    w = np.ones((4, 1, 3, 3))
    # One row, channels-last (a small map): its sum, 4 channels * 8 columns * 8 bytes, and
    # the slab of 3 padded rows * 10 columns * 4 channels * 8 bytes, beside the padded
    # copy of the image (4 * 10 * 10 * 8 = 3200 bytes): more than 1600 bytes.
    assert depthwise_layout(depthwise_geometry((1, 4, 8, 8), 3)) == "channels_last"
    with pytest.raises(MemoryError, match="depthwise"):
        mc.conv2d(x, w, padding=1, groups=4, method="depthwise", memory_budget=1600)


def test_flat_views_are_used_exactly_for_unit_strides() -> None:
    for stride, flat in (((1, 1), True), ((1, 2), False), ((2, 1), False)):
        g = ConvGeometry(
            batch_size=1,
            in_channels=2,
            out_channels=2,
            groups=2,
            input_shape=(6, 6),
            kernel_shape=(3, 3),
            stride=stride,
            dilation=(1, 1),
            padding=((0, 0), (0, 0)),
        )
        assert uses_flat_views(g) is flat
    g = ConvGeometry(
        batch_size=2,
        in_channels=8,
        out_channels=8,
        groups=8,
        input_shape=(30, 30),
        kernel_shape=(3, 3),
        stride=(1, 1),
        dilation=(1, 1),
        padding=((1, 1), (1, 1)),
    )
    plan = plan_depthwise(g, 4)
    # The tasks cover every (image, group, row) exactly once.
    covered = np.zeros((2, 8, 30), dtype=int)
    for images, groups, rows in plan.tasks:
        covered[images, groups, rows] += 1
    assert np.array_equal(covered, np.ones_like(covered))
    assert math.prod(plan.out_shape) == 2 * 8 * 30 * 30


# --- the "matrix" layout: maps no larger than the kernel -----------------------------------


@given(
    spatial_dims=st.integers(1, 3),
    channels=st.integers(1, 4),
    multiplier=st.integers(1, 3),
    side=st.integers(1, 3),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 2),
    dilation=st.integers(1, 2),
    padding=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_small_maps_match_the_reference_bit_for_bit(
    spatial_dims: int,
    channels: int,
    multiplier: int,
    side: int,
    kernel: int,
    stride: int,
    dilation: int,
    padding: int,
    seed: int,
) -> None:
    # Maps of 1 to 3 positions per axis against kernels of up to 5 taps: mostly the
    # matrix layout (input positions <= taps), with the strided and padded corners.
    padding = min(padding, dilation * (kernel - 1))
    reach = dilation * (kernel - 1) + 1
    if side + 2 * padding < reach:
        side = reach - 2 * padding
    rng = np.random.default_rng(seed)
    x, w = integer_problem(
        rng, (2, channels, *(side,) * spatial_dims), multiplier, (kernel,) * spatial_dims
    )
    options: dict[str, Any] = {
        "stride": stride,
        "dilation": dilation,
        "padding": padding,
        "groups": channels,
    }
    expected = mc.conv(x, w, method="naive", **options)
    assert np.array_equal(mc.conv(x, w, method="depthwise", **options), expected)
    floats = mc.conv(x.astype(np.float64), w.astype(np.float64), method="depthwise", **options)
    assert np.array_equal(floats, expected)  # small integers: exact in float64 too


def test_the_matrix_layout_needs_zero_padding_and_a_map_no_larger_than_the_kernel() -> None:
    def layout(side: int, kernel: int, padding: int, mode: str = "zeros") -> str:
        geometry = ConvGeometry(
            batch_size=2, in_channels=8, out_channels=8, groups=8, input_shape=(side, side),
            kernel_shape=(kernel, kernel), stride=(1, 1), dilation=(1, 1),
            padding=((padding, padding),) * 2, padding_mode=mode,
        )  # fmt: skip
        return depthwise_layout(geometry)

    assert layout(4, 5, 2) == "matrix"  # 16 positions, 25 taps
    assert layout(5, 5, 2) == "matrix"  # 25 and 25
    assert layout(6, 5, 2) == "channels_last"  # 36 positions: more than the taps
    assert layout(4, 5, 2, "reflect") == "channels_last"  # the border copies image values
    assert layout(4, 5, 0, "reflect") == "matrix"  # no border at all
    # Dense or grouped kernels (several channels per group) never take it.
    dense = ConvGeometry(
        batch_size=1, in_channels=4, out_channels=4, groups=2, input_shape=(2, 2),
        kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1),) * 2,
    )  # fmt: skip
    assert depthwise_layout(dense) == "flat"


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex128"])
def test_nan_and_inf_keep_their_meaning_in_the_matrix_layout(dtype: str) -> None:
    # An inf outside a window must not reach it (the matrices hold 0 there: inf * 0 is NaN);
    # an inf inside a window meets a 0 weight as NaN; a non-finite weight meeting a padded
    # zero makes NaN, as the product with that zero does in every other path.
    x = (np.arange(2 * 3 * 4 * 4) % 7 - 3).astype(dtype).reshape(2, 3, 4, 4)
    w = (np.arange(3 * 2 * 25) % 5 - 2).astype(dtype).reshape(6, 1, 5, 5)
    x[0, 0, 0, 0] = np.inf
    x[1, 2, 3, 1] = np.nan
    w[1, 0, 2, 2] = 0  # the centre tap of output channel 1 (input channel 0) is zero
    w[3, 0, 0, 0] = -np.inf  # input channel 1: its top-left tap reads the border mostly
    options: dict[str, Any] = {"padding": 2, "groups": 3}
    assert depthwise_layout(depthwise_geometry(x.shape, 5, 2, 1, 2)) == "matrix"
    expected = mc.conv2d(x, w, method="naive", **options)
    out = mc.conv2d(x, w, method="depthwise", **options)
    np.testing.assert_array_equal(out, expected)  # NaN where NaN, inf where inf
    assert np.isnan(out[0, 1, 0, 0])  # inf * 0 at the centre tap
    # Input channel 0's inf reaches only its own outputs (0 and 1); image 0 has no NaN.
    assert np.isfinite(out[0, 2]).all()
    assert np.isfinite(out[0, 4:]).all()
    # The -inf weight of output 3 meets the border (NaN) and image values (infinities).
    assert np.isnan(out[:, 3]).any()
    assert not np.isnan(out[:, 2]).any()


def test_infinities_in_an_object_array_are_masked_outside_their_windows() -> None:
    x = np.array([[[Fraction(1, 3), math.inf, Fraction(2)]]], dtype=object)  # (1, 1, 3)
    w = np.array([[[Fraction(1), 0, Fraction(1, 2)]]], dtype=object)  # 3 taps
    options: dict[str, Any] = {"groups": 1, "padding": 1}
    g = ConvGeometry(
        batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
        kernel_shape=(3,), stride=(1,), dilation=(1,), padding=((1, 1),),
    )  # fmt: skip
    assert depthwise_layout(g) == "matrix"
    out = mc.conv1d(x, w, method="depthwise", **options)
    # Output 0 reads (pad, 1/3, inf) with taps (1, 0, 1/2): 0 + 0 + inf/2 = inf; output 1
    # reads (1/3, inf, 2): 1/3 + inf * 0 = NaN; output 2 reads (inf, 2, pad): inf + 0 = inf.
    assert out[0, 0, 0] == math.inf
    assert out[0, 0, 2] == math.inf
    assert math.isnan(out[0, 0, 1])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("budget", [600_000, 2**20, 2**22])
def test_matrix_temporaries_stay_within_the_budget(threads: int, budget: int) -> None:
    x = np.arange(4 * 96 * 4 * 4, dtype=np.float64).reshape(4, 96, 4, 4) % 7 - 3
    w = np.arange(192 * 25, dtype=np.float64).reshape(192, 1, 5, 5) % 5 - 2
    expected = mc.conv2d(x, w, padding=2, groups=96, method="einsum")
    previous = mc.set_threads(threads)
    try:
        geometry = depthwise_geometry(x.shape, 5, 2, 1, 2)
        assert depthwise_layout(geometry) == "matrix"
        f64 = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
        with mc.memory_budget(budget):
            planned = workspace_bytes("depthwise", geometry, f64)
        peak, result = peak_temporary(
            lambda: mc.conv2d(x, w, padding=2, groups=96, method="depthwise", memory_budget=budget)
        )
    finally:
        mc.set_threads(previous)
    assert np.array_equal(result, expected)
    assert planned <= budget
    slack = threads * 3 * np.getbufsize() * 8 + 32 * 1024  # as in the tests above
    assert peak <= planned + slack, (peak, planned)


def test_a_matrix_row_that_does_not_fit_raises_before_any_work() -> None:
    # One output row of the 4 x 4 map: 16 input positions, so 17 buffers of 192 channels x 4
    # outputs and the row's matrices (16 x 4 x 192), 215 KiB in float64: not in 100,000 bytes.
    x = np.ones((4, 96, 4, 4))
    w = np.ones((192, 1, 5, 5))
    with pytest.raises(MemoryError, match="depthwise"):
        mc.conv2d(x, w, padding=2, groups=96, method="depthwise", memory_budget=100_000)


def test_the_matrix_layout_gets_the_input_without_a_padded_copy() -> None:
    from mimo_conv._engine.execute import plan_for  # noqa: PLC0415 - the engine's own plan

    x = np.ones((2, 96, 4, 4))
    w = np.ones((96, 1, 5, 5))
    geometry = depthwise_geometry(x.shape, 5, padding=2)
    f64 = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
    call = plan_for(x, w, geometry, f64, 2**28, "depthwise")
    assert depthwise.reads_unpadded(geometry)
    assert call.cost.copy is not None
    assert call.cost.copy.held == 0  # no padded image is budgeted, or made
    # The other layouts read the padded copy (8 x 8 per channel here: 2 images x 96 x 64).
    wider = depthwise_geometry((2, 96, 6, 6), 5, padding=2)
    assert not depthwise.reads_unpadded(wider)
    other = plan_for(np.ones((2, 96, 6, 6)), w, wider, f64, 2**28, "depthwise")
    assert other.cost.copy is not None
    assert other.cost.copy.held == 2 * 96 * 10 * 10 * 8
