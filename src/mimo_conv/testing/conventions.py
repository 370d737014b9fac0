"""Problems in a framework's conventions: test a JAX, TensorFlow or ONNX kernel in five lines.

Each strategy draws an ordinary problem (:func:`mimo_conv.testing.conv_problems`) and
expresses it in one framework's dialect: layouts and axis orders (JAX ``dimension_numbers``,
TensorFlow ``NHWC``/``HWIO``), its padding rules (``SAME`` at any stride, ``SAME_LOWER``,
JAX's negative padding, ONNX's begin-then-end ``pads``) and, for JAX, input dilation. The
result, a :class:`FrameworkProblem`, holds the framework's arguments and the canonical
problem they mean, so its :meth:`~FrameworkProblem.assert_close` checks the framework's
output against the exact result within the rigorous bound of
:func:`mimo_conv.testing.error_bound`::

    from hypothesis import given
    from mimo_conv.testing.conventions import jax_problems

    @given(jax_problems(dtypes=("float32",)))
    def test_my_jax_conv(problem):
        problem.assert_close(my_conv_general_dilated(*problem.args, **problem.kwargs))

The strategies need hypothesis (``pip install "mimo_conv[testing]"``), imported only when
one is built.

Examples
--------
>>> from hypothesis import given, settings
>>> from mimo_conv.compat import jax
>>> @settings(max_examples=5, database=None)
... @given(jax_problems())
... def test_adapter(problem):
...     problem.assert_close(jax.conv_general_dilated(*problem.args, **problem.kwargs))
>>> test_adapter()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import DTypeLike, NDArray

from mimo_conv._core.geometry_cache import build_geometry
from mimo_conv.testing.assertions import assert_conv_close
from mimo_conv.testing.problems import ConvProblem

__all__ = ["jax_problems", "onnx_problems", "tf_problems"]

if TYPE_CHECKING:
    from hypothesis.strategies import DrawFn, SearchStrategy

_INSTALL_HINT = (
    "mimo_conv.testing.conventions needs hypothesis; install it with the testing extra: "
    'pip install "mimo_conv[testing]"'
)
_SPATIAL_LETTERS = "DHW"


@dataclass(frozen=True, eq=False)
class FrameworkProblem:
    """A problem in a framework's dialect, and the canonical problem it means.

    Attributes
    ----------
    args : tuple
        Positional arguments of the framework's function (the arrays first).
    kwargs : dict
        Its keyword arguments (options, attributes).
    problem : ConvProblem
        The same convolution in mimo_conv's canonical terms: ``(N, C, *spatial)``,
        ``(O, I, *k)`` and non-negative ``(before, after)`` padding.
    output_order : tuple of int
        ``np.transpose`` axes taking the framework's output to ``(N, C, *spatial)``.

    Examples
    --------
    >>> p = ConvProblem(np.ones((1, 1, 3)), np.ones((1, 1, 2)), None, 1, ((0, 0),), 1, 1,
    ...                 "zeros", (1, 1, 2))
    >>> fp = FrameworkProblem((p.x, p.weight), {}, p, (0, 1, 2))
    >>> fp.assert_close(np.array([[[2.0, 2.0]]]))
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    problem: ConvProblem
    output_order: tuple[int, ...]

    def canonical_output(self, actual: Any) -> NDArray[Any]:
        """Return the framework's output as ``(N, C, *spatial)``."""
        return np.asarray(actual).transpose(self.output_order)

    def assert_close(self, actual: Any, *, check_dtype: bool = True) -> None:
        """Assert ``actual`` (the framework's output) is within the rigorous error bound."""
        p = self.problem
        assert_conv_close(
            self.canonical_output(actual), p.x, p.weight, p.bias, check_dtype=check_dtype,
            **p.conv_kwargs(),
        )  # fmt: skip


def _base(
    draw: DrawFn,
    *,
    spatial_dims: int | Sequence[int],
    dtypes: Sequence[DTypeLike],
    elements: Any,
    groups: bool,
    stride_and_dilation: bool,
) -> tuple[ConvProblem, tuple[tuple[int, int], ...]]:
    """Draw a batched, zero-padded canonical problem and its padding as pairs."""
    from hypothesis import strategies as st  # noqa: PLC0415 - optional dependency

    from mimo_conv.testing import conv_problems  # noqa: PLC0415 - the public builder

    problem = draw(
        conv_problems(
            spatial_dims=spatial_dims, batched=True, dtypes=dtypes, elements=elements,
            padding_forms=("int", "per_axis", "pairs", "valid"), padding_modes=("zeros",),
            groups=groups, bias=False,
        )
    )  # fmt: skip
    if not stride_and_dilation:  # TensorFlow documents both above 1 as unsupported
        keep_stride = draw(st.booleans())
        problem = _replace(problem, **{"dilation" if keep_stride else "stride": 1})
    return problem, _geometry(problem).padding


