"""The public operations: ``conv`` (and ``conv1d/2d/3d``), ``conv_transpose``, ``unfold``/``fold``.

Each validates its arguments once, asks the engine for the result and returns it.
Imports the core, the engine and the gradients (a transposed convolution is an input
gradient); nothing above.
"""
