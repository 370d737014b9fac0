"""A/B of the NumPy-side threading of the GEMM paths, a prototype and winograd (issue 13, 1, 5).

    OPENBLAS_NUM_THREADS=2 python benchmarks/bench_threads.py            # the large layers
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_threads.py --only deep-3x3 --rounds 21

For each large layer of ``bench_conv`` these are timed in ONE process, interleaved (one call
of each per round, in turn), and summarised by medians over the rounds (the minimum is
printed as well: on a loaded machine it is the steadier of the two):

* ``ref``: the bare same-size GEMM on ready operands (``bench_conv.gemm_reference``);
* ``auto t1`` / ``auto t2``: ``mc.conv`` with ``mc.set_threads(1)`` and ``(2)``, the worker
  threads that split the tap copies and output additions (BLAS's own threads are whatever
  the environment says);
* ``piped``: a prototype of the gemm path that copies chunk ``i + 1`` on a worker thread
  while the calling thread runs the GEMM of chunk ``i`` (two im2col buffers alive);
* ``wino``: for stride-1, undilated 3x3 layers, the ``"winograd"`` path (F(2x2, 3x3); see
  ``bench_winograd.py`` for its comparison with every other path); its normwise relative
  error against a float64 reference is printed next to auto's;
* ``copy t2/t1``: the tap copies of one chunk alone, on 2 worker threads over 1.

Columns are "% of GEMM" (``ref`` time over the callable's: 100% is as fast as the bare GEMM).
Never assert on these numbers in tests.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_conv as bc
import mimo_conv as mc
from mimo_conv._core.columns import copy_taps, tap_copies
from mimo_conv._core.windows import pad_input

SHAPES = (*bc.LARGE, "conv1d-k5")


def piped_gemm(case: bc.Case, dtype: str) -> tuple[Callable[[], object], Callable[[], object]]:
    """The gemm path's loop over images with the copy of the next chunk overlapped.

    Returns the pipelined call and the copy of one chunk alone. One image per chunk, as
    the plan chooses for these layers under the 8 MiB preferred chunk.
    """
    x, w = bc.operands(case, dtype)
    g = mc.explain_method(x, w, **bc.conv_options(case)).geometry
    x_padded = pad_input(x, g)
    copies = tap_copies(g, 0, g.output_shape[0])
    groups, positions = g.groups, math.prod(g.output_shape)
    matrices = w.reshape((groups, g.out_channels_per_group, g.terms_per_output))
    out = np.empty((g.batch_size, groups, g.out_channels_per_group, positions), x.dtype)
    shape = (g.in_channels, *g.kernel_shape, *g.output_shape)
    buffers = [np.empty((1, *shape), x.dtype) for _ in range(2)]
    pool = ThreadPoolExecutor(1)

    def fill(number: int) -> None:
        copy_taps(buffers[number % 2], x_padded[number : number + 1], copies)

    def piped() -> object:
        previous = mc.set_threads(1)  # each copy on one thread, beside the GEMM
        try:
            fill(0)
            for number in range(g.batch_size):
                ahead = pool.submit(fill, number + 1) if number + 1 < g.batch_size else None
                operand = buffers[number % 2].reshape((1, groups, g.terms_per_output, positions))
                np.matmul(matrices, operand, out=out[number : number + 1])
                if ahead is not None:
                    ahead.result()
        finally:
            mc.set_threads(previous)
        return out

    def copy_one() -> object:
        copy_taps(buffers[0], x_padded[:1], copies)
        return buffers[0]

    return piped, copy_one


def winograd(case: bc.Case, dtype: str) -> Callable[[], NDArray[Any]] | None:
    """The ``"winograd"`` path on a stride-1, undilated 3x3 layer, or None."""
    options = bc.conv_options(case)
    if case.w_shape[2:] != (3, 3) or options["stride"] != 1 or options["dilation"] != 1:
        return None
    x, w = bc.operands(case, dtype)
    return lambda: mc.conv(x, w, **options, method="winograd")


def relative_error(result: NDArray[Any], exact: NDArray[Any]) -> float:
    return float(np.linalg.norm((result - exact).ravel()) / np.linalg.norm(exact.ravel()))


def measure(name: str, dtype: str, rounds: int) -> str:
    case = next(case for case in bc.SUITE if case.name == name)
    x, w = bc.operands(case, dtype)
    options = bc.conv_options(case)

    def auto() -> object:
        return mc.conv(x, w, **options)

    piped, copy_one = piped_gemm(case, dtype)
    calls: dict[str, tuple[int, Callable[[], object]]] = {
        "ref": (1, bc.gemm_reference(case, dtype)),
        "auto t1": (1, auto),
        "auto t2": (2, auto),
        "piped": (2, piped),
        "copy t1": (1, copy_one),
        "copy t2": (2, copy_one),
    }
    wino = winograd(case, dtype)
    errors = ""
    if wino is not None:
        calls["wino"] = (2, wino)
        exact = mc.conv(x.astype(np.float64), w.astype(np.float64), **options)
        errors = (
            f"  error wino {relative_error(wino(), exact):.1e} auto "
            f"{relative_error(np.asarray(auto()), exact):.1e}"
        )
    times: dict[str, list[float]] = {key: [] for key in calls}
    previous = mc.set_threads(1)
    try:
        for _ in range(rounds + 1):  # the first round warms up and is dropped
            for key, (threads, call) in calls.items():
                mc.set_threads(threads)
                start = time.perf_counter()
                call()
                times[key].append(time.perf_counter() - start)
    finally:
        mc.set_threads(previous)
    median = {key: statistics.median(values[1:]) for key, values in times.items()}
    least = {key: min(values[1:]) for key, values in times.items()}
    parts = [
        f"{key} {100 * median['ref'] / median[key]:.0f}% ({100 * least['ref'] / least[key]:.0f}%)"
        for key in calls
        if key not in ("ref", "copy t1", "copy t2")
    ]
    copy = median["copy t1"] / median["copy t2"]
    return (
        f"{name:14s} {dtype:8s} ref {median['ref'] * 1e3:7.2f} ms  "
        + "  ".join(parts)
        + f"  copy t2/t1 {copy:.2f}x"
        + errors
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=list(SHAPES), choices=SHAPES)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    print("% of GEMM: median over rounds (minimum in parentheses)")
    for dtype in args.dtypes:
        for name in args.only:
            print(measure(name, dtype, args.rounds), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
