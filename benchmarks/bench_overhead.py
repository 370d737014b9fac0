"""Per-call overhead: tiny convolutions, where validation and planning cost more than arithmetic.

    python benchmarks/bench_overhead.py            # the table, 1 thread
    python benchmarks/bench_overhead.py --quick    # smoke test: a few rounds, a few seconds
    python benchmarks/bench_overhead.py --stages   # also the time of each stage of one call

The shapes are issue 13's tiny calls: the textbook's example (X of shape (2, 3, 3), K of shape
(1, 2, 2, 2), unbatched and as a batch of one, float32 and float64) and the squeeze-and-excite
1 x 1 convolutions on 1 x 1 maps of ``bench_conv.py`` (``se-reduce``, ``se-expand``).

How a figure is measured: everything runs in this one process at one thread (BLAS, PyTorch
and mimo_conv's workers). Calls this short are not disturbed by other libraries' idle
threads at one thread, and timing them in one process lets the alternatives interleave: each
round times a block of calls of each alternative, in an order that alternates from round
to round (A, B, then B, A), and a figure is the median over the rounds. Ratios are ratios of
these medians, measured in one run. ``mimo`` and ``torch`` interleave with each other; ``mimo
cold``, whose long blocks would disturb their caches, interleaves with ``torch`` in a second
pass (its ratio is to that pass's torch). The alternatives:

* ``mimo``: ``mc.conv2d`` called again with arrays of the same signature (the short path of
  ``mimo_conv._ops.call_cache``: the usual case in a loop);
* ``mimo cold``: the same call with the call cache cleared before each call (validation and
  planning run, from their own caches), when the installed mimo_conv has a call cache;
* ``torch``: ``torch.nn.functional.conv2d`` on tensors sharing the arrays' memory.

``--stages`` times, the same way, each stage of one call through the full path and through
the short path. Never assert on these numbers in tests.
"""

from __future__ import annotations

import os

# One thread everywhere, fixed before NumPy and PyTorch start their thread pools.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import argparse  # noqa: E402 - after the thread settings, on purpose
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402
import mimo_conv as mc  # noqa: E402

#: The textbook's X and K (section 6.4).
BOOK_X = np.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
BOOK_K = np.array([[[[0, 1], [2, 3]], [[1, 2], [3, 4]]]])


@dataclass(frozen=True)
class Case:
    """One tiny call: the input and the kernels, and how many calls one timed block makes."""

    name: str
    x: np.ndarray
    weight: np.ndarray
    calls_per_block: int


#: The columns of the table: medians, their ratio, the ratio of the fastest blocks, and the
#: cold call's median and ratio (second pass).
HEADERS = ("case", "mimo us", "torch us", "mimo/torch", "best/best", "mimo cold us", "cold/torch")


def cases() -> list[Case]:
    """The book example (4 ways) and the two squeeze-and-excite convolutions."""
    rng = np.random.default_rng(0)
    found = []
    for dtype in (np.float32, np.float64):
        bits = np.dtype(dtype).itemsize * 8
        x, k = BOOK_X.astype(dtype), BOOK_K.astype(dtype)
        found.append(Case(f"book f{bits}", x, k, 200))
        found.append(Case(f"book f{bits} batched", x[np.newaxis].copy(), k, 200))
    for name, x_shape, w_shape in (
        ("se-reduce", (8, 576, 1, 1), (144, 576, 1, 1)),
        ("se-expand", (8, 144, 1, 1), (576, 144, 1, 1)),
    ):
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        found.append(Case(f"{name} f32", x, w, 20))
    return found


def block_seconds(function: Callable[[], object], calls: int) -> float:
    """Seconds per call of ``function()`` over one block of ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def interleaved(
    alternatives: dict[str, Callable[[], object]], calls: int, rounds: int
) -> dict[str, float]:
    """Median seconds per call of each alternative, blocks interleaved round by round.

    The fastest block of each is kept too, under ``"<name> best"``: on a loaded machine a
    block that was never preempted is the least disturbed figure.
    """
    for function in alternatives.values():  # warm-up: caches, lazy imports, page faults
        block_seconds(function, 3)
    names = list(alternatives)
    times: dict[str, list[float]] = {name: [] for name in names}
    for number in range(rounds):
        order = names if number % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(block_seconds(alternatives[name], calls))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return medians | {f"{name} best": min(values) for name, values in times.items()}


def _call_cache() -> Any:
    """mimo_conv's call cache module, or None for a version without one."""
    try:
        from mimo_conv._ops import call_cache  # noqa: PLC0415 - optional: older versions
    except ImportError:
        return None
    return call_cache


def alternatives_of(case: Case, torch: Any) -> dict[str, Callable[[], object]]:
    """The callables timed for one case (see the module docstring)."""
    x, w = case.x, case.weight
    found: dict[str, Callable[[], object]] = {"mimo": lambda: mc.conv2d(x, w)}
    cache = _call_cache()
    if cache is not None:

        def cold() -> object:
            cache.clear()
            return mc.conv2d(x, w)

        found["mimo cold"] = cold
    if torch is not None:
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        conv2d = torch.nn.functional.conv2d
        found["torch"] = lambda: conv2d(tx, tw)
    return found


