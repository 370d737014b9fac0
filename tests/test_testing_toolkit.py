"""The oracle toolkit ``mimo_conv.testing``: sound, tight, and able to catch real bugs.

* Soundness: results summed in adversarial orders (sequential, largest magnitude first,
  random), written here independently of the library's paths, never exceed the bound of
  the exact result, on float16/32/64 and complex inputs, including cancellation-heavy and
  subnormal-range values.
* Tightness: the median ratio of observed error to bound is measured and recorded; PyTorch's
  fixed ``assert_close`` tolerances reject a correct float32 result on a large reduction and
  accept a wrong one on a small reduction, where ours does the opposite.
* The README's "test your own conv" example, run against deliberately wrong
  implementations (each must be caught) and against PyTorch (must pass).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

import mimo_conv as mc
from _reference import NUMPY_PAD_MODES
from mimo_conv import testing
from mimo_conv._core.arguments import padding_pairs
from mimo_conv.testing import ConvProblem, assert_conv_close, conv_problems, error_bound
from mimo_conv.testing.assertions import reference_for

README = Path(__file__).resolve().parent.parent / "README.md"
FLOAT_DTYPES = ("float32", "float64", "float16", "complex64", "complex128")


# --- an independent float convolution that sums in a chosen order ---------------------


def products(problem: ConvProblem, compute: np.dtype[Any]) -> NDArray[Any]:
    """Every product of every output, rounded to ``compute``: shape ``(*out_shape, n)``."""
    dims = problem.spatial_dims
    x = problem.x if problem.x.ndim == dims + 2 else problem.x[np.newaxis]
    weight = problem.weight
    stride = (problem.stride,) * dims if isinstance(problem.stride, int) else problem.stride
    dilation = (problem.dilation,) * dims if isinstance(problem.dilation, int) else problem.dilation
    kernel = weight.shape[2:]
    pairs = padding_pairs(problem.padding, kernel, dilation, stride)
    widths = [(0, 0), (0, 0), *pairs]
    padded = np.pad(x, widths, mode=NUMPY_PAD_MODES[problem.padding_mode])
    extent = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)]
    windows = sliding_window_view(padded, extent, axis=tuple(range(2, 2 + dims)))
    windows = windows[
        (
            slice(None),
            slice(None),
            *(slice(None, None, s) for s in stride),
            *(slice(None, None, d) for d in dilation),
        )
    ]
    batch, groups = x.shape[0], problem.groups
    per_group = weight.shape[1]
    out_spatial = windows.shape[2 : 2 + dims]
    # (N, G, c, *out, *k) -> (N, G, *out, c, *k), then one axis for the output channels.
    windows = windows.reshape((batch, groups, per_group, *out_spatial, *kernel))
    windows = np.moveaxis(windows, 2, 2 + dims)[:, :, np.newaxis]
    kernels = weight.reshape((groups, -1, per_group, *kernel))
    kernels = kernels.reshape((1, *kernels.shape[:2], *(1,) * dims, *kernels.shape[2:]))
    terms = windows.astype(compute) * kernels.astype(compute)  # each product rounded once
    terms = terms.reshape((batch, weight.shape[0], *out_spatial, -1))
    result: NDArray[Any] = terms if problem.x.ndim == dims + 2 else terms[0]
    return result


def conv_in_order(problem: ConvProblem, order: str, seed: int = 0) -> NDArray[Any]:
    """The convolution summed term by term, in ``compute``, in the given order."""
    output = np.result_type(problem.x, problem.weight)
    compute = np.dtype(np.float32) if output == np.float16 else output
    terms = products(problem, compute)
    if order == "largest first":
        terms = np.take_along_axis(terms, np.argsort(-np.abs(terms), axis=-1), axis=-1)
    elif order == "random":
        terms = terms[..., np.random.default_rng(seed).permutation(terms.shape[-1])]
    total = np.zeros(terms.shape[:-1], dtype=compute)
    for j in range(terms.shape[-1]):
        total = total + terms[..., j]
    if problem.bias is not None:
        channel_axis = problem.x.ndim - problem.spatial_dims - 1
        shape = [1] * total.ndim
        shape[channel_axis] = -1
        total = total + problem.bias.astype(compute).reshape(shape)
    return total.astype(output)


float_problems = st.sampled_from(("floats", "cancellation", "subnormal")).flatmap(
    lambda kind: conv_problems(spatial_dims=(1, 2, 3), dtypes=FLOAT_DTYPES, elements=kind)
)


@given(float_problems, st.sampled_from(("sequential", "largest first", "random")))
def test_bound_holds_for_any_summation_order(problem: ConvProblem, order: str) -> None:
    actual = conv_in_order(problem, order)
    assert_conv_close(actual, problem.x, problem.weight, problem.bias, **problem.conv_kwargs())


@example(
    ConvProblem(
        np.array([[1.0, 2**-60, -1.0]], dtype=np.float32),
        np.ones((1, 1, 3), dtype=np.float32),
        None,
        1,
        0,
        1,
        1,
        "zeros",
        (1, 1),
    )
)
@given(conv_problems(spatial_dims=(1, 2), dtypes=("float32", "float64"), elements="cancellation"))
def test_an_error_larger_than_the_bound_is_reported(problem: ConvProblem) -> None:
    reference = reference_for(problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
    exact = reference.exact()
    # Three bounds away from the exact value (and never rounded back into it).
    wrong = (exact + 3 * reference.bound + np.abs(exact) * 1e-3 + 1e-30).astype(problem.x.dtype)
    with pytest.raises(AssertionError, match=r"(?s)exceed it; shape .* worst at index"):
        reference.check(wrong)


def test_the_report_names_shape_dtype_index_values_bound_and_count() -> None:
    x = np.arange(12, dtype=np.float64).reshape(3, 4) / 10
    weight = np.ones((2, 3, 2))
    actual = mc.conv(x, weight)
    actual[0, 1] += 1e-6
    actual[1, 2] -= 1e-3
    with pytest.raises(AssertionError) as caught:
        assert_conv_close(actual, x, weight)
    report = str(caught.value)
    assert "2 of 6 elements exceed it" in report
    assert "shape (2, 3), dtype float64, precision float64, n = 6 terms per output" in report
    assert "worst at index (1, 2)" in report
    assert f"actual {float(actual[1, 2])!r}" in report
    assert f"bound {error_bound(x, weight)[1, 2]:.3g}" in report
    with pytest.raises(AssertionError, match=r"wrong shape: expected \(2, 3\), got \(2, 2\)"):
        assert_conv_close(actual[:, :2], x, weight)
    with pytest.raises(AssertionError, match="wrong dtype: expected float64, got float32"):
        assert_conv_close(actual.astype(np.float32), x, weight)


@given(
    conv_problems(spatial_dims=(1, 2, 3), dtypes=("int64", "int8", "object"), elements="integers")
)
def test_exact_arithmetic_has_a_zero_bound_and_off_by_one_is_caught(problem: ConvProblem) -> None:
    bound = error_bound(problem)
    assert bound.shape == problem.out_shape
    assert not bound.any()
    out = mc.conv(problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
    assert_conv_close(out, problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
    if out.size:
        wrong = out.copy()
        wrong.flat[-1] += 1
        with pytest.raises(AssertionError, match=r"1 of \d+ elements exceed it"):
            assert_conv_close(
                wrong, problem.x, problem.weight, problem.bias, **problem.conv_kwargs()
            )


def test_error_bound_takes_a_problem_or_the_arguments() -> None:
    x = np.linspace(-1, 1, 2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    weight = np.linspace(1, 2, 4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)
    problem = ConvProblem(x, weight, None, 2, ((1, 0),), 1, 1, "reflect", (2, 4, 3))
    by_problem = error_bound(problem)
    by_arguments = error_bound(x, weight, None, 2, ((1, 0),), padding_mode="reflect")
    assert by_problem.shape == problem.out_shape
    assert np.array_equal(by_problem, by_arguments)
    # float64 accumulation has a smaller unit roundoff: a smaller bound everywhere.
    assert np.all(error_bound(problem, dtype=np.float64) < by_problem)
    with pytest.raises(TypeError, match="weight must be given"):
        error_bound(x)


def test_float16_bound_covers_float32_accumulation_and_one_final_rounding() -> None:
    x = np.full((1, 64), 0.1, dtype=np.float16)
    weight = np.full((1, 1, 64), 0.1, dtype=np.float16)
    bound16 = error_bound(x, weight)[0, 0]
    bound32 = error_bound(x.astype(np.float32), weight.astype(np.float32))[0, 0]
    magnitude = 64 * float(x[0, 0]) * float(weight[0, 0, 0])
    # The final rounding to float16 dominates: about u16 * |result|.
    assert bound32 < 2**-11 * magnitude < bound16 < 2 * 2**-11 * magnitude + bound32


# --- tightness -------------------------------------------------------------------------


def test_median_error_to_bound_ratio_is_recorded(record_property: Any) -> None:
    """The ratio quoted in the README: float32 3 x 3 convolutions of standard normal data."""
    rng = np.random.default_rng(2026)
    ratios: list[float] = []
    for in_channels in (1, 4, 16, 64):
        x = rng.standard_normal((1, in_channels, 6, 6)).astype(np.float32)
        weight = rng.standard_normal((4, in_channels, 3, 3)).astype(np.float32)
        actual = mc.conv(x, weight, padding=1)
        observed = reference_for(x, weight, padding=1).error_ratios(actual)
        assert np.all(observed <= 1)
        ratios.extend(observed.ravel().tolist())
    median = statistics.median(ratios)
    record_property("median_error_to_bound_ratio", median)
    print(f"median observed error / bound over {len(ratios)} float32 outputs: {median:.3g}")
    assert 0 < median < 1


def test_error_to_bound_ratios_over_generated_problems(record_property: Any) -> None:
    """The second figure in the README: 300 generated float32 and float64 problems."""
    ratios: list[float] = []

    @settings(max_examples=300, derandomize=True, database=None)
    @given(conv_problems(spatial_dims=(1, 2, 3), dtypes=("float32", "float64")))
    def measure(problem: ConvProblem) -> None:
        actual = mc.conv(problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
        reference = reference_for(problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
        ratios.extend(reference.error_ratios(actual).ravel().tolist())

    measure()
    median, largest = statistics.median(ratios), max(ratios)
    record_property("generated_median_error_to_bound_ratio", median)
    record_property("generated_largest_error_to_bound_ratio", largest)
    print(f"over {len(ratios)} generated outputs: median {median:.2g}, largest {largest:.2g}")
    assert 0 < median < largest <= 1


def cancelling_float32_problem() -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """n = 4608 products of size ~100 whose exact sum is ~0.1: a large, cancelling reduction."""
    rng = np.random.default_rng(0)
    half = rng.standard_normal((1, 256, 3, 3)) * 100
    noisy = half + rng.standard_normal(half.shape) * 1e-3
    x = np.concatenate([half, noisy], axis=1).astype(np.float32)
    weight_half = rng.standard_normal((2, 256, 3, 3))
    weight = np.concatenate([weight_half, -weight_half], axis=1).astype(np.float32)
    return x, weight


def rounded_exact(x: NDArray[Any], weight: NDArray[Any]) -> NDArray[np.float32]:
    reference = reference_for(x, weight)
    return reference.exact().astype(np.float32)


def test_fixed_tolerances_reject_a_correct_float32_result_on_a_large_reduction() -> None:
    torch = pytest.importorskip("torch")
    x, weight = cancelling_float32_problem()
    correct = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight)).numpy()
    assert_conv_close(correct, x, weight)  # within the rounding error of 4608 float32 terms
    with pytest.raises(AssertionError, match="Tensor-likes are not close"):
        torch.testing.assert_close(
            torch.from_numpy(correct), torch.from_numpy(rounded_exact(x, weight))
        )


def test_fixed_tolerances_accept_a_wrong_result_on_a_small_reduction() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1e-3, (1, 1, 3, 3)).astype(np.float32)
    weight = rng.uniform(0, 1e-3, (1, 1, 2, 2)).astype(np.float32)
    forgetful = weight.copy()
    forgetful[..., -1] = 0  # a bug: the last kernel column is never used
    wrong = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(forgetful)).numpy()
    torch.testing.assert_close(torch.from_numpy(wrong), torch.from_numpy(rounded_exact(x, weight)))
    with pytest.raises(AssertionError, match="4 of 4 elements exceed it"):
        assert_conv_close(wrong, x, weight)


# --- the README's example, against wrong implementations and against PyTorch -------------


def readme_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- testing-section:start -->")
    end = text.index("<!-- testing-section:end -->")
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)


def run_readme_test(implementation: Callable[..., Any], *, dtype: str = "float32") -> None:
    """Run the README's hypothesis test against ``implementation`` (a few examples)."""
    test_block = readme_blocks()[1]
    source = test_block.replace('dtypes=["float32"]', f'dtypes=["{dtype}"]')
    assert (dtype == "float32") == (source == test_block)
    namespace: dict[str, Any] = {"my_conv2d": implementation}
    exec(compile(source, str(README), "exec"), namespace)
    quick = settings(max_examples=100, phases=[Phase.explicit, Phase.generate])
    quick(namespace["test_my_conv2d"])()


