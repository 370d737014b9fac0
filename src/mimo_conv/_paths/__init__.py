"""The computational paths: one module per way of computing a correlation.

Each path takes a padded input, the weights and the geometry and returns the correlation;
:mod:`~mimo_conv._paths.registry` holds one record per path (what it applies to, its
smallest chunk, its workspace). Paths import only :mod:`mimo_conv._core`.
"""
