"""The compat adapters without any framework: they import none, and reject bad arguments.

These run everywhere (no framework needed); the differential tests against the frameworks
are test_compat_jax.py, test_compat_tf.py and test_compat_onnx.py.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mimo_conv.compat
from mimo_conv.compat import jax, onnx, tf

COMPAT = Path(mimo_conv.compat.__file__).parent


@pytest.mark.parametrize("path", sorted(COMPAT.glob("*.py")), ids=lambda p: p.name)
def test_adapters_import_only_numpy_and_mimo_conv(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "collections", "typing", "numpy", "mimo_conv"}, roots


X = np.ones((1, 1, 5), np.float32)
W = np.ones((1, 1, 2), np.float32)

BAD: list[tuple[str, Any, tuple[Any, ...], dict[str, Any], type[Exception], str]] = [
    ("jax-dtypes", jax.conv_general_dilated, (X, W.astype(np.float64), (1,), "VALID"), {},
     TypeError, r"lhs and rhs must have the same dtype"),
    ("jax-padding-string", jax.conv_general_dilated, (X, W, (1,), "FULL"), {},
     ValueError, r"padding must be 'VALID', 'SAME', 'SAME_LOWER' or pairs, got 'FULL'"),
    ("jax-dimension-numbers", jax.conv_general_dilated, (X, W, (1,), "VALID"),
     {"dimension_numbers": ("NCW", "OIH", "NCW")}, ValueError,
     r"lhs_spec must hold 'N', 'C' and the kernel's 1 spatial"),
    ("jax-both-groups", jax.conv_general_dilated, (np.ones((2, 2, 5)), np.ones((2, 1, 2)), (1,),
     "VALID"), {"feature_group_count": 2, "batch_group_count": 2}, ValueError,
     r"batch_group_count=2 must divide .* with feature_group_count 1"),
    ("jax-pairs", jax.conv_general_dilated, (X, W, (1,), [(1,)]), {}, ValueError,
     r"padding must be a string or a sequence of \(low, high\) int pairs"),
    ("tf-data-format", tf.conv1d, (X, W, 1, "VALID"), {"data_format": "NHWC"}, ValueError,
     r"data_format must be one of \('NWC', 'NCW'\), got 'NHWC'"),
    ("tf-strides-batch", tf.conv2d, (np.ones((1, 3, 3, 1)), np.ones((1, 1, 1, 1)),
     [2, 1, 1, 1], "VALID"), {}, ValueError, r"strides must be 1 along the batch and channel"),
    ("tf-padding", tf.conv2d, (np.ones((1, 3, 3, 1)), np.ones((1, 1, 1, 1)), 1, "same"), {},
     ValueError, r"padding must be 'SAME', 'VALID' or explicit pairs, got 'same'"),
    ("tf-transpose-shape", tf.conv2d_transpose, (np.ones((1, 2, 2, 1)), np.ones((2, 2, 1, 1)),
     [1, 5, 5, 1], 2), {}, ValueError,
     r"output_shape \[1, 5, 5, 1\] must be the input of a conv2d whose output has input's"),
    ("onnx-auto-pad", onnx.conv, (X, W), {"auto_pad": "SAME"}, ValueError,
     r"auto_pad must be one of \('NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID'\), got 'SAME'"),
    ("onnx-pads", onnx.conv, (X, W), {"pads": [1]}, ValueError,
     r"pads must have 2 \* 1 entries \(all begins, then all ends\), got \[1\]"),
    ("onnx-kernel-shape", onnx.conv, (X, W), {"kernel_shape": [3]}, ValueError,
     r"kernel_shape must be W's spatial shape \(2,\), got kernel_shape=\[3\]"),
    ("onnx-qlinear-bias", onnx.qlinear_conv, (np.ones((1, 1, 3), np.uint8), 1.0, 0,
     np.ones((1, 1, 2), np.uint8), 1.0, 0, 1.0, np.uint8(0), np.ones(1, np.float32)), {},
     ValueError, r"B must be int32 of shape \(1,\)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("function", "args", "kwargs", "error", "match"),
    [pytest.param(f, a, k, e, m, id=i) for i, f, a, k, e, m in BAD],
)
def test_bad_arguments_are_named(
    function: Any, args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception],
    match: str,
) -> None:  # fmt: skip
    with pytest.raises(error, match=match):
        function(*args, **kwargs)


def test_adapters_never_modify_their_inputs() -> None:
    x = np.arange(10, dtype=np.float32).reshape(1, 5, 2)
    w = np.ones((2, 2, 3), np.float32)
    before = x.copy(), w.copy()
    out = tf.conv1d(x, w, 2, "SAME")
    assert not np.shares_memory(out, x)
    jax.conv_general_dilated(x, w, (1,), [(-1, 2)], dimension_numbers=("NWC", "WIO", "NWC"))
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(w, before[1])


def test_tf_channels_first_is_channels_last_transposed() -> None:
    # TensorFlow runs NCHW conv2d only on GPUs, so this is checked against the NHWC call
    rng = np.random.default_rng(5)
    x = rng.integers(-5, 6, (2, 6, 5, 3)).astype(np.float32)
    w = rng.integers(-5, 6, (3, 2, 3, 4)).astype(np.float32)
    options: dict[str, Any] = {"strides": [1, 2, 1, 1], "padding": "SAME"}
    expected = tf.conv2d(x, w, **options)
    nchw: dict[str, Any] = {"strides": [1, 1, 2, 1], "padding": "SAME", "data_format": "NCHW"}
    actual = tf.conv2d(x.transpose(0, 3, 1, 2), w, **nchw)
    np.testing.assert_array_equal(actual, expected.transpose(0, 3, 1, 2))
