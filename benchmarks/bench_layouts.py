"""Benchmark channels-last inputs: does a native NHWC im2col beat transposing to NCHW?

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_layouts.py            # bench_conv's layers
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_layouts.py --quick    # small, a few seconds

For each layer (float32, NHWC input, HWIO weight) three ways are timed, interleaved (one call
of each per round, in turn) and summarised by their medians over the rounds:

(a) ``mc.conv2d(x, w, layout="NHWC", weight_layout="HWIO")``: today's route, the input read
    through an NCHW strided view, the result copied back to NHWC;
(b) ``mc.conv2d`` on an NCHW contiguous copy of ``x`` (OIHW weight): the same call without
    the layout's extra cost, the floor that transposing could reach (the transposes
    themselves are not timed);
(c) a prototype channels-last im2col: the padded NHWC input, one strided-view copy per tap
    into an ``(N, out_h, out_w, kh, kw, C)`` buffer (contiguous runs of ``C``) and one GEMM
    ``columns @ w.reshape(kh * kw * C, O)`` giving NHWC directly. For depthwise layers the
    prototype is the channels-last multiply-accumulate of one strided view per tap with a
    ``C``-long row of the kernel (there is no GEMM to feed).

The ratios ``(a) / (c)`` and ``(a) / (b)`` are measured in one run. BLAS threads are held at
1 (threadpoolctl if installed, else set ``OPENBLAS_NUM_THREADS=1`` in the environment).
Timings are for tables, never for tests.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import mimo_conv as mc

#: (name, NCHW input shape, OIHW weight shape, stride, padding, groups): bench_conv's layers.
SUITE: tuple[tuple[str, tuple[int, ...], tuple[int, ...], int, int, int], ...] = (
    ("resnet-3x3", (8, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    ("stride-2", (8, 64, 56, 56), (128, 64, 3, 3), 2, 1, 1),
    ("stem-7x7", (8, 3, 224, 224), (64, 3, 7, 7), 2, 3, 1),
    ("pointwise-1x1", (8, 256, 28, 28), (128, 256, 1, 1), 1, 0, 1),
    ("depthwise-3x3", (8, 64, 56, 56), (64, 1, 3, 3), 1, 1, 64),
)

QUICK_SUITE: tuple[tuple[str, tuple[int, ...], tuple[int, ...], int, int, int], ...] = (
    ("small-3x3", (2, 16, 16, 16), (16, 16, 3, 3), 1, 1, 1),
    ("small-s2", (2, 16, 16, 16), (32, 16, 3, 3), 2, 1, 1),
    ("small-1x1", (2, 32, 8, 8), (16, 32, 1, 1), 1, 0, 1),
    ("small-depthwise", (2, 8, 12, 12), (8, 1, 3, 3), 1, 1, 8),
)


def channels_last_conv(
    x: np.ndarray, w: np.ndarray, stride: int, padding: int, groups: int
) -> np.ndarray:
    """Prototype NHWC x HWIO convolution: per-tap strided copies and one GEMM.

    Examples
    --------
    >>> x = np.arange(2 * 4 * 4 * 3, dtype=np.float64).reshape(2, 4, 4, 3)
    >>> w = np.ones((3, 3, 3, 5))
    >>> out = channels_last_conv(x, w, 1, 1, 1)
    >>> ref = mc.conv2d(x, w, padding=1, layout="NHWC", weight_layout="HWIO")
    >>> bool(np.array_equal(out, ref))
    True
    """
    n, height, width, channels = x.shape
    kh, kw, _, out_channels = w.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    out_h = (height + 2 * padding - kh) // stride + 1
    out_w = (width + 2 * padding - kw) // stride + 1

    def tap(i: int, j: int) -> np.ndarray:
        rows = slice(i, i + stride * (out_h - 1) + 1, stride)
        cols = slice(j, j + stride * (out_w - 1) + 1, stride)
        return xp[:, rows, cols, :]

    if groups == channels and w.shape[2] == 1 and out_channels == channels:
        out = np.zeros((n, out_h, out_w, channels), dtype=np.result_type(x, w))
        for i in range(kh):
            for j in range(kw):
                out += tap(i, j) * w[i, j, 0]
        return out
    columns = np.empty((n, out_h, out_w, kh, kw, channels), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            columns[:, :, :, i, j, :] = tap(i, j)
    product = columns.reshape(-1, kh * kw * channels) @ w.reshape(kh * kw * channels, -1)
    result: np.ndarray = product.reshape(n, out_h, out_w, out_channels)
    return result


@contextlib.contextmanager
def one_blas_thread() -> Iterator[str]:
    """Hold BLAS at one thread with threadpoolctl when it is installed."""
    try:  # optional: imported by name so that its absence is no error here
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        yield "threadpoolctl absent: set OPENBLAS_NUM_THREADS=1 yourself"
        return
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield "BLAS held at 1 thread by threadpoolctl"


def interleaved_medians(functions: list[Callable[[], Any]], rounds: int) -> list[float]:
    """Median time of each callable over ``rounds`` rounds, one call of each per round."""
    for function in functions:  # warm-up: page faults, caches
        function()
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(rounds):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            function()
            times[index].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def measure(
    case: tuple[str, tuple[int, ...], tuple[int, ...], int, int, int], rounds: int
) -> tuple[str, float, float, float, float]:
    """Time (a), (b), (c) of one layer; return the name, the three medians and the error."""
    name, x_shape, w_shape, stride, padding, groups = case
    rng = np.random.default_rng(0)
    x_nchw = rng.standard_normal(x_shape).astype(np.float32)
    w_oihw = rng.standard_normal(w_shape).astype(np.float32)
    x_nhwc = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    w_hwio = np.ascontiguousarray(w_oihw.transpose(2, 3, 1, 0))
    options: dict[str, Any] = {"stride": stride, "padding": padding, "groups": groups}

    def a() -> np.ndarray:
        return mc.conv2d(x_nhwc, w_hwio, layout="NHWC", weight_layout="HWIO", **options)

    def b() -> np.ndarray:
        return mc.conv2d(x_nchw, w_oihw, **options)

    def c() -> np.ndarray:
        return channels_last_conv(x_nhwc, w_hwio, stride, padding, groups)

    reference = a()
    error = float(np.max(np.abs(c() - reference)) / max(float(np.max(np.abs(reference))), 1e-30))
    ta, tb, tc = interleaved_medians([a, b, c], rounds)
    return name, ta, tb, tc, error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small layers, a few seconds")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    args = parser.parse_args()
    suite = QUICK_SUITE if args.quick else SUITE
    rounds = args.rounds or (5 if args.quick else 9)
    with one_blas_thread() as note:
        print(f"float32, NHWC input, HWIO weight; medians of {rounds} interleaved rounds; {note}")
        print()
        print(
            "| layer | (a) layout=NHWC ms | (b) NCHW contiguous ms | (c) NHWC im2col ms "
            "| (a)/(b) | (a)/(c) | (c) max rel. diff |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for case in suite:
            name, ta, tb, tc, error = measure(case, rounds)
            print(
                f"| {name} | {ta * 1e3:.3g} | {tb * 1e3:.3g} | {tc * 1e3:.3g} "
                f"| {ta / tb:.2f} | {ta / tc:.2f} | {error:.1e} |"
            )


if __name__ == "__main__":
    main()
