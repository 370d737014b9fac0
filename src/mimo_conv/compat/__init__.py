"""Drop-in adapters: JAX's, TensorFlow's and ONNX's convolutions with their own signatures.

Each module takes a framework's arguments (names, defaults, layouts, padding rules) and
computes the result with mimo_conv, in pure NumPy: no framework is imported. A kernel written
for a framework can be checked against mimo_conv by calling the adapter with the very
arguments it was given:

* :mod:`mimo_conv.compat.jax`: ``conv_general_dilated`` (input and kernel dilation,
  ``dimension_numbers``, feature and batch groups, negative padding) and ``conv_transpose``;
* :mod:`mimo_conv.compat.tf`: ``conv1d``, ``conv2d``, ``conv3d``, ``depthwise_conv2d``,
  ``conv2d_transpose``, ``conv3d_transpose`` and ``atrous_conv2d`` of ``tf.nn``;
* :mod:`mimo_conv.compat.onnx`: the ``Conv``, ``ConvTranspose``, ``ConvInteger`` and
  ``QLinearConv`` operators, attributes as keyword arguments.

Where a framework's documentation and implementations disagree, the adapter follows the
specification; ``docs/frameworks.md`` lists each divergence found and what each
implementation does.

Examples
--------
>>> import numpy as np
>>> from mimo_conv.compat import jax, onnx, tf
>>> x = np.ones((1, 5, 5, 3), np.float32)  # NHWC
>>> tf.conv2d(x, np.ones((3, 3, 3, 4), np.float32), strides=2, padding="SAME").shape
(1, 3, 3, 4)
>>> jax.conv_general_dilated(x, np.ones((3, 3, 3, 4), np.float32), (2, 2), "SAME",
...                          dimension_numbers=("NHWC", "HWIO", "NHWC")).shape
(1, 3, 3, 4)
>>> onnx.conv(np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3)), auto_pad="SAME_UPPER",
...           strides=[2, 2]).shape
(1, 4, 3, 3)
"""
