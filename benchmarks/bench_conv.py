"""Benchmark mimo_conv's forward paths against PyTorch, each library in its own processes.

    python benchmarks/bench_conv.py             # full suite, 1 thread and all threads
    python benchmarks/bench_conv.py --quick     # smoke test: small shapes, a few seconds
    python benchmarks/bench_conv.py --models    # also whole networks, every conv by mimo_conv
    python benchmarks/bench_conv.py --only resnet-3x3 se-reduce --processes 5

How a figure is measured (issue 13: in one process a layer took 16.6 ms, in the next 27 ms;
PyTorch's spinning OpenMP workers slowed plain PyTorch 16x):

* Every library runs in its own child processes (``--child``), started with the thread
  count fixed in the environment (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
  ``MKL_NUM_THREADS``) and ``OMP_WAIT_POLICY=PASSIVE``, so no idle worker spins into the
  other library's timing. mimo_conv's children never import torch (except for --models).
* Children of the two libraries alternate (mimo_conv, torch, torch, mimo_conv, ...), and
  ``--processes`` of each are run per thread setting. Inside a child every callable is timed
  in its own block (warm-up, pause, timed calls; ``_harness.time_block``).
* A figure is the median over the processes of each process's median; its spread is
  ``(max - min) / median`` over the processes, reported next to it. Ratios are ratios of
  these medians, measured in one run.

For every suite shape every applicable ``method=`` is timed as well as ``"auto"``, and
``auto / best`` is auto's time over the fastest path's (issue 10's statistic). That ratio
is taken inside each mimo_conv process, from a round-robin of auto and the paths within
:data:`CONTENDER_FACTOR` of the fastest block (``_harness.interleaved_times``), then the
median over the processes: two separate blocks drift apart by up to 1.4x on this machine
even when auto runs the very path it is compared with. Never assert on these numbers in
tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
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

RESULTS = Path(__file__).resolve().parent / "results"
#: Shapes whose FLOP count makes them "large layers" for the >= 85% of GEMM target.
LARGE = ("resnet-3x3", "deep-3x3", "stride-2", "stem-7x7", "pointwise-1x1", "dilated-3x3")
#: The "depthwise" path loops over the input channels of a group; on the full suite it is
#: timed only where a group has at most this many (minutes of dense-layer timings saved).
DEPTHWISE_MAX_CHANNELS = 8
#: Every path mimo_conv offers besides "auto"; those that do not apply are skipped per shape.
PATHS = ("matmul", "gemm", "row_gemm", "shift", "einsum", "depthwise", "im2col", "naive")


@dataclass(frozen=True)
class Case:
    """One layer: shapes and options (PyTorch-expressible); ``transposed`` for conv_transpose."""

    name: str
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    transposed: bool = False

    @property
    def spatial_dims(self) -> int:
        return len(self.w_shape) - 2

    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.options.items())
        x = "x".join(map(str, self.x_shape))
        w = "x".join(map(str, self.w_shape))
        kind = "conv_transpose " if self.transposed else ""
        return f"{self.name} ({kind}{x} * {w}{', ' + extra if extra else ''})"


def _depthwise(name: str, x: tuple[int, ...], k: int, **options: Any) -> Case:
    return Case(name, x, (x[1], 1, k, k), {"groups": x[1], **options})


SUITE = (
    Case("book", (1, 2, 3, 3), (1, 2, 2, 2)),
    Case("classroom", (1, 3, 32, 32), (8, 3, 3, 3), {"padding": 1}),
    Case("lenet-5x5", (8, 6, 14, 14), (16, 6, 5, 5)),
    Case("resnet-3x3", (8, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}),
    Case("deep-3x3", (8, 256, 14, 14), (256, 256, 3, 3), {"padding": 1}),
    Case("stride-2", (8, 64, 56, 56), (128, 64, 3, 3), {"stride": 2, "padding": 1}),
    Case("stem-7x7", (8, 3, 224, 224), (64, 3, 7, 7), {"stride": 2, "padding": 3}),
    Case("pointwise-1x1", (8, 256, 28, 28), (128, 256, 1, 1)),
    Case("dilated-3x3", (8, 64, 56, 56), (64, 64, 3, 3), {"padding": 2, "dilation": 2}),
    Case("conv1d-k5", (8, 64, 1024), (64, 64, 5), {"padding": 2}),
    Case("conv3d-3x3x3", (2, 16, 16, 32, 32), (32, 16, 3, 3, 3), {"padding": 1}),
    # Depthwise layers: MobileNet's 3x3 (stride 1 and 2) and the EfficientNet/ConvNeXt-like
    # tiny maps of issue 13.
    _depthwise("depthwise-3x3", (8, 64, 56, 56), 3, padding=1),
    _depthwise("depthwise-3x3-s2", (8, 144, 56, 56), 3, padding=1, stride=2),
    _depthwise("depthwise-5x5-4x4", (2, 672, 4, 4), 5, padding=2),
    _depthwise("depthwise-7x7-2x2", (2, 768, 2, 2), 7, padding=3),
    _depthwise("depthwise-5x5-3x3", (2, 576, 3, 3), 5, padding=2),
    # Squeeze-and-excite blocks: 1x1 convolutions on 1x1 maps.
    Case("se-reduce", (8, 576, 1, 1), (144, 576, 1, 1)),
    Case("se-expand", (8, 144, 1, 1), (576, 144, 1, 1)),
    # Transposed convolutions: issue 13's dilated one and a U-Net 2x upsampling.
    Case(
        "transpose-dilated",
        (2, 16, 64, 64),
        (16, 16, 3, 3),
        {"padding": 2, "dilation": 2},
        transposed=True,
    ),
    Case("transpose-up2", (8, 64, 28, 28), (64, 32, 4, 4), {"stride": 2, "padding": 1}, True),
)

QUICK_SUITE = (
    SUITE[0],
    Case("small-3x3", (2, 16, 16, 16), (16, 16, 3, 3), {"padding": 1}),
    Case("small-1x1", (2, 32, 8, 8), (16, 32, 1, 1)),
    _depthwise("small-depthwise", (2, 8, 12, 12), 3, padding=1),
    Case("small-se", (2, 64, 1, 1), (16, 64, 1, 1)),
    Case("small-transpose", (2, 8, 8, 8), (8, 4, 4, 4), {"stride": 2, "padding": 1}, True),
    Case("small-1d", (2, 8, 64), (8, 8, 5), {"padding": 2}),
    Case("small-3d", (1, 4, 6, 8, 8), (4, 4, 3, 3, 3), {"padding": 1}),
)


def conv_options(case: Case) -> dict[str, Any]:
    options = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
    options.update(case.options)
    return options


def flops(case: Case) -> int:
    """2 * multiply-adds of the direct (or transposed) convolution."""
    import mimo_conv as mc  # noqa: PLC0415 - children that time PyTorch do not import it

    options = conv_options(case)
    groups = options["groups"]
    if case.transposed:
        # Every input element meets every tap of C_out/groups kernels.
        per_input = case.w_shape[1] * math.prod(case.w_shape[2:])
        return 2 * math.prod(case.x_shape) * per_input
    out = mc.output_shape(case.x_shape, case.w_shape, **options)
    return int(2 * math.prod(out) * (case.x_shape[1] // groups) * math.prod(case.w_shape[2:]))


def operands(case: Case, dtype: str) -> tuple[NDArray[Any], NDArray[Any]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(case.x_shape).astype(dtype)
    w = rng.standard_normal(case.w_shape).astype(dtype)
    return x, w


def mimo_calls(case: Case, dtype: str, *, quick: bool) -> dict[str, Callable[[], object]]:
    """``"auto"``, every path that applies (naive only on tiny shapes) and the bare GEMM."""
    import mimo_conv as mc  # noqa: PLC0415

    x, w = operands(case, dtype)
    options = conv_options(case)
    function = mc.conv_transpose if case.transposed else mc.conv
    calls: dict[str, Callable[[], object]] = {}
    for method in ("auto", *PATHS):
        if method == "naive" and (quick or flops(case) > 2e6):
            continue
        if method == "im2col" and (quick or flops(case) > 5e7):
            continue  # the classroom path: whole-image columns, slow and large on big layers
        if method == "depthwise" and case.w_shape[1] > DEPTHWISE_MAX_CHANNELS and not quick:
            continue  # one elementwise pass per channel of a group: not meant for dense layers

        def call(method: str = method) -> object:
            return function(x, w, **options, method=method)

        try:
            call()
        except ValueError:  # the path does not apply (matmul for a 3x3 kernel)
            continue
        calls[method] = call
    if not case.transposed:
        calls["gemm-reference"] = gemm_reference(case, dtype)
    return calls


def gemm_reference(case: Case, dtype: str) -> Callable[[], object]:
    """The same-size GEMM on ready-made contiguous operands (per group, batched)."""
    import mimo_conv as mc  # noqa: PLC0415

    options = conv_options(case)
    groups = options["groups"]
    out = mc.output_shape(case.x_shape, case.w_shape, **options)
    columns = out[0] * math.prod(out[2:])
    terms = (case.x_shape[1] // groups) * math.prod(case.w_shape[2:])
    rng = np.random.default_rng(1)
    a = rng.standard_normal((groups, case.w_shape[0] // groups, terms)).astype(dtype)
    b = rng.standard_normal((groups, terms, columns)).astype(dtype)
    result = np.empty((groups, case.w_shape[0] // groups, columns), dtype)
    return lambda: np.matmul(a, b, out=result)


def torch_calls(case: Case, dtype: str) -> dict[str, Callable[[], object]]:
    try:
        import torch  # noqa: PLC0415 - optional
        from torch.nn import functional  # noqa: PLC0415
    except ImportError:
        return {}
    x, w = operands(case, dtype)
    name = ("conv_transpose" if case.transposed else "conv") + f"{case.spatial_dims}d"
    conv = getattr(functional, name)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    options = conv_options(case)

    def run() -> object:
        with torch.no_grad():
            return conv(tx, tw, **options)

    return {"torch": run}


def child(args: argparse.Namespace) -> int:
    """Time one library's callables for the named cases; print one JSON object."""
    suite = {case.name: case for case in (*SUITE, *QUICK_SUITE)}
    repeats, max_seconds, pause = (3, 0.3, 0.01) if args.quick else (5, 1.0, 0.05)
    results: dict[str, Any] = {}
    if args.child == "torch":
        try:
            import torch  # noqa: PLC0415
        except ImportError:
            print(json.dumps({}))
            return 0
        torch.set_num_threads(args.threads)
    for name in args.cases:
        case = suite[name]
        for dtype in args.dtypes:
            if args.child == "torch":
                calls = torch_calls(case, dtype)
            else:
                calls = mimo_calls(case, dtype, quick=args.quick)
            medians = {
                method: h.time_block(
                    call, repeats=repeats, min_seconds=0.02, max_seconds=max_seconds, pause=pause
                ).median
                for method, call in calls.items()
            }
            entry: dict[str, Any] = {"seconds": medians}
            if args.child == "mimo":
                entry["chosen"] = chosen_path(case, dtype)
                entry["interleaved"] = auto_against_paths(calls, medians, quick=args.quick)
            results[f"{name}/{dtype}"] = entry
    print(json.dumps(results))
    return 0


