"""mimo_conv.compat.onnx against ONNX's reference evaluator and onnxruntime.

Skipped without onnx (and, for onnxruntime's half, without onnxruntime). Each problem is
one-node ONNX model run by a backend; integer-valued data make every comparison exact, float
data are checked within the oracle's rigorous bound. The backends' known divergences from
the specification are pinned below as regression cases: each asserts the backend still
behaves in the documented way (so a fix upstream shows up as a failure to update the docs),
except onnxruntime's ConvInteger saturation, which depends on the CPU and is an
``xfail(strict=False)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimo_conv.compat import onnx as mc_onnx
from mimo_conv.testing.conventions import FrameworkProblem, onnx_problems

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

OPSET = 21


def make_model(op: str, inputs: list[np.ndarray[Any, Any]], attributes: dict[str, Any]) -> Any:
    names = [f"input{index}" for index in range(len(inputs))]
    node = helper.make_node(op, names, ["y"], **attributes)
    values = [
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for name, a in zip(names, inputs, strict=True)
    ]
    out_dtype = {"ConvInteger": np.dtype(np.int32)}.get(op)
    if op == "QLinearConv":
        out_dtype = inputs[7].dtype
    kind = helper.np_dtype_to_tensor_dtype(inputs[0].dtype if out_dtype is None else out_dtype)
    out = helper.make_tensor_value_info("y", kind, None)
    graph = helper.make_graph([node], op, values, [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)


def run_reference(op: str, inputs: list[Any], attributes: dict[str, Any]) -> Any:
    model = make_model(op, inputs, attributes)
    feeds = {f"input{index}": a for index, a in enumerate(inputs)}
    outputs: Any = ReferenceEvaluator(model).run(None, feeds)
    return outputs[0]


def run_runtime(op: str, inputs: list[Any], attributes: dict[str, Any]) -> Any:
    ort = pytest.importorskip("onnxruntime")
    model = make_model(op, inputs, attributes)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {f"input{index}": a for index, a in enumerate(inputs)}
    return session.run(None, feeds)[0]


BACKENDS = [pytest.param(run_reference, id="reference"), pytest.param(run_runtime, id="runtime")]


# --- Conv ------------------------------------------------------------------------------


def runtime_refuses_dilated_same(backend: Any, problem: FrameworkProblem) -> bool:
    """onnxruntime's Conv refuses auto_pad SAME_* with a dilation > 1 (pinned: it raises)."""
    attributes = problem.kwargs
    refused = (
        backend is run_runtime
        and str(attributes.get("auto_pad", "")).startswith("SAME")
        and any(d > 1 for d in attributes["dilations"])
    )
    if refused:
        with pytest.raises(Exception, match="Dilation not supported for AutoPadType::SAME"):
            backend("Conv", list(problem.args), attributes)
    return refused


@pytest.mark.parametrize("backend", BACKENDS)
@given(problem=onnx_problems(spatial_dims=(1, 2, 3), elements="integers"))
def test_conv_is_exact_on_integers(backend: Any, problem: FrameworkProblem) -> None:
    if runtime_refuses_dilated_same(backend, problem):
        return
    expected = backend("Conv", list(problem.args), problem.kwargs)
    actual = mc_onnx.conv(*problem.args, **problem.kwargs)
    np.testing.assert_array_equal(actual, expected)
    assert actual.dtype == expected.dtype


@pytest.mark.parametrize("backend", BACKENDS)
@given(problem=onnx_problems(spatial_dims=(1, 2)))
def test_conv_within_the_bound_on_floats(backend: Any, problem: FrameworkProblem) -> None:
    if runtime_refuses_dilated_same(backend, problem):
        return
    problem.assert_close(backend("Conv", list(problem.args), problem.kwargs))
    problem.assert_close(mc_onnx.conv(*problem.args, **problem.kwargs))


# --- ConvTranspose ---------------------------------------------------------------------


