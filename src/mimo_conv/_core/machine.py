"""What this machine's NumPy runs on: the CPU, the BLAS and its kernels, and a report of them.

mimo_conv's large convolutions are matrix products, so their speed is the speed of the
BLAS that NumPy ships, and of the kernels that BLAS picked for this CPU. NumPy's wheels
bundle OpenBLAS built for every x86 generation; when NumPy is imported OpenBLAS reads the
CPU's family and model and picks its kernels, and a CPU newer than that OpenBLAS release
gets older kernels than it could run (an AMD Zen 5 with AVX-512 gets the AVX2 "Haswell"
kernels from OpenBLAS 0.3.31; see docs/performance.md, "The BLAS kernels").
:func:`show_config` prints what is in use and, where the CPU can do better, the one
environment variable that selects the better kernels.

Examples
--------
>>> import mimo_conv as mc
>>> report = mc.show_config(file=None)
>>> "memory budget" in report and "threads" in report
True
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from mimo_conv._core.budget import get_memory_budget
from mimo_conv._core.memory import format_bytes
from mimo_conv._core.version import __version__
from mimo_conv._core.workers import get_threads

#: OpenBLAS's kernel families that use AVX-512 (``OPENBLAS_CORETYPE`` names).
AVX512_KERNELS = frozenset({"SkylakeX", "Cooperlake", "SapphireRapids"})


@lru_cache(maxsize=1)
def openblas_kernels() -> str:
    """Return the kernel family NumPy's OpenBLAS chose ("Haswell", "SkylakeX", ...).

    Read from the library NumPy loaded (its ``get_corename`` function, found through
    ``ctypes`` beside NumPy), once per process: OpenBLAS chooses when it is loaded.
    "unknown" for another BLAS or where it cannot be found. ``OPENBLAS_CORETYPE`` set
    before NumPy is imported overrides OpenBLAS's own choice.

    Examples
    --------
    >>> isinstance(openblas_kernels(), str)
    True
    """
    libraries = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for library in sorted(libraries.glob("libscipy_openblas*")):
        try:
            handle = ctypes.CDLL(str(library))
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename"):
            function = getattr(handle, name, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                return str(function().decode())
    return "unknown"


def cpu_description() -> dict[str, Any]:
    """Return the CPU's vendor, family, model and whether it has AVX-512 (Linux; else empty).

    Examples
    --------
    >>> sorted(cpu_description()) in ([], ["avx512", "family", "model", "vendor"])
    True
    """
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("vendor_id", "cpu family", "model", "flags") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip():  # the first processor's block ends here
                    break
    except OSError:
        return {}
    if not {"vendor_id", "cpu family", "model"} <= set(fields):
        return {}
    return {
        "vendor": fields["vendor_id"],
        "family": int(fields["cpu family"]),
        "model": int(fields["model"]),
        "avx512": "avx512f" in fields.get("flags", "").split(),
    }


def kernel_advice(kernels: str, avx512: bool, coretype: str | None) -> str | None:
    """Return advice for a CPU with AVX-512 whose OpenBLAS runs older kernels, else None.

    Parameters
    ----------
    kernels : str
        The kernel family in use (:func:`openblas_kernels`).
    avx512 : bool
        Whether the CPU has AVX-512.
    coretype : str or None
        ``OPENBLAS_CORETYPE`` as set in the environment (None: unset). A value there is
        what holds OpenBLAS to older kernels on such a CPU far more often than a CPU that
        OpenBLAS does not know.

    Examples
    --------
    >>> print(kernel_advice("Haswell", True, "Haswell"))  # doctest: +NORMALIZE_WHITESPACE
    OPENBLAS_CORETYPE=Haswell in the environment holds OpenBLAS to its Haswell kernels on
    this AVX-512 CPU: unset it (or set it to SkylakeX) before Python starts for 1.5-1.8x
    faster matrix products (measured on an AMD Zen 5; see docs/performance.md)
    >>> print(kernel_advice("Haswell", True, None))  # doctest: +NORMALIZE_WHITESPACE
    this CPU has AVX-512 but OpenBLAS picked its Haswell kernels: export
    OPENBLAS_CORETYPE=SkylakeX before Python starts for 1.5-1.8x faster matrix products
    (measured on an AMD Zen 5; see docs/performance.md)
    >>> kernel_advice("SkylakeX", True, None) is None
    True
    >>> kernel_advice("Haswell", False, "Haswell") is None  # AVX2 is this CPU's best
    True
    """
    if not avx512 or kernels in AVX512_KERNELS or kernels == "unknown":
        return None
    gain = "1.5-1.8x faster matrix products (measured on an AMD Zen 5; see docs/performance.md)"
    if coretype:
        return (
            f"OPENBLAS_CORETYPE={coretype} in the environment holds OpenBLAS to its {kernels} "
            f"kernels on this AVX-512 CPU: unset it (or set it to SkylakeX) before Python "
            f"starts for {gain}"
        )
    return (
        f"this CPU has AVX-512 but OpenBLAS picked its {kernels} kernels: export "
        f"OPENBLAS_CORETYPE=SkylakeX before Python starts for {gain}"
    )


def show_config(file: TextIO | None = sys.stdout) -> str:
    """Print, and return, what mimo_conv runs on here: versions, BLAS, threads, memory budget.

    Parameters
    ----------
    file : file-like or None, optional
        Where to print the report (default: standard output); None prints nothing.

    Returns
    -------
    str
        The report, one fact per line, ending with advice where the BLAS could run faster.

    Examples
    --------
    >>> import mimo_conv as mc
    >>> print(mc.show_config(file=None))  # doctest: +ELLIPSIS
    mimo_conv ...
    Python ...
    NumPy ...
    BLAS: ...
    OpenBLAS kernels in use: ...
    threads: ...
    memory budget: ...
    """
    try:
        blas = dict(np.show_config(mode="dicts")["Build Dependencies"]["blas"])
    except (TypeError, KeyError, AttributeError):  # pragma: no cover - an old NumPy
        blas = {}
    cpu = cpu_description()
    kernels = openblas_kernels()
    coretype = os.environ.get("OPENBLAS_CORETYPE") or None
    described = (
        f"{cpu['vendor']} family {cpu['family']} model {cpu['model']}"
        + (", AVX-512" if cpu["avx512"] else "")
        if cpu
        else platform.processor() or platform.machine()
    )
    lines = [
        f"mimo_conv {__version__}",
        (
            f"Python {platform.python_version()} on {platform.system()} "
            f"{platform.machine()}, {os.cpu_count() or 1} logical cores; CPU {described}"
        ),
        f"NumPy {np.__version__}",
        f"BLAS: {blas.get('name', 'unknown')} {blas.get('version', '')}".rstrip(),
        f"OpenBLAS kernels in use: {kernels}"
        + (f" (OPENBLAS_CORETYPE={coretype})" if coretype else ""),
        (
            f"threads: {get_threads()} (mimo_conv.set_threads; BLAS reads "
            f"OPENBLAS_NUM_THREADS or OMP_NUM_THREADS, set: {_thread_variables()})"
        ),
        f"memory budget: {format_bytes(get_memory_budget())} (mimo_conv.set_memory_budget)",
    ]
    advice = kernel_advice(kernels, bool(cpu.get("avx512")), coretype)
    if advice:
        lines.append(f"advice: {advice}")
    report = "\n".join(lines)
    if file is not None:
        print(report, file=file)
    return report


def _thread_variables() -> str:
    """Return the thread variables set in the environment as ``NAME=value`` (or "none")."""
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    found = [f"{name}={os.environ[name]}" for name in names if name in os.environ]
    return ", ".join(found) or "none"