#: Paths whose block time is within this factor of the fastest path's take part in the
#: interleaved auto-versus-best rounds (the others cannot be the best one).
CONTENDER_FACTOR = 1.6


def auto_against_paths(
    calls: dict[str, Callable[[], object]], medians: dict[str, float], *, quick: bool
) -> dict[str, float]:
    """Median per-call time of auto and of the contending paths, timed round-robin.

    Auto's time over the best path's is a ratio of two times of the same process, measured
    in alternation (:func:`_harness.interleaved_times`): timed in separate blocks the two
    drift apart by up to 1.4x on this machine even when auto runs the very path it is
    compared with.
    """
    paths = {m: t for m, t in medians.items() if m in PATHS}
    if "auto" not in calls or not paths:
        return {}
    fastest = min(paths.values())
    contenders = {"auto": calls["auto"]}
    for method, seconds in sorted(paths.items(), key=lambda kv: kv[1]):
        if seconds <= CONTENDER_FACTOR * fastest:
            contenders[method] = calls[method]
    rounds, max_seconds = (3, 0.3) if quick else (9, 3.0)
    timings = h.interleaved_times(contenders, rounds=rounds, max_seconds=max_seconds)
    return {method: timing.median for method, timing in timings.items()}


def chosen_path(case: Case, dtype: str) -> str:
    import mimo_conv as mc  # noqa: PLC0415

    if case.transposed:
        return "auto"
    x, w = operands(case, dtype)
    return str(mc.explain_method(x, w, **conv_options(case)).chosen)


