"""Gradients of a convolution, mirroring ``torch.nn.grad``.

``conv_input`` and ``conv_weight`` give the gradient of :func:`mimo_conv.conv` with respect
to its input and its kernels from the gradient of its output; ``conv_bias`` the gradient of
the bias. The ``conv{1,2,3}d_*`` variants check the number of spatial dimensions. Every
option of the forward pass is supported: padding in every form, every ``padding_mode``
(the gradient of a padded border flows back into the elements it copied), stride,
dilation, groups, and every dtype with the same policy (integers exact, ``dtype=object``
exact). ``method=`` and ``memory_budget=`` are accepted and validated as by
:func:`mimo_conv.conv`, and both gradients run on the chosen forward path (each is itself a
forward convolution): ``conv_weight`` correlates the input with ``grad_output``,
``conv_input`` correlates ``grad_output`` (zeros inserted by the stride) with the flipped
kernels; ``conv_input``'s ``"auto"`` is a scatter of the windows' gradients instead,
unless the cost model predicts the correlation faster. Both
keep their temporaries within the memory budget.

``mimo_conv.conv_backward`` computes all three at once.

Examples
--------
>>> import numpy as np
>>> from mimo_conv import grad
>>> w = np.array([[[[1, 2], [3, 4]]]])
>>> grad.conv2d_input((1, 1, 3, 3), w, np.ones((1, 1, 2, 2), dtype=int))
array([[[[ 1,  3,  2],
         [ 4, 10,  6],
         [ 3,  7,  4]]]])
"""

from mimo_conv._ops.grad import (
    conv1d_input,
    conv1d_weight,
    conv2d_input,
    conv2d_weight,
    conv3d_input,
    conv3d_weight,
    conv_bias,
    conv_input,
    conv_weight,
)

__all__ = [
    "conv1d_input",
    "conv1d_weight",
    "conv2d_input",
    "conv2d_weight",
    "conv3d_input",
    "conv3d_weight",
    "conv_bias",
    "conv_input",
    "conv_weight",
]
