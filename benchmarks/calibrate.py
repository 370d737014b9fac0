"""Calibrate the cost model behind ``method="auto"``: measure this machine, fit, compare.

    python benchmarks/calibrate.py              # full run, 1 and 2 threads (a few minutes)
    python benchmarks/calibrate.py --quick      # smoke run: small shapes, a few seconds
    python benchmarks/calibrate.py --threads 1  # one thread setting only
    python benchmarks/calibrate.py --only lenet-5x5 classroom
    python benchmarks/calibrate.py --rates-only # the machine's rates alone (seconds)

Three parts, each in a child process per thread count (``OPENBLAS_NUM_THREADS`` and the
other BLAS variables fixed in its environment, as ``bench_conv.py`` does):

1. **Machine rates.** Small, direct measurements of what the model's constants stand for
   (:mod:`mimo_conv._engine.constants`): the GEMM rate by dtype on a large product and its
   efficiency on thin products (a grid of ``m``, ``n``, ``k``, fitted to the model's
   ``d / (d + half)`` factors), the copy bandwidth of contiguous and strided copies, the
   cost of each short contiguous run a copy starts, the fixed cost of a NumPy call, of one
   small product inside a batched ``np.matmul``, of an ``np.einsum`` call, and the rates of
   NumPy's einsum loop and elementwise arithmetic. Every rate is the median of interleaved
   repeats.
2. **Paths.** Every applicable path of every forward shape of ``bench_conv.py``'s suite (and
   a few extra sizes), timed interleaved in one process (path A, B, C, A, B, C, ...; the
   median of each), next to the model's prediction, with the current constants and with
   the ones just measured. ``auto / best`` is the measured time of the path the model picks
   over the fastest path's: the statistic of issue 10 (goal: at most 1.1 on every shape).
   Transposed shapes are timed through ``method="auto"`` and the named paths of
   :func:`mimo_conv.conv_transpose`, without a prediction (their planner is elsewhere).
3. **Constants.** The measured constants, printed as Python assignments to paste into
   ``src/mimo_conv/_engine/constants.py`` (after checking the table: a constant measured on
   a loaded machine is as noisy as the machine).

Timings are ratios measured in one run on whatever machine runs this; never assert on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_conv as bench

#: Paths timed per shape (those that do not apply are skipped; naive only on tiny calls).
PATHS = ("matmul", "gemm", "row_gemm", "shift", "einsum", "im2col", "depthwise", "naive")

#: Calls faster than this are always repeated, however slow beside the fastest path: a
#: preempted first call on a loaded machine must not turn into a path's figure.
SLOW_SECONDS = 0.05
#: A second thread's gain below which the machine is taken to be loaded (its cores busy).
LOADED_GAIN = 0.2

#: Extra forward shapes besides the suite: sizes between the suite's, where the choice
#: between the GEMM paths turns.
EXTRA = (
    bench.Case("resnet-3x3-n1", (1, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}),
    bench.Case("mid-3x3", (8, 128, 28, 28), (128, 128, 3, 3), {"padding": 1}),
    bench.Case("thin-3x3", (8, 16, 32, 32), (16, 16, 3, 3), {"padding": 1}),
    bench.Case("wide-5x5", (4, 32, 32, 32), (32, 32, 5, 5), {"padding": 2}),
    bench.Case("small-map-3x3", (8, 512, 7, 7), (512, 512, 3, 3), {"padding": 1}),
    bench.Case("stride-2-1x1", (8, 256, 28, 28), (512, 256, 1, 1), {"stride": 2}),
    # Depthwise layers of EfficientNet-B0 and MobileNet-V3 (batch 2): many channels on
    # mid-size maps, where the channels-last einsum competes with the GEMM paths.
    bench.Case("dw-7x7-960-5x5", (2, 960, 7, 7), (960, 1, 5, 5), {"padding": 2, "groups": 960}),
    bench.Case("dw-14x14-480-5x5", (2, 480, 14, 14), (480, 1, 5, 5), {"padding": 2, "groups": 480}),
    bench.Case("dw-28x28-192-3x3", (2, 192, 28, 28), (192, 1, 3, 3), {"padding": 1, "groups": 192}),
    bench.Case(
        "dw-56x56-144-s2",
        (2, 144, 56, 56),
        (144, 1, 3, 3),
        {"padding": 1, "groups": 144, "stride": 2},
    ),
)


def _seconds(function: Callable[[], object], minimum: float) -> float:
    """Time of one call of ``function``: repeated until ``minimum`` seconds, the mean."""
    count, start = 0, time.perf_counter()
    while True:
        function()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= minimum:
            return elapsed / count


def interleaved(
    functions: dict[str, Callable[[], object]],
    rounds: int,
    minimum: float = 2e-3,
    slow: float = math.inf,
) -> dict[str, float]:
    """Seconds per call of each function, timed A, B, C, A, B, C, ... for ``rounds``.

    Each sample is the mean of as many calls as fill ``minimum`` seconds; a function's
    figure is the least of its samples, not their median: on a loaded machine (eight
    processes on two cores when this was written) the other processes only ever add time,
    so the fastest round is the best estimate of the time on a quiet machine, and the lead
    re-runs the script on one. A function whose first two calls take more than ``slow``
    times the fastest first call, and over :data:`SLOW_SECONDS`, is not repeated: its faster
    call is its figure (a path that slow is never the choice, and repeating it would cost
    minutes).
    """
    first: dict[str, float] = {}
    for name, function in functions.items():  # warm-up: page faults, caches, plan caches
        first[name] = _seconds(function, 0.0)
    fastest = min(first.values(), default=0.0)
    for name, function in functions.items():  # a preempted first call is not a slow path
        if first[name] > slow * fastest:
            first[name] = min(first[name], _seconds(function, 0.0))
    timed = {
        name: f
        for name, f in functions.items()
        if first[name] <= slow * fastest or first[name] < SLOW_SECONDS
    }
    samples: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(rounds):
        for name, function in timed.items():
            samples[name].append(_seconds(function, minimum))
    return {name: min(samples[name]) if name in samples else first[name] for name in functions}


# ---------------------------------------------------------------------------------------
# Part 1: the machine's rates.

#: Large products whose best rate is the full GEMM rate (m, k, n).
LARGE_PRODUCTS = ((512, 512, 512), (256, 2304, 196), (64, 576, 3136))
#: Thin products the shape-efficiency factors are fitted to (m, k, n): the suite's shapes.
THIN_PRODUCTS = (
    (16, 150, 100),
    (16, 30, 140),
    (8, 27, 1024),
    (64, 64, 3136),
    (64, 9, 3136),
    (64, 192, 3364),
    (144, 576, 8),
    (16, 576, 8),
    (4, 256, 256),
    (256, 16, 256),
    (64, 320, 1024),
    (32, 432, 8192),
)
QUICK_PRODUCTS = ((16, 150, 100), (64, 9, 784), (8, 27, 1024), (144, 576, 8))


def _product(m: int, k: int, n: int, dtype: str) -> Callable[[], object]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    out = np.empty((m, n), dtype)
    return lambda: np.matmul(a, b, out=out)


def measure_products(dtypes: Sequence[str], rounds: int, quick: bool) -> dict[str, float]:
    """Seconds of each product, keyed ``"dtype m k n"``."""
    large = ((256, 256, 256),) if quick else LARGE_PRODUCTS
    thin = QUICK_PRODUCTS if quick else THIN_PRODUCTS
    functions = {
        f"{dtype} {m} {k} {n}": _product(m, k, n, dtype)
        for dtype in dtypes
        for m, k, n in (*large, *thin, (1, 1, 1))
    }
    return interleaved(functions, rounds)


def _square(
    batch: int, c_in: int, c_out: int, groups: int, size: int, kernel: int, padding: int
) -> Any:
    """A 2-d geometry with square input and kernel, stride and dilation 1."""
    from mimo_conv._core.geometry import ConvGeometry  # noqa: PLC0415

    return ConvGeometry(
        batch_size=batch,
        in_channels=c_in,
        out_channels=c_out,
        groups=groups,
        input_shape=(size, size),
        kernel_shape=(kernel, kernel),
        stride=(1, 1),
        dilation=(1, 1),
        padding=((padding, padding),) * 2,
    )


def measure_numpy(rounds: int, quick: bool) -> dict[str, float]:
    """Seconds of the NumPy-side operations the model's other constants stand for."""
    import mimo_conv as mc  # noqa: PLC0415
    from mimo_conv._core.windows import window_view  # noqa: PLC0415
    from mimo_conv._core.workers import run_tasks  # noqa: PLC0415

    rng = np.random.default_rng(0)
    scale = 1 if quick else 4
    image = rng.standard_normal((2 * scale, 64, 58, 58)).astype(np.float32)
    tap_out = np.empty((2 * scale, 64, 56, 56), np.float32)  # resnet's tap copy (full run)
    strided_out = np.empty((2 * scale, 64, 28, 28), np.float32)
    rows = 2**12 * scale
    short = rng.standard_normal((rows, 16)).astype(np.float32)  # rows of 8 of 16
    short_out = np.empty((rows, 8), np.float32)
    long = rng.standard_normal((rows * 8 // 512, 1024)).astype(np.float32)
    long_out = np.empty((rows * 8 // 512, 512), np.float32)
    one, one_out = np.ones((1, 1, 1, 1)), np.empty((1, 1, 1, 1))
    every = (slice(None), slice(None))
    index = (slice(None), slice(None), slice(0, 1), slice(0, 1))
    tiny_a, tiny_b, tiny_o = np.ones((1, 1)), np.ones((1, 1)), np.empty((1, 1))
    batch = 1152
    p5 = [rng.standard_normal(shape).astype(np.float32) for shape in ((batch, 1, 5), (batch, 5, 9))]
    p25 = [
        rng.standard_normal(shape).astype(np.float32) for shape in ((batch, 1, 25), (batch, 25, 9))
    ]
    book_x = np.ones((1, 1, 1, 2, 2, 2, 2))
    book_w = np.ones((1, 1, 1, 2, 2))
    depthwise = _square(2, 576, 576, 576, 3, 5, 2)
    dw_x = window_view(rng.standard_normal((2, 576, 7, 7)).astype(np.float32), depthwise)
    dw_x = dw_x.reshape((2, 576, 1, 3, 3, 5, 5))
    dw_w = rng.standard_normal((576, 1, 1, 5, 5)).astype(np.float32)
    ew = rng.standard_normal(10**5), rng.standard_normal(10**5)
    ints = rng.integers(-9, 9, (64, 256)), rng.integers(-9, 9, (256, 256))
    objects = (
        rng.integers(-9, 9, (16, 16)).astype(object),
        rng.integers(-9, 9, (16, 16)).astype(object),
    )
    naive_x, naive_w = np.ones((1, 1, 10, 10)), np.ones((1, 1, 3, 3))
    book = _square(1, 2, 1, 1, 3, 2, 0)
    book_input = np.ones((1, 2, 3, 3))
    window = image[:, :, 1:57, 1:57]
    half = scale  # images per thread

    def tap_copy() -> None:
        one_out[(*every, 0, 0)] = one[index][..., 0, 0]

    def split_copy() -> None:
        run_tasks(
            [
                lambda: np.copyto(tap_out[:half], window[:half]),
                lambda: np.copyto(tap_out[half:], window[half:]),
            ]
        )

    functions: dict[str, Callable[[], object]] = {
        "copy": lambda: np.copyto(tap_out, window),
        "copy split": split_copy,
        "strided copy": lambda: np.copyto(strided_out, image[:, :, 0:56:2, 0:56:2]),
        "short rows": lambda: np.copyto(short_out, short[:, :8]),
        "long rows": lambda: np.copyto(long_out, long[:, :512]),
        "tap copy call": tap_copy,
        "product call": lambda: np.matmul(tiny_a, tiny_b, out=tiny_o),
        "products k5": lambda: np.matmul(*p5),
        "products k25": lambda: np.matmul(*p25),
        "einsum call": lambda: np.einsum(
            "ngcABij,gocij->ngoAB", book_x, book_w, optimize=["einsum_path", (0, 1)]
        ),
        "einsum loop": lambda: np.einsum(
            "ngcABij,gocij->ngoAB", dw_x, dw_w, optimize=["einsum_path", (0, 1)]
        ),
        "elementwise": lambda: np.multiply(*ew).sum(),
        "integer product": lambda: np.matmul(*ints),
        "object product": lambda: np.matmul(*objects),
        "naive": lambda: mc.conv(naive_x, naive_w, method="naive"),
        "window view": lambda: window_view(book_input, book),
    }
    measured = interleaved(functions, rounds)
    sizes = {
        "copy bytes": 2 * tap_out.nbytes,
        "copy runs": tap_out.size // 56,
        "strided bytes": 2 * strided_out.nbytes,
        "strided runs": strided_out.size // 28,
        "row bytes": 2 * short_out.nbytes,
        "short runs": rows,
        "long runs": long_out.shape[0],
        "batch": batch,
        "einsum loop flops": 2 * 2 * 576 * 9 * 25,
        "integer flops": 2 * 64 * 256 * 256,
        "object flops": 2 * 16**3,
        "naive outputs": 64,
    }
    return {**measured, **{f"size {k}": float(v) for k, v in sizes.items()}}


def _log_error(measured: dict[str, float], model: Callable[[int, int, int], float]) -> float:
    total = 0.0
    for key, seconds in measured.items():
        _, m, k, n = key.split()
        total += math.log(model(int(m), int(k), int(n)) / seconds) ** 2
    return total


def fit_products(products: dict[str, float], dtypes: Sequence[str]) -> dict[str, float]:
    """The GEMM constants: full rate per dtype, half-speed dimensions (grid search)."""
    fitted: dict[str, float] = {}
    call = statistics.median(s for key, s in products.items() if key.endswith(" 1 1 1"))
    fitted["product call"] = call
    for dtype in dtypes:
        large = []
        for key, seconds in products.items():
            name, *dims = key.split()
            m, k, n = map(int, dims)
            if name == dtype and m * k * n >= 2**24:
                large.append(2 * m * k * n / (seconds - call))
        fitted[f"rate {dtype}"] = max(large) if large else math.nan
    grid = [0.125 * 2 ** (i / 2) for i in range(19)]  # 0.125 .. 64
    best = (math.inf, 0.0, 0.0, 0.0)
    thin = {
        key: s
        for key, s in products.items()
        if not key.endswith(" 1 1 1") and math.prod(map(int, key.split()[1:])) < 2**24
    }
    for rows in grid:
        for inner in grid:
            for columns in grid:
                error = 0.0
                for dtype in dtypes:
                    full = fitted[f"rate {dtype}"]

                    def model(m: int, k: int, n: int, full: float = full) -> float:
                        shape = (m / (m + rows)) * (k / (k + inner)) * (n / (n + columns))  # noqa: B023
                        return call + 2 * m * k * n / (full * shape)

                    error += _log_error(
                        {k: v for k, v in thin.items() if k.startswith(dtype)}, model
                    )
                if error < best[0]:
                    best = (error, rows, inner, columns)
    fitted["half rows"], fitted["half inner"], fitted["half columns"] = best[1:]
    fitted["fit rms log error"] = math.sqrt(best[0] / max(1, len(thin)))
    return fitted


def machine_constants(
    products: dict[str, float], numpy_side: dict[str, float], dtypes: Sequence[str]
) -> dict[str, Any]:
    """The constants of :mod:`mimo_conv._engine.constants` from one child's measurements."""
    fit = fit_products(products, dtypes)
    m = numpy_side
    f32 = fit.get("rate float32", math.nan)
    f64 = fit.get("rate float64", f32 / 2)
    if not math.isfinite(f32):
        f32 = 2 * f64
    runs = m["size short runs"] - m["size long runs"]
    per_run = max(0.0, (m["short rows"] - m["long rows"]) / runs)
    copy_rate = m["size copy bytes"] / max(1e-12, m["copy"] - m["size copy runs"] * per_run)
    strided = m["size strided bytes"] / max(
        1e-12, m["strided copy"] - m["size strided runs"] * per_run
    )
    call = statistics.median([m["tap copy call"], m["product call"]])
    batch = m["size batch"]
    each5 = (m["products k5"] - call) / batch
    each25 = (m["products k25"] - call) / batch
    small_rate = 2 * 9 * 20 / max(1e-12, each25 - each5)
    per_product = max(1e-9, each5 - 2 * 9 * 5 / small_rate)
    # BLAS_FLOPS_PER_SECOND holds the AVX2 kernels' rates; the formulas scale them by
    # BLAS_KERNEL_SPEEDUP under AVX-512 kernels, so a run under those reports its rates
    # divided back (pasted, they predict this run's speed again).
    from mimo_conv._core.machine import AVX512_KERNELS, openblas_kernels  # noqa: PLC0415
    from mimo_conv._engine.constants import BLAS_KERNEL_SPEEDUP  # noqa: PLC0415

    if openblas_kernels() in AVX512_KERNELS:
        f32 /= BLAS_KERNEL_SPEEDUP[4]
        f64 /= BLAS_KERNEL_SPEEDUP[8]
    return {
        "BLAS_FLOPS_PER_SECOND": {("f", 8): f64, ("f", 4): f32, ("c", 16): f64, ("c", 8): f32},
        "HALF_SPEED_ROWS": fit["half rows"],
        "HALF_SPEED_INNER": fit["half inner"],
        "HALF_SPEED_COLUMNS": fit["half columns"],
        "INTEGER_FLOPS_PER_SECOND": m["size integer flops"] / m["integer product"],
        "OBJECT_FLOPS_PER_SECOND": m["size object flops"] / m["object product"],
        "COPY_BYTES_PER_SECOND": copy_rate,
        "STRIDED_BYTES_PER_SECOND": min(copy_rate, strided),
        "SECONDS_PER_RUN": per_run,
        "SECONDS_PER_CALL": call,
        "SECONDS_PER_PRODUCT": per_product,
        "SMALL_PRODUCT_FLOPS_PER_SECOND": small_rate,
        "EINSUM_CALL_SECONDS": m["einsum call"],
        "WINDOW_VIEW_SECONDS": m["window view"],
        "EINSUM_LOOP_FLOPS_PER_SECOND": m["size einsum loop flops"] / m["einsum loop"],
        "NUMPY_ELEMENTWISE_FLOPS_PER_SECOND": 2e5 / m["elementwise"],
        "NAIVE_SECONDS_PER_OUTPUT": m["naive"] / m["size naive outputs"],
        "fit rms log error": fit["fit rms log error"],
    }


def thread_constants(
    products: dict[str, float], numpy_side: dict[str, float], base: dict[str, float]
) -> dict[str, float]:
    """What a second thread adds, from a 2-thread child's times and the 1-thread ones."""
    gains = [
        base[key] / seconds - 1
        for key, seconds in products.items()
        if key in base and math.prod(map(int, key.split()[1:])) >= 2**24
    ]
    small = [
        base[key] / seconds - 1
        for key, seconds in products.items()
        if key in base and math.prod(map(int, key.split()[1:])) <= 262144 and "1 1 1" not in key
    ]
    return {
        "BLAS_THREAD_EFFICIENCY": max(0.0, statistics.median(gains)) if gains else math.nan,
        "small product gain": statistics.median(small) if small else math.nan,
        "NUMPY_THREAD_EFFICIENCY": max(0.0, numpy_side["copy"] / numpy_side["copy split"] - 1),
    }


# ---------------------------------------------------------------------------------------
# Part 2: the paths on the suite shapes.


def path_calls(case: bench.Case, dtype: str, quick: bool) -> dict[str, Callable[[], object]]:
    """``method=`` callables for every path that applies to ``case`` (and ``"auto"``)."""
    import mimo_conv as mc  # noqa: PLC0415

    x, w = bench.operands(case, dtype)
    options = bench.conv_options(case)
    function = mc.conv_transpose if case.transposed else mc.conv
    calls: dict[str, Callable[[], object]] = {}
    flops = bench.flops(case)
    for method in (*PATHS, "auto") if case.transposed else PATHS:
        if method == "naive" and flops > 2e5:
            continue
        if method == "im2col" and flops > (1e7 if quick else 2e8):
            continue
        if method == "depthwise" and case.w_shape[1] > bench.DEPTHWISE_MAX_CHANNELS:
            continue
        if method == "shift" and flops > 5e8 and quick:
            continue

        def call(method: str = method) -> object:
            return function(x, w, **options, method=method)

        try:
            call()
        except ValueError:  # does not apply (matmul for a 3x3 kernel)
            continue
        calls[method] = call
    return calls


def predictions(case: bench.Case, dtype: str, rates: Any = None) -> dict[str, float]:
    """The model's predicted seconds per path for a forward case (empty for transposed).

    With ``rates`` (a :class:`mimo_conv._engine.formulas.Rates`), each path's counted work
    under the plan's chunks is priced with those rates instead of the constants.
    """
    import mimo_conv as mc  # noqa: PLC0415
    from mimo_conv._core.workers import get_threads  # noqa: PLC0415
    from mimo_conv._engine.formulas import predict_seconds  # noqa: PLC0415
    from mimo_conv._paths.registry import PATH_SPECS  # noqa: PLC0415

    if case.transposed:
        return {}
    x, w = bench.operands(case, dtype)
    plan = mc.explain_method(x, w, **bench.conv_options(case))
    predicted = {}
    for cost in plan.candidates:
        if not cost.feasible or cost.chunking is None:
            continue
        if rates is None:
            predicted[cost.method] = cost.seconds
            continue
        itemsize = plan.plan.compute.itemsize
        work = PATH_SPECS[cost.method].work(plan.geometry, itemsize, cost.chunking)
        copied = (cost.bytes_moved - work.bytes_moved) // 2
        work = dataclasses.replace(work, calls=cost.calls)
        predicted[cost.method] = predict_seconds(
            work, cost.flops, plan.plan, copied, threads=get_threads(), rates=rates
        )
    return predicted


def measure_paths(
    cases: Sequence[bench.Case], dtypes: Sequence[str], rounds: int, quick: bool, rates: Any
) -> list[dict[str, Any]]:
    """Measured and predicted seconds of every path, per case and dtype."""
    rows = []
    for case in cases:
        for dtype in dtypes:
            calls = path_calls(case, dtype, quick)
            measured = interleaved(calls, rounds, 1e-3 if quick else 2e-3, slow=4.0)
            rows.append(
                {
                    "case": case.name,
                    "dtype": dtype,
                    "measured": measured,
                    "predicted": predictions(case, dtype),
                    "fitted": predictions(case, dtype, rates),
                }
            )
            print(f"  {case.name}/{dtype}", file=sys.stderr)
    return rows


def auto_over_best(row: dict[str, Any], which: str = "predicted") -> tuple[str, str, float]:
    """The path auto takes, the fastest path, and auto's measured time over the best's.

    ``which`` names the predictions auto chooses by (``"predicted"``: the constants in the
    package; ``"fitted"``: the ones this run measured). A transposed shape has no
    prediction here: its ``"auto"`` is timed as it is.
    """
    measured = {m: s for m, s in row["measured"].items() if m != "auto"}
    best = min(measured, key=measured.__getitem__)
    predicted = {m: s for m, s in row[which].items() if m in measured}
    if predicted:
        chosen = min(predicted, key=predicted.__getitem__)
        return chosen, best, measured[chosen] / measured[best]
    return "auto", best, row["measured"]["auto"] / measured[best]


def paths_table(rows: list[dict[str, Any]]) -> str:
    """One line per shape: auto's path and ratio by the package's constants and by the fit."""
    lines = [
        (
            f"{'shape':<20} {'dtype':<8} {'best':<9} {'auto':<9} {'/best':>6} {'fitted':<9} "
            f"{'/best':>6}  ms measured (predicted, fitted) per path"
        )
    ]
    for row in rows:
        chosen, best, ratio = auto_over_best(row)
        refit, _, refit_ratio = auto_over_best(row, "fitted")
        per_path = "  ".join(
            f"{m} {s * 1e3:.3g}"
            + (
                f" ({row['predicted'][m] * 1e3:.3g}, {row['fitted'][m] * 1e3:.3g})"
                if m in row["predicted"]
                else ""
            )
            for m, s in row["measured"].items()
            if m != "auto"
        )
        lines.append(
            f"{row['case']:<20} {row['dtype']:<8} {best:<9} {chosen:<9} {ratio:>5.2f}"
            f"{'!' if ratio > 1.1 else ' '} {refit:<9} {refit_ratio:>5.2f}"
            f"{'!' if refit_ratio > 1.1 else ' '}  {per_path}"
        )
    for which in ("predicted", "fitted"):
        ratios = [auto_over_best(row, which)[2] for row in rows]
        worst = max(ratios)
        over = sum(r > 1.1 for r in ratios)
        label = "package constants" if which == "predicted" else "fitted constants"
        lines.append(
            f"auto / best by the {label}: worst {worst:.2f}, geometric mean "
            f"{math.exp(statistics.fmean(math.log(r) for r in ratios)):.3f}, "
            f"{over} of {len(ratios)} above 1.1"
        )
    return "\n".join(lines)


def constants_block(constants: dict[str, Any]) -> str:
    """The measured constants as Python assignments for ``constants.py``."""
    lines = []
    for name, value in constants.items():
        if not name.isupper():
            continue
        if isinstance(value, dict):
            items = ", ".join(f"{key!r}: {rate:.3g}" for key, rate in value.items())
            lines.append(f"{name}: dict[tuple[str, int], float] = {{{items}}}")
        elif name == "BLAS_SINGLE_THREAD_WORK":
            lines.append(f"{name} = {int(value)}")
        else:
            lines.append(f"{name} = {value:.3g}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Driver: one child per thread count.


def child(args: argparse.Namespace) -> int:
    """Measure the machine and the paths at this process's thread count; print JSON."""
    from mimo_conv._engine.formulas import MEASURED  # noqa: PLC0415

    cases = selected_cases(args)
    rounds = 3 if args.quick else args.rounds
    products = measure_products(args.dtypes, rounds, args.quick)
    numpy_side = measure_numpy(rounds, args.quick)
    if args.base:
        base = json.loads(Path(args.base).read_text(encoding="utf-8"))
        constants = dict(base["constants"])
        constants["BLAS_FLOPS_PER_SECOND"] = {
            tuple(json.loads(key)): rate
            for key, rate in base["constants"]["BLAS_FLOPS_PER_SECOND"].items()
        }
        constants.update(thread_constants(products, numpy_side, base["products"]))
    else:
        constants = machine_constants(products, numpy_side, args.dtypes)
    fields = {f.name for f in dataclasses.fields(MEASURED)}
    rates = dataclasses.replace(
        MEASURED, **{k.lower(): v for k, v in constants.items() if k.lower() in fields}
    )
    rows = [] if args.rates_only else measure_paths(cases, args.dtypes, rounds, args.quick, rates)
    constants["BLAS_FLOPS_PER_SECOND"] = {
        json.dumps(key): rate for key, rate in constants["BLAS_FLOPS_PER_SECOND"].items()
    }
    print(json.dumps({"paths": rows, "products": products, "constants": constants}))
    return 0


def selected_cases(args: argparse.Namespace) -> list[bench.Case]:
    if args.quick:
        pool: tuple[bench.Case, ...] = bench.QUICK_SUITE
    else:
        pool = (*bench.SUITE, *EXTRA)
    if args.only:
        everything = {case.name: case for case in (*bench.SUITE, *bench.QUICK_SUITE, *EXTRA)}
        return [everything[name] for name in args.only]
    return list(pool)


def run_child(threads: int, argv: list[str]) -> dict[str, Any]:
    """Run this script as a child with ``threads`` BLAS threads; return its JSON."""
    command = [sys.executable, __file__, "--child", "--threads", str(threads), *argv]
    environment = bench.child_environment(threads)
    # The child's progress lines go straight to this process's stderr as they come.
    completed = subprocess.run(
        command, env=environment, stdout=subprocess.PIPE, text=True, check=False
    )
    if completed.returncode != 0:
        msg = f"calibration child failed with exit code {completed.returncode}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, a few seconds")
    parser.add_argument("--threads", type=int, nargs="+", default=None)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--only", nargs="+", default=None, help="shape names")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--rates-only", action="store_true", help="measure the machine's rates, not the paths"
    )
    parser.add_argument("--save", default=None, help="write every measurement to this JSON file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    threads = sorted(set(args.threads or [1, 2]))
    forwarded = _without_threads(list(argv if argv is not None else sys.argv[1:]))
    forwarded = _without_option(forwarded, "--save")
    start = time.perf_counter()
    merged: dict[str, Any] = {}
    saved: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        base_file = Path(folder) / "one-thread.json"
        for count in threads:
            extra = ["--base", str(base_file)] if count > 1 and base_file.exists() else []
            result = run_child(count, [*forwarded, *extra])
            saved[str(count)] = result
            if count == 1:
                base_file.write_text(json.dumps(result), encoding="utf-8")
                merged.update(result["constants"])
            else:
                merged.update(
                    {
                        k: result["constants"][k]
                        for k in ("BLAS_THREAD_EFFICIENCY", "NUMPY_THREAD_EFFICIENCY")
                    }
                )
            if result["paths"]:
                print(f"\n== {count} thread(s): auto's path and auto / best, ms per path")
                print(paths_table(result["paths"]))
            extras = {k: v for k, v in result["constants"].items() if not k.isupper()}
            print("   measurement notes: " + ", ".join(f"{k} {v:.3g}" for k, v in extras.items()))
    if "BLAS_FLOPS_PER_SECOND" in merged:
        merged["BLAS_FLOPS_PER_SECOND"] = {
            tuple(json.loads(key)): rate for key, rate in merged["BLAS_FLOPS_PER_SECOND"].items()
        }
    print("\n== measured constants (paste over src/mimo_conv/_engine/constants.py's values):")
    print(constants_block(merged))
    for name in ("BLAS_THREAD_EFFICIENCY", "NUMPY_THREAD_EFFICIENCY"):
        if name in merged and merged[name] < LOADED_GAIN:
            print(
                f"# {name}: a second thread gained under {LOADED_GAIN:.0%}: the machine is "
                "loaded (or has one core); keep the quiet-machine value."
            )
    print(f"# load average over the last 5 minutes: {os.getloadavg()[1]:.1f}")
    if args.save:
        Path(args.save).write_text(json.dumps(saved, indent=1), encoding="utf-8")
    print(f"\n(calibration took {time.perf_counter() - start:.0f} s)")
    return 0


def _without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name`` and the value after it."""
    if name not in argv:
        return argv
    at = argv.index(name)
    return argv[:at] + argv[at + 2 :]


def _without_threads(argv: list[str]) -> list[str]:
    out, skipping = [], False
    for item in argv:
        if item == "--threads":
            skipping = True
            continue
        if skipping and item.isdigit():
            continue
        skipping = False
        out.append(item)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
