"""Precision models: the arithmetic a kernel under test is allowed to use.

A kernel is described by the format its inputs are rounded to, the format it accumulates
in, the format of its result, the rounding direction and whether it flushes subnormals to
zero. :class:`Precision` holds that description; :data:`PRESETS` names the usual ones
(TF32, bfloat16, float16 with float32 or float16 accumulation, float8), so that
``precision="tf32"`` reads as what it means.

A binary floating-point format is fixed by three numbers (:class:`Format`): the precision
``p`` (significand bits, the hidden bit included), the exponent ``emin`` of its smallest
normal number ``2**emin``, and its largest finite value. Its unit roundoff is
``u = 2**-p`` for round-to-nearest and ``2**(1 - p)`` for rounding toward zero (the
spacing of the numbers, since a truncated result can be off by almost one spacing); its
smallest subnormal is ``eta = 2**(emin - p + 1)``.

:func:`round_to` rounds float64 values to a format, so tests can emulate a kernel that
works in that format without any extra package (``ml_dtypes`` is needed only to pass its
``bfloat16``/``float8`` arrays in).

Examples
--------
>>> p = as_precision("tf32")
>>> p.inputs, p.accumulate, p.output
('tf32', 'float32', 'float32')
>>> FORMATS["bfloat16"].unit_roundoff("nearest")
0.00390625
>>> round_to(np.array([1 + 2**-9, 1 + 3 * 2**-9]), "bfloat16").tolist()
[1.0, 1.0078125]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

ROUNDINGS = ("nearest", "toward_zero")


@dataclass(frozen=True)
class Format:
    """A binary floating-point format.

    Attributes
    ----------
    name : str
    precision : int
        Significand bits ``p``, the hidden bit included (float32: 24).
    emin : int
        The smallest normal number is ``2**emin`` (float32: -126).
    max : float
        The largest finite value.

    Examples
    --------
    >>> f = FORMATS["float16"]
    >>> f.smallest_normal, f.smallest_subnormal, f.max
    (6.103515625e-05, 5.960464477539063e-08, 65504.0)
    """

    name: str
    precision: int
    emin: int
    max: float

    @property
    def smallest_normal(self) -> float:
        """``2**emin``."""
        return math.ldexp(1.0, self.emin)

    @property
    def smallest_subnormal(self) -> float:
        """``eta = 2**(emin - p + 1)``, the spacing of the subnormals."""
        return math.ldexp(1.0, self.emin - self.precision + 1)

    def unit_roundoff(self, rounding: str) -> float:
        """``2**-p`` for round-to-nearest, ``2**(1 - p)`` toward zero."""
        return math.ldexp(1.0, -self.precision + (rounding == "toward_zero"))

    def underflow(self, rounding: str, *, flush: bool) -> float:
        """Largest absolute error of one rounding beyond the relative ``u |value|``.

        Gradual underflow: half a subnormal spacing for nearest, one spacing toward zero.
        Flush-to-zero: a result below ``2**emin`` may become 0, an error below ``2**emin``.
        The value is a float64, rounded up: float64's own half spacing (``2**-1075``) is
        not a float64 and would round to 0, so a whole spacing stands for it.
        """
        if flush:
            return self.smallest_normal
        if rounding != "nearest":
            return self.smallest_subnormal
        half = self.smallest_subnormal / 2
        return half if half > 0 else self.smallest_subnormal

    def holds(self, other: Format) -> bool:
        """Whether every number of ``other`` is a number of this format."""
        return (
            self.precision >= other.precision
            and self.emin - self.precision <= other.emin - other.precision
            and self.max >= other.max
        )


def _format(
    name: str, precision: int, emin: int, max_exponent: int, max_significand: float
) -> Format:
    return Format(name, precision, emin, math.ldexp(max_significand, max_exponent))


#: The formats a precision model can name, by name.
FORMATS: dict[str, Format] = {
    "float64": _format("float64", 53, -1022, 1023, 2 - 2.0**-52),
    "float32": _format("float32", 24, -126, 127, 2 - 2.0**-23),
    "tf32": _format("tf32", 11, -126, 127, 2 - 2.0**-10),
    "bfloat16": _format("bfloat16", 8, -126, 127, 2 - 2.0**-7),
    "float16": _format("float16", 11, -14, 15, 2 - 2.0**-10),
    "float8_e4m3fn": _format("float8_e4m3fn", 4, -6, 8, 1.75),
    "float8_e5m2": _format("float8_e5m2", 3, -14, 15, 1.75),
}


@dataclass(frozen=True)
class Precision:
    """The arithmetic of a kernel under test.

    Parameters
    ----------
    inputs : str or Format
        The format the kernel rounds its inputs to (``"float32"``, ``"tf32"``, ...). Inputs
        already in that format are not rounded (no error term).
    accumulate : str or Format
        The format products are summed in, in any order and any blocking.
    rounding : {"nearest", "toward_zero"}, optional
        Round-to-nearest (ties to even, or any tie rule) or truncation, for every rounding
        the kernel does: inputs, products, sums and output.
    output : str or Format, optional
        The format of the result; default ``accumulate``. A narrower one adds one final
        rounding.
    flush_subnormals : bool, optional
        Whether the kernel may flush subnormal inputs, products, sums and results to zero.

    Examples
    --------
    >>> Precision(inputs="bfloat16", accumulate="float32", output="bfloat16")
    Precision(inputs='bfloat16', accumulate='float32', rounding='nearest', output='bfloat16', ...)
    >>> Precision(inputs="float32", accumulate="float31")
    Traceback (most recent call last):
    ...
    ValueError: accumulate must be one of ['float64', 'float32', 'tf32', ...], got 'float31'
    """

    inputs: str
    accumulate: str
    rounding: str = "nearest"
    output: str | None = None
    flush_subnormals: bool = False

    def __post_init__(self) -> None:
        for name in ("inputs", "accumulate", "output"):
            value = getattr(self, name)
            if isinstance(value, Format):
                object.__setattr__(self, name, value.name)
                value = value.name
            if value is None and name == "output":
                object.__setattr__(self, "output", self.accumulate)
                continue
            if value not in FORMATS:
                msg = f"{name} must be one of {list(FORMATS)!r}, got {value!r}"
                raise ValueError(msg)
        if self.rounding not in ROUNDINGS:
            msg = f"rounding must be one of {ROUNDINGS!r}, got {self.rounding!r}"
            raise ValueError(msg)
        flush: object = self.flush_subnormals
        if not isinstance(flush, bool):
            msg = f"flush_subnormals must be a bool, got {self.flush_subnormals!r}"
            raise TypeError(msg)

    @property
    def input_format(self) -> Format:
        """The :class:`Format` of the inputs."""
        return FORMATS[self.inputs]

    @property
    def accumulate_format(self) -> Format:
        """The :class:`Format` of the accumulation."""
        return FORMATS[self.accumulate]

    @property
    def output_format(self) -> Format:
        """The :class:`Format` of the result."""
        return FORMATS[str(self.output)]

    @property
    def products_exact(self) -> bool:
        """Whether a product of two inputs always fits the accumulation's significand.

        ``2 p_in <= p_acc``: the product is exact unless it underflows (the underflow term
        stays in the bound).
        """
        return 2 * self.input_format.precision <= self.accumulate_format.precision


#: The named precision models ``precision=`` accepts as strings.
PRESETS: dict[str, Precision] = {
    "float64": Precision("float64", "float64"),
    "float32": Precision("float32", "float32"),
    "tf32": Precision("tf32", "float32"),
    "bfloat16": Precision("bfloat16", "float32", output="bfloat16"),
    "bfloat16-float32-out": Precision("bfloat16", "float32"),
    "float16": Precision("float16", "float32", output="float16"),
    "float16-accumulate": Precision("float16", "float16"),
    "float8_e4m3fn": Precision("float8_e4m3fn", "float32"),
    "float8_e5m2": Precision("float8_e5m2", "float32"),
}

#: The model of each NumPy dtype computed as :func:`mimo_conv.conv` computes it.
_DTYPE_MODELS = {"float64": "float64", "float32": "float32", "float16": "float16"}


def as_precision(precision: str | Precision) -> Precision:
    """Return the :class:`Precision` a ``precision=`` argument names.

    Examples
    --------
    >>> as_precision("float16").output
    'float16'
    >>> as_precision("fp8")
    Traceback (most recent call last):
    ...
    ValueError: precision must be a Precision or one of the presets ['float64', ...], got 'fp8'
    """
    if isinstance(precision, Precision):
        return precision
    if isinstance(precision, str) and precision in PRESETS:
        return PRESETS[precision]
    msg = (
        f"precision must be a Precision or one of the presets {list(PRESETS)!r}, got {precision!r}"
    )
    raise ValueError(msg)


def default_precision(dtype: np.dtype[Any]) -> Precision | None:
    """Return the model of a result of ``dtype`` computed as mimo_conv computes it (None: exact).

    float16 accumulates in float32 and is rounded once to float16, as :func:`mimo_conv.conv`
    does; bfloat16 likewise (float32 accumulation, bfloat16 output); float8 in float32.

    Examples
    --------
    >>> default_precision(np.dtype(np.float16)).accumulate
    'float32'
    >>> default_precision(np.dtype(np.int64)) is None
    True
    """
    name = format_name(dtype)
    if name is None:
        return None
    if name in _DTYPE_MODELS:
        return PRESETS[_DTYPE_MODELS[name]]
    if name == "bfloat16":
        return PRESETS["bfloat16"]
    return PRESETS[name]


def format_name(dtype: np.dtype[Any]) -> str | None:
    """Return the :data:`FORMATS` name of a real float dtype (ml_dtypes' included), else None.

    Examples
    --------
    >>> format_name(np.dtype(np.float32)), format_name(np.dtype(np.int8))
    ('float32', None)
    """
    try:
        return _FORMAT_NAMES[dtype]
    except KeyError:
        pass
    name = dtype.name  # slow to read: the answer is remembered per dtype
    # ml_dtypes registers its types with kind "V" and names like "bfloat16".
    found = name if name in FORMATS else None
    _FORMAT_NAMES[dtype] = found
    return found


_FORMAT_NAMES: dict[np.dtype[Any], str | None] = {}


def round_to(
    values: NDArray[Any], fmt: str | Format, rounding: str = "nearest", *, flush: bool = False
) -> NDArray[np.float64]:
    """Round float64 ``values`` to a format, returned as float64 (exactly representable).

    Round-to-nearest breaks ties to even; ``"toward_zero"`` truncates. Values beyond the
    largest finite number become infinite (or the largest, toward zero). ``flush`` sets
    results below the smallest normal to zero.

    Examples
    --------
    >>> round_to(np.array([1 / 3]), "float16").tolist()
    [0.333251953125]
    >>> round_to(np.array([1 - 2**-12, -1 + 2**-12]), "float16", "toward_zero").tolist()
    [0.99951171875, -0.99951171875]
    >>> round_to(np.array([2.0**-20]), "float16", flush=True).tolist()
    [0.0]
    """
    f = FORMATS[fmt] if isinstance(fmt, str) else fmt
    x = np.asarray(values, dtype=np.float64)
    if f.name == "float64":
        out = x.copy()
    else:
        _, exponent = np.frexp(x)
        # x = m 2**exponent, 0.5 <= |m| < 1: the spacing at x is 2**(exponent - p), or the
        # subnormal spacing below the smallest normal.
        spacing_exp = np.maximum(exponent - 1, f.emin) - (f.precision - 1)
        scaled = np.ldexp(x, -spacing_exp)
        whole = np.rint(scaled) if rounding == "nearest" else np.trunc(scaled)
        out = np.ldexp(whole, spacing_exp)
        too_big = np.abs(out) > f.max
        if too_big.any():
            limit = np.inf if rounding == "nearest" else f.max
            out = np.where(too_big, np.copysign(limit, x), out)
    if flush:
        out = np.where(np.abs(out) < f.smallest_normal, 0.0 * out, out)
    return out
