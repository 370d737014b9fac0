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
from mimo_conv._ops.conv import conv
from mimo_conv.testing.bounds import bound_terms
from mimo_conv.testing.precision import Precision, as_precision, default_precision
from mimo_conv.testing.problems import (
    ELEMENT_KINDS,
    PADDING_FORMS,
    BackwardProblem,
    ConvProblem,
    TransposeProblem,
)

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


def exact_integer_limit(precision: Precision, terms: int) -> int:
    """Largest ``B`` with ``terms * B**2 + B`` exact in the model's accumulation and output.

    The benchdnn rule: integer inputs of magnitude at most ``B``, representable in the input
    format, whose every partial sum (at most ``terms`` products and a bias) is an integer of
    magnitude at most ``2**p`` of the accumulation and the output formats. 0 when even
    ``B = 1`` does not fit (then the strategy draws zeros).

    Examples
    --------
    >>> exact_integer_limit(as_precision("bfloat16"), 9)
    5
    >>> exact_integer_limit(as_precision("float16-accumulate"), 4096)
    0
    """
    digits = min(precision.accumulate_format.precision, precision.output_format.precision)
    top = 2**digits
    limit = min(2**precision.input_format.precision, _INT_LIMIT)
    limit = min(limit, int(precision.input_format.max))
    while limit > 0 and terms * limit * limit + limit > top:
        limit = min(limit - 1, math.isqrt(top // max(terms + 1, 1)))
    return int(max(limit, 0))


def _element_strategy(
    dtype: np.dtype[Any],
    kind: str | st.SearchStrategy[Any],
    terms: int,
    precision: Precision | None = None,
) -> st.SearchStrategy[Any]:
    """Python numbers of the ``kind`` for arrays of ``dtype``, ``terms`` products per sum."""
    if not isinstance(kind, str):
        return kind
    if kind not in ELEMENT_KINDS:
        msg = f"elements must be one of {ELEMENT_KINDS!r} or a strategy, got {kind!r}"
        raise ValueError(msg)
    if kind == "exact":
        model = precision if precision is not None else _dtype_model(dtype)
        bound = max(exact_integer_limit(model, terms), 1)
        return st.integers(-bound, bound)
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


def _integer_bound(dtype: np.dtype[Any], kind: str, terms: int, precision: Precision | None) -> int:
    """Return the largest magnitude of integer elements of ``kind`` for ``dtype``."""
    if kind == "exact":
        # When even 1 is too large (more than 2**p terms), values in {-1, 0, 1} and the
        # strategy caps the nonzeros each output meets (_sparse_terms).
        model = precision if precision is not None else _dtype_model(dtype)
        return max(exact_integer_limit(model, terms), 1)
    if dtype.kind in "iu":
        info_i = np.iinfo(dtype)
        return int(min(-int(info_i.min), int(info_i.max), _INT_LIMIT))
    if dtype.kind == "O":
        return _INT_LIMIT
    # n B^2 + B <= 2^p: every partial sum is an integer the output dtype holds exactly.
    exact_limit = 2 ** (np.finfo(dtype).nmant + 1)
    return max(1, min(_INT_LIMIT, math.isqrt(exact_limit // (terms + 1))))


def _float_limit(dtype: np.dtype[Any], terms: int) -> float:
    """Return a power of two ``L`` with ``(terms + 1) L**2`` far below the largest finite value."""
    info = np.finfo(dtype)
    return 2.0 ** math.floor(
        math.log2(min(_FLOAT_LIMIT, math.sqrt(float(info.max) / (4 * (terms + 1)))))
    )


def _subnormal_exponents(dtype: np.dtype[Any]) -> tuple[int, int]:
    """Exponents whose products land in the subnormal range of the accumulation dtype.

    Magnitudes near the square root of the smallest normal of the accumulation dtype; for
    float16 results near float16's own subnormals, where the final rounding is absolute.
    """
    if dtype == np.float16:
        return -13, -5
    accumulate = np.finfo(np.float32) if dtype == np.float16 else np.finfo(dtype)
    smallest_normal_exp = int(math.log2(float(accumulate.smallest_normal)))
    return smallest_normal_exp // 2 - 12, smallest_normal_exp // 2 + 4


def _real_strategy(dtype: np.dtype[Any], kind: str, terms: int) -> st.SearchStrategy[Any]:
    """Python floats for a real float ``dtype`` (float16/32/64 or longdouble)."""
    info = np.finfo(dtype)
    width: Literal[16, 32, 64] = 16 if dtype == np.float16 else 32 if dtype == np.float32 else 64
    if kind == "integers":
        bound = _integer_bound(dtype, kind, terms, None)
        return st.integers(-bound, bound)
    limit = _float_limit(dtype, terms)
    if kind == "floats":
        return st.floats(-limit, limit, width=width)
    if kind == "cancellation":
        signs = st.sampled_from([-limit, limit])
        small = st.floats(-1, 1, width=width)
        return st.one_of(signs, st.builds(operator.add, signs, small), small)
    low, high = _subnormal_exponents(dtype)
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


def _dtype_model(dtype: np.dtype[Any]) -> Precision:
    """Return the model of ``dtype`` computed as mimo_conv computes it (float64 if exact)."""
    model = default_precision(np.dtype(dtype.char.lower()) if dtype.kind == "c" else dtype)
    return model if model is not None else as_precision("float64")


def _generated(
    rng: np.random.Generator,
    dtype: np.dtype[Any],
    kind: str,
    terms: int,
    size: int,
    precision: Precision | None,
) -> NDArray[Any]:
    """``size`` values of a named ``kind`` drawn by NumPy (the large-array path)."""
    real = np.dtype(dtype.char.lower()) if dtype.kind == "c" else dtype
    if kind in ("integers", "exact") or dtype.kind in "iuO":
        strategy_bound = _integer_bound(real, kind, terms, precision)
        low = 0 if dtype.kind == "u" else -strategy_bound
        top = min(int(np.iinfo(dtype).max), _INT_LIMIT) if dtype.kind == "u" else strategy_bound
        values: NDArray[Any] = rng.integers(low, top + 1, size)
        if dtype.kind == "O":
            return np.array([int(v) for v in values], dtype=object)
        return values.astype(dtype)
    limit = _float_limit(real, terms * (2 if dtype.kind == "c" else 1))
    if kind == "floats":
        values = rng.uniform(-limit, limit, size)
    elif kind == "cancellation":
        big = rng.choice([-limit, limit], size)
        values = np.where(
            rng.random(size) < 0.5, big + rng.uniform(-1, 1, size), rng.uniform(-1, 1, size)
        )
    else:  # subnormal
        low, high = _subnormal_exponents(real)
        values = np.ldexp(rng.uniform(0.5, 1, size), rng.integers(low, high + 1, size))
        values = values * rng.choice([-1.0, 1.0], size)
    # Edge values, as hypothesis would draw them: zeros, the limits, the smallest subnormal.
    tiny = float(np.finfo(real).smallest_subnormal)
    edges = np.array([0.0, tiny, -tiny] if kind == "subnormal" else [0.0, limit, -limit, tiny])
    values = np.where(rng.random(size) < 0.1, rng.choice(edges, size), values)
    if dtype.kind == "c":
        return (values + 1j * rng.permutation(values)).astype(dtype)
    return values.astype(dtype)


def _array(
    draw: st.DrawFn,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    elements: st.SearchStrategy[Any],
    kind: str | st.SearchStrategy[Any] = "floats",
    terms: int = 1,
    precision: Precision | None = None,
) -> NDArray[Any]:
    """Draw an array of ``shape``: element by element, or from a seed when it is large."""
    size = math.prod(shape)
    # Small arrays: element by element or (what shrinking prefers, False first) from a seed,
    # so a shrinking shape keeps nonzero values and a failure stays a failure.
    # Named kinds always come from one drawn seed: every array is one draw, so a shape that
    # shrinks shifts no later draw, and the shrunk problem keeps nonzero values.
    if isinstance(kind, str):
        seed = draw(st.integers(0, 2**32 - 1))
        generated = _generated(np.random.default_rng(seed), dtype, kind, terms, size, precision)
        return generated.reshape(shape)
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
    precision: Precision | None = None,
    extra_terms: Any = None,
) -> ConvProblem:
    if extra_terms is None:
        extra_terms = _no_extra_terms
    dims = draw(st.sampled_from(spatial_dims))
    is_batched = draw(st.booleans()) if batched is None else batched
    lowest = 0 if allow_empty else 1
    batch = draw(st.integers(lowest, max_batch)) if is_batched else None
    # Channels per group first, then the groups that fit: shrinking the groups to 1 then
    # changes no other draw.
    in_per_group = draw(st.integers(1, max_channels))
    out_per_group = draw(st.integers(lowest, max_channels))
    fitting = max_channels // max(in_per_group, out_per_group, 1)
    group_count = draw(st.integers(1, fitting)) if groups else 1
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
    if extra_terms is not _no_extra_terms:
        options = {
            "stride": tuple(strides),
            "padding": padding,
            "dilation": tuple(dilations),
            "groups": group_count,
            "padding_mode": mode,
        }
        terms = max(terms, extra_terms(x_shape, weight_shape, options))
    values = _element_strategy(dtype, elements, terms, precision)
    spec = (elements, terms, precision)
    x = _array(draw, dtype, x_shape, values, *spec)
    weight = _array(draw, dtype, weight_shape, values, *spec)
    sparse = _sparse_terms(elements, dtype, terms, precision)
    if sparse is not None:
        # Each output of the forward conv meets each weight of its channel once.
        weight = cap_nonzeros(_rng(draw), weight, 0, sparse)
    has_bias = draw(st.booleans()) if bias is None else bias
    bias_array = _array(draw, dtype, (out_channels,), values, *spec) if has_bias else None
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


def _no_extra_terms(
    x_shape: tuple[int, ...], weight_shape: tuple[int, ...], options: dict[str, Any]
) -> int:
    """Return 0: a forward problem's values need only its own ``n`` to stay exact and finite."""
    del x_shape, weight_shape, options
    return 0


def _gradient_terms(
    x_shape: tuple[int, ...], weight_shape: tuple[int, ...], options: dict[str, Any]
) -> int:
    """Return the largest number of terms of an element of ``dL/dw``, ``dL/db`` or ``dL/dx``.

    ``N * prod(out)`` for the weight and bias gradients; for the input gradient counted by
    running it on ones (borders, reflected and replicated padding counted as they are).
    """
    ones_x, ones_w = np.ones(x_shape), np.ones(weight_shape)
    out_shape = _conv_shape(ones_x, ones_w, options)
    channels = weight_shape[0]
    positions = math.prod(out_shape) // max(channels, 1)
    per_input = _count("conv_input", (x_shape, ones_w, np.ones(out_shape)), options)
    return int(max(positions, per_input))


def _conv_shape(x: NDArray[Any], weight: NDArray[Any], options: dict[str, Any]) -> tuple[int, ...]:
    """Return the shape of ``mimo_conv.conv(x, weight, **options)``."""
    return tuple(conv(x, weight, **options).shape)


def _count(op: str, args: tuple[Any, ...], options: dict[str, Any]) -> int:
    """Return the largest number of terms of an output of ``op`` (a call on ones)."""
    return bound_terms(op, *args, **options).n


def _sparse_terms(
    kind: str | st.SearchStrategy[Any],
    dtype: np.dtype[Any],
    terms: int,
    precision: Precision | None,
) -> int | None:
    """For ``elements="exact"`` when even values in {-1, 0, 1} overflow ``2**p``: ``K``.

    Every output may then have at most ``K = 2**p - 1`` nonzero products (and a bias of
    magnitude 1), ``p`` the digits of the accumulation and output formats, so every partial
    sum is an integer of at most ``2**p``. None when no sparsity is needed.
    """
    if kind != "exact":
        return None
    model = precision if precision is not None else _dtype_model(dtype)
    if exact_integer_limit(model, terms) > 0:
        return None
    return int(2 ** min(model.accumulate_format.precision, model.output_format.precision) - 1)


def cap_nonzeros(
    rng: np.random.Generator, array: NDArray[Any], axis: int, limit: int
) -> NDArray[Any]:
    """Keep at most ``limit`` nonzeros among the elements of each index along ``axis``.

    The ones kept are chosen at random; the others become 0. A new array.

    Examples
    --------
    >>> capped = cap_nonzeros(np.random.default_rng(0), np.ones((2, 3, 3)), 0, 4)
    >>> (capped != 0).reshape(2, -1).sum(axis=1).tolist()
    [4, 4]
    """
    moved = np.moveaxis(np.array(array, copy=True), axis, 0)
    rows = moved.reshape(moved.shape[0], -1)
    for row in rows:
        nonzero = np.flatnonzero(row)
        if nonzero.size > limit:
            row[rng.choice(nonzero, nonzero.size - limit, replace=False)] = 0
    return np.moveaxis(rows.reshape(moved.shape), 0, axis)


def _rng(draw: st.DrawFn) -> np.random.Generator:
    """Return a NumPy generator seeded by one draw."""
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


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
    precision: str | Precision | None = None,
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
    model = None if precision is None else as_precision(precision)
    if isinstance(elements, str) and elements not in ELEMENT_KINDS:
        msg = f"elements must be one of {ELEMENT_KINDS!r} or a strategy, got {elements!r}"
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
        precision=model,
    )


def backward_problems_strategy(
    forward: dict[str, Any], precision: str | Precision | None
) -> st.SearchStrategy[BackwardProblem]:
    """Forward problems of :func:`conv_problems_strategy` with a drawn ``grad_output``.

    The values are bounded for the gradients' larger sums (``N * prod(out)`` terms for the
    weight gradient), so that every sum stays finite, and exact for ``"integers"``/``"exact"``.

    Examples
    --------
    >>> from hypothesis import given
    >>> options = dict(spatial_dims=1, batched=True, dtypes=("float32",), elements="floats",
    ...     max_batch=2, max_side=6, max_channels=2, max_kernel=3, stride=True, dilation=True,
    ...     groups=True, padding_forms=("int",), padding_modes=("zeros",), max_padding=1,
    ...     bias=None, torch_compatible=False, allow_empty=False)
    >>> @given(backward_problems_strategy(options, None))
    ... def test_shapes(problem):
    ...     assert problem.grad_output.shape == problem.forward.out_shape
    >>> test_shapes()
    """
    conv_problems_strategy(**forward, precision=precision)  # validates the options
    model = None if precision is None else as_precision(precision)
    elements = forward["elements"]

    @st.composite
    def build(draw: st.DrawFn) -> BackwardProblem:
        problem = draw(_problems(**_forward_kwargs(forward, model), extra_terms=_gradient_terms))
        terms = max(
            problem.n,
            _gradient_terms(problem.x.shape, problem.weight.shape, problem.conv_kwargs()),
        )
        dtype = problem.x.dtype
        values = _element_strategy(dtype, elements, terms, model)
        grad = _array(draw, dtype, problem.out_shape, values, elements, terms, model)
        sparse = _sparse_terms(elements, dtype, terms, model)
        if sparse is not None:
            # dL/dw and dL/db meet each grad_output element of their channel once; an
            # element of dL/dx meets one of an image at most once per kernel tap.
            batched = problem.x.ndim == problem.weight.ndim
            images = grad if batched else grad[np.newaxis]
            rng = _rng(draw)
            images = cap_nonzeros(rng, images, 0, sparse // math.prod(problem.weight.shape[2:]))
            images = cap_nonzeros(rng, images, 1, sparse)
            grad = images if batched else images[0]
        return BackwardProblem(problem, grad)

    return build()


def _forward_kwargs(forward: dict[str, Any], model: Precision | None) -> dict[str, Any]:
    """Return the keyword arguments of ``_problems`` from those of the public strategy."""
    dims = forward["spatial_dims"]
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    forms = tuple(forward["padding_forms"])
    modes = tuple(forward["padding_modes"])
    if forward.get("torch_compatible"):
        forms = tuple(form for form in forms if form in _TORCH_FORMS)
        modes = tuple(mode for mode in modes if mode == "zeros")
    return {
        "spatial_dims": dims,
        "batched": forward["batched"],
        "dtypes": tuple(np.dtype(d) for d in forward["dtypes"]),
        "elements": forward["elements"],
        "max_batch": forward["max_batch"],
        "max_side": forward["max_side"],
        "max_channels": forward["max_channels"],
        "max_kernel": forward["max_kernel"],
        "max_stride": 2 if forward["stride"] else 1,
        "max_dilation": 2 if forward["dilation"] else 1,
        "groups": forward["groups"],
        "padding_forms": forms,
        "padding_modes": modes,
        "max_padding": forward["max_padding"],
        "bias": forward["bias"],
        "allow_empty": forward["allow_empty"],
        "precision": model,
    }


@st.composite
def transpose_problems_strategy(
    draw: st.DrawFn,
    *,
    spatial_dims: tuple[int, ...] = (1, 2),
    batched: bool | None = None,
    dtypes: tuple[Any, ...] = ("float64", "float32"),
    elements: str | st.SearchStrategy[Any] = "floats",
    max_batch: int = 2,
    max_side: int = 5,
    max_channels: int = 4,
    max_kernel: int = 3,
    max_stride: int = 2,
    max_dilation: int = 2,
    max_padding: int = 2,
    groups: bool = True,
    bias: bool | None = None,
    precision: str | Precision | None = None,
) -> TransposeProblem:
    """Return valid :func:`mimo_conv.conv_transpose` problems, ``output_padding`` included.

    Per axis: the input size, the kernel taps, the stride and dilation, an
    ``output_padding`` below ``max(stride, dilation)`` (PyTorch's rule), then a padding that
    leaves at least one output element. Nothing is filtered.

    Examples
    --------
    >>> from hypothesis import given
    >>> import mimo_conv as mc
    >>> @given(transpose_problems_strategy())
    ... def test_shape(problem):
    ...     out = mc.conv_transpose(*problem.args(), **problem.kwargs())
    ...     assert out.shape == problem.out_shape
    >>> test_shape()
    """
    model = None if precision is None else as_precision(precision)
    dims = draw(st.sampled_from(tuple(spatial_dims)))
    is_batched = draw(st.booleans()) if batched is None else batched
    batch = draw(st.integers(1, max_batch)) if is_batched else None
    in_per_group = draw(st.integers(1, max_channels))
    out_per_group = draw(st.integers(1, max_channels))
    fitting = max_channels // max(in_per_group, out_per_group)
    group_count = draw(st.integers(1, fitting)) if groups else 1
    sizes, kernels, strides, dilations, extras, pads, outs = [], [], [], [], [], [], []
    for _ in range(dims):
        size = draw(st.integers(1, max_side))
        taps = draw(st.integers(1, max_kernel))
        step = draw(st.integers(1, max_stride))
        spacing = draw(st.integers(1, max_dilation)) if taps > 1 else 1
        extra = draw(st.integers(0, max(step, spacing) - 1))
        full = (size - 1) * step + spacing * (taps - 1) + extra + 1
        pad = draw(st.integers(0, min(max_padding, (full - 1) // 2)))
        sizes.append(size)
        kernels.append(taps)
        strides.append(step)
        dilations.append(spacing)
        extras.append(extra)
        pads.append(pad)
        outs.append(full - 2 * pad)
    in_channels = group_count * in_per_group
    out_channels = group_count * out_per_group
    leading = () if batch is None else (batch,)
    terms = in_per_group * math.prod(kernels)
    dtype = np.dtype(draw(st.sampled_from(tuple(dtypes))))
    values = _element_strategy(dtype, elements, terms, model)
    spec = (elements, terms, model)
    x = _array(draw, dtype, (*leading, in_channels, *sizes), values, *spec)
    weight = _array(draw, dtype, (in_channels, out_per_group, *kernels), values, *spec)
    sparse = _sparse_terms(elements, dtype, terms, model)
    if sparse is not None:
        # An output of channel o meets each weight[:, o mod C_out/groups] at most once.
        weight = cap_nonzeros(_rng(draw), weight, 1, sparse)
    has_bias = draw(st.booleans()) if bias is None else bias
    bias_array = _array(draw, dtype, (out_channels,), values, *spec) if has_bias else None
    return TransposeProblem(
        x=x,
        weight=weight,
        bias=bias_array,
        stride=_compact(draw, strides),
        padding=_compact(draw, pads),
        output_padding=_compact(draw, extras),
        groups=group_count,
        dilation=_compact(draw, dilations),
        out_shape=(*leading, out_channels, *outs),
    )