def _geometry(problem: ConvProblem) -> Any:
    return build_geometry(
        problem.x.shape, problem.weight.shape, None, stride=problem.stride,
        padding=problem.padding, dilation=problem.dilation, groups=problem.groups,
        padding_mode="zeros",
    )  # fmt: skip


def _replace(problem: ConvProblem, **changes: Any) -> ConvProblem:
    """Return the problem with some fields changed and its output shape recomputed."""
    changed = dataclasses.replace(problem, **changes)
    return dataclasses.replace(changed, out_shape=_geometry(changed).out_shape)


def _same_fits(problem: ConvProblem, padding: str) -> bool:
    geometry = _geometry(problem)
    if padding == "valid":
        return all(
            extent <= size
            for extent, size in zip(geometry.window_extent, geometry.input_shape, strict=True)
        )
    return True


def _string_padding(draw: DrawFn, problem: ConvProblem, choices: Sequence[str]) -> str | None:
    """Draw a padding string (lower case, mimo_conv's spelling) that fits, or None."""
    from hypothesis import strategies as st  # noqa: PLC0415

    choice = draw(st.sampled_from([None, *choices]))
    if choice is None or not _same_fits(problem, choice):
        return None
    return str(choice)


def _tuple(value: int | tuple[int, ...], rank: int) -> tuple[int, ...]:
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _order(draw: DrawFn, letters: str) -> str:
    from hypothesis import strategies as st  # noqa: PLC0415

    return "".join(draw(st.permutations(letters)))


def _jax(
    draw: DrawFn,
    spatial_dims: int | Sequence[int],
    dtypes: Sequence[DTypeLike],
    elements: Any,
    negative_padding: bool,
    input_dilation: bool,
) -> FrameworkProblem:
    from hypothesis import strategies as st  # noqa: PLC0415

    problem, pairs = _base(
        draw, spatial_dims=spatial_dims, dtypes=dtypes, elements=elements, groups=True,
        stride_and_dilation=True,
    )  # fmt: skip
    rank = problem.spatial_dims
    letters = _SPATIAL_LETTERS[-rank:]
    specs = (
        _order(draw, "NC" + letters),
        _order(draw, "OI" + letters),
        _order(draw, "NC" + letters),
    )
    spatial = [c for c in specs[1] if c not in "OI"]
    canonical_letters = "".join(spatial)
    # the canonical problem lists its spatial axes in the kernel spec's order
    order = [letters.index(c) for c in spatial]
    x = problem.x.transpose(0, 1, *(2 + axis for axis in order))
    weight = problem.weight.transpose(0, 1, *(2 + axis for axis in order))
    stride = tuple(_tuple(problem.stride, rank)[axis] for axis in order)
    dilation = tuple(_tuple(problem.dilation, rank)[axis] for axis in order)
    pairs = tuple(pairs[axis] for axis in order)
    lhs_dilation = (1,) * rank
    padding: Any = pairs
    lhs = x
    canonical_x = x
    if input_dilation and draw(st.booleans()):
        lhs_dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
        canonical_x = _zero_insert(x, lhs_dilation)
    elif (string := _string_padding(draw, _replace(problem, x=x, weight=weight, stride=stride,
                                                    dilation=dilation, padding=pairs),
                                    ("same", "same_lower", "valid"))) is not None:  # fmt: skip
        padding = string.upper()
        pairs = string  # type: ignore[assignment]
    if negative_padding and not isinstance(padding, str) and draw(st.booleans()):
        # crop: extend the input with junk on a side that has no padding, and pad negatively
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        extended = []
        for axis, (low, high) in enumerate(padding):
            extra_low = draw(st.integers(0, 2)) if low == 0 else 0
            extra_high = draw(st.integers(0, 2)) if high == 0 else 0
            extended.append((low - extra_low, high - extra_high, extra_low, extra_high, axis))
        if lhs_dilation == (1,) * rank:
            for _, _, extra_low, extra_high, axis in extended:
                lhs = _extend(lhs, 2 + axis, extra_low, extra_high, rng)
            padding = tuple((low, high) for low, high, *_ in extended)
    canonical = _replace(
        problem, x=canonical_x, weight=weight, stride=stride, dilation=dilation, padding=pairs
    )
    dn = (specs[0], specs[1], specs[2])
    lhs_out = lhs.transpose([("NC" + canonical_letters).index(c) for c in specs[0]])
    rhs_out = weight.transpose([("OI" + canonical_letters).index(c) for c in specs[1]])
    kwargs: dict[str, Any] = {
        "rhs_dilation": dilation, "dimension_numbers": dn,
        "feature_group_count": problem.groups,
    }  # fmt: skip
    if lhs_dilation != (1,) * rank:
        kwargs["lhs_dilation"] = lhs_dilation
    output_order = tuple(specs[2].index(c) for c in ("N", "C", *spatial))
    return FrameworkProblem((lhs_out, rhs_out, stride, padding), kwargs, canonical, output_order)


