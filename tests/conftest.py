"""Hypothesis profiles shared by the whole suite.

* ``ci`` (the default): derandomized, so every run tries the same examples; sized to keep
  the suite to a few minutes on a 2-core machine.
* ``dev``: random examples, same size; ``HYPOTHESIS_PROFILE=dev pytest``.
* ``soak``: 2000 examples per property (the error-bound soundness checks want thousands),
  for a long local run before a release; ``HYPOTHESIS_PROFILE=soak pytest``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.register_profile(
    "soak", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
