"""The cost model's questions: which path ``method="auto"`` takes for a call, and why.

The model itself is split by concern: the machine's measured rates in
:mod:`~mimo_conv._engine.constants`, the formulas that turn a path's counted work into
seconds in :mod:`~mimo_conv._engine.formulas`, the plan of one call in
:mod:`~mimo_conv._engine.plan` and its printed table in :mod:`~mimo_conv._engine.rendering`.
Here are the questions one asks of it: :func:`explain_method` (public: the plan of a call,
from its arguments), and, from a geometry and dtypes alone (operands taken to be in the
compute dtype and C-contiguous), :func:`choose_method`, :func:`path_cost` and
:func:`workspace_bytes`.

Examples
--------
>>> import numpy as np
>>> from mimo_conv._core.dtypes import plan_dtypes
>>> plan = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
>>> g = ConvGeometry(
...     batch_size=1, in_channels=2, out_channels=4, groups=1, input_shape=(5, 5),
...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
... )
>>> choose_method(g, plan)
'gemm'
"""

from __future__ import annotations

from mimo_conv._core.budget import resolve_budget
from mimo_conv._core.dtypes import DtypePlan
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.layouts import canonical, parse_layouts
from mimo_conv._core.operands import prepare_call
from mimo_conv._engine.execute import plan_for
from mimo_conv._engine.plan import ConvPlan, PathCost, plan_conv
from mimo_conv._paths.registry import METHODS

__all__ = [
    "PathCost",
    "choose_method",
    "explain_choice",
    "explain_method",
    "path_cost",
    "workspace_bytes",
]


def explain_choice(geometry: ConvGeometry, plan: DtypePlan, budget: int | None = None) -> ConvPlan:
    """Plan a call whose operands are in the compute dtype and C-contiguous.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> plan = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=4, groups=1, input_shape=(5, 5),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> explain_choice(g, plan, 64).chosen is None  # one im2col row needs 432 bytes
    True
    """
    operands = (plan.compute, plan.compute)
    return plan_conv(geometry, plan, operands, True, resolve_budget(budget))


def choose_method(geometry: ConvGeometry, plan: DtypePlan, budget: int | None = None) -> str:
    """Return the name of the path ``method="auto"`` uses (``MemoryError`` if none fits).

    The fastest path by the cost model among those that can run within the memory budget:
    ``"matmul"`` for a 1 x 1 kernel, ``"gemm"`` or ``"row_gemm"`` for most other float
    kernels (whichever copies less for its BLAS time), ``"shift"`` when an im2col buffer
    would not fit, ``"naive"`` only when nothing else fits. The choice depends on the
    thread count (:func:`mimo_conv.get_threads`): BLAS runs a large product on every
    thread, while NumPy's copies run on one unless the path splits them, so more threads
    favour the paths that copy less.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> plan = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
    >>> pointwise = ConvGeometry(
    ...     batch_size=1, in_channels=4, out_channels=2, groups=1, input_shape=(5, 5),
    ...     kernel_shape=(1, 1), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> choose_method(pointwise, plan)
    'matmul'
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> choose_method(g, plan)  # saves 6 of the 9 tap copies of "gemm"
    'row_gemm'
    >>> stride_2 = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=128, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(2, 2), dilation=(1, 1), padding=((1, 1),) * 2,
    ... )
    >>> choose_method(stride_2, plan)
    'gemm'
    >>> wide = ConvGeometry(
    ...     batch_size=1, in_channels=64, out_channels=64, groups=1, input_shape=(3, 1002),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> choose_method(wide, plan, budget=10**6)  # one im2col row needs 2304000 bytes
    'shift'
    """
    chosen = explain_choice(geometry, plan, budget)
    return chosen.cost.method


def path_cost(
    method: str, geometry: ConvGeometry, plan: DtypePlan, budget: int | None = None
) -> PathCost:
    """Return the plan and predicted cost of one path (``seconds`` is ``inf`` if it cannot run).

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> plan = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
    >>> g = ConvGeometry(
    ...     batch_size=8, in_channels=64, out_channels=64, groups=1, input_shape=(56, 56),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((1, 1), (1, 1)),
    ... )
    >>> cost = path_cost("gemm", g, plan)
    >>> cost.flops  # 2 * 8 * 64 * 56 * 56 * 64 * 9
    1849688064
    >>> cost.workspace  # padded input (6.6 MiB) + im2col of one image (6.9 MiB)
    14114816
    >>> path_cost("matmul", g, plan).note
    'needs a 1 x 1 kernel, got kernel shape (3, 3)'
    """
    _check_modelled(method)
    operands = (plan.compute, plan.compute)
    planned = plan_conv(geometry, plan, operands, True, resolve_budget(budget), method)
    return planned.candidates[0]


