"""Benchmark the forward convolution paths of mimo_conv against BLAS, PyTorch and SciPy.

    python benchmarks/bench_conv.py            # full suite + scaling, writes results/latest.*
    python benchmarks/bench_conv.py --quick    # smoke test: small shapes, a few seconds

For each layer shape of a fixed suite, float32 and float64, and each method it reports the
median time, GFLOP/s (2 * multiply-adds / time), the fraction of this machine's BLAS GEMM
throughput on a GEMM of the same size measured in the same run (the practical limit of any
GEMM-based convolution), the peak temporary memory (tracemalloc), and, when installed, the
ratio to PyTorch's CPU ``conv{1,2,3}d`` with the same thread count and to SciPy. A scaling
mode doubles H*W, C_in, C_out and the batch in turn and reports the measured exponent of
time against the FLOP count's prediction (1 for each).

Timing hazards handled by ``_harness.time_block``: every library is timed in its own block
after an untimed warm-up call and a pause, because idle worker threads of the previous
library keep spinning. Never assert on these numbers in tests.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h
import mimo_conv as mc
from mimo_conv._core.memory import format_bytes
from mimo_conv._core.operands import prepare_call

RESULTS = Path(__file__).resolve().parent / "results"
#: Interleaved timing rounds per case; the least disturbed round counts (see run_case).
ROUNDS = 2
#: Shapes whose FLOP count makes them "large layers" for the >= 60% of GEMM target.
LARGE = ("resnet-3x3", "deep-3x3", "stride-2", "stem-7x7", "pointwise-1x1", "dilated-3x3")


@dataclass(frozen=True)
class Case:
    """One layer of the suite: shapes and conv options (PyTorch-expressible)."""

    name: str
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial_dims(self) -> int:
        return len(self.w_shape) - 2

    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.options.items())
        x = "x".join(map(str, self.x_shape))
        w = "x".join(map(str, self.w_shape))
        return f"{self.name} ({x} * {w}{', ' + extra if extra else ''})"


SUITE = (
    Case("book", (1, 2, 3, 3), (1, 2, 2, 2)),
    Case("classroom", (1, 3, 32, 32), (8, 3, 3, 3), {"padding": 1}),
    Case("lenet-5x5", (8, 6, 14, 14), (16, 6, 5, 5)),
    Case("resnet-3x3", (8, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}),
    Case("deep-3x3", (8, 256, 14, 14), (256, 256, 3, 3), {"padding": 1}),
    Case("stride-2", (8, 64, 56, 56), (128, 64, 3, 3), {"stride": 2, "padding": 1}),
    Case("stem-7x7", (8, 3, 224, 224), (64, 3, 7, 7), {"stride": 2, "padding": 3}),
    Case("pointwise-1x1", (8, 256, 28, 28), (128, 256, 1, 1)),
    Case("depthwise-3x3", (8, 64, 56, 56), (64, 1, 3, 3), {"padding": 1, "groups": 64}),
    Case("dilated-3x3", (8, 64, 56, 56), (64, 64, 3, 3), {"padding": 2, "dilation": 2}),
    Case("conv1d-k5", (8, 64, 1024), (64, 64, 5), {"padding": 2}),
    Case("conv3d-3x3x3", (2, 16, 16, 32, 32), (32, 16, 3, 3, 3), {"padding": 1}),
)

QUICK_SUITE = (
    SUITE[0],
    SUITE[1],
    Case("small-3x3", (2, 16, 16, 16), (16, 16, 3, 3), {"padding": 1}),
    Case("small-1x1", (2, 32, 8, 8), (16, 32, 1, 1)),
    Case("small-depthwise", (2, 8, 12, 12), (8, 1, 3, 3), {"padding": 1, "groups": 8}),
    Case("small-1d", (2, 8, 64), (8, 8, 5), {"padding": 2}),
    Case("small-3d", (1, 4, 6, 8, 8), (4, 4, 3, 3, 3), {"padding": 1}),
)


def flops(case: Case) -> int:
    """2 * multiply-adds of the direct convolution."""
    x = np.empty(case.x_shape, np.float32)
    w = np.empty(case.w_shape, np.float32)
    *_, geometry, _ = prepare_call(x, w, None, padding_mode="zeros", **_conv_options(case))
    return 2 * math.prod(geometry.out_shape) * geometry.terms_per_output


def _conv_options(case: Case) -> dict[str, Any]:
    options = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
    options.update(case.options)
    return options


def methods_for(case: Case, *, quick: bool) -> list[str]:
    """Methods timed for a case: auto and every fast path that applies; naive when tiny."""
    pointwise = all(k == 1 for k in case.w_shape[2:])
    names = ["auto", "gemm", "row_gemm", "shift", "einsum"]
    if pointwise:
        names.insert(1, "matmul")
    if flops(case) < 2e6 and not quick:
        names.append("naive")
    return names


def gemm_reference(case: Case, dtype: type) -> Callable[[], object]:
    """The same-size GEMM on ready-made contiguous operands (per group, batched)."""
    x: NDArray[Any] = np.empty(case.x_shape, dtype)
    w: NDArray[Any] = np.empty(case.w_shape, dtype)
    *_, g, _ = prepare_call(x, w, None, padding_mode="zeros", **_conv_options(case))
    columns = g.batch_size * math.prod(g.output_shape)
    rng = np.random.default_rng(1)
    a: NDArray[Any] = rng.standard_normal(
        (g.groups, g.out_channels_per_group, g.terms_per_output)
    ).astype(dtype)
    b: NDArray[Any] = rng.standard_normal((g.groups, g.terms_per_output, columns)).astype(dtype)
    out: NDArray[Any] = np.empty((g.groups, g.out_channels_per_group, columns), dtype)
    return lambda: np.matmul(a, b, out=out)


def torch_call(case: Case, x: NDArray[Any], w: NDArray[Any]) -> Callable[[], object] | None:
    try:
        import torch  # noqa: PLC0415 - optional
        from torch.nn import functional  # noqa: PLC0415
    except ImportError:
        return None
    conv = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}[case.spatial_dims]
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    options = _conv_options(case)

    def run() -> object:
        with torch.no_grad():
            return conv(tx, tw, **options)

    return run


def scipy_call(case: Case, x: NDArray[Any], w: NDArray[Any]) -> Callable[[], object] | None:
    """SciPy's ``oaconvolve`` over broadcast (N, C_out, C_in, ...) operands, summed over C_in.

    Only for ``groups == 1`` and ``dilation == 1`` and while the broadcast product stays under
    64 MiB: SciPy has no multi-channel convolution, so this is how one would write it.
    """
    try:
        from scipy import signal  # noqa: PLC0415 - optional
    except ImportError:
        return None
    options = _conv_options(case)
    if options["groups"] != 1 or options["dilation"] != 1:
        return None
    dims = case.spatial_dims
    pad = options["padding"]
    stride = options["stride"]
    padded = np.pad(x, ((0, 0), (0, 0), *((pad, pad),) * dims))
    broadcast = case.x_shape[0] * case.w_shape[0] * math.prod(padded.shape[1:])
    if broadcast * x.itemsize > 64 * 2**20:
        return None
    flipped = w[(slice(None), slice(None), *(slice(None, None, -1),) * dims)]
    axes = tuple(range(-dims, 0))
    step = (slice(None), slice(None), *(slice(None, None, stride),) * dims)

    def run() -> object:
        xp = np.pad(x, ((0, 0), (0, 0), *((pad, pad),) * dims))
        full = signal.oaconvolve(xp[:, None], flipped[None], mode="valid", axes=axes)
        return full.sum(axis=2)[step]

    return run


def run_case(
    case: Case, dtype: type, *, quick: bool, repeats: int, max_seconds: float
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    x: NDArray[Any] = rng.standard_normal(case.x_shape).astype(dtype)
    w: NDArray[Any] = rng.standard_normal(case.w_shape).astype(dtype)
    options = _conv_options(case)
    count = flops(case)

    reference = {"gemm-reference": gemm_reference(case, dtype)}
    torch_run = torch_call(case, x, w)
    if torch_run is not None:
        reference["torch"] = torch_run
    scipy_run = None if quick else scipy_call(case, x, w)
    if scipy_run is not None:
        reference["scipy"] = scipy_run
    methods = methods_for(case, quick=quick)
    calls: dict[str, Callable[[], object]] = dict(reference)
    for method in methods:

        def call(method: str = method) -> object:
            return mc.conv(x, w, **options, method=method)

        calls[method] = call
    # Each callable is timed in its own block (warm-up, pause, timed calls), in ROUNDS
    # interleaved rounds; a block disturbed by another process on this shared machine is
    # outvoted by the least disturbed round: the minimum of the block medians.
    timings: dict[str, list[h.Timing]] = {name: [] for name in calls}
    for _ in range(1 if quick else ROUNDS):
        for name, function in calls.items():
            timings[name].append(
                h.time_block(
                    function, repeats=repeats, max_seconds=max_seconds, min_seconds=0.05, warmup=3
                )
            )
    seconds = {name: min(t.median for t in runs) for name, runs in timings.items()}
    # The GEMM is the practical limit: its best time, not its median, is the reference.
    seconds["gemm-reference"] = min(t.best for t in timings["gemm-reference"])

    rows = []
    chosen = mc.explain_method(x, w, **options).chosen
    for method in methods:
        median = seconds[method]
        spread = min(t.spread for t in timings[method])
        row = {
            "case": case.name,
            "dtype": np.dtype(dtype).name,
            "method": method if method != "auto" else f"auto ({chosen})",
            "seconds": median,
            "gflops": h.gflops(count, median),
            "gemm_fraction": seconds["gemm-reference"] / median,
            "peak_temporary_bytes": h.peak_temporary_bytes(calls[method]),
            "vs_torch": median / seconds["torch"] if "torch" in seconds else None,
            "vs_scipy": median / seconds["scipy"] if "scipy" in seconds else None,
            "torch_seconds": seconds.get("torch"),
            "scipy_seconds": seconds.get("scipy"),
            "gemm_seconds": seconds["gemm-reference"],
            "spread": spread,
        }
        rows.append(row)
    return rows


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def results_table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "shape",
        "dtype",
        "method",
        "median",
        "GFLOP/s",
        "of GEMM",
        "peak temp",
        "vs torch",
        "vs scipy",
    ]
    body = [
        [
            row["case"],
            row["dtype"],
            row["method"],
            h.format_seconds(row["seconds"]),
            f"{row['gflops']:.1f}",
            f"{100 * row['gemm_fraction']:.0f}%",
            format_bytes(row["peak_temporary_bytes"]),
            _ratio(row["vs_torch"]),
            _ratio(row["vs_scipy"]),
        ]
        for row in rows
    ]
    return h.markdown_table(headers, body)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Targets of issue 6, from the ``auto`` rows."""
    result: dict[str, Any] = {}
    for dtype in ("float32", "float64"):
        autos = [r for r in rows if r["dtype"] == dtype and r["method"].startswith("auto")]
        ratios = {r["case"]: r["vs_torch"] for r in autos if r["vs_torch"] is not None}
        large = {r["case"]: r["gemm_fraction"] for r in autos if r["case"] in LARGE}
        book = next((r for r in autos if r["case"] == "book"), None)
        result[dtype] = {
            "geomean_vs_torch": h.geometric_mean(list(ratios.values())) if ratios else None,
            "worst_vs_torch": max(ratios.items(), key=lambda kv: kv[1]) if ratios else None,
            "gemm_fraction_large": large,
            "book_seconds": book["seconds"] if book else None,
            "book_torch_seconds": book["torch_seconds"] if book else None,
        }
    return result


