"""mimo_conv.dask: chunked convolutions equal mimo_conv's on the whole array.

Integer data make every summation order exact, so the chunked results must equal the
whole-array ones bit for bit; float results are held to the derived error bound. Run on
dask's synchronous and threaded schedulers and on a two-process distributed cluster.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

dask_array = pytest.importorskip("dask.array")

import mimo_conv as mc  # noqa: E402 - after the skip: the module needs dask
import mimo_conv.dask as mcd  # noqa: E402
from mimo_conv import grad  # noqa: E402
from mimo_conv.testing import assert_conv_close  # noqa: E402

SCHEDULERS = ("sync", "threads")

# (x shape, chunks, weight shape, options): batch-only, spatial and mixed chunkings, every
# padding mode, strides that do not divide the chunks, dilations and 1-3 spatial axes.
CASES: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((4, 3, 9, 9), (1, 3, 9, 9), (5, 3, 3, 3), {"padding": 1}),
    ((2, 3, 13, 11), (1, 3, 4, 5), (4, 3, 3, 3), {"padding": 1}),
    ((2, 3, 13, 11), (2, 1, 5, 4), (4, 3, 3, 2), {"stride": 2, "padding": (2, 1)}),
    ((1, 2, 17, 9), (1, 2, 3, 3), (4, 1, 3, 3), {"dilation": 2, "padding": 2, "groups": 2}),
    ((2, 2, 12, 12), (1, 2, 5, 7), (2, 2, 3, 3), {"padding": 2, "padding_mode": "reflect"}),
    ((2, 2, 12, 12), (1, 2, 5, 5), (2, 2, 3, 3), {"padding": 1, "padding_mode": "replicate"}),
    ((2, 2, 12, 12), (1, 2, 4, 6), (2, 2, 5, 3), {"padding": 2, "padding_mode": "circular"}),
    ((2, 2, 12, 12), (1, 2, 6, 4), (2, 2, 3, 3), {"padding": 3, "padding_mode": "symmetric"}),
    ((2, 3, 40), (1, 3, 7), (2, 3, 5), {"stride": 3, "dilation": 2, "padding": 4}),
    ((1, 2, 10, 9, 8), (1, 2, 4, 3, 5), (3, 2, 3, 3, 3), {"padding": 1, "stride": (1, 2, 1)}),
    ((3, 12, 12), (3, 5, 5), (2, 3, 3, 3), {"padding": 1}),  # unbatched
]


def compute(lazy: Any, scheduler: str) -> np.ndarray:
    result: np.ndarray = lazy.compute(scheduler=scheduler)
    return result


def integers(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-20, 21, size=shape)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize(("x_shape", "chunks", "w_shape", "options"), CASES)
def test_chunked_conv_equals_the_whole_array_bit_for_bit(
    x_shape: tuple[int, ...],
    chunks: tuple[int, ...],
    w_shape: tuple[int, ...],
    options: dict[str, Any],
    scheduler: str,
) -> None:
    x, w, b = integers(x_shape, 1), integers(w_shape, 2), integers(w_shape[:1], 3)
    lazy = mcd.conv(dask_array.from_array(x, chunks=chunks), w, b, **options)
    expected = mc.conv(x, w, b, **options)
    assert lazy.shape == expected.shape
    assert lazy.dtype == expected.dtype
    actual = compute(lazy, scheduler)
    assert np.array_equal(actual, expected)
    # The declared chunks are the computed ones.
    assert sum(lazy.chunks[-1]) == expected.shape[-1]


def test_float_results_stay_within_the_error_bound() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 20, 18)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    lazy = mcd.conv(
        dask_array.from_array(x, chunks=(1, 3, 7, 5)),
        w,
        stride=2,
        padding=1,
        padding_mode="reflect",
    )
    actual = compute(lazy, "sync")
    assert actual.dtype == np.float32
    assert_conv_close(actual, x, w, None, stride=2, padding=1, padding_mode="reflect")


TRANSPOSED: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((4, 3, 7, 7), (1, 3, 7, 7), (3, 2, 3, 3), {"stride": 2, "padding": 1}),
    ((2, 3, 9, 8), (1, 3, 4, 3), (3, 2, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((2, 4, 8, 8), (2, 4, 3, 5), (4, 1, 4, 4), {"stride": 2, "padding": 1, "groups": 2}),
    ((1, 2, 11, 6), (1, 2, 5, 2), (2, 3, 3, 3), {"dilation": 2, "padding": 3}),
    ((2, 2, 15), (1, 2, 4), (2, 2, 5), {"stride": 3, "padding": 4, "output_padding": 2}),
    ((1, 2, 5, 6, 4), (1, 2, 2, 3, 2), (2, 2, 2, 2, 2), {"stride": 2}),
]


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize(("x_shape", "chunks", "w_shape", "options"), TRANSPOSED)
def test_chunked_conv_transpose_equals_the_whole_array(
    x_shape: tuple[int, ...],
    chunks: tuple[int, ...],
    w_shape: tuple[int, ...],
    options: dict[str, Any],
    scheduler: str,
) -> None:
    x, w = integers(x_shape, 5), integers(w_shape, 6)
    groups = options.get("groups", 1)
    b = integers((w_shape[1] * groups,), 7)
    lazy = mcd.conv_transpose(dask_array.from_array(x, chunks=chunks), w, b, **options)
    expected = mc.conv_transpose(x, w, b, **options)
    assert lazy.shape == expected.shape
    assert np.array_equal(compute(lazy, scheduler), expected)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize(
    ("x_shape", "chunks", "w_shape", "options"),
    [case for case in CASES if "padding_mode" not in case[3] and len(case[0]) == len(case[2])],
)
def test_chunked_gradients_equal_the_whole_array(
    x_shape: tuple[int, ...],
    chunks: tuple[int, ...],
    w_shape: tuple[int, ...],
    options: dict[str, Any],
    scheduler: str,
) -> None:
    x, w = integers(x_shape, 8), integers(w_shape, 9)
    out_shape = mc.output_shape(x_shape, w_shape, **options)
    g = integers(out_shape, 10)
    g_chunks = (chunks[0], out_shape[1], *(max(1, c - 1) for c in chunks[2:]))
    lazy_g = dask_array.from_array(g, chunks=g_chunks)
    d_input = mcd.conv_input(x_shape, w, lazy_g, **options)
    assert np.array_equal(compute(d_input, scheduler), grad.conv_input(x_shape, w, g, **options))
    d_weight = mcd.conv_weight(dask_array.from_array(x, chunks=chunks), w_shape, lazy_g, **options)
    assert np.array_equal(compute(d_weight, scheduler), grad.conv_weight(x, w_shape, g, **options))


def test_weight_gradient_with_a_padding_mode() -> None:
    x, g = integers((2, 2, 11, 10), 11), integers((2, 3, 11, 10), 12)
    options: dict[str, Any] = {"padding": 1, "padding_mode": "circular"}
    lazy = mcd.conv_weight(
        dask_array.from_array(x, chunks=(1, 2, 4, 3)), (3, 2, 3, 3), g, **options
    )
    assert np.array_equal(compute(lazy, "sync"), grad.conv_weight(x, (3, 2, 3, 3), g, **options))


def test_bad_arguments_raise_before_any_graph_is_built() -> None:
    x = dask_array.ones((1, 3, 8, 8), chunks=(1, 3, 4, 4))
    with pytest.raises(ValueError, match="to have 3 channels, but got 2"):
        mcd.conv(dask_array.ones((1, 2, 8, 8), chunks=4), np.ones((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="padding_mode"):
        mcd.conv(x, np.ones((4, 3, 3, 3)), padding=1, padding_mode="mirror")
    with pytest.raises(ValueError, match="grad_output must have the forward output's shape"):
        mcd.conv_input((1, 3, 8, 8), np.ones((4, 3, 3, 3)), dask_array.ones((1, 4, 5, 5)))
    with pytest.raises(ValueError, match="output_padding must be smaller"):
        mcd.conv_transpose(x, np.ones((3, 2, 3, 3)), stride=2, output_padding=2)


def test_a_missing_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r'pip install "mimo_conv\[dask\]"'):
        mcd.conv(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))


def test_a_volume_larger_than_each_tasks_budget_on_a_two_process_cluster() -> None:
    distributed = pytest.importorskip("distributed")
    # A 3-d volume of 2 * 40 * 40 * 40 float64 = 1 MiB, computed by tasks that each get a
    # memory budget of 256 KiB: only chunks (with their halos) ever fit.
    x = integers((1, 2, 40, 40, 40), 13).astype(np.float64)
    w = integers((3, 2, 3, 3, 3), 14).astype(np.float64)
    budget = 256 * 2**10
    assert x.nbytes > budget
    lazy = mcd.conv(
        dask_array.from_array(x, chunks=(1, 2, 14, 14, 14)), w, padding=1, memory_budget=budget
    )
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert len(client.scheduler_info()["workers"]) == 2
        actual = client.compute(lazy).result(timeout=120)
    # Small integers in float64: exact in every order, so equal to the whole-array result.
    assert np.array_equal(actual, mc.conv3d(x, w, padding=1))
