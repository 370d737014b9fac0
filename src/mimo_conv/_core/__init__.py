"""The ground floor: what every other part of mimo_conv stands on.

Argument parsing and the frozen :class:`~mimo_conv._core.geometry.ConvGeometry` it builds,
the dtype plan (:mod:`~mimo_conv._core.dtypes`), the memory budget, the padded copy and the
strided window views, and the im2col columns. Modules here import NumPy and each other,
never another part of mimo_conv.
"""