def summary_markdown(result: dict[str, Any]) -> str:
    lines = []
    for dtype, values in result.items():
        geomean = values["geomean_vs_torch"]
        worst = values["worst_vs_torch"]
        large = values["gemm_fraction_large"]
        parts = [f"**{dtype}**: auto / PyTorch geometric mean {_ratio(geomean)}"]
        if worst:
            parts.append(f"worst {worst[0]} {worst[1]:.2f}x")
        if large:
            fractions = ", ".join(f"{k} {100 * v:.0f}%" for k, v in large.items())
            parts.append(f"large layers at {fractions} of same-size GEMM")
        if values["book_seconds"] and values["book_torch_seconds"]:
            parts.append(
                f"book example {h.format_seconds(values['book_seconds'])} vs PyTorch "
                f"{h.format_seconds(values['book_torch_seconds'])} "
                f"({values['book_seconds'] / values['book_torch_seconds']:.2f}x)"
            )
        lines.append("- " + "; ".join(parts))
    return "\n".join(lines)


#: The scaling mode's base layer: (4, 64, 28, 28) * (64, 64, 3, 3), padding 1 - large enough
#: (0.23 GFLOP) that BLAS, not per-call overhead, dominates from the first step.
SCALING_BATCH, SCALING_CHANNELS, SCALING_SIDE = 4, 64, 28


