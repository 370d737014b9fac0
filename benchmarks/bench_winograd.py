"""``method="winograd"`` against ``auto`` and the best other path, in one process (issue 13).

    OPENBLAS_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_winograd.py --rounds 11

For each stride-1, undilated 3 x 3 layer of ``bench_conv.SUITE`` (and ``QUICK_SUITE``'s small
one), ``auto``, every other path that applies (naive and depthwise only where they are not
hopeless) and ``"winograd"`` are timed interleaved: one call of each per round, in turn, the
first round dropped; medians over the rounds. Printed: the medians, winograd's time over
auto's and over the best other path's (below 1: winograd is faster), and winograd's largest
error over its derived bound (:func:`mimo_conv.testing.winograd_bound`) and over the direct
bound (:func:`mimo_conv.testing.bound`) against a float64 (for float32) or exact reference.
Never assert on these numbers in tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_conv as bc
import mimo_conv as mc
from mimo_conv.testing import bound, winograd_bound

SKIPPED = {"naive", "winograd"}


def eligible() -> list[bc.Case]:
    cases = []
    for case in (*bc.SUITE, *bc.QUICK_SUITE):
        options = bc.conv_options(case)
        if case.transposed or case.w_shape[2:] != (3, 3):
            continue
        if options["stride"] != 1 or options["dilation"] != 1:
            continue
        cases.append(case)
    return cases


def measure(case: bc.Case, dtype: str, rounds: int) -> str:
    x, w = bc.operands(case, dtype)
    options = bc.conv_options(case)
    calls: dict[str, Callable[[], object]] = {"auto": lambda: mc.conv(x, w, **options)}
    for name in mc.METHOD_NAMES[1:]:
        if name in SKIPPED or (name == "depthwise" and options["groups"] == 1):
            continue
        try:
            mc.explain_method(x, w, **options)  # validates
            mc.conv(x[:1], w, **options, method=name)
        except (ValueError, TypeError, MemoryError):
            continue
        calls[name] = lambda name=name: mc.conv(x, w, **options, method=name)  # type: ignore[misc]
    calls["winograd"] = lambda: mc.conv(x, w, **options, method="winograd")
    times: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(rounds + 1):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    median = {key: statistics.median(values[1:]) for key, values in times.items()}
    others = {key: value for key, value in median.items() if key not in ("auto", "winograd")}
    best = min(others, key=others.__getitem__)
    actual = mc.conv(x, w, **options, method="winograd")
    # float64 results of float32 operands are within 2^-29 of the bound of the exact ones.
    exact = (
        mc.conv(x.astype(np.float64), w.astype(np.float64), **options, method="gemm")
        if dtype == "float32"
        else mc.testing.assertions.reference_for(x, w, **options).exact()
    )
    error = np.abs(actual.astype(np.float64) - exact)
    tiles = {key: options[key] for key in ("padding", "groups")}
    own = float(np.max(error / winograd_bound(x, w, **tiles)))
    direct = float(np.max(error / bound("conv", x, w, **options)))
    return (
        f"{case.name:14s} {dtype:8s} auto {median['auto'] * 1e3:8.2f} ms  best {best} "
        f"{median[best] * 1e3:8.2f} ms  winograd {median['winograd'] * 1e3:8.2f} ms  "
        f"winograd/auto {median['winograd'] / median['auto']:.2f}  "
        f"winograd/best {median['winograd'] / median[best]:.2f}  "
        f"error/own bound {own:.1e}  error/direct bound {direct:.1e}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    for dtype in args.dtypes:
        for case in eligible():
            print(measure(case, dtype, args.rounds), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