def stage_calls(case: Case) -> dict[str, Callable[[], object]]:
    """Each stage of one call of ``case``, through the full path and the short path."""
    from mimo_conv._core.budget import resolve_budget  # noqa: PLC0415
    from mimo_conv._core.layouts import parse_layouts  # noqa: PLC0415
    from mimo_conv._core.operands import prepare_call  # noqa: PLC0415
    from mimo_conv._core.workers import default_threads, get_threads  # noqa: PLC0415
    from mimo_conv._engine.execute import plan_for, run_conv  # noqa: PLC0415
    from mimo_conv._paths.registry import check_method  # noqa: PLC0415

    x, w = case.x, case.weight
    options = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros"}
    x_a, w_a, _, geometry, dtypes = prepare_call(x, w, None, **options, spatial_dims=2)
    budget = resolve_budget(None)
    call = plan_for(x_a, w_a, geometry, dtypes, budget, "auto", None)
    stages: dict[str, Callable[[], object]] = {
        "parse_layouts": lambda: parse_layouts(None, None, spatial_dims=2, transposed=False),
        "prepare_call": lambda: prepare_call(x, w, None, **options, spatial_dims=2),
        "check_method": lambda: check_method("auto", geometry),
        "resolve_budget": lambda: resolve_budget(None),
        "get_threads": get_threads,
        "default_threads": default_threads,
        "plan_for": lambda: plan_for(x_a, w_a, geometry, dtypes, budget, "auto", None),
        f"run_conv ({call.chosen})": lambda: run_conv(x_a, w_a, None, call),
    }
    cache = _call_cache()
    if cache is not None:
        plain = (1, 0, 1, 1, "zeros", "auto", None)
        mc.conv2d(x, w)
        mc.conv2d(x, w)  # the first hit builds the lean run, if the plan has one
        signature = cache.call_signature(x, w, None, plain, 2)
        short = cache.find(signature)
        stages["short: call_signature"] = lambda: cache.call_signature(x, w, None, plain, 2)
        stages["short: find"] = lambda: cache.find(signature)
        if short is not None:
            kind = "lean" if short.lean is not None else "run_conv"
            stages[f"short: run ({kind})"] = lambda: short(x, w, None)
    stages["whole call"] = lambda: mc.conv2d(x, w)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds: a smoke test")
    parser.add_argument("--stages", action="store_true", help="also time each stage")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 100; 5 quick)")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 100)
    torch: Any = None
    try:
        import torch  # noqa: PLC0415 - optional comparison
    except ImportError:
        print("PyTorch is not installed: mimo_conv's times only")
    else:
        torch.set_num_threads(1)
    # mimo_conv's workers follow OMP_NUM_THREADS=1, as a user's default would (no set_threads)
    print(h.Machine(threads=1).as_markdown())
    print(f"\n{rounds} rounds, blocks interleaved, medians; 1 thread everywhere\n")
    rows = []
    for case in cases():
        calls = max(1, case.calls_per_block // (10 if args.quick else 1))
        every = alternatives_of(case, torch)
        first: dict[str, Callable[[], object]] = {
            name: every[name] for name in ("mimo", "torch") if name in every
        }
        medians = interleaved(first, calls, rounds)
        torch_time = medians.get("torch")
        row: list[object] = [case.name, f"{medians['mimo'] * 1e6:.1f}"]
        row.append(f"{torch_time * 1e6:.1f}" if torch_time else "-")
        row.append(f"{medians['mimo'] / torch_time:.2f}x" if torch_time else "-")
        best = f"{medians['mimo best'] / medians['torch best']:.2f}x" if torch_time else "-"
        row.append(best)
        if "mimo cold" in every:
            second: dict[str, Callable[[], object]] = {
                name: every[name] for name in ("mimo cold", "torch") if name in every
            }
            cold_medians = interleaved(second, calls, max(3, rounds // 4))
            cold, cold_torch = cold_medians["mimo cold"], cold_medians.get("torch")
            row.append(f"{cold * 1e6:.1f}")
            row.append(f"{cold / cold_torch:.2f}x" if cold_torch else "-")
        else:
            row.extend(["-", "-"])
        rows.append(row)
    print(h.markdown_table(HEADERS, rows))
    if args.stages:
        for case in cases():
            if not case.name.startswith(("book f32 batched", "se-reduce")):
                continue
            calls = max(1, case.calls_per_block // (10 if args.quick else 1))
            stages = stage_calls(case)
            medians = interleaved(stages, calls, rounds)
            print(f"\nstages of one call, {case.name} (us per call)\n")
            table = [
                [name, f"{medians[name] * 1e6:.2f}", f"{medians[name + ' best'] * 1e6:.2f}"]
                for name in stages
            ]
            print(h.markdown_table(["stage", "median", "best"], table))


if __name__ == "__main__":
    main()
