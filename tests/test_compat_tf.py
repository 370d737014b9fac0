"""mimo_conv.compat.tf against TensorFlow's ``tf.nn`` (skipped when TensorFlow is absent).

Generated problems in TensorFlow's conventions
(``mimo_conv.testing.conventions.tf_problems``: NWC/NHWC/NDHWC inputs, ``(*k, I, O)``
filters, SAME at any stride, VALID, explicit 2-d padding, a stride or a dilation): exact on
integer-valued data, TensorFlow and the adapter both within the oracle's bound on floats.
The transposed, depthwise and atrous forms are checked exactly on integer data.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimo_conv.compat import tf as mc_tf
from mimo_conv.testing.conventions import FrameworkProblem, tf_problems

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

FUNCTIONS = {1: "conv1d", 2: "conv2d", 3: "conv3d"}


def run_tf(name: str, *args: Any, **kwargs: Any) -> np.ndarray[Any, Any]:
    result: Any = getattr(tf.nn, name)(*args, **kwargs)
    return np.asarray(result.numpy())


@pytest.mark.parametrize("rank", [1, 2, 3])
@given(data=st.data())
def test_conv_is_exact_on_integers(rank: int, data: st.DataObject) -> None:
    problem: FrameworkProblem = data.draw(tf_problems(spatial_dims=rank, elements="integers"))
    expected = run_tf(FUNCTIONS[rank], *problem.args, **problem.kwargs)
    actual = getattr(mc_tf, FUNCTIONS[rank])(*problem.args, **problem.kwargs)
    np.testing.assert_array_equal(actual, expected)
    assert actual.dtype == expected.dtype


@pytest.mark.parametrize("rank", [1, 2])
@given(data=st.data())
def test_conv_within_the_bound_on_floats(rank: int, data: st.DataObject) -> None:
    normal = st.one_of(st.just(0.0), st.floats(2.0**-10, 2.0**10, width=32),
                       st.floats(-(2.0**10), -(2.0**-10), width=32))  # fmt: skip
    problem: FrameworkProblem = data.draw(tf_problems(spatial_dims=rank, elements=normal))
    problem.assert_close(run_tf(FUNCTIONS[rank], *problem.args, **problem.kwargs))
    problem.assert_close(getattr(mc_tf, FUNCTIONS[rank])(*problem.args, **problem.kwargs))


@st.composite
def depthwise_problems(draw: st.DrawFn) -> dict[str, Any]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    channels, multiplier = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    size, k = draw(st.integers(3, 6)), draw(st.integers(1, 3))
    step = draw(st.integers(1, 2))
    rate = 1 if step > 1 else draw(st.integers(1, 2))
    if rate * (k - 1) + 1 > size:  # no VALID window: pinned in test_depthwise_no_window_...
        rate = 1
    return {
        "input": rng.integers(-8, 9, (2, size, size, channels)).astype(np.float32),
        "filter": rng.integers(-8, 9, (k, k, channels, multiplier)).astype(np.float32),
        "strides": [1, step, step, 1], "padding": draw(st.sampled_from(["SAME", "VALID"])),
        "dilations": [rate, rate],
    }  # fmt: skip


@given(depthwise_problems())
def test_depthwise_conv2d_is_exact(call: dict[str, Any]) -> None:
    np.testing.assert_array_equal(
        mc_tf.depthwise_conv2d(**call), run_tf("depthwise_conv2d", **call)
    )


@given(rate=st.integers(1, 3), padding=st.sampled_from(["SAME", "VALID"]), seed=st.integers(0, 99))
def test_atrous_conv2d_is_exact(rate: int, padding: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    value = rng.integers(-8, 9, (1, 7, 7, 2)).astype(np.float32)
    filters = rng.integers(-8, 9, (2, 3, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        mc_tf.atrous_conv2d(value, filters, rate, padding),
        run_tf("atrous_conv2d", value, filters, rate, padding),
    )


@st.composite
def transpose_problems(draw: st.DrawFn) -> dict[str, Any]:
    rank = draw(st.integers(2, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out_spatial = [draw(st.integers(2, 6)) for _ in range(rank)]
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    stride = [draw(st.integers(1, 3)) for _ in range(rank)]
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    if padding == "VALID":
        kernel = [min(k, n) for k, n in zip(kernel, out_spatial, strict=True)]
        in_spatial = [(n - k) // s + 1 for n, k, s in zip(out_spatial, kernel, stride, strict=True)]
    else:
        in_spatial = [-(-n // s) for n, s in zip(out_spatial, stride, strict=True)]
    in_channels, out_channels = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return {
        "input": rng.integers(-8, 9, (2, *in_spatial, in_channels)).astype(np.float32),
        "filters": rng.integers(-8, 9, (*kernel, out_channels, in_channels)).astype(np.float32),
        "output_shape": [2, *out_spatial, out_channels], "strides": [1, *stride, 1],
        "padding": padding,
    }  # fmt: skip


@given(transpose_problems())
def test_conv_transpose_is_exact(call: dict[str, Any]) -> None:
    name = "conv2d_transpose" if call["input"].ndim == 4 else "conv3d_transpose"
    np.testing.assert_array_equal(getattr(mc_tf, name)(**call), run_tf(name, **call))


def test_stride_and_dilation_together() -> None:
    # TF's documentation says strides > 1 with dilations > 1 is unsupported on CPU; TF 2.21's
    # oneDNN kernel computes it, and agrees with the dilated kernel written out densely.
    x = np.arange(2 * 9 * 9, dtype=np.float32).reshape(1, 9, 9, 2) % 5
    w = np.arange(8, dtype=np.float32).reshape(2, 2, 2, 1) - 3
    options: dict[str, Any] = {"strides": 2, "padding": "VALID", "dilations": 2}
    dense_kernel = np.zeros((3, 3, 2, 1), np.float32)
    dense_kernel[::2, ::2] = w
    expected = mc_tf.conv2d(x, dense_kernel, strides=2, padding="VALID")
    np.testing.assert_array_equal(mc_tf.conv2d(x, w, **options), expected)
    np.testing.assert_array_equal(run_tf("conv2d", x, w, **options), expected)


def test_depthwise_no_window_fits_tf_returns_uninitialised_memory() -> None:
    # A dilated 3 x 3 kernel spans 5 > 3: no VALID window exists. mimo_conv raises; TF 2.21
    # returns an array of the input's spatial shape whose values are whatever was in memory
    # (its space-to-batch route for dilations). Only the shape is asserted: the values vary.
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    w = np.ones((3, 3, 1, 1), np.float32)
    options: dict[str, Any] = {"strides": [1, 1, 1, 1], "padding": "VALID", "dilations": [2, 2]}
    with pytest.raises(ValueError, match="kernel must fit in the padded input"):
        mc_tf.depthwise_conv2d(x, w, **options)
    assert run_tf("depthwise_conv2d", x, w, **options).shape == (1, 3, 3, 1)
