"""``precision=`` with complex operands: each part of the result is a real sum of 2n products.

A complex kernel in a precision model computes ``Re = sum(xr wr - xi wi)`` and
``Im = sum(xr wi + xi wr)`` in real arithmetic of that model (the conventional four real
products per complex product, added in any order): emulated here as two real kernels over
the parts stacked along the channels, summed in random and blocked orders.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mimo_conv as mc
from emulated_kernels import emulate
from mimo_conv.testing import ConvProblem, assert_close, bound, conv_problems

MODELS = ["float32", "tf32", "bfloat16", "bfloat16-float32-out", "float16"]


def _stacked(problem: ConvProblem, imaginary: bool) -> tuple[Any, Any, Any]:
    """The real conv whose result is the real (or imaginary) part of the complex one."""
    x, w, b = problem.x, problem.weight, problem.bias
    axis = x.ndim - w.ndim + 1
    parts = np.concatenate([x.real, x.imag], axis=axis)
    kernels = [w.imag, w.real] if imaginary else [w.real, -w.imag]
    bias = None if b is None else (b.imag if imaginary else b.real)
    return parts, np.concatenate(kernels, axis=1), bias


def emulate_complex(
    problem: ConvProblem, model: str, order: str, seed: int
) -> np.ndarray[Any, Any]:
    options = problem.conv_kwargs()
    real = emulate(
        "conv", *_stacked(problem, False), precision=model, order=order, seed=seed, **options
    )
    imag = emulate(
        "conv", *_stacked(problem, True), precision=model, order=order, seed=seed, **options
    )
    result = np.empty(real.shape, dtype=np.complex128)  # no arithmetic on infinities
    result.real, result.imag = real, imag
    return result


complex_problems = conv_problems(dtypes=("complex64",), groups=False, spatial_dims=(1, 2))


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=12, deadline=None)
@given(
    problem=complex_problems, order=st.sampled_from(("random", "blocked")), seed=st.integers(0, 9)
)
def test_emulated_complex_kernels_pass_in_every_model(
    model: str, problem: ConvProblem, order: str, seed: int
) -> None:
    actual = emulate_complex(problem, model, order, seed)
    assert_close(actual, "conv", *problem.args(), precision=model, **problem.conv_kwargs())


@pytest.mark.parametrize("model", MODELS)
def test_a_conjugated_kernel_is_caught(model: str) -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((1, 3, 6, 6)) + 1j * rng.standard_normal((1, 3, 6, 6))).astype(
        np.complex64
    )
    w = (rng.standard_normal((2, 3, 3, 3)) + 1j * rng.standard_normal((2, 3, 3, 3))).astype(
        np.complex64
    )
    wrong = mc.conv(x, np.conj(w))  # scipy.signal.correlate's convention
    with pytest.raises(AssertionError, match="farther from the exact result"):
        assert_close(wrong, "conv", x, w, precision=model)
    assert_close(mc.conv(x, w), "conv", x, w, precision=model)


def test_complex_bound_is_sqrt2_times_the_real_bound_of_2n_terms() -> None:
    # x = i, w = 1/2: four complex products of modulus 1/2 (P = 2); each part of the result
    # is a real sum of 8 products of parts whose magnitudes add up to at most P: the real
    # problem of 8 products of 1/2 * 1/2 (P = 2), both held in float32 (no input term).
    x = np.full((1, 4), 1j, dtype=np.complex64)
    w = np.full((1, 1, 4), 0.5, dtype=np.complex64)
    real_x = np.full((1, 8), 0.5, dtype=np.float32)
    real_w = np.full((1, 1, 8), 0.5, dtype=np.float32)
    for model in ("float32", "tf32", "bfloat16-float32-out"):
        complex_bound = bound("conv", x, w, precision=model)[0, 0]
        real_bound = bound("conv", real_x, real_w, precision=model)[0, 0]
        assert complex_bound == pytest.approx(np.sqrt(2) * real_bound, rel=1e-12)
