"""The oracle's operations are the library's public functions themselves, not copies."""

from __future__ import annotations

import pytest

import mimo_conv as mc
from mimo_conv.testing import operations


@pytest.mark.parametrize("op", list(operations.OPERATIONS))
def test_every_operation_is_the_public_function(op: str) -> None:
    # A copy could drift from the public signature (a new option such as layout= would be
    # missing); the very function cannot.
    function = operations.OPERATIONS[op][0]
    public = getattr(mc, op, None) or getattr(mc.grad, op)
    assert function is public
