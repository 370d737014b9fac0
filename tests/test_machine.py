"""What the machine runs on: the BLAS kernels, the advice about them, the report, the rates."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

import mimo_conv as mc
from mimo_conv._core import machine
from mimo_conv._core.dtypes import plan_dtypes
from mimo_conv._engine import formulas
from mimo_conv._engine import plan as plan_module
from mimo_conv._engine.constants import BLAS_FLOPS_PER_SECOND, BLAS_KERNEL_SPEEDUP

F32 = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
F64 = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))


@pytest.mark.parametrize(
    ("kernels", "avx512", "coretype", "says"),
    [
        ("Haswell", True, "Haswell", "OPENBLAS_CORETYPE=Haswell in the environment holds"),
        ("Zen", True, None, "this CPU has AVX-512 but OpenBLAS picked its Zen kernels"),
        ("SkylakeX", True, None, None),
        ("SapphireRapids", True, "SapphireRapids", None),
        ("Haswell", False, None, None),
        ("Haswell", False, "Haswell", None),
        ("unknown", True, None, None),
    ],
)
def test_advice_only_where_avx512_kernels_would_run(
    kernels: str, avx512: bool, coretype: str | None, says: str | None
) -> None:
    advice = machine.kernel_advice(kernels, avx512, coretype)
    if says is None:
        assert advice is None
    else:
        assert advice is not None
        assert advice.startswith(says)
        assert "SkylakeX" in advice


def test_the_report_names_what_is_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "openblas_kernels", lambda: "Haswell")
    monkeypatch.setattr(
        machine,
        "cpu_description",
        lambda: {"vendor": "V", "family": 26, "model": 2, "avx512": True},
    )
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    out = io.StringIO()
    with mc.memory_budget(4096):
        report = mc.show_config(file=out)
    assert out.getvalue() == report + "\n"
    lines = report.splitlines()
    assert lines[0] == f"mimo_conv {mc.__version__}"
    assert "CPU V family 26 model 2, AVX-512" in lines[1]
    assert f"NumPy {np.__version__}" in lines
    assert "OpenBLAS kernels in use: Haswell (OPENBLAS_CORETYPE=Haswell)" in lines
    assert any(line.startswith("threads: ") and "OPENBLAS_NUM_THREADS=1" in line for line in lines)
    assert "memory budget: 4.0 KiB (mimo_conv.set_memory_budget)" in lines
    assert lines[-1].startswith("advice: OPENBLAS_CORETYPE=Haswell in the environment")
    assert mc.show_config(file=None) != ""  # None prints nothing, still returns it


def test_the_report_has_no_advice_where_none_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "openblas_kernels", lambda: "SkylakeX")
    assert "advice" not in mc.show_config(file=None)


def test_info_prints_the_report() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mimo_conv", "info"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith(f"mimo_conv {mc.__version__}\n")
    assert "OpenBLAS kernels in use: " in result.stdout
    assert result.stderr == ""


def test_the_kernels_are_read_from_numpys_openblas() -> None:
    kernels = machine.openblas_kernels()
    assert isinstance(kernels, str)
    assert kernels
    assert machine.openblas_kernels() is kernels  # read once per process


@pytest.mark.parametrize(("dtypes", "itemsize"), [(F32, 4), (F64, 8)])
def test_avx512_kernels_speed_up_the_predicted_products(
    monkeypatch: pytest.MonkeyPatch, dtypes: object, itemsize: int
) -> None:
    kind = "f"
    monkeypatch.setattr(formulas, "openblas_kernels", lambda: "Haswell")
    assert formulas.rate(dtypes) == BLAS_FLOPS_PER_SECOND[kind, itemsize]  # type: ignore[arg-type]
    monkeypatch.setattr(formulas, "openblas_kernels", lambda: "SkylakeX")
    faster = formulas.rate(dtypes)  # type: ignore[arg-type]
    assert faster == BLAS_FLOPS_PER_SECOND[kind, itemsize] * BLAS_KERNEL_SPEEDUP[itemsize]
    # Complex products run their real component's rate, scaled by its own speed-up.
    assert formulas.gemm_rate("c", 2 * itemsize) == faster


def test_avx512_kernels_make_the_gemm_paths_cheaper_not_the_elementwise_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = np.ones((8, 64, 56, 56), np.float32)
    w = np.ones((64, 64, 3, 3), np.float32)
    depthwise = np.ones((64, 1, 3, 3), np.float32)

    def seconds(kernels: str, weight: np.ndarray, groups: int) -> dict[str, float]:
        monkeypatch.setattr(formulas, "openblas_kernels", lambda: kernels)
        plan_module._plan_cached.cache_clear()  # plans are cached: the kernels never change
        plan = mc.explain_method(x, weight, padding=1, groups=groups, memory_budget=2**31)
        return {c.method: c.seconds for c in plan.candidates if c.seconds is not None}

    slow, fast = seconds("Haswell", w, 1), seconds("SkylakeX", w, 1)
    assert fast["row_gemm"] < slow["row_gemm"]
    slow, fast = seconds("Haswell", depthwise, 64), seconds("SkylakeX", depthwise, 64)
    assert fast["depthwise"] == slow["depthwise"]
    plan_module._plan_cached.cache_clear()
