"""Test your own convolution against mimo_conv: strategies, a rigorous tolerance, an assertion.

A five-line hypothesis test of a convolution you wrote (a GPU kernel, a framework op, a
homework) against the exact result::

    from hypothesis import given
    from mimo_conv.testing import assert_conv_close, conv_problems

    @given(conv_problems(dtypes=("float32",), torch_compatible=True))
    def test_my_conv(problem):
        actual = my_conv2d(problem.x, problem.weight, problem.bias, **problem.torch_kwargs())
        assert_conv_close(actual, problem.x, problem.weight, problem.bias,
                          **problem.conv_kwargs())

* :func:`conv_problems` generates valid problems (needs hypothesis:
  ``pip install "mimo_conv[testing]"``; nothing else here does);
* :func:`error_bound` is the tolerance: the forward error bound of a dot product in any
  summation order, elementwise, computed in float64;
* :func:`assert_conv_close` compares with the exact result (finite floats are converted
  exactly) and reports the worst element when the bound is exceeded.

Examples
--------
>>> import numpy as np
>>> from mimo_conv import testing
>>> x = np.arange(6, dtype=np.float32).reshape(1, 6) / 7
>>> w = np.full((1, 1, 3), 1 / 3, dtype=np.float32)
>>> testing.assert_conv_close(np.convolve(x[0], w[0, 0], "valid")[None], x, w)
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from mimo_conv._core.arguments import PADDING_MODES
from mimo_conv.testing import conventions as conventions
from mimo_conv.testing.assertions import assert_close, assert_conv_close
from mimo_conv.testing.bounds import bound, conv_error_bound
from mimo_conv.testing.precision import PRESETS, Precision
from mimo_conv.testing.problems import ELEMENT_KINDS as ELEMENT_KINDS
from mimo_conv.testing.problems import PADDING_FORMS as PADDING_FORMS
from mimo_conv.testing.problems import BackwardProblem, ConvProblem, TransposeProblem
from mimo_conv.testing.winograd import winograd_bound

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "PRESETS",
    "BackwardProblem",
    "ConvProblem",
    "Precision",
    "TransposeProblem",
    "assert_close",
    "assert_conv_close",
    "backward_problems",
    "bound",
    "conv_problems",
    "error_bound",
    "transpose_problems",
    "winograd_bound",
]

_INSTALL_HINT = (
    "mimo_conv.testing.conv_problems needs hypothesis; install it with the testing extra: "
    'pip install "mimo_conv[testing]"'
)


def conv_problems(
    *,
    spatial_dims: int | Sequence[int] = 2,
    batched: bool | None = None,
    dtypes: Sequence[DTypeLike] = ("float64", "float32"),
    elements: str | SearchStrategy[Any] = "floats",
    max_batch: int = 2,
    max_side: int = 5,
    max_channels: int = 4,
    max_kernel: int = 3,
    stride: bool = True,
    dilation: bool = True,
    groups: bool = True,
    padding_forms: Sequence[str] = PADDING_FORMS,
    padding_modes: Sequence[str] = PADDING_MODES,
    max_padding: int = 2,
    bias: bool | None = None,
    torch_compatible: bool = False,
    allow_empty: bool = False,
    precision: str | Precision | None = None,
) -> SearchStrategy[ConvProblem]:
    """Return a hypothesis strategy of valid convolution problems.

    Every problem is valid by construction: each bound is derived from earlier draws (the
    kernel fits the padded input, reflect padding is narrower than the input, groups divide
    the channels, ...), so nothing is filtered and no health check fails.

    Parameters
    ----------
    spatial_dims : int or sequence of int, optional
        The number of spatial axes, or the choices.
    batched : bool or None, optional
        Whether ``x`` has a batch axis; None for both.
    dtypes : sequence of dtype, optional
        The choices of dtype of ``x``, ``weight`` and ``bias`` (one per problem):
        ``"float16"``, ``"float32"``, ``"float64"``, ``"complex64"``, ``"complex128"``,
        integer dtypes, or ``"object"`` (:class:`fractions.Fraction` and Python ints).
    elements : str or SearchStrategy, optional
        ``"floats"``, ``"integers"``, ``"cancellation"``, ``"subnormal"``, ``"exact"``, or a
        strategy. The values: ``"floats"`` (any float of the dtype in a range that cannot overflow),
        ``"integers"`` (integer values small enough that every sum is exact in the dtype, so
        any correct implementation is bit-exact), ``"cancellation"`` (large values of both
        signs plus small ones: sums much smaller than their terms), ``"subnormal"`` (values
        whose products fall into the subnormal range of the accumulation dtype), or a
        strategy of Python numbers the dtype can hold. ``"exact"`` (with ``precision=``):
        integers representable in the model's input format whose every partial sum is exact
        in its accumulation and output formats (the benchdnn rule), so any correct kernel in
        that model matches the exact result bit for bit. Arrays of a named kind are
        generated by NumPy from one drawn seed (with zeros, the limits and the smallest
        subnormal mixed in), so large problems are cheap to draw and shrink.
    max_batch, max_side, max_channels, max_kernel : int, optional
        Largest batch, spatial input size, ``C_in`` and ``C_out``, and kernel taps per axis.
    stride, dilation, groups : bool, optional
        Whether to generate strides up to 2, dilations up to 2, and ``groups > 1``.
    padding_forms : sequence of str, optional
        Among ``"int"``, ``"per_axis"``, ``"pairs"`` (asymmetric), ``"valid"``, ``"same"``,
        ``"full"``.
    padding_modes : sequence of str, optional
        Among :data:`mimo_conv.PADDING_MODES`.
    max_padding : int, optional
        Largest explicit padding per side.
    bias : bool or None, optional
        Always, never, or (None) sometimes a bias.
    torch_compatible : bool, optional
        Only problems ``torch.nn.functional.conv{1,2,3}d`` accepts unchanged: zeros padding,
        symmetric (``"int"``, ``"per_axis"``, ``"valid"``, ``"same"``), so that
        :meth:`ConvProblem.torch_kwargs` works.
    allow_empty : bool, optional
        Also generate a batch of 0 and 0 output channels.
    precision : str or Precision, optional
        The model ``elements="exact"`` makes sums exact in (default: the dtype's own).

    Returns
    -------
    SearchStrategy of ConvProblem

    Notes
    -----
    Shrinking goes towards the first choice of each option: the first of ``spatial_dims``,
    unbatched, one input and one output channel, ``groups=1``, stride and dilation 1, the
    first padding form and mode with padding 0, a one-tap kernel, no bias, the first dtype,
    and elements 0. A failing example is therefore as small as the bug allows.

    Examples
    --------
    >>> from hypothesis import given
    >>> import mimo_conv as mc
    >>> @given(conv_problems(spatial_dims=(1, 2)))
    ... def test_shape(problem):
    ...     out = mc.conv(problem.x, problem.weight, problem.bias, **problem.conv_kwargs())
    ...     assert out.shape == problem.out_shape
    >>> test_shape()
    """
    return _strategies().conv_problems_strategy(  # type: ignore[no-any-return]
        spatial_dims=spatial_dims,
        batched=batched,
        dtypes=dtypes,
        elements=elements,
        max_batch=max_batch,
        max_side=max_side,
        max_channels=max_channels,
        max_kernel=max_kernel,
        stride=stride,
        dilation=dilation,
        groups=groups,
        padding_forms=padding_forms,
        padding_modes=padding_modes,
        max_padding=max_padding,
        bias=bias,
        torch_compatible=torch_compatible,
        allow_empty=allow_empty,
        precision=precision,
    )


def _strategies() -> Any:
    """Return the strategies module, imported on first use (it needs hypothesis)."""
    try:
        strategies = importlib.import_module("mimo_conv.testing.strategies")
    except ImportError as error:
        if error.name is not None and error.name.split(".")[0] == "hypothesis":
            raise ImportError(_INSTALL_HINT) from error
        raise
    return strategies


def backward_problems(
    *, precision: str | Precision | None = None, **options: Any
) -> SearchStrategy[BackwardProblem]:
    """Return a strategy of forward problems with a ``grad_output``, for the gradients.

    ``options`` are those of :func:`conv_problems`. Each :class:`BackwardProblem` gives the
    arguments of :func:`mimo_conv.grad.conv_input` (``input_args()``), ``conv_weight``
    (``weight_args()``) and ``conv_bias`` (``grad_output``, ``batched``), the forward
    options (``kwargs()``), and the terms per output of each (``n_input``, ``n_weight``,
    ``n_bias``).

    Examples
    --------
    >>> from hypothesis import given
    >>> from mimo_conv import grad
    >>> @given(backward_problems(dtypes=("float32",), max_side=4))
    ... def test_input_gradient(problem):
    ...     got = grad.conv_input(*problem.input_args(), **problem.kwargs())
    ...     assert_close(got, "conv_input", *problem.input_args(), **problem.kwargs())
    >>> test_input_gradient()
    """
    signature = inspect.signature(conv_problems)
    forward = {name: p.default for name, p in signature.parameters.items() if name != "precision"}
    unknown = set(options) - set(forward)
    if unknown:
        msg = f"options must be among conv_problems' options, got {sorted(unknown)!r}"
        raise TypeError(msg)
    forward.update(options)
    return _strategies().backward_problems_strategy(forward, precision)  # type: ignore[no-any-return]


def transpose_problems(
    *,
    spatial_dims: int | Sequence[int] = (1, 2),
    batched: bool | None = None,
    dtypes: Sequence[DTypeLike] = ("float64", "float32"),
    elements: str | SearchStrategy[Any] = "floats",
    max_batch: int = 2,
    max_side: int = 5,
    max_channels: int = 4,
    max_kernel: int = 3,
    max_padding: int = 2,
    groups: bool = True,
    bias: bool | None = None,
    precision: str | Precision | None = None,
) -> SearchStrategy[TransposeProblem]:
    """Return a strategy of valid transposed convolutions, with ``output_padding``.

    The options mean what they mean for :func:`conv_problems`; strides and dilations go up
    to 2 and ``output_padding`` below ``max(stride, dilation)``.

    Examples
    --------
    >>> from hypothesis import given
    >>> import mimo_conv as mc
    >>> @given(transpose_problems(dtypes=("float32",)))
    ... def test_transpose(problem):
    ...     got = mc.conv_transpose(*problem.args(), **problem.kwargs())
    ...     assert_close(got, "conv_transpose", *problem.args(), **problem.kwargs())
    >>> test_transpose()
    """
    dims = (spatial_dims,) if isinstance(spatial_dims, int) else tuple(spatial_dims)
    if isinstance(elements, str) and elements not in ELEMENT_KINDS:
        msg = f"elements must be one of {ELEMENT_KINDS!r} or a strategy, got {elements!r}"
        raise ValueError(msg)
    return _strategies().transpose_problems_strategy(  # type: ignore[no-any-return]
        spatial_dims=dims,
        batched=batched,
        dtypes=tuple(dtypes),
        elements=elements,
        max_batch=max_batch,
        max_side=max_side,
        max_channels=max_channels,
        max_kernel=max_kernel,
        max_padding=max_padding,
        groups=groups,
        bias=bias,
        precision=precision,
    )


def error_bound(
    x: Any,
    weight: Any = None,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    *,
    padding_mode: str = "zeros",
    dtype: DTypeLike | None = None,
    precision: str | Precision | None = None,
    probabilistic: float | None = None,
) -> NDArray[np.floating[Any]]:
    """Elementwise bound on the rounding error of a convolution computed in any order.

    For a real result with unit roundoff ``u`` (of the accumulation dtype) and
    ``n = C_in / groups * prod(kernel)`` terms per output::

        |computed - exact| <= gamma_{n+1} * (conv(|x|, |w|) + |b|) + n * eta * (1 + gamma)

    with ``gamma_k = k u / (1 - k u)`` (Higham, section 3.1; ``n`` without a bias) and
    ``eta`` the smallest subnormal (a product that underflows is off by at most ``eta / 2``).
    Complex results: ``sqrt(2)`` times the bound for ``2n`` real terms. float16: computed
    in float32, plus the final rounding to float16. Exact arithmetic (integers, Python ints
    and fractions): 0. The magnitudes are computed in float64 and inflated for their own
    rounding, so the bound is rigorous.

    Parameters
    ----------
    x : array_like or ConvProblem
        The input, or a whole generated problem (then pass nothing else).
    weight, bias, stride, padding, dilation, groups, padding_mode
        As in :func:`mimo_conv.conv`.
    dtype : dtype, optional
        The dtype of the result bounded; default the one :func:`mimo_conv.conv` returns.
    precision : str or Precision, optional
        The precision model of the kernel (see :func:`bound`); overrides ``dtype``.
    probabilistic : float, optional
        A failure probability: the non-rigorous probabilistic bound (see :func:`bound`).

    Returns
    -------
    ndarray of float64, of the output's shape
        Non-finite where a window holds a non-finite input.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 4), dtype=np.float32)
    >>> w = np.ones((1, 1, 4), dtype=np.float32)
    >>> bound = error_bound(x, w)
    >>> bound  # gamma_4 * 4 = 16 u / (1 - 4 u), u = 2**-24
    array([[9.5367...e-07]])
    >>> bool(error_bound(x, w, dtype=np.float64)[0, 0] < bound[0, 0])
    True
    """
    if isinstance(x, ConvProblem):
        return conv_error_bound(
            x.x,
            x.weight,
            x.bias,
            **x.conv_kwargs(),
            dtype=dtype,
            precision=precision,
            probabilistic=probabilistic,
        )
    if weight is None:
        msg = "weight must be given unless x is a ConvProblem, got None"
        raise TypeError(msg)
    return conv_error_bound(
        x,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        padding_mode=padding_mode,
        dtype=dtype,
        precision=precision,
        probabilistic=probabilistic,
    )
