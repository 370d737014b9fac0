"""The ground floor: what every other part of mimo_conv stands on.

Option parsing (:mod:`~mimo_conv._core.arguments`), the frozen
:class:`~mimo_conv._core.geometry.ConvGeometry` and its cache
(:mod:`~mimo_conv._core.geometry_cache`), the operands and the dtype plan of a call
(:mod:`~mimo_conv._core.operands`, :mod:`~mimo_conv._core.dtypes`), the memory budget, the
padded copy and the strided window views, and the im2col columns. Modules here import
NumPy and each other, never another part of mimo_conv.
"""
