"""Write the README's performance tables from the committed benchmark results.

    python benchmarks/readme_tables.py           # rewrite the block in README.md
    python benchmarks/readme_tables.py --check   # fail if README.md's block is stale

The README shows a summary of ``benchmarks/results/latest.json`` (``--blas-core native``:
the kernels OpenBLAS picks by itself) and, when present, ``latest-haswell.json``
(``--blas-core Haswell``: the AVX2 kernels this machine's environment asks for) and
``torchvision.json`` (``--models --torchvision --no-suite``): the machine, per layer auto's
time over PyTorch's with the larger of the two spreads, auto's time over the best path's,
and the whole networks. The block sits between ``<!-- benchmark-tables:start -->`` and
``<!-- benchmark-tables:end -->``; ``tests/test_readme.py`` checks it matches the files, so
the README never shows figures that no committed run measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import _harness as h

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- benchmark-tables:start -->", "<!-- benchmark-tables:end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    if not path.exists():
        return None
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def _machine(run: dict[str, Any]) -> str:
    m = run["machine"]
    cpu = m.get("cpu_family") or m.get("cpu", "unknown CPU")
    avx = ", AVX-512" if m.get("avx512") else ""
    return (
        f"{cpu}{avx}, {m['logical_cores']} logical cores, {m['system']}; Python {m['python']}, "
        f"NumPy {m['numpy']} ({m['blas'].get('name', 'BLAS')} {m['blas'].get('version', '')}, "
        f"{m.get('blas_core', 'unknown')} kernels); PyTorch {m.get('torch')}"
    )


def _kernels(run: dict[str, Any]) -> str:
    return str(run["machine"].get("blas_core", "unknown"))


def _layers(runs: list[tuple[str, dict[str, Any]]]) -> str:
    """One row per suite shape: per run, float32 and float64 auto / PyTorch (spread)."""
    header = ["shape"]
    for label, _ in runs:
        header += [f"{label} float32", f"{label} float64"]
    header += ["auto / best (f32, f64)"]
    first = runs[0][1]["tables"]["1"]["rows"]
    cases = list(dict.fromkeys(r["case"] for r in first if r["method"] == "auto"))
    lines = ["| " + " | ".join(header) + " |", "|:--" + "|--:" * (len(header) - 1) + "|"]
    for case in cases:
        cells = [case]
        best = []
        for index, (_, run) in enumerate(runs):
            rows = {
                r["dtype"]: r
                for r in run["tables"]["1"]["rows"]
                if r["case"] == case and r["method"] == "auto"
            }
            for dtype in ("float32", "float64"):
                row = rows.get(dtype)
                if row is None or row["vs_torch"] is None:
                    cells.append("-")
                    continue
                spread = max(row["spread"], row["torch_spread"])
                cells.append(f"{row['vs_torch']:.2f}x ({100 * spread:.0f}%)")
                if index == 0 and row.get("auto_over_best"):
                    best.append(f"{row['auto_over_best']:.2f}")
        cells.append(", ".join(best) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _summary(label: str, run: dict[str, Any]) -> str:
    parts = []
    for threads, table in sorted(run["tables"].items()):
        for dtype in ("float32", "float64"):
            ratios = [
                r["vs_torch"]
                for r in table["rows"]
                if r["method"] == "auto" and r["dtype"] == dtype and r["vs_torch"]
            ]
            if ratios:
                parts.append(f"{dtype} {h.geometric_mean(ratios):.2f}x at {threads} thread(s)")
    return f"- {label}: geometric mean of auto / PyTorch over the suite, " + ", ".join(parts)


def _networks(runs: list[tuple[str, list[dict[str, Any]]]]) -> str:
    lines = [
        "| kernels | network | threads | mimo_conv / PyTorch | spread (mimo, torch) |",
        "|:--|:--|--:|--:|--:|",
    ]
    lines.extend(
        f"| {label} | {row['model']} | {row['threads']} | {row['vs_torch']:.2f}x | "
        f"{100 * row['spread']:.0f}%, {100 * row['torch_spread']:.0f}% |"
        for label, rows in runs
        for row in rows
    )
    return "\n".join(lines)


def block() -> str:
    """The README's block, from the results files."""
    default = _load("latest.json")
    if default is None:
        return "No benchmark results are committed."
    haswell = _load("latest-haswell.json")
    vision = _load("torchvision.json")
    runs = [(_kernels(default), default)] + ([(_kernels(haswell), haswell)] if haswell else [])
    parts = [
        "Machine: " + _machine(default) + ". Ratios are mimo_conv's time over PyTorch's "
        "(below 1: faster), each library in its own processes, medians over the processes; "
        "the spread in brackets is the larger of the two libraries' (max - min) / median "
        "across processes. Read a single ratio as +-20%.",
        "\n".join(_summary(label, run) for label, run in runs),
        (
            "Per layer, 1 thread, by the OpenBLAS kernels NumPy ran (its own choice here is "
            "SkylakeX, AVX-512; this machine's environment asks for Haswell, AVX2: see "
            'docs/performance.md, "The BLAS kernels"):'
        ),
        _layers(runs),
    ]
    networks = [
        (label, [r for r in run.get("models", []) if r["threads"] == 1])
        for label, run in runs
        if run.get("models")
    ]
    if vision:
        networks += [(f"{_kernels(vision)}, torchvision", vision["models"])]
    if networks:
        parts += ["Whole networks (float32, every convolution by mimo_conv):", _networks(networks)]
    return "\n\n".join(parts)


def rewrite(text: str) -> str:
    """``text`` with its block replaced by :func:`block`."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        msg = f"README.md has no {START} ... {END} block"
        raise SystemExit(msg)
    return f"{head}{START}\n{block()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new = rewrite(text)
    if args.check:
        if new != text:
            print("README.md's benchmark tables are stale: run benchmarks/readme_tables.py")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