def child_environment(threads: int) -> dict[str, str]:
    """The environment of a child: fixed thread counts, passive OpenMP waiting.

    ``OPENBLAS_CORETYPE`` passes through: ``--blas-core`` sets it (``native``: removes it).
    """
    environment = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        environment[name] = str(threads)
    environment["OMP_WAIT_POLICY"] = "PASSIVE"
    return environment


def run_child(kind: str, threads: int, extra: list[str]) -> dict[str, Any]:
    """Start ``bench_conv.py --child kind`` and return its JSON result."""
    command = [sys.executable, __file__, "--child", kind, "--threads", str(threads), *extra]
    completed = subprocess.run(
        command, env=child_environment(threads), capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        msg = f"benchmark child {kind!r} failed with exit code {completed.returncode}"
        raise RuntimeError(msg)
    lines = completed.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    return result


@dataclass
class Figure:
    """One time measured in several processes: each process's median."""

    per_process: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.per_process) if self.per_process else math.nan

    @property
    def spread(self) -> float:
        """``(max - min) / median`` over the processes (0 for a single process)."""
        if len(self.per_process) < 2 or not self.median > 0:
            return 0.0
        return (max(self.per_process) - min(self.per_process)) / self.median


@dataclass
class Interleaved:
    """Auto over the best path, one ratio per process (each from one round-robin)."""

    ratios: list[float] = field(default_factory=list)
    best: list[str] = field(default_factory=list)

    def add(self, times: dict[str, float]) -> None:
        paths = {m: t for m, t in times.items() if m != "auto"}
        if "auto" in times and paths:
            best = min(paths, key=lambda m: paths[m])
            self.ratios.append(times["auto"] / paths[best])
            self.best.append(best)

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    @property
    def best_path(self) -> str | None:
        return max(set(self.best), key=self.best.count) if self.best else None


