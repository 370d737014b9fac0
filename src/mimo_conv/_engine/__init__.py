"""The engine: the cost model that chooses a path, and the execution of that choice.

Imports :mod:`mimo_conv._core` and :mod:`mimo_conv._paths`; nothing above.
"""
