"""Time the backward pass against PyTorch's, each library in its own processes.

mimo_conv.grad.conv_input / conv_weight and mc.conv_backward for a few typical layer
shapes, PyTorch's backward kernel for the same layer (``torch.ops.aten.convolution_backward``,
what autograd calls; when PyTorch is installed), and the two bare matrix products a
GEMM-based backward pass cannot beat.

Usage::

    python benchmarks/bench_backward.py            # full tables, 1 thread and all threads
    python benchmarks/bench_backward.py --quick    # small shapes, one process: a smoke test
    python benchmarks/bench_backward.py --threads 1 --processes 5
    python benchmarks/bench_backward.py --output benchmarks/results/backward

How a figure is measured: as ``bench_conv.py`` measures the forward pass. Every library
runs in its own child processes (``--child``), started with the thread count fixed in the
environment and ``OMP_WAIT_POLICY=PASSIVE``; children of the two libraries alternate, and
``--processes`` of each run per thread setting. A figure is the median over the processes
of each process's median, its spread ``(max - min) / median`` over the processes.

Why: this script once timed both libraries in one process, PyTorch with all the cores,
after importing torch before ``OMP_WAIT_POLICY`` was set, one block of three calls per
figure. On the loaded 2-core machine PyTorch's OpenMP team waits at every barrier for a
worker that the other jobs have descheduled: a 0.4 ms backward took 140-364 ms in one
block and 0.4 ms in the next, so ``ours / torch`` read 0.00 on two of four layers and the
geometric mean 0.01-0.3 from run to run. Separate processes per library, a 1-thread table
(the one stable enough to read on a shared machine), several processes and the spread
beside every figure make such a figure visible instead of silently averaged in.

Never assert on these numbers: they are for tables, not tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h
from bench_conv import Figure, child_environment, load_average


@dataclass(frozen=True)
class Layer:
    """One 2-d convolution layer: ``x (batch, c_in, size, size)``, ``k x k`` kernels."""

    name: str
    batch: int
    c_in: int
    c_out: int
    size: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, self.c_in, self.size, self.size)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.c_out, self.c_in // self.groups, self.kernel, self.kernel)

    @property
    def out_size(self) -> int:
        return (self.size + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def multiply_adds(self) -> int:
        """Multiply-adds of one forward pass; each of the two gradients costs as many."""
        positions = self.batch * self.out_size**2
        return positions * self.c_out * (self.c_in // self.groups) * self.kernel**2

    def options(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding, "groups": self.groups}


FULL = [
    Layer("ResNet 3x3", 8, 64, 64, 28, 3, padding=1),
    Layer("ResNet 3x3 stride 2", 8, 64, 128, 28, 3, stride=2, padding=1),
    Layer("bottleneck 1x1", 8, 256, 64, 14, 1),
    Layer("stem 7x7 stride 2", 4, 3, 64, 64, 7, stride=2, padding=3),
    Layer("depthwise 3x3", 8, 128, 128, 28, 3, padding=1, groups=128),
]
QUICK = [
    Layer("3x3", 2, 16, 16, 14, 3, padding=1),
    Layer("3x3 stride 2", 2, 16, 32, 14, 3, stride=2, padding=1),
    Layer("1x1", 2, 64, 16, 7, 1),
    Layer("depthwise 3x3", 2, 32, 32, 14, 3, padding=1, groups=32),
]
LAYERS = {layer.name: layer for layer in (*FULL, *QUICK)}


def operands(layer: Layer, dtype: str) -> tuple[np.ndarray[Any, Any], ...]:
    """``x``, ``w`` and ``grad_output`` of the layer, the same in every process."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(layer.x_shape).astype(dtype)
    w = rng.standard_normal(layer.weight_shape).astype(dtype)
    g = rng.standard_normal((layer.batch, layer.c_out, layer.out_size, layer.out_size))
    return x, w, g.astype(dtype)


def mimo_calls(layer: Layer, dtype: str) -> dict[str, Callable[[], object]]:
    """The three gradients, and (dense layers) the two bare GEMMs of a backward pass."""
    import mimo_conv as mc  # noqa: PLC0415 - only in mimo_conv's children
    from mimo_conv import grad  # noqa: PLC0415

    x, w, g = operands(layer, dtype)
    options = layer.options()
    calls: dict[str, Callable[[], object]] = {
        "conv_input": lambda: grad.conv_input(x.shape, w, g, **options),
        "conv_weight": lambda: grad.conv_weight(x, w.shape, g, **options),
        "conv_backward": lambda: mc.conv_backward(g, x, w, **options),
    }
    if layer.groups == 1:
        columns = layer.batch * layer.out_size**2
        rows = layer.c_in * layer.kernel**2
        rng = np.random.default_rng(1)
        a = rng.standard_normal((rows, layer.c_out)).astype(dtype)
        b = rng.standard_normal((layer.c_out, columns)).astype(dtype)
        c = rng.standard_normal((columns, rows)).astype(dtype)
        # dL/dx's columns (rows x C_out @ C_out x L) and dL/dw (C_out x L @ L x rows).
        calls["2 GEMMs"] = lambda: (a @ b, b @ c)
    return calls