def measure_suite(
    suite: tuple[Case, ...], dtypes: list[str], threads: int, processes: int, *, quick: bool
) -> tuple[dict[str, dict[str, Figure]], dict[str, str], dict[str, Interleaved]]:
    """Figures per ``case/dtype`` and callable, from alternating child processes."""
    figures: dict[str, dict[str, Figure]] = {}
    chosen: dict[str, str] = {}
    interleaved: dict[str, Interleaved] = {}
    extra = ["--cases", *(case.name for case in suite), "--dtypes", *dtypes]
    if quick:
        extra.append("--quick")
    for process in range(processes):
        order = ("mimo", "torch") if process % 2 == 0 else ("torch", "mimo")
        for kind in order:
            result = run_child(kind, threads, extra)
            for key, entry in result.items():
                for method, seconds in entry["seconds"].items():
                    figures.setdefault(key, {}).setdefault(method, Figure()).per_process.append(
                        seconds
                    )
                if "chosen" in entry:
                    chosen[key] = entry["chosen"]
                if "interleaved" in entry:
                    interleaved.setdefault(key, Interleaved()).add(entry["interleaved"])
            print(f"  threads={threads} process {process + 1}/{processes}: {kind}", file=sys.stderr)
    return figures, chosen, interleaved


def suite_rows(
    suite: tuple[Case, ...],
    dtypes: list[str],
    figures: dict[str, dict[str, Figure]],
    chosen: dict[str, str],
    interleaved: dict[str, Interleaved],
) -> list[dict[str, Any]]:
    rows = []
    for case in suite:
        count = flops(case)
        for dtype in dtypes:
            key = f"{case.name}/{dtype}"
            entry = figures.get(key, {})
            rounds = interleaved.get(key, Interleaved())
            best = rounds.best_path
            torch = entry.get("torch")
            gemm = entry.get("gemm-reference")
            for method, figure in entry.items():
                if method in ("torch", "gemm-reference"):
                    continue
                seconds = figure.median
                rows.append(
                    {
                        "case": case.name,
                        "dtype": dtype,
                        "method": method,
                        "chosen": chosen.get(key, "") if method == "auto" else method,
                        "seconds": seconds,
                        "spread": figure.spread,
                        "processes": len(figure.per_process),
                        "gflops": h.gflops(count, seconds),
                        "gemm_fraction": gemm.median / seconds if gemm else None,
                        "torch_seconds": torch.median if torch else None,
                        "torch_spread": torch.spread if torch else None,
                        "vs_torch": seconds / torch.median if torch else None,
                        "best_path": best,
                        "auto_over_best": rounds.ratio if method == "auto" else None,
                        "auto_over_best_per_process": (rounds.ratios if method == "auto" else None),
                    }
                )
    return rows