def _zero_insert(array: NDArray[Any], dilation: tuple[int, ...]) -> NDArray[Any]:
    spatial = array.shape[2:]
    shape = tuple((n - 1) * d + 1 for n, d in zip(spatial, dilation, strict=True))
    out = np.zeros(array.shape[:2] + shape, dtype=array.dtype)
    every: tuple[Any, ...] = (Ellipsis, *(slice(None, None, d) for d in dilation))
    out[every] = array
    return out


def _extend(
    array: NDArray[Any], axis: int, before: int, after: int, rng: np.random.Generator
) -> NDArray[Any]:
    """Add junk (values the crop must drop) before and after one axis."""
    shape = list(array.shape)
    parts = []
    for count in (before, after):
        shape[axis] = count
        parts.append(rng.integers(-9, 10, shape).astype(array.dtype))
    return np.concatenate([parts[0], array, parts[1]], axis=axis)


def jax_problems(
    *,
    spatial_dims: int | Sequence[int] = (1, 2),
    dtypes: Sequence[DTypeLike] = ("float32",),
    elements: Any = "floats",
    negative_padding: bool = True,
    input_dilation: bool = True,
) -> SearchStrategy[FrameworkProblem]:
    """Problems for ``jax.lax.conv_general_dilated(*problem.args, **problem.kwargs)``.

    Random ``dimension_numbers`` strings (any order of the letters), feature groups,
    strides, kernel dilation, padding as pairs or ``"SAME"``, ``"SAME_LOWER"``,
    ``"VALID"``, and optionally negative (cropping) padding and input dilation.

    Parameters
    ----------
    spatial_dims : int or sequence of int, optional
        The number of spatial axes, or the choices.
    dtypes : sequence of dtype, optional
        The operands' dtype choices.
    elements : str, optional
        As for :func:`mimo_conv.testing.conv_problems` (``"integers"`` makes every correct
        implementation bit-exact).
    negative_padding, input_dilation : bool, optional
        Whether to generate cropping padding and ``lhs_dilation``.

    Returns
    -------
    SearchStrategy of FrameworkProblem

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=3, database=None)
    ... @given(jax_problems(spatial_dims=2))
    ... def test_args(problem):
    ...     assert len(problem.args) == 4 and "dimension_numbers" in problem.kwargs
    >>> test_args()
    """
    st = _hypothesis()
    strategy = st.composite(_jax)(spatial_dims, dtypes, elements, negative_padding, input_dilation)
    return cast("SearchStrategy[FrameworkProblem]", strategy)


def _tf(
    draw: DrawFn,
    spatial_dims: int,
    dtypes: Sequence[DTypeLike],
    elements: Any,
    channels_first: bool,
) -> FrameworkProblem:
    from hypothesis import strategies as st  # noqa: PLC0415

    problem, pairs = _base(
        draw, spatial_dims=spatial_dims, dtypes=dtypes, elements=elements, groups=False,
        stride_and_dilation=False,
    )  # fmt: skip
    rank = problem.spatial_dims
    letters = {1: "W", 2: "HW", 3: "DHW"}[rank]
    data_format = ("NC" + letters) if channels_first else ("N" + letters + "C")
    string = _string_padding(draw, problem, ("same", "valid"))
    padding: Any
    if string is not None:
        padding = string.upper()
        problem = _replace(problem, padding=string)
    elif rank == 2 and draw(st.booleans()):
        per_letter = dict(zip(letters, pairs, strict=True))
        padding = [list(per_letter.get(c, (0, 0))) for c in data_format]
        problem = _replace(problem, padding=pairs)
    else:  # conv1d and conv3d take no explicit padding: VALID on a pre-padded input
        widths = [(0, 0), (0, 0), *pairs]
        problem = _replace(problem, x=np.pad(problem.x, widths), padding="valid")
        padding = "VALID"
    order = [("NC" + letters).index(c) for c in data_format]
    x = problem.x.transpose(order)
    filters = problem.weight.transpose([*range(2, rank + 2), 1, 0])  # (*k, I, O)
    stride, dilation = _tuple(problem.stride, rank), _tuple(problem.dilation, rank)
    spatial_at = [data_format.index(c) for c in letters]
    strides = [1] * (rank + 2)
    dilations = [1] * (rank + 2)
    for axis, step, spacing in zip(spatial_at, stride, dilation, strict=True):
        strides[axis], dilations[axis] = step, spacing
    kwargs: dict[str, Any] = {"padding": padding, "data_format": data_format}
    if rank == 1:
        kwargs.update(stride=stride[0], dilations=dilation[0])
    else:
        kwargs.update(strides=strides, dilations=dilations)
    output_order = tuple(data_format.index(c) for c in "NC" + letters)
    return FrameworkProblem((x, filters), kwargs, problem, output_order)


