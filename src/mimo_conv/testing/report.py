"""The failure report: what was checked, where it failed, and which arithmetic would explain it.

A report names the operation, the shape and dtype of the result, the precision model,
``n``, how many elements exceed the bound, and the worst one (index, actual, exact, bound,
ratio) with the term of the bound that dominates there. It then re-composes the bound
under every preset (elementwise arithmetic on magnitudes already computed) and says which
presets the observed errors fit: a "float32" kernel whose errors fit ``"tf32"`` is most
likely running on TF32 tensor cores; errors that fit no preset are a bug, not rounding.

Examples
--------
>>> import numpy as np
>>> from mimo_conv.testing.oracle import oracle_for
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
>>> w = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
>>> oracle = oracle_for("conv", (x, w), {})
>>> wrong = oracle.exact.hi.astype(np.float32) * np.float32(1 + 2**-10)
>>> print(describe_failure(oracle, wrong, oracle.exceeding(wrong), 1.0))  # doctest: +ELLIPSIS
conv result is farther from the exact result than the rounding-error bound
  63 of 64 elements exceed it; shape (1, 4, 4, 4), dtype float32, precision float32, n = 72 ...
  worst at index (0, 1, 3, 2): actual 18.25..., exact 18.23..., error 0.0178, bound 0.000228 ...
  the errors fit tf32 (at most 0.34 of its bound; ...); they exceed the float32 model 78.1x
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv.testing.bounds import compose
from mimo_conv.testing.precision import PRESETS, Precision

#: An :class:`mimo_conv.testing.oracle.Oracle` (the oracle imports this module, not back).
Oracle = Any


def precision_name(precision: Precision | None) -> str:
    """Return the preset's name, or the model spelled out; ``"exact"`` for None.

    Examples
    --------
    >>> precision_name(PRESETS["tf32"]), precision_name(None)
    ('tf32', 'exact')
    """
    if precision is None:
        return "exact"
    for name, preset in PRESETS.items():
        if preset == precision:
            return name
    return repr(precision)


def _show(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, complex | np.complexfloating):
        return repr(complex(value))
    return str(value)


def preset_fits(oracle: Oracle, observed: NDArray[np.float64]) -> dict[str, float]:
    """For every preset, the largest ratio of observed error to that preset's bound.

    Presets whose model needs ``n u < 1`` for more terms than the format allows are left
    out (they have no bound for this call).
    """
    ratios: dict[str, float] = {}
    for name, preset in PRESETS.items():
        try:
            limit = np.asarray(compose(oracle.magnitudes, preset).total, dtype=np.float64)
        except ValueError:
            continue
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(observed == 0, 0.0, observed / limit)
        ratios[name] = float(np.nan_to_num(ratio, nan=np.inf).max(initial=0.0))
    return ratios


def _fit_sentence(ratios: dict[str, float], model: str) -> str:
    # The tightest preset that fits has the largest ratio still <= 1.
    fitting = sorted(
        (name for name, ratio in ratios.items() if ratio <= 1), key=lambda k: -ratios[k]
    )
    own = ratios.get(model)
    exceed = f"; they exceed the {model} model {own:.3g}x" if own is not None else ""
    if fitting:
        looser = f"; also the looser {', '.join(fitting[1:])}" if fitting[1:] else ""
        return (
            f"  the errors fit {fitting[0]} (at most {ratios[fitting[0]]:.2g} of its bound"
            f"{looser}){exceed}"
        )
    closest = min(ratios, key=ratios.__getitem__) if ratios else None
    if closest is None:
        return ""
    return (
        f"  the errors fit no preset (closest: {closest}, exceeded {ratios[closest]:.3g}x): "
        "a wrong result, not a rounding difference"
    )


def describe_failure(
    oracle: Oracle, result: NDArray[Any], mask: NDArray[np.bool_], bound_factor: float
) -> str:
    """Return the text of the ``AssertionError`` for a result exceeding its bound at ``mask``."""
    op = oracle.call.op
    model = precision_name(oracle.terms.precision)
    count = int(mask.sum())
    failure = oracle.terms.probabilistic
    kind = "" if failure is None else f" (probabilistic bound, failure probability {failure:g})"
    head = (
        f"; shape {result.shape}, dtype {result.dtype}, precision {model}{kind}, "
        f"n = {oracle.n} terms per output"
    )
    if oracle.expected is not None:
        flat = int(np.flatnonzero(mask)[0])
        index = tuple(int(i) for i in np.unravel_index(flat, result.shape))
        return (
            f"{op} result differs from the exact result (exact arithmetic: the bound is 0)\n"
            f"  {count} of {result.size} elements exceed it{head}\n"
            f"  worst at index {index}: actual {_show(result[index])}, "
            f"exact {_show(oracle.expected[index])}"
        )
    ratios = oracle.error_ratios(result, bound_factor=bound_factor)
    observed, _ = oracle.errors(result)
    candidates = np.where(mask, ratios, -1.0)
    flat = int(np.argmax(candidates))
    index = tuple(int(i) for i in np.unravel_index(flat, result.shape))
    assert oracle.exact is not None
    exact: Any = float(oracle.exact.hi[index])
    if oracle.exact_imag is not None:
        exact = complex(exact, float(oracle.exact_imag.hi[index]))
    limit = float(np.asarray(oracle.bound, dtype=np.float64)[index]) * bound_factor
    lines = [
        f"{op} result is farther from the exact result than the rounding-error bound",
        f"  {count} of {result.size} elements exceed it{head}",
        (
            f"  worst at index {index}: actual {_show(result[index])}, exact {_show(exact)}, "
            f"error {float(observed[index]):.3g}, bound {limit:.3g} "
            f"({float(ratios[index]):.3g}x), dominated by the {oracle.terms.dominant(index)} term"
        ),
    ]
    if oracle.terms.precision is not None:
        sentence = _fit_sentence(preset_fits(oracle, observed), model)
        if sentence:
            lines.append(sentence)
    return "\n".join(lines)