def scaling(dtype: type, *, steps: int, repeats: int) -> list[dict[str, Any]]:
    """Double one dimension at a time; fit the exponent of time against that dimension."""
    rows = []
    for knob in ("H*W", "C_in", "C_out", "batch"):
        sizes, times, torch_times = [], [], []
        for step in range(steps):
            factor = 2**step
            batch, c_in, c_out = SCALING_BATCH, SCALING_CHANNELS, SCALING_CHANNELS
            height = SCALING_SIDE * 2 ** ((step + 1) // 2) if knob == "H*W" else SCALING_SIDE
            width = SCALING_SIDE * 2 ** (step // 2) if knob == "H*W" else SCALING_SIDE
            if knob == "C_in":
                c_in *= factor
            elif knob == "C_out":
                c_out *= factor
            elif knob == "batch":
                batch *= factor
            case = Case(knob, (batch, c_in, height, width), (c_out, c_in, 3, 3), {"padding": 1})
            rng = np.random.default_rng(0)
            x: NDArray[Any] = rng.standard_normal(case.x_shape).astype(dtype)
            w: NDArray[Any] = rng.standard_normal(case.w_shape).astype(dtype)

            def run(x: NDArray[Any] = x, w: NDArray[Any] = w) -> object:
                return mc.conv2d(x, w, padding=1)

            timing = h.time_block(run, repeats=repeats)
            sizes.append(factor)
            times.append(timing.median)
            torch_run = torch_call(case, x, w)
            if torch_run is not None:
                torch_times.append(h.time_block(torch_run, repeats=repeats).median)
        rows.append(
            {
                "dtype": np.dtype(dtype).name,
                "doubled": knob,
                "predicted_exponent": 1.0,
                "measured_exponent": h.scaling_exponent(sizes, times),
                "torch_exponent": h.scaling_exponent(sizes, torch_times) if torch_times else None,
                "seconds": times,
            }
        )
    return rows


def scaling_table(rows: list[dict[str, Any]]) -> str:
    headers = ["dtype", "doubled", "FLOP exponent", "measured", "torch", "times"]
    body = [
        [
            row["dtype"],
            row["doubled"],
            f"{row['predicted_exponent']:.2f}",
            f"{row['measured_exponent']:.2f}",
            "-" if row["torch_exponent"] is None else f"{row['torch_exponent']:.2f}",
            " / ".join(h.format_seconds(t) for t in row["seconds"]),
        ]
        for row in rows
    ]
    return h.markdown_table(headers, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a smoke test")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="write <output>.md and <output>.json (default: results/latest for a full run, "
        "nothing for --quick)",
    )
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling mode")
    parser.add_argument("--only", nargs="*", default=None, help="run only these shape names")
    args = parser.parse_args(argv)

    machine = h.Machine()
    h.set_torch_threads(machine.threads)
    suite: tuple[Case, ...] = QUICK_SUITE if args.quick else SUITE
    if args.only:
        suite = tuple(case for case in suite if case.name in args.only)
    repeats = 3 if args.quick else 5
    max_seconds = 0.5 if args.quick else 2.0
    started = time.perf_counter()

    rows: list[dict[str, Any]] = []
    for dtype in (np.float32, np.float64):
        for case in suite:
            rows.extend(
                run_case(case, dtype, quick=args.quick, repeats=repeats, max_seconds=max_seconds)
            )
            print(f"  {np.dtype(dtype).name:<8} {case.label()}", file=sys.stderr, flush=True)
    scaling_rows: list[dict[str, Any]] = []
    if not args.no_scaling:
        for dtype in (np.float32, np.float64):
            scaling_rows.extend(scaling(dtype, steps=2 if args.quick else 4, repeats=5))

    result = summary(rows)
    markdown = "\n\n".join(
        part
        for part in (
            "# mimo_conv forward benchmark",
            "Machine:\n\n"
            + machine.as_markdown()
            + f"\n- peak RSS of the benchmark process: {format_bytes(h.peak_rss_bytes())}",
            "Command: `python benchmarks/bench_conv.py" + (" --quick`" if args.quick else "`"),
            '## Summary (method="auto")\n\n' + summary_markdown(result),
            "## Per shape and method\n\n"
            "Time ratios are mimo_conv's median over the other library's median (lower is "
            'faster); "of GEMM" is the time of a bare GEMM of the same size on ready-made '
            'operands over the method\'s time; "peak temp" is the largest amount of '
            "temporary memory held at once (tracemalloc), the result excluded.\n\n"
            + "\n\n".join(
                f"### {case.label()}\n\n"
                + results_table([r for r in rows if r["case"] == case.name])
                for case in suite
            ),
            (
                '## Scaling (method="auto", 3x3 conv doubling one dimension at a time)\n\n'
                + scaling_table(scaling_rows)
            )
            if scaling_rows
            else "",
            f"Total benchmark time: {time.perf_counter() - started:.0f} s.",
        )
        if part
    )
    print(markdown)
    output = args.output
    if output is None and not args.quick:
        output = RESULTS / "latest"
    if output is not None:
        payload = {
            "machine": machine,
            "quick": args.quick,
            "rows": rows,
            "scaling": scaling_rows,
            "summary": result,
        }
        h.write_results(output, payload, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