@st.composite
def transpose_problems(draw: st.DrawFn) -> tuple[list[Any], dict[str, Any]]:
    """Problems inside the spec's common ground: no bias with group > 1, pads or SAME."""
    rank = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    group = draw(st.integers(1, 2))
    channels = group * draw(st.integers(1, 2))
    per_group = draw(st.integers(1, 2))
    size = [draw(st.integers(1, 4)) for _ in range(rank)]
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    dilations = [draw(st.integers(1, 2)) for _ in range(rank)]
    x = rng.integers(-8, 9, (2, channels, *size)).astype(np.float32)
    w = rng.integers(-8, 9, (channels, per_group, *kernel)).astype(np.float32)
    attributes: dict[str, Any] = {"strides": strides, "dilations": dilations, "group": group}
    mode = draw(st.sampled_from(["pads", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if mode.startswith("SAME"):  # a kernel narrower than the stride: pinned divergence below
        strides = [
            min(s, d * (k - 1) + 1) for s, d, k in zip(strides, dilations, kernel, strict=True)
        ]
        attributes["strides"] = strides
    if mode == "pads":
        widest = [(k - 1) * d // 2 for k, d in zip(kernel, dilations, strict=True)]
        pads = [draw(st.integers(0, w)) for w in widest] + [draw(st.integers(0, w)) for w in widest]
        attributes["pads"] = pads
        attributes["output_padding"] = [draw(st.integers(0, s - 1)) for s in strides]
    else:
        attributes["auto_pad"] = mode
    inputs = [x, w]
    if group == 1 and draw(st.booleans()):
        inputs.append(rng.integers(-8, 9, per_group).astype(np.float32))
    return inputs, attributes


def reference_slices_groups_wrongly(inputs: list[Any], attributes: dict[str, Any]) -> bool:
    """The reference's grouped ConvTranspose takes W's rows per output channel and writes one
    output channel per group: it works only when each group has one input and one output."""
    group = attributes["group"]
    return group > 1 and not (inputs[1].shape[1] == 1 and inputs[1].shape[0] == group)


@pytest.mark.parametrize("backend", BACKENDS)
@given(call=transpose_problems())
def test_conv_transpose_is_exact_on_integers(
    backend: Any, call: tuple[list[Any], dict[str, Any]]
) -> None:
    inputs, attributes = call
    if backend is run_reference and reference_slices_groups_wrongly(inputs, attributes):
        with pytest.raises(ValueError):  # noqa: PT011 - pinned: numpy's reshape/broadcast error
            backend("ConvTranspose", inputs, attributes)
        return
    expected = backend("ConvTranspose", inputs, attributes)
    np.testing.assert_array_equal(mc_onnx.conv_transpose(*inputs, **attributes), expected)


@pytest.mark.parametrize("backend", BACKENDS)
@given(call=transpose_problems(), extra=st.integers(0, 2))
def test_conv_transpose_output_shape_within_the_natural_size(
    backend: Any, call: tuple[list[Any], dict[str, Any]], extra: int
) -> None:
    # output_shape at most the natural size, with auto_pad (the reference needs it) and
    # without pads (the spec ignores them; the reference honours them: pinned below)
    inputs, attributes = call
    if backend is run_reference and reference_slices_groups_wrongly(inputs, attributes):
        return  # pinned in test_conv_transpose_is_exact_on_integers
    natural = mc_onnx.conv_transpose(*inputs, **attributes).shape[2:]
    kept = {k: v for k, v in attributes.items() if k in ("strides", "dilations", "group")}
    kept["auto_pad"] = "SAME_LOWER" if "pads" in attributes else attributes["auto_pad"]
    if kept["auto_pad"] == "VALID":
        kept["auto_pad"] = "SAME_UPPER"
    full = [
        s * (n - 1) + d * (k - 1) + 1
        for s, n, d, k in zip(kept["strides"], inputs[0].shape[2:], kept["dilations"],
                              inputs[1].shape[2:], strict=True)
    ]  # fmt: skip
    kept["output_shape"] = [max(size - extra, 1) for size in full]
    expected = backend("ConvTranspose", inputs, kept)
    np.testing.assert_array_equal(mc_onnx.conv_transpose(*inputs, **kept), expected)
    assert len(natural) == len(full)


X1 = np.array([[[1.0, 10.0]]], np.float32)
W1 = np.ones((1, 1, 2), np.float32)


def test_reference_adds_b0_to_every_channel_with_groups() -> None:
    x, w = np.ones((1, 2, 3), np.float32), np.ones((2, 1, 2), np.float32)
    bias = np.array([10.0, 20.0], np.float32)
    spec = mc_onnx.conv_transpose(x, w, bias, group=2)
    np.testing.assert_array_equal(spec[0, 1], [21, 22, 22, 21])  # B[1] on channel 1
    np.testing.assert_array_equal(run_runtime("ConvTranspose", [x, w, bias], {"group": 2}), spec)
    reference = run_reference("ConvTranspose", [x, w, bias], {"group": 2})
    np.testing.assert_array_equal(reference[0, 1], [11, 12, 12, 11])  # B[0]: the known bug


def test_reference_raises_on_output_shape_without_auto_pad() -> None:
    attributes: dict[str, Any] = {"strides": [2], "output_shape": [3]}
    spec = mc_onnx.conv_transpose(X1, W1, **attributes)
    np.testing.assert_array_equal(spec, [[[1, 10, 10]]])
    np.testing.assert_array_equal(run_runtime("ConvTranspose", [X1, W1], attributes), spec)
    with pytest.raises(Exception, match="expected size of input"):
        run_reference("ConvTranspose", [X1, W1], attributes)


def test_reference_honours_pads_together_with_output_shape() -> None:
    attributes: dict[str, Any] = {
        "strides": [2],
        "output_shape": [3],
        "pads": [0, 1],
        "auto_pad": "NOTSET",
    }
    spec = mc_onnx.conv_transpose(X1, W1, **attributes)  # pads ignored: crop at the start
    np.testing.assert_array_equal(spec, [[[1, 10, 10]]])
    np.testing.assert_array_equal(run_runtime("ConvTranspose", [X1, W1], attributes), spec)
    np.testing.assert_array_equal(
        run_reference("ConvTranspose", [X1, W1], attributes), [[[1, 1, 10]]]
    )


@pytest.mark.parametrize(
    ("auto_pad", "spec_row", "reference_row", "runtime_row"),
    [
        ("NOTSET", [1, 1, 10, 10, 0], [1, 1, 10, 10, 0], [1, 1, 10, 10, 0]),
        ("SAME_UPPER", [0, 1, 1, 10, 10], [0, 1, 1, 10, 10], [1, 1, 10, 10, 0]),
        ("SAME_LOWER", [1, 1, 10, 10, 0], [1, 1, 10, 10, 0], [1, 1, 10, 10, 0]),
    ],
)
def test_output_shape_larger_than_natural_which_end(
    auto_pad: str, spec_row: list[int], reference_row: list[int], runtime_row: list[int]
) -> None:
    attributes: dict[str, Any] = {"strides": [2], "output_shape": [5], "auto_pad": auto_pad}
    np.testing.assert_array_equal(mc_onnx.conv_transpose(X1, W1, **attributes)[0, 0], spec_row)
    np.testing.assert_array_equal(
        run_reference("ConvTranspose", [X1, W1], attributes)[0, 0], reference_row
    )
    np.testing.assert_array_equal(
        run_runtime("ConvTranspose", [X1, W1], attributes)[0, 0], runtime_row
    )


# --- ConvInteger and QLinearConv ---------------------------------------------------------


@st.composite
def integer_problems(draw: st.DrawFn) -> tuple[list[Any], dict[str, Any]]:
    x_type = draw(st.sampled_from([np.int8, np.uint8]))
    w_type = draw(st.sampled_from([np.int8, np.uint8]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    channels, out_channels = draw(st.integers(1, 8)), draw(st.integers(1, 3))
    size = draw(st.integers(2, 7))
    k = draw(st.integers(1, min(3, size)))
    info_x, info_w = np.iinfo(x_type), np.iinfo(w_type)
    x = rng.integers(info_x.min, info_x.max + 1, (1, channels, size, size)).astype(x_type)
    w = rng.integers(info_w.min, info_w.max + 1, (out_channels, channels, k, k)).astype(w_type)
    x_zero = np.array(rng.integers(info_x.min, info_x.max + 1), x_type)
    w_zero = np.array(rng.integers(info_w.min, info_w.max + 1), w_type)
    attributes: dict[str, Any] = {"strides": [draw(st.integers(1, 2))] * 2}
    if draw(st.booleans()):
        attributes["auto_pad"] = "SAME_UPPER"
    else:
        attributes["pads"] = [draw(st.integers(0, k - 1)) for _ in range(4)]
    return [x, w, x_zero, w_zero], attributes


@given(call=integer_problems())
def test_conv_integer_matches_the_reference_exactly(call: tuple[list[Any], dict[str, Any]]) -> None:
    inputs, attributes = call
    expected = run_reference("ConvInteger", inputs, attributes)
    actual = mc_onnx.conv_integer(*inputs, **attributes)
    np.testing.assert_array_equal(actual, expected)
    assert actual.dtype == np.int32


@pytest.mark.xfail(
    strict=False,
    reason="onnxruntime's ConvInteger saturates pairs of u8 x s8 products to int16 on CPUs "
    "whose kernel uses VPMADDUBSW (AVX2 without VNNI); exact on AVX512-VNNI machines",
)
@given(call=integer_problems())
def test_conv_integer_matches_onnxruntime_exactly(call: tuple[list[Any], dict[str, Any]]) -> None:
    inputs, attributes = call
    np.testing.assert_array_equal(
        mc_onnx.conv_integer(*inputs, **attributes), run_runtime("ConvInteger", inputs, attributes)
    )


def test_conv_integer_issue_example_is_exact() -> None:
    x = np.array([[[-28, 33, 125]]], np.int8)
    w = np.array([[[194, 236]]], np.uint8)
    np.testing.assert_array_equal(mc_onnx.conv_integer(x, w), [[[2356, 35902]]])
    np.testing.assert_array_equal(run_reference("ConvInteger", [x, w], {}), [[[2356, 35902]]])


@pytest.mark.parametrize("backend", BACKENDS)
@given(call=integer_problems(), scale_exponents=st.tuples(*[st.integers(-4, 0)] * 3),
       with_bias=st.booleans())  # fmt: skip
def test_qlinear_conv_matches_with_power_of_two_scales(
    backend: Any,
    call: tuple[list[Any], dict[str, Any]],
    scale_exponents: tuple[int, int, int],
    with_bias: bool,
) -> None:
    # powers of two: the multiplier is exact in float32 and float64, so every backend
    # rounds the same real number (ties to even) and the outputs must agree exactly
    (x, w, x_zero, w_zero), attributes = call
    if backend is run_runtime and x.dtype == np.int8:  # onnxruntime: int8 x needs int8 w
        w, w_zero = w.view(np.int8), w_zero.view(np.int8)
    x_scale, w_scale, _ = (np.array(2.0**e, np.float32) for e in scale_exponents)
    y_scale = np.array(2.0 ** (scale_exponents[2] + 6), np.float32)  # keep y near its range
    # an odd zero point tells "round, then add it" (the spec) from "add, then round" (the
    # reference: pinned in test_reference_qlinear_conv_rounds_after_adding_the_zero_point)
    y_zero = np.array(3 if backend is run_runtime else 4, x.dtype)
    inputs = [x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero]
    if with_bias:
        inputs.append(np.arange(w.shape[0], dtype=np.int32) * 1000 - 500)
    expected = backend("QLinearConv", inputs, attributes)
    actual = mc_onnx.qlinear_conv(*inputs, **attributes)
    np.testing.assert_array_equal(actual, expected)
    assert actual.dtype == x.dtype


def test_reference_qlinear_conv_rounds_after_adding_the_zero_point() -> None:
    # acc = 43, multiplier 1/2: 21.5 rounds to 22 (even), plus y_zero_point 3 is 25 (the
    # spec: QuantizeLinear rounds x / y_scale, then adds the zero point); the reference
    # rounds 21.5 + 3 = 24.5 to 24.
    x, w = np.array([[[43]]], np.uint8), np.array([[[1]]], np.uint8)
    one, half, zero = np.array(1.0, np.float32), np.array(0.5, np.float32), np.array(0, np.uint8)
    inputs: list[Any] = [x, one, zero, w, half, zero, one, np.array(3, np.uint8)]
    assert mc_onnx.qlinear_conv(*inputs)[0, 0, 0] == 25
    assert run_runtime("QLinearConv", inputs, {})[0, 0, 0] == 25
    assert run_reference("QLinearConv", inputs, {})[0, 0, 0] == 24


@pytest.mark.parametrize(
    ("auto_pad", "cut"), [("SAME_UPPER", slice(1, None)), ("SAME_LOWER", slice(None, -1))]
)
def test_runtime_same_with_a_kernel_narrower_than_the_stride(auto_pad: str, cut: slice) -> None:
    # The spec: output_shape = in * stride (6); onnxruntime clamps the negative total
    # padding to 0 and returns the natural size stride * (in - 1) + k (5).
    x, w = np.array([[[1.0, 2.0, 3.0]]], np.float32), np.ones((1, 1, 1), np.float32)
    attributes: dict[str, Any] = {"strides": [2], "auto_pad": auto_pad}
    spec = mc_onnx.conv_transpose(x, w, **attributes)
    assert spec.shape == (1, 1, 6)
    np.testing.assert_array_equal(run_reference("ConvTranspose", [x, w], attributes), spec)
    np.testing.assert_array_equal(run_runtime("ConvTranspose", [x, w], attributes), spec[..., cut])
