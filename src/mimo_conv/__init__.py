"""mimo_conv: a NumPy-only reference for multi-input, multi-output channel convolution.

Deep-learning "convolution" (cross-correlation) with PyTorch's semantics, grown from
"Dive into Deep Learning", section 6.4. See :func:`conv` for the general engine and
:func:`corr2d_multi_in_out` for the textbook's functions.

Examples
--------
>>> import mimo_conv as mc
>>> mc.corr2d([[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[0, 1], [2, 3]])
array([[19, 25],
       [37, 43]])
"""

from mimo_conv import grad as grad
from mimo_conv import testing as testing
from mimo_conv._classroom.compose import compose, decompose
from mimo_conv._classroom.conv_matrix import conv_matrix
from mimo_conv._classroom.counts import ConvCost, cost, output_shape
from mimo_conv._classroom.figures import animate_conv, draw_conv
from mimo_conv._classroom.textbook import (
    corr2d,
    corr2d_multi_in,
    corr2d_multi_in_out,
    corr2d_multi_in_out_1x1,
)
from mimo_conv._core.arguments import PADDING_MODES
from mimo_conv._core.budget import get_memory_budget, memory_budget, set_memory_budget
from mimo_conv._core.geometry import ConvGeometry, output_length
from mimo_conv._core.machine import show_config
from mimo_conv._core.version import __version__ as __version__
from mimo_conv._core.workers import get_threads, set_threads
from mimo_conv._engine.cost_model import explain_method
from mimo_conv._gradients.backward import conv_backward
from mimo_conv._ops.conv import conv, conv1d, conv2d, conv3d
from mimo_conv._ops.quantized import conv_integer
from mimo_conv._ops.transpose import (
    conv_transpose,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    explain_conv_transpose,
)
from mimo_conv._ops.unfold import fold, unfold
from mimo_conv._paths.registry import METHOD_NAMES

__all__ = [
    "METHOD_NAMES",
    "PADDING_MODES",
    "ConvCost",
    "ConvGeometry",
    "animate_conv",
    "compose",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_backward",
    "conv_integer",
    "conv_matrix",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "corr2d",
    "corr2d_multi_in",
    "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1",
    "cost",
    "decompose",
    "draw_conv",
    "explain_conv_transpose",
    "explain_method",
    "fold",
    "get_memory_budget",
    "get_threads",
    "memory_budget",
    "output_length",
    "output_shape",
    "set_memory_budget",
    "set_threads",
    "show_config",
    "unfold",
]
