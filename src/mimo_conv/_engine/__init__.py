"""The engine: plan a call (which path, which copies, which chunks), then execute the plan.

:mod:`~mimo_conv._engine.plan` computes one frozen plan per call from the geometry, the
dtypes, the input's layout and an explicit budget, with the measured rates of
:mod:`~mimo_conv._engine.constants` and the formulas of :mod:`~mimo_conv._engine.formulas`;
:mod:`~mimo_conv._engine.execute` runs exactly that plan; :mod:`~mimo_conv._engine.rendering`
prints it and :mod:`~mimo_conv._engine.cost_model` answers questions about it
(``explain_method``). Imports :mod:`mimo_conv._core` and :mod:`mimo_conv._paths`; nothing
above.
"""
