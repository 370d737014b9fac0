"""Benchmark the oracle: ``assert_close`` time over ``mc.conv`` time on the same inputs in float64.

    python benchmarks/bench_oracle.py            # the layer of the issue and 200 generated problems
    python benchmarks/bench_oracle.py --quick    # smaller, a few seconds (the CI smoke run)

Rows: the float32 layer (2,16,32,32)x(16,16,3,3) with padding 1 (the issue's goal: within
10x), its input and weight gradients, a bfloat16-model check of the same layer, and the
median and 90th percentile over generated problems (goal: within 5x), for all of them and
per dtype, with how often each exact reference was used (one float64 call, the Ozaki scheme,
fractions). Each ratio is measured in one run, the two sides interleaved (check, conv,
check, conv, ...) and the medians compared, so that a loaded machine slows both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import mimo_conv as mc
from mimo_conv import testing
from mimo_conv.testing.oracle import oracle_for


def interleaved(
    check: Callable[[], Any], conv: Callable[[], Any], rounds: int
) -> tuple[float, float]:
    """Median times of ``check`` and ``conv``, run alternately ``rounds`` times each."""
    checks: list[float] = []
    convs: list[float] = []
    for _ in range(rounds):
        for function, times in ((check, checks), (conv, convs)):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
    return statistics.median(checks), statistics.median(convs)


def layer_rows(
    batch: int, channels: int, side: int, repeats: int
) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, channels, side, side)).astype(np.float32)
    w = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32)
    g = rng.standard_normal((batch, channels, side, side)).astype(np.float32)
    x64, w64, g64 = (a.astype(np.float64) for a in (x, w, g))
    out = mc.conv(x, w, padding=1)
    gx = mc.grad.conv_input(x.shape, w, g, padding=1)
    gw = mc.grad.conv_weight(x, w.shape, g, padding=1)
    shape = f"({batch},{channels},{side},{side})x({channels},{channels},3,3)"
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        (
            f"conv {shape} float32",
            lambda: testing.assert_close(out, "conv", x, w, padding=1),
            lambda: mc.conv(x64, w64, padding=1),
        ),
        (
            f"conv {shape} bfloat16 model",
            lambda: testing.assert_close(
                out, "conv", x, w, padding=1, precision="bfloat16-float32-out"
            ),
            lambda: mc.conv(x64, w64, padding=1),
        ),
        (
            f"conv_input {shape} float32",
            lambda: testing.assert_close(gx, "conv_input", x.shape, w, g, padding=1),
            lambda: mc.grad.conv_input(x.shape, w64, g64, padding=1),
        ),
        (
            f"conv_weight {shape} float32",
            lambda: testing.assert_close(gw, "conv_weight", x, w.shape, g, padding=1),
            lambda: mc.grad.conv_weight(x64, w.shape, g64, padding=1),
        ),
    ]
    return [(name, *interleaved(check, conv, repeats)) for name, check, conv in cases]


def generated_ratios(count: int, repeats: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Per dtype, the ratio of ``assert_conv_close`` over ``mc.conv`` in float64 per problem."""
    from hypothesis import given, settings  # noqa: PLC0415

    ratios: dict[str, list[float]] = {}
    methods: dict[str, int] = {}

    @settings(max_examples=count, deadline=None, database=None, derandomize=True)
    @given(testing.conv_problems())
    def run(problem: testing.ConvProblem) -> None:
        kind = np.complex128 if problem.x.dtype.kind == "c" else np.float64
        args64: list[Any] = [None if a is None else a.astype(kind) for a in problem.args()]
        options = problem.conv_kwargs()
        out = mc.conv(*problem.args(), **options)
        check, conv = interleaved(
            lambda: testing.assert_conv_close(out, *problem.args(), **options),
            lambda: mc.conv(*args64, **options),
            repeats,
        )
        ratios.setdefault(str(problem.x.dtype), []).append(check / conv)
        exact = oracle_for("conv", problem.args(), options).exact
        method = "exact arithmetic" if exact is None else exact.method
        methods[method] = methods.get(method, 0) + 1

    run()
    return ratios, methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a few seconds")
    args = parser.parse_args()
    if args.quick:
        rows = layer_rows(1, 8, 16, 3)
        ratios, methods = generated_ratios(20, 3)
    else:
        rows = layer_rows(2, 16, 32, 21)
        ratios, methods = generated_ratios(200, 9)
    print(f"{'case':58} {'assert_close':>13} {'mc.conv f64':>12} {'ratio':>7}")
    for name, check, conv in rows:
        print(f"{name:58} {check * 1e3:10.2f} ms {conv * 1e3:9.2f} ms {check / conv:6.1f}x")
    every = [ratio for values in ratios.values() for ratio in values]
    for name, values in [("all", every), *sorted(ratios.items())]:
        print(
            f"generated problems, {name} ({len(values)}): median "
            f"{statistics.median(values):.1f}x, 90th percentile "
            f"{float(np.percentile(values, 90)):.1f}x"
        )
    print("reference: " + ", ".join(f"{name} {n}" for name, n in sorted(methods.items())))


if __name__ == "__main__":
    main()
