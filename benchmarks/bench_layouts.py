"""Benchmark channels-last inputs: the native ``"channels_last"`` path against transposing.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_layouts.py            # bench_conv's layers
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_layouts.py --quick    # small, a few seconds

For each layer (float32, NHWC input, HWIO weight) four calls are timed, interleaved (one
call of each per round, in turn) and summarised by their medians over the rounds:

(a) ``mc.conv2d(x, w, layout="NHWC", weight_layout="HWIO", method="channels_last")``: the
    native path, on the channels-last memory itself, writing the NHWC result;
(b) the same call with ``method=`` the channels-first path ``"auto"`` would take without
    the native one (the cost model's best transposing route): the input read through an
    NCHW strided view, the result copied back to NHWC;
(c) the same call with ``method="auto"``: what ships (the cost model picks (a) or (b));
(d) ``mc.conv2d`` on an NCHW contiguous copy of ``x`` (OIHW weight): the same layer without
    any layout cost, for reference (the transposes themselves are not timed).

The ratio ``(b) / (a)`` says whether running natively is faster than transposing, and the
table says which of the two ``"auto"`` took. BLAS threads are held at 1 (threadpoolctl if
installed, else set ``OPENBLAS_NUM_THREADS=1`` in the environment). Timings are for tables,
never for tests.
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


def transposing_method(x: np.ndarray, w: np.ndarray, options: dict[str, Any]) -> str:
    """The channels-first path the cost model ranks first for this NHWC call.

    Examples
    --------
    >>> transposing_method(np.ones((1, 4, 4, 8)), np.ones((1, 1, 8, 2)), {})
    'matmul'
    """
    plan = mc.explain_method(x, w, layout="NHWC", weight_layout="HWIO", **options)
    others = [c for c in plan.candidates if c.feasible and c.method != "channels_last"]
    return min(others, key=lambda cost: cost.seconds).method


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
) -> tuple[str, str, str, list[float], float]:
    """Time (a)-(d) of one layer; return the name, both choices, the medians and the error."""
    name, x_shape, w_shape, stride, padding, groups = case
    rng = np.random.default_rng(0)
    x_nchw = rng.standard_normal(x_shape).astype(np.float32)
    w_oihw = rng.standard_normal(w_shape).astype(np.float32)
    x_nhwc = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    w_hwio = np.ascontiguousarray(w_oihw.transpose(2, 3, 1, 0))
    options: dict[str, Any] = {"stride": stride, "padding": padding, "groups": groups}
    layouts: dict[str, Any] = {"layout": "NHWC", "weight_layout": "HWIO", **options}
    transposing = transposing_method(x_nhwc, w_hwio, options)
    chosen = str(mc.explain_method(x_nhwc, w_hwio, **layouts).chosen)

    def native() -> np.ndarray:
        return mc.conv2d(x_nhwc, w_hwio, method="channels_last", **layouts)

    def transposed() -> np.ndarray:
        return mc.conv2d(x_nhwc, w_hwio, method=transposing, **layouts)

    def auto() -> np.ndarray:
        return mc.conv2d(x_nhwc, w_hwio, **layouts)

    def floor() -> np.ndarray:
        return mc.conv2d(x_nchw, w_oihw, **options)

    reference = transposed()
    scale = max(float(np.max(np.abs(reference))), 1e-30)
    error = float(np.max(np.abs(native() - reference)) / scale)
    times = interleaved_medians([native, transposed, auto, floor], rounds)
    return name, transposing, chosen, times, error


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
            "| layer | auto takes | (a) native ms | (b) transposing ms | (c) auto ms "
            "| (d) NCHW ms | (b)/(a) | (b)/(c) | (a) max rel. diff |"
        )
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for case in suite:
            name, transposing, chosen, (ta, tb, tc, td), error = measure(case, rounds)
            print(
                f"| {name} | {chosen} (else {transposing}) | {ta * 1e3:.3g} | {tb * 1e3:.3g} "
                f"| {tc * 1e3:.3g} | {td * 1e3:.3g} | {tb / ta:.2f} | {tb / tc:.2f} "
                f"| {error:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
