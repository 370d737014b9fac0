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

from mimo_conv._api import conv, conv1d, conv2d, conv3d
from mimo_conv._geometry import ConvGeometry, output_length
from mimo_conv._methods import METHOD_NAMES
from mimo_conv._textbook import (
    corr2d,
    corr2d_multi_in,
    corr2d_multi_in_out,
    corr2d_multi_in_out_1x1,
)
from mimo_conv._validation import PADDING_MODES

__version__ = "0.1.0"

__all__ = [
    "METHOD_NAMES",
    "PADDING_MODES",
    "ConvGeometry",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "corr2d",
    "corr2d_multi_in",
    "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1",
    "output_length",
]
