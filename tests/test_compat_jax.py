"""mimo_conv.compat.jax against JAX itself (skipped when jax is not installed).

Generated problems in JAX's conventions (``mimo_conv.testing.conventions.jax_problems``:
random ``dimension_numbers``, feature groups, strides, kernel and input dilation, SAME /
SAME_LOWER / VALID / explicit and negative padding): the adapter and ``jax.lax`` must both
be within the rigorous error bound of the exact result on floats, and agree bit for bit on
integer-valued data (every sum exact in float32).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimo_conv.compat import jax as mc_jax
from mimo_conv.testing.conventions import FrameworkProblem, jax_problems

jax = pytest.importorskip("jax")
lax = pytest.importorskip("jax.lax")
jax.config.update("jax_platforms", "cpu")


def run_jax(function: Any, *args: Any, **kwargs: Any) -> np.ndarray[Any, Any]:
    return np.asarray(function(*args, **kwargs))


@given(jax_problems(spatial_dims=(1, 2, 3), elements="integers"))
def test_conv_general_dilated_is_exact_on_integers(problem: FrameworkProblem) -> None:
    expected = run_jax(lax.conv_general_dilated, *problem.args, **problem.kwargs)
    actual = mc_jax.conv_general_dilated(*problem.args, **problem.kwargs)
    np.testing.assert_array_equal(actual, expected)
    assert actual.dtype == expected.dtype
    problem.assert_close(actual)


#: Normal magnitudes only: XLA's CPU kernels flush subnormal results to zero (a documented
#: divergence, pinned in test_xla_flushes_subnormal_results_to_zero), so values in
#: [2**-10, 2**10] keep every product and partial sum normal in float32.
NORMAL = st.one_of(
    st.just(0.0),
    st.floats(2.0**-10, 2.0**10, width=32),
    st.floats(-(2.0**10), -(2.0**-10), width=32),
)


@given(jax_problems(spatial_dims=(1, 2), dtypes=("float32", "float64"), elements=NORMAL))
def test_conv_general_dilated_within_the_bound_on_floats(problem: FrameworkProblem) -> None:
    if problem.args[0].dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    try:
        expected = run_jax(lax.conv_general_dilated, *problem.args, **problem.kwargs)
    finally:
        jax.config.update("jax_enable_x64", False)
    problem.assert_close(expected)  # JAX within the bound of the exact result
    problem.assert_close(mc_jax.conv_general_dilated(*problem.args, **problem.kwargs))


@st.composite
def batch_group_problems(draw: st.DrawFn) -> dict[str, Any]:
    groups = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batch = groups * draw(st.integers(1, 2))
    channels, out_channels = draw(st.integers(1, 3)), groups * draw(st.integers(1, 2))
    size, k = draw(st.integers(2, 6)), draw(st.integers(1, 2))
    lhs = rng.integers(-8, 9, (batch, size, channels)).astype(np.float32)  # NWC
    rhs = rng.integers(-8, 9, (k, channels, out_channels)).astype(np.float32)  # WIO
    return {
        "lhs": lhs, "rhs": rhs, "window_strides": (draw(st.integers(1, 2)),),
        "padding": [(draw(st.integers(-1, 1)), draw(st.integers(0, 1)))],
        "dimension_numbers": ("NWC", "WIO", "NWC"), "batch_group_count": groups,
    }  # fmt: skip


@given(batch_group_problems())
def test_batch_group_count_matches_jax(call: dict[str, Any]) -> None:
    expected = run_jax(lax.conv_general_dilated, **call)
    np.testing.assert_array_equal(mc_jax.conv_general_dilated(**call), expected)


@st.composite
def transpose_problems(draw: st.DrawFn) -> dict[str, Any]:
    rank = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    size = [draw(st.integers(1, 4)) for _ in range(rank)]
    kernel = [draw(st.integers(1, 4)) for _ in range(rank)]
    channels, out_channels = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    lhs = rng.integers(-8, 9, (2, *size, channels)).astype(np.float32)
    rhs = rng.integers(-8, 9, (*kernel, channels, out_channels)).astype(np.float32)
    consistent = draw(st.booleans())
    padding: Any = draw(st.sampled_from(["SAME", "VALID", "pairs"]))
    if padding == "pairs":
        limit = 0 if not consistent else min(kernel) - 1
        padding = [(draw(st.integers(0, limit)), draw(st.integers(0, limit))) for _ in kernel]
        if not consistent:
            padding = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in kernel]
    return {
        "lhs": lhs, "rhs": rhs, "strides": tuple(draw(st.integers(1, 3)) for _ in kernel),
        "padding": padding, "rhs_dilation": tuple(draw(st.integers(1, 2)) for _ in kernel),
        "transpose_kernel": draw(st.booleans()), "use_consistent_padding": consistent,
    }  # fmt: skip


@given(transpose_problems())
def test_conv_transpose_matches_jax(call: dict[str, Any]) -> None:
    if call["transpose_kernel"]:  # swapping I and O needs square channels
        call["rhs"] = call["rhs"][..., :1, :1]
        call["lhs"] = call["lhs"][..., :1]
    expected = run_jax(lax.conv_transpose, **call)
    np.testing.assert_array_equal(mc_jax.conv_transpose(**call), expected)


def test_preferred_element_type_int8_to_int32_is_exact() -> None:
    rng = np.random.default_rng(0)
    lhs = rng.integers(-128, 128, (2, 3, 9), dtype=np.int8)
    rhs = rng.integers(-128, 128, (4, 3, 3), dtype=np.int8)
    options: dict[str, Any] = {
        "window_strides": (2,),
        "padding": "SAME",
        "preferred_element_type": np.int32,
    }
    expected = run_jax(lax.conv_general_dilated, lhs, rhs, **options)
    actual = mc_jax.conv_general_dilated(lhs, rhs, **options)
    np.testing.assert_array_equal(actual, expected)
    assert actual.dtype == np.int32


def test_string_padding_with_input_dilation_is_refused_as_in_jax() -> None:
    x, w = np.ones((1, 1, 4), np.float32), np.ones((1, 1, 2), np.float32)
    with pytest.raises(ValueError, match="String padding"):
        lax.conv_general_dilated(x, w, (1,), "SAME", lhs_dilation=(2,))
    with pytest.raises(ValueError, match=r"padding must be explicit .* got padding='SAME'"):
        mc_jax.conv_general_dilated(x, w, (1,), "SAME", lhs_dilation=(2,))


def test_a_crop_beyond_every_window_gives_an_empty_output_as_in_jax() -> None:
    x, w = np.ones((1, 1, 4), np.float32), np.ones((1, 1, 3), np.float32)
    options: dict[str, Any] = {"window_strides": (1,), "padding": [(-2, 0)]}
    expected = run_jax(lax.conv_general_dilated, x, w, **options)
    actual = mc_jax.conv_general_dilated(x, w, **options)
    assert actual.shape == expected.shape == (1, 1, 0)


def test_xla_flushes_subnormal_results_to_zero() -> None:
    # A product of two normal float32 values that is subnormal: exact 2**-140.
    x = np.full((1, 1, 1), 2.0**-70, np.float32)
    w = np.full((1, 1, 1), 2.0**-70, np.float32)
    exact = mc_jax.conv_general_dilated(x, w, (1,), "VALID")
    assert exact[0, 0, 0] == np.float32(2.0**-140)
    flushed = run_jax(lax.conv_general_dilated, x, w, (1,), "VALID")
    # Recorded divergence (docs/frameworks.md): XLA CPU gives 0; any other value but the
    # exact one would be a new bug.
    assert flushed[0, 0, 0] in (0.0, exact[0, 0, 0])


def test_conv_dimension_numbers_objects_are_accepted() -> None:
    rng = np.random.default_rng(3)
    lhs = rng.integers(-5, 6, (2, 6, 5, 3)).astype(np.float32)  # N H W C
    rhs = rng.integers(-5, 6, (2, 3, 3, 4)).astype(np.float32)  # H W I O
    numbers = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NCHW"))
    options: dict[str, Any] = {"window_strides": (2, 1), "padding": "SAME_LOWER"}
    expected = run_jax(lax.conv_general_dilated, lhs, rhs, dimension_numbers=numbers, **options)
    actual = mc_jax.conv_general_dilated(lhs, rhs, dimension_numbers=numbers, **options)
    np.testing.assert_array_equal(actual, expected)
    assert actual.shape == (2, 4, 3, 5)
