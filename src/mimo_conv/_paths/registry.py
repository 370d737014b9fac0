"""The registry of computational paths: one record per path, and the check of ``method=``.

Every path module exports one :class:`~mimo_conv._paths.spec.PathSpec` named ``PATH``
holding everything about it (its function, when it applies, its chunks, its workspace and
cost formulas). Adding a path is one new module and one line in :data:`PATHS`. Every path
has the same signature, ``(x_padded, weight, geometry, chunking) -> out``: the padded input
``(N, C_in, *padded_shape)`` and the kernels in the compute dtype, and a new array
``(N, C_out, *output_shape)`` without bias. The engine adds the bias and casts.

Examples
--------
>>> [spec.name for spec in PATHS]  # doctest: +NORMALIZE_WHITESPACE
['naive', 'einsum', 'matmul', 'im2col', 'gemm', 'shift', 'row_gemm', 'depthwise', 'channels_last',
 'winograd']
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._paths import (
    channels_last,
    depthwise,
    einsum,
    gemm,
    im2col,
    matmul,
    naive,
    row_gemm,
    shift,
    winograd,
)
from mimo_conv._paths.spec import Correlate, PathSpec

#: Every computational path, in the order tables list them (the cost model's ties go to
#: the first). ``"auto"`` is not among them: it names the planner's choice.
PATHS: tuple[PathSpec, ...] = (
    naive.PATH,
    einsum.PATH,
    matmul.PATH,
    im2col.PATH,
    gemm.PATH,
    shift.PATH,
    row_gemm.PATH,
    depthwise.PATH,
    channels_last.PATH,
    winograd.PATH,
)

#: The records by name.
PATH_SPECS: dict[str, PathSpec] = {spec.name: spec for spec in PATHS}

#: The path functions by name.
METHODS: dict[str, Correlate] = {spec.name: spec.correlate for spec in PATHS}

#: Every value ``method=`` accepts (besides the deprecated spellings of
#: :data:`DEPRECATED_NAMES`).
METHOD_NAMES: tuple[str, ...] = ("auto", *METHODS)

#: Old spellings still accepted for this release, with a ``DeprecationWarning``.
DEPRECATED_NAMES: dict[str, str] = {"fold": "row_gemm"}


_Function = TypeVar("_Function", bound=Callable[..., Any])


def lists_the_methods(function: _Function) -> _Function:
    """Write every ``method=`` name into ``function``'s docstring, from the registry.

    The docstring's ``{METHOD_NAMES}`` becomes ``{"auto", "naive", ...}``, so a new path
    appears in every ``method : {...}`` entry with no edit there.

    Examples
    --------
    >>> def f() -> None:
    ...     "method : {METHOD_NAMES}"
    >>> lists_the_methods(f).__doc__.startswith('method : {"auto", "naive"')
    True
    """
    if function.__doc__ is not None:
        names = "{" + ", ".join(f'"{name}"' for name in METHOD_NAMES) + "}"
        function.__doc__ = function.__doc__.replace("{METHOD_NAMES}", names)
    return function


def canonical_method(method: object, *, stacklevel: int = 3) -> str:
    """Return the registered spelling of ``method``, warning about a deprecated one.

    Raises ``ValueError`` for an unknown name, quoting the accepted ones.

    Examples
    --------
    >>> canonical_method("gemm")
    'gemm'
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     canonical_method("fold")
    'row_gemm'
    >>> print(caught[0].message)
    method='fold' is deprecated: the path is now called 'row_gemm' (mimo_conv.fold is col2im)
    """
    if isinstance(method, str) and method in DEPRECATED_NAMES:
        new = DEPRECATED_NAMES[method]
        warnings.warn(
            f"method={method!r} is deprecated: the path is now called {new!r} "
            "(mimo_conv.fold is col2im)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return new
    if not isinstance(method, str) or method not in METHOD_NAMES:
        msg = f"method must be one of {METHOD_NAMES!r}, got {method!r}"
        raise ValueError(msg)
    return method


def check_method(
    method: object,
    geometry: ConvGeometry,
    *,
    dtype: np.dtype[Any] | None = None,
    forward: bool = True,
) -> str:
    """Return the path ``method`` names, or raise if it cannot compute this call.

    ``ValueError`` when the path cannot compute the geometry, or (``forward=False``: a
    gradient or a transposed convolution) computes forward convolutions only;
    ``TypeError`` when it cannot compute in the compute ``dtype`` (if given).

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(2,), stride=(1,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> check_method("einsum", g)
    'einsum'
    >>> check_method("matmul", g)
    Traceback (most recent call last):
    ...
    ValueError: method='matmul' needs a 1 x 1 kernel, got kernel shape (2,); use ...
    >>> g3 = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3, 3),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> check_method("winograd", g3, dtype=np.dtype(np.int64))
    Traceback (most recent call last):
    ...
    TypeError: method='winograd' computes in float or complex only ...
    """
    name = canonical_method(method, stacklevel=4)
    if name == "auto":
        return name
    spec = PATH_SPECS[name]
    alternative = "'einsum'" if name == "matmul" else "'gemm'"
    if spec.forward_only and not forward:
        msg = (
            f"method={name!r} computes forward convolutions only (its error bound is derived "
            f"for them), not gradients or transposed convolutions; use method={alternative} "
            "or 'auto'"
        )
        raise ValueError(msg)
    reason = spec.applies(geometry)
    if reason is not None:
        msg = f"method={name!r} {reason}; use method={alternative} or 'auto'"
        raise ValueError(msg)
    if dtype is not None and (reason := spec.accepts(dtype)) is not None:
        msg = f"method={name!r} {reason}; use method={alternative} or 'auto'"
        raise TypeError(msg)
    return name