def _ratio(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}x"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def auto_table(rows: list[dict[str, Any]]) -> str:
    """One line per shape and dtype: auto against PyTorch, the best path and the GEMM."""
    headers = [
        "shape",
        "dtype",
        "auto (path)",
        "spread",
        "torch",
        "spread",
        "auto / torch",
        "best path",
        "auto / best",
        "of GEMM",
    ]
    body = []
    for row in rows:
        if row["method"] != "auto":
            continue
        body.append(
            [
                row["case"],
                row["dtype"],
                f"{h.format_seconds(row['seconds'])} ({row['chosen']})",
                _percent(row["spread"]),
                h.format_seconds(row["torch_seconds"] or math.nan),
                _percent(row["torch_spread"]),
                _ratio(row["vs_torch"]),
                row["best_path"] or "-",
                _ratio(row["auto_over_best"]),
                _percent(row["gemm_fraction"]),
            ]
        )
    return h.markdown_table(headers, body)


def paths_table(rows: list[dict[str, Any]]) -> str:
    """Every path's time per shape (float32), as a compact grid."""
    cases = list(dict.fromkeys(row["case"] for row in rows))
    headers = ["shape (float32)", *PATHS]
    body = []
    for case in cases:
        times = {
            row["method"]: row["seconds"]
            for row in rows
            if row["case"] == case and row["dtype"] == "float32"
        }
        if times:
            body.append([case, *(h.format_seconds(times[m]) if m in times else "-" for m in PATHS)])
    return h.markdown_table(headers, body)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 13's targets, from the auto rows of one thread setting."""
    result: dict[str, Any] = {}
    for dtype in sorted({row["dtype"] for row in rows}):
        autos = [r for r in rows if r["dtype"] == dtype and r["method"] == "auto"]
        ratios = {r["case"]: r["vs_torch"] for r in autos if r["vs_torch"] is not None}
        over_best = {r["case"]: r["auto_over_best"] for r in autos if r["auto_over_best"]}
        large = {
            r["case"]: r["gemm_fraction"]
            for r in autos
            if r["case"] in LARGE and r["gemm_fraction"]
        }
        book = next((r for r in autos if r["case"] == "book"), None)
        result[dtype] = {
            "geomean_vs_torch": h.geometric_mean(list(ratios.values())) if ratios else None,
            "worst_vs_torch": max(ratios.items(), key=lambda kv: kv[1]) if ratios else None,
            "shapes_over_2x": sorted(k for k, v in ratios.items() if v > 2),
            "worst_auto_over_best": (
                max(over_best.items(), key=lambda kv: kv[1]) if over_best else None
            ),
            "auto_over_best_above_1_1": sorted(k for k, v in over_best.items() if v > 1.1),
            "gemm_fraction_large": large,
            "book_vs_torch": book["vs_torch"] if book else None,
        }
    return result


