"""The "depthwise" path: per-tap multiply-adds, checked against the reference loops.

The registry-wide property tests (test_properties, test_paths, test_grad) already run this
path on every generated problem; these tests aim at what is its own: groups == C_in with a
channel multiplier, the flat views (stride 1) against the strided ones, an input that is
not C-contiguous, the split into tasks, and the memory it holds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mimo_conv as mc
from memory_probe import peak_temporary
from mimo_conv._core.dtypes import plan_dtypes
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._engine.cost_model import workspace_bytes
from mimo_conv._paths.depthwise import plan_depthwise, uses_flat_views


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


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_float_results_do_not_depend_on_the_thread_count(threads: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 96, 20, 20)).astype(np.float32)
    w = rng.standard_normal((96, 1, 3, 3)).astype(np.float32)
    previous = mc.set_threads(1)
    try:
        single = mc.conv2d(x, w, padding=1, groups=96, method="depthwise")
        mc.set_threads(threads)
        geometry = ConvGeometry(
            batch_size=4,
            in_channels=96,
            out_channels=96,
            groups=96,
            input_shape=(20, 20),
            kernel_shape=(3, 3),
            stride=(1, 1),
            dilation=(1, 1),
            padding=((1, 1),) * 2,
        )
        assert len(plan_depthwise(geometry, 4).tasks) > 1  # the work is really split
        several = mc.conv2d(x, w, padding=1, groups=96, method="depthwise")
    finally:
        mc.set_threads(previous)
    assert np.array_equal(single, several)  # same order of operations: bit for bit


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
    # One row: 2 buffers * 4 channels * 10 wide columns * 8 bytes = 640 bytes, plus the copy.
    with pytest.raises(MemoryError, match="depthwise"):
        mc.conv2d(x, w, padding=1, groups=4, method="depthwise", memory_budget=600)


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