def correct_float32(x: Any, weight: Any, bias: Any, **options: Any) -> NDArray[Any]:
    """A correct implementation: the float64 result rounded once to the input dtype."""
    exact = mc.conv(x.astype(np.float64), weight.astype(np.float64), bias, **options)
    result: NDArray[Any] = exact.astype(x.dtype)
    return result


def per_axis(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return (value, value) if isinstance(value, int) else tuple(value)


def off_by_one_padding(x: Any, weight: Any, bias: Any, **options: Any) -> NDArray[Any]:
    kernel = weight.shape[2:]
    dilation, stride = per_axis(options["dilation"]), per_axis(options["stride"])
    pairs = list(padding_pairs(options["padding"], kernel, dilation, stride))
    before, after = pairs[0]
    if after > 0:  # shift the window: one more element before, one fewer after
        pairs[0] = (before + 1, after - 1)
    return correct_float32(x, weight, bias, **{**options, "padding": pairs})


def transposed_kernel(x: Any, weight: Any, bias: Any, **options: Any) -> NDArray[Any]:
    if weight.shape[2] == weight.shape[3]:
        weight = weight.swapaxes(2, 3)
    return correct_float32(x, weight, bias, **options)


def wrong_stride(x: Any, weight: Any, bias: Any, **options: Any) -> NDArray[Any]:
    stride = per_axis(options["stride"])
    return correct_float32(x, weight, bias, **{**options, "stride": stride[::-1]})


def float16_accumulation(x: Any, weight: Any, bias: Any, **options: Any) -> NDArray[Any]:
    """Products and sums in float16 (the bug): sum term by term in the input dtype."""
    problem = ConvProblem(
        x,
        weight,
        bias,
        options["stride"],
        options["padding"],
        options["dilation"],
        options["groups"],
        "zeros",
        (),
    )
    terms = products(problem, np.dtype(x.dtype))
    total = np.zeros(terms.shape[:-1], dtype=x.dtype)
    for j in range(terms.shape[-1]):
        total = total + terms[..., j]
    if bias is not None:
        total = total + bias.reshape((-1, 1, 1))
    return total


@pytest.mark.parametrize(
    ("bug", "dtype"),
    [
        (off_by_one_padding, "float32"),
        (transposed_kernel, "float32"),
        (wrong_stride, "float32"),
        (float16_accumulation, "float16"),
    ],
    ids=["off-by-one padding", "transposed kernel", "wrong stride", "float16 accumulation"],
)
def test_readme_example_catches_a_wrong_implementation(bug: Callable[..., Any], dtype: str) -> None:
    with pytest.raises(AssertionError, match="conv result"):
        run_readme_test(bug, dtype=dtype)


def test_readme_example_accepts_a_correct_implementation() -> None:
    run_readme_test(correct_float32)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
def test_readme_example_accepts_pytorch_float32() -> None:
    pytest.importorskip("torch")
    namespace: dict[str, Any] = {}
    implementation_block = readme_blocks()[0]
    exec(compile(implementation_block, str(README), "exec"), namespace)
    run_readme_test(namespace["my_conv2d"])


def test_hypothesis_is_imported_lazily() -> None:
    code = "import sys, mimo_conv, mimo_conv.testing; print('hypothesis' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
    assert testing.conv_problems is conv_problems


def test_missing_hypothesis_names_the_testing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.delitem(sys.modules, "mimo_conv.testing.strategies", raising=False)
    with pytest.raises(ImportError, match=r'pip install "mimo_conv\[testing\]"'):
        conv_problems()


def test_torch_kwargs_only_for_expressible_problems() -> None:
    x, weight = np.ones((2, 5)), np.ones((3, 2, 3))
    asymmetric = ConvProblem(x, weight, None, 1, ((0, 1),), 1, 1, "zeros", (3, 4))
    with pytest.raises(ValueError, match="not expressible in torch"):
        asymmetric.torch_kwargs()
    circular = ConvProblem(x, weight, None, 1, 1, 1, 1, "circular", (3, 5))
    assert not circular.torch_expressible
    assert ConvProblem(x, weight, None, 1, "same", 1, 1, "zeros", (3, 5)).torch_expressible


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@given(conv_problems(spatial_dims=(1, 2, 3), torch_compatible=True, dtypes=("float64",)))
def test_torch_compatible_problems_run_unchanged_in_torch(problem: ConvProblem) -> None:
    torch = pytest.importorskip("torch")
    functional = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}
    functional[3] = torch.nn.functional.conv3d
    bias = None if problem.bias is None else torch.from_numpy(problem.bias)
    out = functional[problem.spatial_dims](
        torch.from_numpy(problem.x),
        torch.from_numpy(problem.weight),
        bias,
        **problem.torch_kwargs(),
    ).numpy()
    assert_conv_close(out, problem.x, problem.weight, problem.bias, **problem.conv_kwargs())


def test_non_finite_inputs_are_refused_with_a_clear_error() -> None:
    x = np.array([[1.0, np.nan, 2.0]])
    weight = np.ones((1, 1, 2))
    with pytest.raises(ValueError, match="exact reference needs finite inputs"):
        assert_conv_close(mc.conv(x, weight), x, weight)


@pytest.mark.parametrize("name", ["test_my_conv2d_backward", "test_my_conv2d_bfloat16"])
def test_readme_backward_and_bfloat16_examples_pass_against_pytorch(name: str) -> None:
    pytest.importorskip("torch")
    blocks = readme_blocks()
    namespace: dict[str, Any] = {}
    for block in (blocks[0], *blocks[2:]):
        exec(compile(block, str(README), "exec"), namespace)
    namespace[name]()  # the suite's hypothesis profile (60 examples in CI)
