"""Time the backward pass: mimo_conv.grad.conv_input / conv_weight and mc.conv_backward.

For a few typical layer shapes this prints (and with ``--output`` writes as Markdown and
JSON, through the shared harness) the median time of each gradient, the time of PyTorch's
backward kernel for the same layer (``torch.ops.aten.convolution_backward``, what autograd
calls; when PyTorch is installed), and the time of the two bare matrix products a GEMM-based
backward pass cannot beat.

Usage::

    python benchmarks/bench_backward.py            # the full table (about a minute)
    python benchmarks/bench_backward.py --quick    # small shapes, a few seconds
    python benchmarks/bench_backward.py --output benchmarks/results/backward
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_backward.py --threads 1   # one core each

On a machine shared with other work, spinning BLAS/OpenMP threads make multi-threaded
timings very noisy; one thread per library gives comparable numbers.

Never assert on these numbers: they are for tables, not tests.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import mimo_conv as mc
from _harness import (
    Machine,
    format_seconds,
    gemm_seconds,
    geometric_mean,
    gflops,
    markdown_table,
    set_torch_threads,
    time_block,
    write_results,
)
from mimo_conv import grad


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


def torch_backward(layer: Layer, x: Any, w: Any, g: Any) -> Any:
    """PyTorch's backward kernel for the layer, or None without PyTorch."""
    # PyTorch's OpenMP workers otherwise spin after each call and slow the next NumPy block
    # (issue 13 measured plain PyTorch 16x slower beside spinning workers); bench_conv.py
    # goes further and times each library in its own processes.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch  # noqa: PLC0415 - optional
    except ImportError:
        return None
    xt, wt, gt = (torch.from_numpy(array) for array in (x, w, g))
    pair = [layer.stride] * 2, [layer.padding] * 2

    def run() -> object:
        return torch.ops.aten.convolution_backward(
            gt,
            xt,
            wt,
            [layer.c_out],
            pair[0],
            pair[1],
            [1, 1],
            False,
            [0, 0],
            layer.groups,
            [True, True, True],
        )

    return run


def measure(
    layer: Layer, dtype: np.dtype[Any], repeats: int, max_seconds: float, pause: float
) -> dict[str, Any]:
    """Time every gradient of one layer; return one row of results."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(layer.x_shape).astype(dtype)
    w = rng.standard_normal(layer.weight_shape).astype(dtype)
    g = rng.standard_normal((layer.batch, layer.c_out, layer.out_size, layer.out_size))
    g = g.astype(dtype)
    options = layer.options()
    timing: dict[str, float] = {}
    calls = {
        "conv_input": lambda: grad.conv_input(x.shape, w, g, **options),
        "conv_weight": lambda: grad.conv_weight(x, w.shape, g, **options),
        "conv_backward": lambda: mc.conv_backward(g, x, w, **options),
    }
    torch_call = torch_backward(layer, x, w, g)
    if torch_call is not None:
        calls["torch"] = torch_call
    for name, call in calls.items():
        timing[name] = time_block(
            call, repeats=repeats, max_seconds=max_seconds, pause=pause
        ).median
    gemm = math.nan
    if layer.groups == 1:
        columns = layer.batch * layer.out_size**2
        rows = layer.c_in * layer.kernel**2
        gemm = gemm_seconds(rows, layer.c_out, columns, dtype, repeats=repeats) + gemm_seconds(
            layer.c_out, columns, rows, dtype, repeats=repeats
        )
    flops = 2 * 2 * layer.multiply_adds  # two products, two flops per multiply-add
    return {
        "layer": asdict(layer),
        "dtype": str(dtype),
        "seconds": timing,
        "gemm_seconds": gemm,
        "gflops_backward": gflops(flops, timing["conv_backward"]),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of all rows."""
    headers = [
        "layer",
        "x",
        "weight",
        "dtype",
        "conv_input",
        "conv_weight",
        "conv_backward",
        "torch backward",
        "ours / torch",
        "GFLOP/s",
        "2 GEMMs",
        "ours / GEMMs",
    ]
    body = []
    for row in rows:
        layer = Layer(**row["layer"])
        seconds = row["seconds"]
        torch_time = seconds.get("torch", math.nan)
        ours = seconds["conv_backward"]
        body.append(
            [
                layer.name,
                "x".join(map(str, layer.x_shape)),
                "x".join(map(str, layer.weight_shape)),
                row["dtype"],
                format_seconds(seconds["conv_input"]),
                format_seconds(seconds["conv_weight"]),
                format_seconds(ours),
                format_seconds(torch_time),
                round(ours / torch_time, 2) if math.isfinite(torch_time) else "-",
                round(row["gflops_backward"], 2),
                format_seconds(row["gemm_seconds"]),
                round(ours / row["gemm_seconds"], 2) if math.isfinite(row["gemm_seconds"]) else "-",
            ]
        )
    return markdown_table(headers, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a few seconds")
    parser.add_argument("--output", type=Path, help="write <OUTPUT>.md and <OUTPUT>.json")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument(
        "--threads",
        type=int,
        help="PyTorch threads (default: all cores); set OPENBLAS_NUM_THREADS to match for NumPy",
    )
    args = parser.parse_args(argv)
    machine = Machine() if args.threads is None else Machine(threads=args.threads)
    set_torch_threads(machine.threads)
    layers = QUICK if args.quick else FULL
    # --quick: fewer calls and shorter pauses between blocks (noisier numbers).
    repeats, max_seconds, pause = (3, 0.5, 0.02) if args.quick else (7, 5.0, 0.15)
    dtype = np.dtype(args.dtype)
    rows = [measure(layer, dtype, repeats, max_seconds, pause) for layer in layers]
    ratios = [
        row["seconds"]["conv_backward"] / row["seconds"]["torch"]
        for row in rows
        if "torch" in row["seconds"]
    ]
    summary = (
        f"Geometric mean of conv_backward / torch backward: {geometric_mean(ratios):.2f}"
        if ratios
        else "PyTorch not installed: no comparison."
    )
    markdown = "\n\n".join(
        [
            "# Backward pass (mimo_conv.conv_backward, grad.conv_input, grad.conv_weight)",
            machine.as_markdown(),
            table(rows),
            summary,
        ]
    )
    print(markdown)
    if args.output is not None:
        payload = {"machine": machine, "quick": args.quick, "rows": rows, "summary": summary}
        for path in write_results(args.output, payload, markdown):
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
