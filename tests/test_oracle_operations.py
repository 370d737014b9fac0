"""The oracle's operations take exactly the arguments of the library's public functions."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

import mimo_conv as mc
from mimo_conv.testing import operations


@pytest.mark.parametrize("name", ["conv_input", "conv_weight", "conv_bias"])
def test_gradient_signatures_are_those_of_mimo_conv_grad(name: str) -> None:
    ours = inspect.signature(getattr(operations, name))
    public = inspect.signature(getattr(mc.grad, name))
    assert list(ours.parameters) == list(public.parameters)
    for parameter, theirs in zip(ours.parameters.values(), public.parameters.values(), strict=True):
        assert parameter.kind == theirs.kind
        assert parameter.default == theirs.default


def test_gradients_agree_with_mimo_conv_grad() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (2, 4, 6))
    w = rng.integers(-3, 4, (4, 2, 3))
    g = rng.integers(-3, 4, (2, 4, 3))
    options: dict[str, Any] = {"stride": 2, "padding": 1, "groups": 2, "padding_mode": "reflect"}
    np.testing.assert_array_equal(
        operations.conv_input(x.shape, w, g, **options),
        mc.grad.conv_input(x.shape, w, g, **options),
    )
    np.testing.assert_array_equal(
        operations.conv_weight(x, w.shape, g, **options),
        mc.grad.conv_weight(x, w.shape, g, **options),
    )
    np.testing.assert_array_equal(operations.conv_bias(g), mc.grad.conv_bias(g))


@pytest.mark.parametrize("op", list(operations.OPERATIONS))
def test_every_operation_is_a_public_function(op: str) -> None:
    function = operations.OPERATIONS[op][0]
    public = getattr(mc, op, None) or getattr(mc.grad, op)
    assert list(inspect.signature(function).parameters) == list(
        inspect.signature(public).parameters
    )