def torch_calls(layer: Layer, dtype: str) -> dict[str, Callable[[], object]]:
    """PyTorch's backward kernel for the layer (nothing without PyTorch)."""
    try:
        import torch  # noqa: PLC0415 - optional, only in PyTorch's children
    except ImportError:
        return {}
    xt, wt, gt = (torch.from_numpy(array) for array in operands(layer, dtype))
    pair = [layer.stride] * 2, [layer.padding] * 2

    def run() -> object:
        return torch.ops.aten.convolution_backward(
            gt, xt, wt, [layer.c_out], pair[0], pair[1], [1, 1], False, [0, 0], layer.groups,
            [True, True, True],
        )  # fmt: skip

    return {"torch": run}


def child(args: argparse.Namespace) -> int:
    """Time one library's callables for the named layers; print one JSON object."""
    repeats, max_seconds, pause = (3, 0.3, 0.01) if args.quick else (5, 2.0, 0.05)
    if args.child == "torch":
        try:
            import torch  # noqa: PLC0415
        except ImportError:
            print(json.dumps({}))
            return 0
        torch.set_num_threads(args.threads)
    results: dict[str, dict[str, float]] = {}
    for name in args.layers:
        for dtype in args.dtypes:
            layer = LAYERS[name]
            calls = torch_calls(layer, dtype) if args.child == "torch" else mimo_calls(layer, dtype)
            results[f"{name}/{dtype}"] = {
                label: h.time_block(
                    call, repeats=repeats, min_seconds=0.02, max_seconds=max_seconds, pause=pause
                ).median
                for label, call in calls.items()
            }
    print(json.dumps(results))
    return 0


