"""The hypothesis strategy behind :func:`mimo_conv.testing.conv_problems`.

Imported only when a strategy is built, so ``import mimo_conv`` never needs hypothesis.
Each problem is drawn in the order rank, batch, channels and groups, padding form and
mode, then per axis the input size, padding, kernel and dilation, each bounded by what was
drawn before, so every problem is valid without ``assume``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Literal

import numpy as np
from hypothesis import strategies as st
from numpy.typing import DTypeLike, NDArray

from mimo_conv._core.arguments import PADDING_MODES
from mimo_conv.testing.problems import ELEMENT_KINDS, PADDING_FORMS, ConvProblem

_TORCH_FORMS = ("int", "per_axis", "valid", "same")
#: Integer values never exceed this magnitude (the style guide's ``integers(-100, 100)``).
_INT_LIMIT = 100
#: Float values never exceed this magnitude (smaller when the dtype or n needs it).
_FLOAT_LIMIT = 1024.0


def _need(mode: str, widest: int) -> int:
    """Return the smallest input size a padding of ``widest`` elements allows in ``mode``."""
    if mode == "reflect":
        return widest + 1
    if mode in ("circular", "symmetric"):
        return max(widest, 1)
    return 1


def _pad_limit(mode: str, size: int, max_padding: int) -> int:
    """Return the widest padding ``mode`` allows on an input of ``size`` elements."""
    if mode == "reflect":
        return min(max_padding, size - 1)
    if mode in ("circular", "symmetric"):
        return min(max_padding, size)
    return max_padding


def _string_pads(form: str, span: int) -> tuple[int, int]:
    """``(before, after)`` of ``"same"`` (odd element after) or ``"full"``."""
    if form == "same":
        return span // 2, span - span // 2
    return span, span


def _largest_fitting(
    limit: int, per_unit: int, offset: int, form: str, mode: str, max_side: int
) -> int:
    """Return the largest ``v`` in ``1..limit`` whose ``"same"``/``"full"`` padding fits.

    The span of ``v`` is ``per_unit * v - offset``: ``v - 1`` for ``v`` kernel taps,
    ``v * (taps - 1)`` for a dilation ``v``. ``v = 1`` always fits.
    """
    fitting = [
        value
        for value in range(1, limit + 1)
        if value == 1 or _need(mode, max(_string_pads(form, per_unit * value - offset))) <= max_side
    ]
    return max(fitting)


def _element_strategy(
    dtype: np.dtype[Any], kind: str | st.SearchStrategy[Any], terms: int
) -> st.SearchStrategy[Any]:
    """Python numbers of the ``kind`` for arrays of ``dtype``, ``terms`` products per sum."""
    if not isinstance(kind, str):
        return kind
    if kind not in ELEMENT_KINDS:
        msg = f"elements must be one of {ELEMENT_KINDS!r} or a strategy, got {kind!r}"
        raise ValueError(msg)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.integers(max(int(info.min), -_INT_LIMIT), min(int(info.max), _INT_LIMIT))
    if dtype.kind == "O":
        if kind == "integers":
            return st.integers(-_INT_LIMIT, _INT_LIMIT)
        return st.fractions(-_INT_LIMIT, _INT_LIMIT, max_denominator=64)
    if dtype.kind == "c":
        # Each part of a complex sum has 2 n real terms.
        part = _real_strategy(np.dtype(dtype.char.lower()), kind, 2 * terms)
        return st.builds(complex, part, part)
    return _real_strategy(dtype, kind, terms)


def _real_strategy(dtype: np.dtype[Any], kind: str, terms: int) -> st.SearchStrategy[Any]:
    """Python floats for a real float ``dtype`` (float16/32/64 or longdouble)."""
    info = np.finfo(dtype)
    width: Literal[16, 32, 64] = 16 if dtype == np.float16 else 32 if dtype == np.float32 else 64
    # Accumulation happens in float32 for float16: products and sums live there.
    accumulate = np.finfo(np.float32) if dtype == np.float16 else info
    if kind == "integers":
        # n B^2 + B <= 2^p: every partial sum is an integer the output dtype holds exactly.
        exact_limit = 2 ** (info.nmant + 1)
        bound = max(1, min(_INT_LIMIT, math.isqrt(exact_limit // (terms + 1))))
        return st.integers(-bound, bound)
    # (terms + 1) * limit^2 stays below the largest finite value: no overflow anywhere.
    # A power of two, so that every float width represents it exactly.
    limit = 2.0 ** math.floor(
        math.log2(min(_FLOAT_LIMIT, math.sqrt(float(info.max) / (4 * (terms + 1)))))
    )
    if kind == "floats":
        return st.floats(-limit, limit, width=width)
    if kind == "cancellation":
        signs = st.sampled_from([-limit, limit])
        small = st.floats(-1, 1, width=width)
        return st.one_of(signs, st.builds(operator.add, signs, small), small)
    # "subnormal": magnitudes near the square root of the smallest normal of the
    # accumulation dtype, so products land in its subnormal range; for float16 results
    # near float16's own subnormals, where the final rounding is absolute.
    if dtype == np.float16:
        low, high = -13, -5
    else:
        smallest_normal_exp = int(math.log2(float(accumulate.smallest_normal)))
        low, high = smallest_normal_exp // 2 - 12, smallest_normal_exp // 2 + 4
    tiny = float(info.smallest_subnormal)
    magnitudes = st.one_of(
        st.builds(
            math.ldexp,
            st.floats(0.5, 1, exclude_max=True, width=width),
            st.integers(low, high),
        ),
        st.sampled_from([0.0, tiny, 3 * tiny]),
    )
    return st.builds(operator.mul, st.sampled_from([1.0, -1.0]), magnitudes)


def _array(
    draw: st.DrawFn, dtype: np.dtype[Any], shape: tuple[int, ...], elements: st.SearchStrategy[Any]
) -> NDArray[Any]:
    """Draw an array of ``shape``: a list of Python numbers converted to ``dtype``."""
    size = math.prod(shape)
    values = draw(st.lists(elements, min_size=size, max_size=size))
    if dtype.kind == "O":
        array = np.empty(size, dtype=object)
        array[:] = [Fraction(v) if isinstance(v, float) else v for v in values]
        return array.reshape(shape)
    return np.array(values, dtype=dtype).reshape(shape)


Axes = tuple[list[int], list[int], list[int], list[tuple[int, int]], Any]


def _draw_axes(
    draw: st.DrawFn,
    *,
    dims: int,
    form: str,
    mode: str,
    max_side: int,
    max_kernel: int,
    max_dilation: int,
    max_padding: int,
) -> Axes:
    """Draw input sizes, kernel taps, dilations and padding, each fitting the earlier draws.

    Returns the sizes, taps, dilations, ``(before, after)`` pairs, and the padding in the
    drawn ``form``.
    """
    sizes: list[int] = []
    kernels: list[int] = []
    dilations: list[int] = []
    pads: list[tuple[int, int]] = []
    if form in ("same", "full"):
        for _ in range(dims):
            taps = draw(st.integers(1, _largest_fitting(max_kernel, 1, 1, form, mode, max_side)))
            spacing = 1
            if taps > 1:
                widest = _largest_fitting(max_dilation, taps - 1, 0, form, mode, max_side)
                spacing = draw(st.integers(1, widest))
            pair = _string_pads(form, spacing * (taps - 1))
            sizes.append(draw(st.integers(_need(mode, max(pair)), max_side)))
            kernels.append(taps)
            dilations.append(spacing)
            pads.append(pair)
        padding: Any = form
    else:
        sizes = [draw(st.integers(1, max_side)) for _ in range(dims)]
        limits = [_pad_limit(mode, size, max_padding) for size in sizes]
        if form == "valid":
            pads = [(0, 0)] * dims
            padding = "valid"
        elif form == "int":
            amount = draw(st.integers(0, min(limits)))
            pads = [(amount, amount)] * dims
            padding = amount
        elif form == "per_axis":
            amounts = [draw(st.integers(0, limit)) for limit in limits]
            pads = [(amount, amount) for amount in amounts]
            padding = tuple(amounts)
        else:
            pads = [(draw(st.integers(0, limit)), draw(st.integers(0, limit))) for limit in limits]
            padding = tuple(pads)
        for size, (before, after) in zip(sizes, pads, strict=True):
            padded = size + before + after
            taps = draw(st.integers(1, min(max_kernel, padded)))
            spacing = 1
            if taps > 1:
                spacing = draw(
                    st.integers(1, max(1, min(max_dilation, (padded - 1) // (taps - 1))))
                )
            kernels.append(taps)
            dilations.append(spacing)
    return sizes, kernels, dilations, pads, padding


@st.composite
def _problems(
    draw: st.DrawFn,
    *,
    spatial_dims: tuple[int, ...],
    batched: bool | None,
    dtypes: tuple[np.dtype[Any], ...],
    elements: str | st.SearchStrategy[Any],
    max_batch: int,
    max_side: int,
    max_channels: int,
    max_kernel: int,
    max_stride: int,
    max_dilation: int,
    groups: bool,
    padding_forms: tuple[str, ...],
    padding_modes: tuple[str, ...],
    max_padding: int,
    bias: bool | None,
    allow_empty: bool,
) -> ConvProblem:
    dims = draw(st.sampled_from(spatial_dims))
    is_batched = draw(st.booleans()) if batched is None else batched
    lowest = 0 if allow_empty else 1
    batch = draw(st.integers(lowest, max_batch)) if is_batched else None
    group_count = draw(st.integers(1, max_channels)) if groups else 1
    per_group = max_channels // group_count
    in_per_group = draw(st.integers(1, per_group))
    out_per_group = draw(st.integers(lowest, per_group))
    form = draw(st.sampled_from(padding_forms))
    mode = draw(st.sampled_from(padding_modes))

    sizes, kernels, dilations, pads, padding = _draw_axes(
        draw,
        dims=dims,
        form=form,
        mode=mode,
        max_side=max_side,
        max_kernel=max_kernel,
        max_dilation=max_dilation,
        max_padding=max_padding,
    )
    strides = [1 if form == "same" else draw(st.integers(1, max_stride)) for _ in range(dims)]

    out_spatial = tuple(
        (size + before + after - spacing * (taps - 1) - 1) // step + 1
        for size, (before, after), taps, spacing, step in zip(
            sizes, pads, kernels, dilations, strides, strict=True
        )
    )
    in_channels = group_count * in_per_group
    out_channels = group_count * out_per_group
    leading = () if batch is None else (batch,)
    x_shape = (*leading, in_channels, *sizes)
    weight_shape = (out_channels, in_per_group, *kernels)
    terms = in_per_group * math.prod(kernels)

    dtype = draw(st.sampled_from(dtypes))
    values = _element_strategy(dtype, elements, terms)
    x = _array(draw, dtype, x_shape, values)
    weight = _array(draw, dtype, weight_shape, values)
    has_bias = draw(st.booleans()) if bias is None else bias
    bias_array = _array(draw, dtype, (out_channels,), values) if has_bias else None
    return ConvProblem(
        x=x,
        weight=weight,
        bias=bias_array,
        stride=_compact(draw, strides),
        padding=padding,
        dilation=_compact(draw, dilations),
        groups=group_count,
        padding_mode=mode,
        out_shape=(*leading, out_channels, *out_spatial),
    )


def _compact(draw: st.DrawFn, values: list[int]) -> int | tuple[int, ...]:
    """Return one int for every axis when they agree (sometimes), else one per axis."""
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return tuple(values)


def conv_problems_strategy(
    *,
    spatial_dims: int | Sequence[int],
    batched: bool | None,
    dtypes: Sequence[DTypeLike],
    elements: str | st.SearchStrategy[Any],
    max_batch: int,
    max_side: int,
    max_channels: int,
    max_kernel: int,
    stride: bool,
    dilation: bool,
    groups: bool,
    padding_forms: Sequence[str],
    padding_modes: Sequence[str],
    max_padding: int,
    bias: bool | None,
    torch_compatible: bool,
    allow_empty: bool,
) -> st.SearchStrategy[ConvProblem]:
    """Check the options of :func:`mimo_conv.testing.conv_problems` and build the strategy.

    Examples
    --------
    >>> from hypothesis import given
    >>> strategy = conv_problems_strategy(
    ...     spatial_dims=1, batched=False, dtypes=("int64",), elements="integers",
    ...     max_batch=1, max_side=3, max_channels=1, max_kernel=1, stride=False,
    ...     dilation=False, groups=False, padding_forms=("valid",), padding_modes=("zeros",),
    ...     max_padding=0, bias=False, torch_compatible=False, allow_empty=False)
    >>> @given(strategy)
    ... def test_one_channel(problem):
    ...     assert problem.x.shape[0] == 1 and problem.out_shape == problem.x.shape
    >>> test_one_channel()
    """
    dims = (spatial_dims,) if isinstance(spatial_dims, int) else tuple(spatial_dims)
    if not dims or any(not isinstance(d, int) or d < 1 for d in dims):
        msg = f"spatial_dims must be an int >= 1 or a sequence of them, got {spatial_dims!r}"
        raise ValueError(msg)
    forms = tuple(padding_forms)
    modes = tuple(padding_modes)
    if torch_compatible:
        forms = tuple(form for form in forms if form in _TORCH_FORMS)
        modes = tuple(mode for mode in modes if mode == "zeros")
    for name, chosen, valid in (
        ("padding_forms", forms, PADDING_FORMS),
        ("padding_modes", modes, PADDING_MODES),
    ):
        if not chosen or any(item not in valid for item in chosen):
            msg = f"{name} must be a non-empty sequence among {valid!r}, got {chosen!r}"
            raise ValueError(msg)
    for name, value, minimum in (
        ("max_batch", max_batch, 0 if allow_empty else 1),
        ("max_side", max_side, 1),
        ("max_channels", max_channels, 1),
        ("max_kernel", max_kernel, 1),
        ("max_padding", max_padding, 0),
    ):
        if value < minimum:
            msg = f"{name} must be >= {minimum}, got {value!r}"
            raise ValueError(msg)
    if not dtypes:
        msg = f"dtypes must be a non-empty sequence of dtypes, got {dtypes!r}"
        raise ValueError(msg)
    return _problems(
        spatial_dims=dims,
        batched=batched,
        dtypes=tuple(np.dtype(dtype) for dtype in dtypes),
        elements=elements,
        max_batch=max_batch,
        max_side=max_side,
        max_channels=max_channels,
        max_kernel=max_kernel,
        max_stride=2 if stride else 1,
        max_dilation=2 if dilation else 1,
        groups=groups,
        padding_forms=forms,
        padding_modes=modes,
        max_padding=max_padding,
        bias=bias,
        allow_empty=allow_empty,
    )
