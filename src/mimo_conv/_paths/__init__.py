"""The computational paths: one module per way of computing a correlation.

Each path module holds its function and its record (:class:`~mimo_conv._paths.spec.PathSpec`:
when it applies, its chunk sizes, its work formula); :mod:`~mimo_conv._paths.registry` lists
the records, one line per path. Adding a path is one new module and one registry line.
Paths import only :mod:`mimo_conv._core` (and :mod:`~mimo_conv._paths.spec`).
"""