def run_child(kind: str, threads: int, extra: list[str]) -> dict[str, dict[str, float]]:
    """Start ``bench_backward.py --child kind`` and return its JSON result."""
    command = [sys.executable, __file__, "--child", kind, "--threads", str(threads), *extra]
    completed = subprocess.run(
        command, env=child_environment(threads), capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        msg = f"benchmark child {kind!r} failed with exit code {completed.returncode}"
        raise RuntimeError(msg)
    lines = completed.stdout.strip().splitlines()
    result: dict[str, dict[str, float]] = json.loads(lines[-1]) if lines else {}
    return result


def measure(
    layers: list[Layer], dtypes: list[str], threads: int, processes: int, *, quick: bool
) -> dict[str, dict[str, Figure]]:
    """Figures per ``layer/dtype`` and callable, from alternating child processes."""
    figures: dict[str, dict[str, Figure]] = {}
    extra = ["--layers", *(layer.name for layer in layers), "--dtypes", *dtypes]
    if quick:
        extra.append("--quick")
    for process in range(processes):
        for kind in ("mimo", "torch") if process % 2 == 0 else ("torch", "mimo"):
            for key, seconds in run_child(kind, threads, extra).items():
                for label, value in seconds.items():
                    figures.setdefault(key, {}).setdefault(label, Figure()).per_process.append(
                        value
                    )
            print(f"  threads={threads} process {process + 1}/{processes}: {kind}", file=sys.stderr)
    return figures


def _time(figure: Figure | None) -> str:
    """A figure and its spread over the processes, e.g. ``1.2 ms ±8%``."""
    if figure is None or not math.isfinite(figure.median):
        return "-"
    spread = f" ±{100 * figure.spread / 2:.0f}%" if len(figure.per_process) > 1 else ""
    return h.format_seconds(figure.median) + spread


def _ratio(value: float) -> str:
    """Two significant digits, so that a ratio far below 1 does not print as 0.0."""
    return f"{value:.2g}x" if math.isfinite(value) else "-"


def rows_of(
    layers: list[Layer], dtypes: list[str], figures: dict[str, dict[str, Figure]]
) -> list[dict[str, Any]]:
    """One row per layer and dtype: every figure, its ratios and the backward GFLOP/s."""
    rows = []
    for layer in layers:
        for dtype in dtypes:
            entry = figures.get(f"{layer.name}/{dtype}", {})
            ours, torch, gemms = (entry.get(k) for k in ("conv_backward", "torch", "2 GEMMs"))
            seconds = ours.median if ours else math.nan
            rows.append(
                {
                    "layer": asdict(layer),
                    "dtype": dtype,
                    "seconds": {label: figure.median for label, figure in entry.items()},
                    "spread": {label: figure.spread for label, figure in entry.items()},
                    "processes": max((len(f.per_process) for f in entry.values()), default=0),
                    "vs_torch": seconds / torch.median if torch else math.nan,
                    "vs_gemms": seconds / gemms.median if gemms else math.nan,
                    "gflops_backward": h.gflops(4 * layer.multiply_adds, seconds),
                }
            )
    return rows


def table(rows: list[dict[str, Any]], figures: dict[str, dict[str, Figure]]) -> str:
    """The Markdown table of one thread setting."""
    headers = [
        "layer", "x", "weight", "dtype", "conv_input", "conv_weight", "conv_backward",
        "torch backward", "ours / torch", "GFLOP/s", "2 GEMMs", "ours / GEMMs",
    ]  # fmt: skip
    body = []
    for row in rows:
        layer = Layer(**row["layer"])
        entry = figures.get(f"{layer.name}/{row['dtype']}", {})
        body.append(
            [
                layer.name,
                "x".join(map(str, layer.x_shape)),
                "x".join(map(str, layer.weight_shape)),
                row["dtype"],
                *(_time(entry.get(label)) for label in ("conv_input", "conv_weight")),
                *(_time(entry.get(label)) for label in ("conv_backward", "torch")),
                _ratio(row["vs_torch"]),
                f"{row['gflops_backward']:.2f}",
                _time(entry.get("2 GEMMs")),
                _ratio(row["vs_gemms"]),
            ]
        )
    return h.markdown_table(headers, body)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometric mean of ``conv_backward / torch`` per dtype, and the largest spread in it."""
    result: dict[str, Any] = {}
    for dtype in dict.fromkeys(row["dtype"] for row in rows):
        mine = [row for row in rows if row["dtype"] == dtype and math.isfinite(row["vs_torch"])]
        spreads = [
            max(row["spread"].get("conv_backward", 0.0), row["spread"].get("torch", 0.0))
            for row in mine
        ]
        result[dtype] = {
            "geomean_vs_torch": h.geometric_mean([row["vs_torch"] for row in mine]),
            "max_spread": max(spreads, default=0.0),
            "layers": len(mine),
        }
    return result


def summary_markdown(result: dict[str, Any]) -> str:
    if not any(entry["layers"] for entry in result.values()):
        return "PyTorch not installed: no comparison."
    return "\n".join(
        f"- {dtype}: geometric mean of conv_backward / torch backward "
        f"{_ratio(entry['geomean_vs_torch'])} over {entry['layers']} layers (largest spread "
        f"of a figure in it: {100 * entry['max_spread']:.0f}%)"
        for dtype, entry in result.items()
        if entry["layers"]
    )


def slower_with_threads(
    figures: dict[str, dict[str, Figure]], single: dict[str, dict[str, Figure]]
) -> str:
    """A warning line naming the figures more than twice their 1-thread time (load)."""
    slower = [
        f"{label} on {key}"
        for key, entry in figures.items()
        for label, figure in entry.items()
        if label in single.get(key, {}) and figure.median > 2 * single[key][label].median
    ]
    if not slower:
        return ""
    return (
        "\n- more than twice slower than with 1 thread (the other jobs on the machine "
        "deschedule a worker that the rest then wait for; read the 1-thread table): "
        + ", ".join(slower)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, one process")
    parser.add_argument("--output", type=Path, help="write <OUTPUT>.md and <OUTPUT>.json")
    parser.add_argument(
        "--dtypes", nargs="*", choices=["float32", "float64"], default=None,
        help="default: float32 and float64 (--quick: float32)",
    )  # fmt: skip
    parser.add_argument("--processes", type=int, default=None, help="processes per library")
    parser.add_argument(
        "--threads", type=int, nargs="*", default=None, help="thread settings (default 1, all)"
    )
    parser.add_argument("--child", choices=["mimo", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--layers", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dtypes = args.dtypes or (["float32"] if args.quick else ["float32", "float64"])
    if args.child:
        if args.threads is None or len(args.threads) != 1:
            parser.error("--child needs one --threads value")
        args.threads, args.dtypes = args.threads[0], dtypes
        return child(args)

    cores = os.cpu_count() or 1
    # --quick, a smoke test: one thread only unless asked (two children, not four).
    settings = args.threads or ([1] if args.quick else sorted({1, cores}))
    processes = args.processes or (1 if args.quick else 3)
    layers = QUICK if args.quick else FULL
    machine = h.Machine(threads=max(settings))
    started, load_before = time.perf_counter(), load_average()
    sections, tables = [], {}
    single: dict[str, dict[str, Figure]] | None = None
    for threads in settings:
        figures = measure(layers, dtypes, threads, processes, quick=args.quick)
        single = figures if threads == 1 else single
        rows = rows_of(layers, dtypes, figures)
        result = summary(rows)
        tables[str(threads)] = {"rows": rows, "summary": result}
        sections.append(
            f"## {threads} thread{'s' if threads > 1 else ''}\n\n"
            + summary_markdown(result)
            + (slower_with_threads(figures, single) if threads > 1 and single else "")
            + "\n\n"
            + table(rows, figures)
        )
    markdown = "\n\n".join(
        [
            "# Backward pass (mimo_conv.conv_backward, grad.conv_input, grad.conv_weight)",
            "Machine:\n\n"
            + machine.as_markdown()
            + f"\n- load average before the run: {load_before}; after: {load_average()}",
            (
                f"Each figure: the median over {processes} process(es) per library of each "
                "process's median, ± half its spread (max - min over the processes, over the "
                "median). Ratios are ratios of those medians, measured in one run."
            ),
            *sections,
            f"Total benchmark time: {time.perf_counter() - started:.0f} s.",
        ]
    )
    print(markdown)
    if args.output is not None:
        payload = {"machine": machine, "quick": args.quick, "tables": tables}
        for path in h.write_results(args.output, payload, markdown):
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
