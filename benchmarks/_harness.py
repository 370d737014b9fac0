"""Shared timing, memory and table helpers for the benchmark scripts.

Used by ``bench_conv.py`` (forward pass) and ``bench_backward.py`` (backward pass), so both
write the same kind of table. Nothing here imports mimo_conv: it times any callable (only the
child process of :func:`child_machine` does, to read the machine's BLAS kernels).

Hazards this module works around (measured on a 2-core OpenBLAS machine, see issue 6):

* Idle worker threads of one library (OpenBLAS, PyTorch's OpenMP pool) keep spinning for a
  while after a call and slow the other library's next call. :func:`time_block` therefore
  times each callable in its own block, after an untimed warm-up call and a short pause.
* glibc returns buffers larger than 32 MiB to the OS when freed, so the first call after a
  large allocation pays page faults; the warm-up call absorbs that for steady-state timing.
* Never assert on a time: these numbers are for tables, not for tests.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: Seconds to sleep between blocks so that idle worker threads of the previous library stop
#: spinning (OpenBLAS's default THREAD_TIMEOUT is 2**28 cycles, about 0.1 s at 2.5 GHz).
PAUSE_SECONDS = 0.15


@dataclass(frozen=True)
class Timing:
    """Wall-clock times of repeated calls of one callable, in seconds.

    Examples
    --------
    >>> Timing((0.3, 0.1, 0.2)).median
    0.2
    """

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        """Median time of one call."""
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        """Fastest call."""
        return min(self.times)

    @property
    def spread(self) -> float:
        """Interquartile range divided by the median: how noisy the block was."""
        if len(self.times) < 4:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times, n=4)
        return (q3 - q1) / self.median if self.median > 0 else 0.0


def time_block(
    function: Callable[[], object],
    *,
    repeats: int = 7,
    min_seconds: float = 0.0,
    max_seconds: float = 5.0,
    warmup: int = 1,
    pause: float = PAUSE_SECONDS,
) -> Timing:
    """Time ``function()`` in one block: warm-up calls, a pause, then timed calls.

    Parameters
    ----------
    function : callable
        Called with no arguments.
    repeats : int
        Timed calls at least (fewer only when ``max_seconds`` runs out, never fewer than 1).
    min_seconds : float
        Keep calling until at least this much time was spent timing (for fast calls).
    max_seconds : float
        Stop after the call during which this much time was spent.
    warmup : int
        Untimed calls first (page faults, caches, lazy imports, thread start-up).
    pause : float
        Seconds to sleep after the warm-up, so other libraries' threads go idle.

    Examples
    --------
    >>> timing = time_block(lambda: sum(range(100)), repeats=3, pause=0)
    >>> len(timing.times) >= 3
    True
    """
    for _ in range(warmup):
        function()
    if pause:
        time.sleep(pause)
    times: list[float] = []
    spent = 0.0
    while True:
        start = time.perf_counter()
        function()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        spent += elapsed
        enough = len(times) >= repeats and spent >= min_seconds
        if enough or spent >= max_seconds:
            break
    return Timing(tuple(times))


def interleaved_times(
    functions: dict[str, Callable[[], object]],
    *,
    rounds: int = 9,
    min_batch_seconds: float = 0.002,
    max_seconds: float = 3.0,
) -> dict[str, Timing]:
    """Time several callables round-robin in one process: one batch of each per round.

    Timing callables one after the other in separate blocks lets the machine's state drift
    between them (another process, the CPU clock, the cache); in a round-robin each round
    sees nearly the same conditions for all of them, so their ratio is what a reader can
    trust even when the absolute times move. A batch repeats a fast call until it takes
    ``min_batch_seconds``; the order rotates each round so no callable always runs first.

    Parameters
    ----------
    functions : dict of str to callable
        Called with no arguments.
    rounds : int
        Rounds at most (fewer only when ``max_seconds`` runs out, never fewer than 3).
    min_batch_seconds : float
        Calls per batch are chosen so that a batch takes about this long.
    max_seconds : float
        Stop starting rounds after this much time was spent.

    Returns
    -------
    dict of str to Timing
        Per callable, the time of one call in each round (batch time / calls per batch).

    Examples
    --------
    >>> timings = interleaved_times({"a": lambda: sum(range(50)), "b": lambda: None}, rounds=3)
    >>> sorted(timings), len(timings["a"].times)
    (['a', 'b'], 3)
    """
    names = list(functions)
    batch: dict[str, int] = {}
    for name in names:  # a warm-up call, which also sizes the batch
        start = time.perf_counter()
        functions[name]()
        elapsed = time.perf_counter() - start
        batch[name] = max(1, min(1000, math.ceil(min_batch_seconds / max(elapsed, 1e-7))))
    times: dict[str, list[float]] = {name: [] for name in names}
    started = time.perf_counter()
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            calls, function = batch[name], functions[name]
            start = time.perf_counter()
            for _ in range(calls):
                function()
            times[name].append((time.perf_counter() - start) / calls)
        if round_number >= 2 and time.perf_counter() - started >= max_seconds:
            break
    return {name: Timing(tuple(values)) for name, values in times.items()}


def peak_temporary_bytes(function: Callable[[], object]) -> int:
    """Peak bytes traced by ``tracemalloc`` during ``function()``, minus its result's size.

    NumPy reports its array buffers to ``tracemalloc``, so this is the largest amount of
    memory held at once by the call's temporaries (and Python objects); the returned
    array itself is subtracted when the result is an ndarray. Call it outside any timed
    block: tracing slows allocation down.

    Examples
    --------
    >>> peak_temporary_bytes(lambda: np.ones(1000).sum()) >= 8000
    True
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.clear_traces()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    result = function()
    _, peak = tracemalloc.get_traced_memory()
    if not was_tracing:
        tracemalloc.stop()
    own = result.nbytes if isinstance(result, np.ndarray) else 0
    return max(0, peak - base - own)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes (0 where unknown).

    Examples
    --------
    >>> peak_rss_bytes() >= 0
    True
    """
    try:
        import resource  # noqa: PLC0415 - POSIX only

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):
        return 0


def gemm_seconds(m: int, k: int, n: int, dtype: np.dtype[Any] | type, *, repeats: int = 5) -> float:
    """Median time of one ``(m, k) @ (k, n)`` product on ready-made contiguous operands.

    This is the practical limit of any GEMM-based convolution of the same size: the same
    multiply-adds with no im2col, no padding and no copies.

    Examples
    --------
    >>> gemm_seconds(8, 8, 8, np.float64, repeats=1) > 0
    True
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    out = np.empty((m, n), dtype=dtype)
    return time_block(lambda: np.matmul(a, b, out=out), repeats=repeats).median


