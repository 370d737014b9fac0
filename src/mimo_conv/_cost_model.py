"""The cost model: which path ``method="auto"`` takes for a call.

A pure function of the geometry and the dtype plan (no arrays, no timing), so it can be
tested and printed without running anything.
"""

from __future__ import annotations

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
