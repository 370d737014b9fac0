"""The cost model behind method="auto": a pure function of shapes, tested without timing."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

import mimo_conv as mc
from mimo_conv._core.dtypes import DtypePlan, plan_dtypes
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._engine import cost_model as model
from mimo_conv._paths.gemm import im2col_bytes_per_row
from mimo_conv._paths.registry import METHODS
from mimo_conv._paths.shift import shift_bytes_per_row
from mimo_conv.testing import ConvProblem, conv_problems

F32 = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
F64 = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
I64 = plan_dtypes(np.dtype(np.int64), np.dtype(np.int64))
OBJ = plan_dtypes(np.dtype(object), np.dtype(object))


def geometry(
    batch: int = 8,
    c_in: int = 64,
    c_out: int = 64,
    size: tuple[int, ...] = (56, 56),
    kernel: tuple[int, ...] = (3, 3),
    *,
    stride: int = 1,
    padding: int = 1,
    groups: int = 1,
) -> ConvGeometry:
    dims = len(size)
    return ConvGeometry(
        batch,
        c_in,
        c_out,
        groups,
        size,
        kernel,
        (stride,) * dims,
        (1,) * dims,
        ((padding, padding),) * dims,
    )


RESNET = geometry()
POINTWISE = geometry(8, 256, 128, (28, 28), (1, 1), padding=0)


def test_every_constant_is_positive_and_documented() -> None:
    lines = Path(model.__file__).read_text(encoding="utf-8").splitlines()
    defined = {
        match.group(1): number
        for number, line in enumerate(lines)
        if (match := re.match(r"([A-Z][A-Z_]+)(?:: [^=]+)? = ", line))
    }
    assert set(defined) >= {
        "BLAS_FLOPS_PER_SECOND",
        "INTEGER_FLOPS_PER_SECOND",
        "OBJECT_FLOPS_PER_SECOND",
        "NUMPY_ELEMENTWISE_FLOPS_PER_SECOND",
        "HALF_SPEED_DIMENSION",
        "COPY_BYTES_PER_SECOND",
        "SECONDS_PER_CALL",
        "EINSUM_CALL_SECONDS",
        "NAIVE_SECONDS_PER_OUTPUT",
    }
    for name, number in defined.items():
        # The line before each constant is a "#:" comment saying where it came from.
        assert lines[number - 1].startswith("#:"), name
        value = getattr(model, name)
        values = value.values() if isinstance(value, dict) else [value]
        if name != "MODELLED_METHODS":
            assert all(item > 0 for item in values), name


def test_flop_count_is_the_direct_convolutions() -> None:
    cost = model.path_cost("gemm", RESNET, F32)
    assert cost.flops == 2 * 8 * 64 * 56 * 56 * 64 * 3 * 3
    complex_plan = plan_dtypes(np.dtype(np.complex128), np.dtype(np.complex128))
    assert model.path_cost("gemm", RESNET, complex_plan).flops == 4 * cost.flops
    for name in model.MODELLED_METHODS[1:]:
        assert model.path_cost(name, RESNET, F32).flops == cost.flops


def test_bytes_moved_follow_each_paths_copies() -> None:
    positions = 8 * 56 * 56
    gemm = model.path_cost("gemm", RESNET, F32)
    assert gemm.bytes_moved == 2 * positions * 64 * 9 * 4  # one im2col copy, read + write
    # In float64 one image's im2col (14 MiB) is split into row ranges: no extra copy, the
    # products go straight into the output.
    gemm = model.path_cost("gemm", RESNET, F64)
    assert gemm.bytes_moved == 2 * positions * 64 * 9 * 8
    shift = model.path_cost("shift", RESNET, F64)
    assert shift.bytes_moved == 9 * positions * (2 * 64 + 3 * 64) * 8
    assert model.path_cost("matmul", POINTWISE, F64).bytes_moved == 0  # reads x in place


def test_auto_picks_matmul_for_1x1_and_gemm_for_large_float_layers() -> None:
    assert model.choose_method(POINTWISE, F32) == "matmul"
    assert model.choose_method(POINTWISE, OBJ) == "matmul"
    # Both BLAS-bound im2col paths; "fold" when the copies it saves outweigh its additions.
    for plan in (F32, F64):
        assert model.choose_method(RESNET, plan) in {"gemm", "fold"}
    # Without BLAS every vectorised path does the same arithmetic at the same rate; copies
    # and calls decide between them, never the per-tap products or the Python loops.
    for plan in (I64, OBJ):
        assert model.choose_method(RESNET, plan) in {"gemm", "fold", "einsum"}
    stem = geometry(8, 3, 64, (224, 224), (7, 7), stride=2, padding=3)
    assert model.choose_method(stem, F32) == "gemm"


def test_naive_is_never_chosen_when_a_vectorised_path_fits() -> None:
    for g in (RESNET, POINTWISE, geometry(1, 1, 1, (3, 3), (2, 2), padding=0)):
        assert model.choose_method(g, F64) != "naive"


def test_tight_budget_switches_to_the_low_memory_path() -> None:
    valid = geometry(padding=0)
    tight = 100_000  # one im2col row needs 64 * 9 * 54 * 8 = 248832 bytes; shift 55296
    choice = model.explain_choice(valid, F64, tight)
    feasible = {cost.method: cost.feasible for cost in choice.candidates}
    assert feasible == {
        "matmul": False,
        "gemm": False,
        "fold": False,
        "shift": True,
        "einsum": False,
        "depthwise": True,  # an accumulator and a product of one 56-wide row: 57344 bytes
        "naive": True,
    }
    assert choice.chosen == "shift"
    # Per output row, the shift path's temporaries do not grow with the kernel; gemm's do.
    big_kernel = geometry(kernel=(7, 7), padding=2)  # the same 54 x 54 output
    assert big_kernel.output_shape == valid.output_shape
    assert shift_bytes_per_row(big_kernel, 8) == shift_bytes_per_row(valid, 8)
    assert im2col_bytes_per_row(big_kernel, 8) > 5 * im2col_bytes_per_row(valid, 8) // 2


def test_workspace_grows_with_the_output_not_the_batch() -> None:
    small, large = geometry(batch=8), geometry(batch=512)
    for name in ("gemm", "fold", "shift", "einsum"):
        # Beyond one chunk, more images only add chunks: the peak stays put.
        assert model.workspace_bytes(name, large, F32) <= model.workspace_bytes(
            name, small, F32
        ) + model.padded_copy_bytes(large, F32)
        assert model.workspace_bytes(name, large, F32) <= mc.get_memory_budget()


def test_workspace_bytes_knows_every_registered_path() -> None:
    for name in METHODS:
        if name == "matmul":
            assert model.workspace_bytes(name, POINTWISE, F64) >= 0
        else:
            assert model.workspace_bytes(name, RESNET, F64) > 0
    with pytest.raises(ValueError, match="method must be one of"):
        model.workspace_bytes("winograd", RESNET, F64)


def test_the_model_is_pure() -> None:
    first = model.explain_choice(RESNET, F32, 2**28)
    second = model.explain_choice(RESNET, F32, 2**28)
    assert first == second
    assert hash(RESNET) == hash(geometry())  # geometries are plain values


def test_explain_method_prints_a_table_with_the_choice_marked() -> None:
    choice = mc.explain_method(np.ones((1, 2, 3, 3)), np.ones((1, 2, 2, 2)))
    text = str(choice)
    assert repr(choice) == text
    lines = text.splitlines()
    assert "x (1, 2, 3, 3) * weight (1, 2, 2, 2)" in lines[0]
    assert "-> (1, 1, 2, 2)" in lines[0]
    header = next(line for line in lines if "method" in line and "predicted" in line)
    assert header.split()[:3] == ["method", "FLOP", "moved"]
    rows = {
        words[0]: line
        for line in lines
        if (words := line[2:].split()) and words[0] in model.MODELLED_METHODS
    }
    assert set(rows) == set(model.MODELLED_METHODS)
    assert rows[choice.chosen].startswith("*")
    assert "needs a 1 x 1 kernel" in rows["matmul"]
    assert lines[-1] == f"chosen: {choice.chosen!r}"


def test_explain_method_validates_like_conv() -> None:
    with pytest.raises(ValueError, match="channels"):
        mc.explain_method(np.ones((1, 3, 5, 5)), np.ones((1, 2, 3, 3)))


@settings(max_examples=30)
@given(conv_problems(spatial_dims=(1, 2, 3), dtypes=("float64", "int64", "object")))
def test_auto_runs_the_path_the_model_names(problem: ConvProblem) -> None:
    choice = mc.explain_method(problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
    chosen = next(cost for cost in choice.candidates if cost.method == choice.chosen)
    assert chosen.feasible
    assert math.isfinite(chosen.seconds)
    assert all(chosen.seconds <= cost.seconds for cost in choice.candidates)
    auto = mc.conv(problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
    named = mc.conv(
        problem.x, problem.weight, problem.bias, method=choice.chosen, **problem.conv_kwargs()
    )
    assert np.array_equal(auto, named, equal_nan=auto.dtype.kind == "f")


def test_plans_without_blas_are_modelled_as_slower() -> None:
    assert (
        model.path_cost("gemm", RESNET, OBJ).seconds > model.path_cost("gemm", RESNET, I64).seconds
    )
    assert (
        model.path_cost("gemm", RESNET, I64).seconds > model.path_cost("gemm", RESNET, F64).seconds
    )
    assert isinstance(F64, DtypePlan)