def gflops(flops: float, seconds: float) -> float:
    """``flops / seconds`` in units of 10**9 (0 when ``seconds`` is 0).

    Examples
    --------
    >>> gflops(2e9, 0.5)
    4.0
    """
    return flops / seconds / 1e9 if seconds > 0 else 0.0


def geometric_mean(values: Sequence[float]) -> float:
    """Geometric mean of positive values (NaN for an empty sequence).

    Examples
    --------
    >>> round(geometric_mean([1.0, 4.0]), 6)
    2.0
    """
    positive = [value for value in values if value > 0 and math.isfinite(value)]
    if not positive:
        return math.nan
    return math.exp(sum(math.log(value) for value in positive) / len(positive))


def scaling_exponent(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """Least-squares slope of ``log(seconds)`` against ``log(sizes)``.

    Doubling a dimension that the FLOP count is linear in should give an exponent near 1.

    Examples
    --------
    >>> round(scaling_exponent([1, 2, 4], [3.0, 6.0, 12.0]), 6)
    1.0
    """
    xs = [math.log(size) for size in sizes]
    ys = [math.log(value) for value in seconds]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    denominator = sum((x - mean_x) ** 2 for x in xs)
    return numerator / denominator if denominator else math.nan


def format_seconds(seconds: float) -> str:
    """A time with a unit that keeps three significant digits.

    Examples
    --------
    >>> format_seconds(0.0000123)
    '12.3 us'
    >>> format_seconds(0.25)
    '250 ms'
    """
    if not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale or unit == "us":
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError  # pragma: no cover - the loop always returns


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned.

    Examples
    --------
    >>> print(markdown_table(["a", "b"], [["x", 1]]))
    | a | b |
    |:--|--:|
    | x | 1 |
    """
    numeric = [
        all(isinstance(row[column], (int, float)) for row in rows) if rows else False
        for column in range(len(headers))
    ]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("--:" if is_number else ":--" for is_number in numeric) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _blas_description() -> dict[str, str]:
    """NumPy's BLAS name, version and build configuration, without any file-system path."""
    try:
        config = np.show_config(mode="dicts")
        blas: dict[str, Any] = dict(config["Build Dependencies"]["blas"])
    except (TypeError, KeyError, AttributeError):  # pragma: no cover - old NumPy
        return {}
    keep = ("name", "version", "openblas configuration")
    return {key: str(blas[key]) for key in keep if key in blas}


@lru_cache(maxsize=1)
def child_machine() -> dict[str, Any]:
    """The CPU and the OpenBLAS kernels as a child process started now sees them.

    OpenBLAS picks its kernels when it is loaded, so this process's own need not be its
    children's once ``OPENBLAS_CORETYPE`` was changed or removed; the child reads them
    with :func:`mimo_conv._core.machine.openblas_kernels` and
    :func:`~mimo_conv._core.machine.cpu_description` (this module itself imports nothing
    from mimo_conv). Keys ``cpu_family`` ("" where unknown), ``avx512`` and ``blas_core``.

    Examples
    --------
    >>> sorted(child_machine())
    ['avx512', 'blas_core', 'cpu_family']
    """
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import json; from mimo_conv._core.machine import cpu_description, openblas_kernels; "
        "print(json.dumps([cpu_description(), openblas_kernels()]))"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        cpu, kernels = json.loads(result.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return {"cpu_family": "", "avx512": False, "blas_core": "unknown"}
    family = f"{cpu['vendor']} family {cpu['family']} model {cpu['model']}" if cpu else ""
    return {"cpu_family": family, "avx512": bool(cpu.get("avx512")), "blas_core": kernels}


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def optional_version(module_name: str) -> str | None:
    """Version of an installed optional library, or None when it is missing.

    Examples
    --------
    >>> optional_version("surely_not_installed_module") is None
    True
    """
    import importlib  # noqa: PLC0415

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return str(getattr(module, "__version__", "unknown"))


@dataclass
class Machine:
    """What a benchmark ran on: enough to judge whether two tables are comparable."""

    cpu: str = field(default_factory=_cpu_model)
    logical_cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    system: str = field(default_factory=lambda: f"{platform.system()} {platform.machine()}")
    python: str = field(default_factory=platform.python_version)
    numpy: str = field(default_factory=lambda: np.__version__)
    blas: dict[str, str] = field(default_factory=_blas_description)
    torch: str | None = field(default_factory=lambda: optional_version("torch"))
    scipy: str | None = field(default_factory=lambda: optional_version("scipy"))
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    cpu_family: str = field(default_factory=lambda: str(child_machine()["cpu_family"]))
    avx512: bool = field(default_factory=lambda: bool(child_machine()["avx512"]))
    #: The OpenBLAS kernels the benchmark's children run, as one of them reads them.
    blas_core: str = field(default_factory=lambda: str(child_machine()["blas_core"]))

    def as_markdown(self) -> str:
        """One line per fact, as a Markdown bullet list.

        Examples
        --------
        >>> "numpy" in Machine().as_markdown()
        True
        """
        blas = ", ".join(f"{key} {value}" for key, value in self.blas.items()) or "unknown"
        return "\n".join(
            [
                f"- CPU: {self.cpu}, {self.logical_cores} logical cores; {self.system}"
                + (
                    f" ({self.cpu_family}{', AVX-512' if self.avx512 else ''})"
                    if self.cpu_family
                    else ""
                ),
                f"- Python {self.python}, numpy {self.numpy}; BLAS: {blas}",
                f"- OpenBLAS kernels in use: {self.blas_core}",
                f"- torch {self.torch or 'not installed'}, scipy {self.scipy or 'not installed'}",
                f"- threads: up to {self.threads} for BLAS, PyTorch and mimo_conv's workers",
            ]
        )


def write_results(stem: Path, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md``; return both paths.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = write_results(Path(folder) / "run", {"a": 1}, "# run")
    ...     [path.suffix for path in paths]
    ['.json', '.md']
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path = stem.with_suffix(".json")
    md_path = stem.with_suffix(".md")
    json_path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    md_path.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return json_path, md_path


def _jsonable(value: object) -> object:
    """JSON fallback for dataclasses and NumPy scalars."""
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)  # type: ignore[call-overload]
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def set_torch_threads(threads: int) -> bool:
    """Give PyTorch ``threads`` intra-op threads, as many as BLAS uses; False without torch.

    Examples
    --------
    >>> isinstance(set_torch_threads(1), bool)
    True
    """
    try:
        import torch  # noqa: PLC0415 - optional
    except ImportError:
        return False
    torch.set_num_threads(threads)
    return True
