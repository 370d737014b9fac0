"""The backward pass: gradients of a convolution with respect to its input, weight and bias.

Both gradients are correlations run on the engine (:mod:`mimo_conv._engine`), plus the
adjoint of the padding. Imports the core, the paths' helpers and the engine; nothing above.
"""
