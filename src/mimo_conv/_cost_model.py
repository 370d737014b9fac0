"""The cost model: which path ``method="auto"`` takes for a call.

A pure function of the geometry and the dtype plan (no arrays, no timing), so it can be
tested and printed without running anything.
"""

from __future__ import annotations

import math

from mimo_conv._dtypes import DtypePlan
from mimo_conv._geometry import ConvGeometry


def choose_method(geometry: ConvGeometry, plan: DtypePlan) -> str:
    """Return the name of the path ``method="auto"`` uses for this call.

    A 1 x 1 kernel is one matrix product (``"matmul"``); every other kernel goes through
    the sliding-window contraction (``"einsum"``).

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._dtypes import plan_dtypes
    >>> plan = plan_dtypes(np.dtype(np.float32), np.dtype(np.float32))
    >>> pointwise = ConvGeometry(1, 4, 2, 1, (5, 5), (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0)))
    >>> choose_method(pointwise, plan)
    'matmul'
    """
    del plan  # every path handles every dtype; later models weigh it
    if geometry.is_pointwise:
        return "matmul"
    return "einsum"


def workspace_bytes(method: str, geometry: ConvGeometry, plan: DtypePlan) -> int:
    """Bytes of temporary memory the path ``method`` allocates besides its output.

    Counts the padded copy of the input (when there is padding or a dtype conversion is
    not needed it is free) and each path's own buffer: ``"naive"`` one window, ``"einsum"``
    the im2col buffer ``tensordot`` copies the windows into, ``"matmul"`` the strided
    copy of the input when ``stride > 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from mimo_conv._dtypes import plan_dtypes
    >>> plan = plan_dtypes(np.dtype(np.float64), np.dtype(np.float64))
    >>> g = ConvGeometry(1, 2, 4, 1, (5, 5), (3, 3), (1, 1), (1, 1), ((0, 0), (0, 0)))
    >>> workspace_bytes("einsum", g, plan)  # 2 channels * 3*3 outputs * 3*3 taps * 8 bytes
    1296
    """
    itemsize = plan.compute.itemsize
    batch_channels = geometry.batch_size * geometry.in_channels
    padded = batch_channels * math.prod(geometry.padded_shape) if geometry.is_padded else 0
    if method == "naive":
        own = geometry.terms_per_output
    elif method == "einsum":
        own = batch_channels * math.prod(geometry.output_shape) * math.prod(geometry.kernel_shape)
    elif method == "matmul":
        strided = any(step > 1 for step in geometry.stride)
        own = batch_channels * math.prod(geometry.output_shape) if strided else 0
    else:
        msg = f"method must be one of 'naive', 'einsum', 'matmul', got {method!r}"
        raise ValueError(msg)
    return (padded + own) * itemsize