def workspace_bytes(
    method: str, geometry: ConvGeometry, plan: DtypePlan, budget: int | None = None
) -> int:
    """Peak bytes of temporary memory the path ``method`` holds besides its output.

    The padded copy of the input (when there is padding), the bias, and the path's largest
    chunk under the budget: ``"naive"`` one window, ``"gemm"`` one chunk of the im2col
    buffer, ``"shift"`` one chunk of the shifted input and one of a product (and its
    re-laid-out kernels), ``"einsum"`` one chunk of the window copies and its result,
    ``"matmul"`` one chunk of the strided copy of the input when ``stride > 1``. For a path
    that cannot run under the budget, its smallest working set.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._core.dtypes import plan_dtypes
    >>> plan = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=2, out_channels=4, groups=1, input_shape=(5, 5),
    ...     kernel_shape=(3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
    ... )
    >>> workspace_bytes("gemm", g, plan)  # 2 channels * 9 taps * 9 outputs * 8 bytes
    1296
    """
    return path_cost(method, geometry, plan, budget).workspace


def _check_modelled(method: str) -> None:
    """Raise ``ValueError`` for a name that is not a path."""
    if method not in METHODS:
        msg = f"method must be one of {tuple(METHODS)!r}, got {method!r}"
        raise ValueError(msg)


def explain_method(
    x: object,
    weight: object,
    bias: object = None,
    stride: object = 1,
    padding: object = 0,
    dilation: object = 1,
    groups: object = 1,
    *,
    padding_mode: str = "zeros",
    memory_budget: int | None = None,
    layout: str | None = None,
    weight_layout: str | None = None,
) -> ConvPlan:
    """Show the plan of a call: which path ``method="auto"`` takes, and the model behind it.

    Takes the arguments of :func:`mimo_conv.conv` (validated the same way) and computes
    nothing: it returns the very plan :func:`mimo_conv.conv` would execute, whose ``str``
    lists every path with its operation count, memory traffic, NumPy calls, peak temporary
    memory and predicted time, the chosen path marked with ``*``. When no path fits the
    memory budget it says so (``.chosen`` is None) and names each path's smallest working
    set.

    Parameters
    ----------
    x, weight, bias, stride, padding, dilation, groups, padding_mode, memory_budget
        As in :func:`mimo_conv.conv`.
    layout, weight_layout
        As in :func:`mimo_conv.conv`: a channels-last ``layout`` (``"NHWC"``) plans the
        ``"channels_last"`` path too, and every other path with the copy of its result.

    Returns
    -------
    ConvPlan
        ``.chosen`` is the path's name (None if none fits); ``.candidates`` the per-path
        :class:`PathCost`.

    Examples
    --------
    >>> import numpy as np
    >>> import mimo_conv as mc
    >>> choice = mc.explain_method(np.ones((8, 64, 56, 56), np.float32),
    ...                            np.ones((64, 64, 3, 3), np.float32), padding=1)
    >>> choice.chosen
    'row_gemm'
    >>> print(choice)  # doctest: +SKIP
    method='auto' for x (8, 64, 56, 56) * weight (64, 64, 3, 3), groups=1, ...
    compute dtype float32, memory budget 256.0 MiB, 1 thread(s)
    <BLANKLINE>
      path          FLOP      moved   calls  workspace   predicted  note
      naive     1.85e+09      0 B       0     13.6 MiB      17.9 s  Python loops
      ...
    * row_gemm  1.85e+09  110.3 MiB      72   14.3 MiB       39 ms  im2col of later taps ...
    <BLANKLINE>
    chosen: 'row_gemm'

    A budget too small for every path says so instead of choosing one:

    >>> tight = mc.explain_method(np.ones((8, 16, 32, 32), np.float16),
    ...                           np.ones((16, 16, 3, 3), np.float16), memory_budget=100_000)
    >>> print(tight.chosen)
    None
    >>> print(str(tight).splitlines()[-2])
    chosen: none fits the memory budget
    """
    layouts = parse_layouts(layout, weight_layout, spatial_dims=None, transposed=False)
    x_array, weight_array, bias_array, geometry, plan = prepare_call(
        canonical(x, layouts.input_order, "x"),
        canonical(weight, layouts.weight_order, "weight"),
        bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    budget = resolve_budget(memory_budget)
    return plan_for(
        x_array, weight_array, geometry, plan, budget, "auto", bias_array,
        result_layout=layouts.result_layout,
    )  # fmt: skip