def summary_markdown(result: dict[str, Any]) -> str:
    lines = []
    for dtype, values in result.items():
        parts = [f"**{dtype}**: auto / PyTorch geometric mean {_ratio(values['geomean_vs_torch'])}"]
        if values["worst_vs_torch"]:
            name, ratio = values["worst_vs_torch"]
            parts.append(f"worst {name} {ratio:.2f}x")
        parts.append(f"shapes over 2x: {', '.join(values['shapes_over_2x']) or 'none'}")
        if values["book_vs_torch"] is not None:
            parts.append(f"book example {values['book_vs_torch']:.2f}x")
        if values["worst_auto_over_best"]:
            name, ratio = values["worst_auto_over_best"]
            above = ", ".join(values["auto_over_best_above_1_1"]) or "none"
            parts.append(f"auto / best path worst {ratio:.2f}x ({name}; above 1.1x: {above})")
        if values["gemm_fraction_large"]:
            fractions = ", ".join(
                f"{k} {100 * v:.0f}%" for k, v in values["gemm_fraction_large"].items()
            )
            parts.append(f"large layers at {fractions} of the same-size GEMM")
        lines.append("- " + "; ".join(parts))
    return "\n".join(lines)


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a smoke test")
    parser.add_argument("--output", type=Path, default=None, help="write <output>.md/.json")
    parser.add_argument("--only", nargs="*", default=None, help="run only these shape names")
    parser.add_argument("--processes", type=int, default=None, help="processes per library")
    parser.add_argument(
        "--threads", type=int, nargs="*", default=None, help="thread settings (default 1, all)"
    )
    parser.add_argument("--models", action="store_true", help="also time whole networks")
    parser.add_argument(
        "--torchvision", action="store_true", help="with --models: torchvision's networks"
    )
    parser.add_argument("--no-suite", action="store_true", help="skip the layer suite")
    parser.add_argument(
        "--blas-core",
        default=None,
        help="OPENBLAS_CORETYPE for every child (SkylakeX, Haswell, ...), or 'native': "
        "remove it (and OPENBLAS_L2_SIZE) so that OpenBLAS picks its kernels itself",
    )
    parser.add_argument("--child", choices=["mimo", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--cases", nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--dtypes", nargs="*", default=["float32"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.threads is None or len(args.threads) != 1:
            parser.error("--child needs one --threads value")
        args.threads = args.threads[0]
        return child(args)

    if args.blas_core == "native":  # OpenBLAS's own choice, whatever the environment says
        os.environ.pop("OPENBLAS_CORETYPE", None)
        os.environ.pop("OPENBLAS_L2_SIZE", None)
    elif args.blas_core:
        os.environ["OPENBLAS_CORETYPE"] = args.blas_core  # inherited by every child
    cores = os.cpu_count() or 1
    settings = args.threads or sorted({1, cores})
    processes = args.processes or (1 if args.quick else 3)
    suite: tuple[Case, ...] = QUICK_SUITE if args.quick else SUITE
    if args.only:
        suite = tuple(case for case in (*SUITE, *QUICK_SUITE) if case.name in args.only)
    dtypes = ["float32", "float64"]
    machine = h.Machine(threads=max(settings))
    started = time.perf_counter()
    load_before = load_average()

    sections: list[str] = []
    payload: dict[str, Any] = {"machine": machine, "quick": args.quick, "tables": {}}
    if not args.no_suite:
        for threads in settings:
            figures, chosen, interleaved = measure_suite(
                suite, dtypes, threads, processes, quick=args.quick
            )
            rows = suite_rows(suite, dtypes, figures, chosen, interleaved)
            result = summary(rows)
            payload["tables"][str(threads)] = {"rows": rows, "summary": result}
            sections.append(
                f"## {threads} thread{'s' if threads > 1 else ''}\n\n"
                + summary_markdown(result)
                + "\n\n"
                + auto_table(rows)
                + "\n\nEvery path (float32, median over the processes):\n\n"
                + paths_table(rows)
            )
    if args.models and machine.torch is None:
        sections.append("## Whole networks\n\nPyTorch is not installed: no model table.")
    elif args.models:
        import bench_models  # noqa: PLC0415 - needs torch; only for --models

        model_rows = bench_models.measure(
            settings, processes, quick=args.quick, torchvision=args.torchvision
        )
        payload["models"] = model_rows
        sections.append(bench_models.markdown(model_rows))
    markdown = "\n\n".join(
        [
            "# mimo_conv forward benchmark",
            "Machine:\n\n"
            + machine.as_markdown()
            + f"\n- load average before the run: {load_before}; after: {load_average()}",
            "Command: `python benchmarks/bench_conv.py"
            + "".join(f" {arg}" for arg in (argv if argv is not None else sys.argv[1:]))
            + "`",
            (
                f"Each figure: the median over {processes} process(es) per library of each "
                "process's median; spread = (max - min) / median over the processes. Ratios are "
                "ratios of those medians. \"auto / best\" is auto's time over the fastest path's, "
                "both timed round-robin in the same process (the median over the processes); "
                '"of GEMM" a bare GEMM of the same size over auto\'s time.'
            ),
            *sections,
            f"Total benchmark time: {time.perf_counter() - started:.0f} s.",
        ]
    )
    print(markdown)
    output = args.output
    if output is None and not args.quick and not args.only:
        output = RESULTS / "latest"
    if output is not None:
        h.write_results(output, payload, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