def tf_problems(
    *,
    spatial_dims: int = 2,
    dtypes: Sequence[DTypeLike] = ("float32",),
    elements: Any = "floats",
    channels_first: bool = False,
) -> SearchStrategy[FrameworkProblem]:
    """Problems for ``tf.nn.conv{1,2,3}d(*problem.args, **problem.kwargs)``.

    Channels-last input (``NWC``/``NHWC``/``NDHWC``, or channels first if asked), filters
    ``(*k, I, O)``, ``"SAME"`` (at any stride), ``"VALID"`` or, in 2-d, explicit padding
    in TensorFlow's per-axis list; a stride or a dilation (not both above 1, which
    TensorFlow documents as unsupported).

    Parameters
    ----------
    spatial_dims : {1, 2, 3}, optional
    dtypes : sequence of dtype, optional
    elements : str, optional
        As for :func:`mimo_conv.testing.conv_problems`.
    channels_first : bool, optional
        ``NCHW`` (GPU kernels only in TensorFlow) instead of ``NHWC``.

    Returns
    -------
    SearchStrategy of FrameworkProblem

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> from mimo_conv.compat import tf
    >>> @settings(max_examples=3, database=None)
    ... @given(tf_problems())
    ... def test_adapter(problem):
    ...     problem.assert_close(tf.conv2d(*problem.args, **problem.kwargs))
    >>> test_adapter()
    """
    st = _hypothesis()
    strategy = st.composite(_tf)(spatial_dims, dtypes, elements, channels_first)
    return cast("SearchStrategy[FrameworkProblem]", strategy)


def _onnx(
    draw: DrawFn, spatial_dims: int | Sequence[int], dtypes: Sequence[DTypeLike], elements: Any
) -> FrameworkProblem:
    problem, pairs = _base(
        draw, spatial_dims=spatial_dims, dtypes=dtypes, elements=elements, groups=True,
        stride_and_dilation=True,
    )  # fmt: skip
    rank = problem.spatial_dims
    attributes: dict[str, Any] = {
        "strides": list(_tuple(problem.stride, rank)),
        "dilations": list(_tuple(problem.dilation, rank)),
        "group": problem.groups,
        "kernel_shape": list(problem.weight.shape[2:]),
    }
    string = _string_padding(draw, problem, ("same", "same_lower", "valid"))
    if string is not None:
        attributes["auto_pad"] = {"same": "SAME_UPPER", "same_lower": "SAME_LOWER"}.get(
            string, "VALID"
        )
        problem = _replace(problem, padding=string)
    else:
        attributes["pads"] = [low for low, _ in pairs] + [high for _, high in pairs]
        problem = _replace(problem, padding=pairs)
    return FrameworkProblem(
        (problem.x, problem.weight), attributes, problem, tuple(range(rank + 2))
    )


def onnx_problems(
    *,
    spatial_dims: int | Sequence[int] = (1, 2),
    dtypes: Sequence[DTypeLike] = ("float32",),
    elements: Any = "floats",
) -> SearchStrategy[FrameworkProblem]:
    """Problems for ONNX ``Conv``: ``args`` are ``X`` and ``W``, ``kwargs`` its attributes.

    ``auto_pad`` (``SAME_UPPER``, ``SAME_LOWER``, ``VALID``) or ``pads`` (all begins, then
    all ends), ``strides``, ``dilations``, ``group`` and ``kernel_shape``.

    Parameters
    ----------
    spatial_dims : int or sequence of int, optional
    dtypes : sequence of dtype, optional
    elements : str, optional
        As for :func:`mimo_conv.testing.conv_problems`.

    Returns
    -------
    SearchStrategy of FrameworkProblem

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> from mimo_conv.compat import onnx
    >>> @settings(max_examples=3, database=None)
    ... @given(onnx_problems())
    ... def test_adapter(problem):
    ...     problem.assert_close(onnx.conv(*problem.args, **problem.kwargs))
    >>> test_adapter()
    """
    st = _hypothesis()
    strategy = st.composite(_onnx)(spatial_dims, dtypes, elements)
    return cast("SearchStrategy[FrameworkProblem]", strategy)


def _hypothesis() -> Any:
    """Import hypothesis's strategies, or raise an ImportError naming the extra."""
    try:
        from hypothesis import strategies  # noqa: PLC0415 - optional dependency
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return strategies
